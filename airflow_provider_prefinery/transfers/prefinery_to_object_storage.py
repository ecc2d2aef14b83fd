"""PrefineryToObjectStorageOperator: one resource of one project to a file on any Airflow object storage.

The file is written under a temporary name beside the target (``.<name>.<token>.tmp``, hidden from the
usual globbing of Spark, Hive and pandas) and moved onto the target only once complete: a failed or retried
export never leaves a half file as the output, and a previous good file stays until the new one replaces it.
On failure the temporary is removed; only a killed worker can leave one behind (hidden, never the output).
On a local disk the move is an atomic rename; on S3 or GCS it is a server-side copy, so readers still never
see a partial object.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from typing import Any

from airflow.providers.common.compat.sdk import Context

from airflow_provider_prefinery.exceptions import PrefineryInputError
from airflow_provider_prefinery.transfers.export_base import ExportSource, PrefineryExportOperator, templated
from airflow_provider_prefinery.transfers.export_formats import Format, format_of

LOCAL_PROTOCOLS = frozenset({"file", "local"})


def temporary_beside(target: Any) -> Any:
    """A hidden, unique name in the target's folder (same store, so the final move is a rename)."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")


class PrefineryToObjectStorageOperator(PrefineryExportOperator):
    """Export one Prefinery resource to a JSON Lines, CSV or Parquet file on any object storage.

    Memory stays flat whatever the size: one page is read at a time and rows are written in batches of
    ``batch_size`` (one Parquet row group each). Columns follow the documented table in ``export_columns``.

    :param path: the target, a URL such as ``file:///data/{{ ds }}/users.parquet`` or
        ``s3://bucket/prefinery/{{ ds }}/users.csv`` (templated), or an ``ObjectStoragePath``.
    :param file_format: ``jsonl``, ``csv`` or ``parquet``; by default the path's extension says
        (``.jsonl``/``.ndjson``, ``.csv``, ``.parquet``/``.pq``). Parquet needs the ``parquet`` extra.
    :param storage_conn_id: the object storage's Airflow connection (e.g. an ``aws`` one for ``s3://``);
        by default the path's own (``s3://conn_id@bucket/key``) or the store's default.
    :return: ``{resource, beta_id, filters, file_format, path, rows, bytes, requests, retries, seconds}``; the
        same is set as the extra of every asset in ``outlets``, so consumers learn the dated path.

    Other parameters: see :class:`~airflow_provider_prefinery.transfers.export_base.PrefineryExportOperator`.
    """

    template_fields: Sequence[str] = (
        *PrefineryExportOperator.template_fields,
        "path",
        "file_format",
        "storage_conn_id",
    )

    def __init__(
        self,
        *,
        path: Any,
        file_format: str | None = None,
        storage_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.file_format = file_format
        self.storage_conn_id = storage_conn_id
        if file_format is not None and not templated(file_format):
            format_of(file_format, "")

    def target(self) -> Any:
        """The rendered target as an ``ObjectStoragePath``: a URL with a scheme and a file name."""
        from airflow.sdk import ObjectStoragePath

        if isinstance(self.path, ObjectStoragePath):
            target = self.path
        else:
            text = self.path if isinstance(self.path, str) else ""
            if "://" not in text:
                raise PrefineryInputError(
                    "path",
                    f"must be a URL with a scheme, got {self.path!r}",
                    allowed="e.g. file:///data/users.parquet, s3://bucket/prefinery/users.csv",
                )
            target = ObjectStoragePath(text, conn_id=self.storage_conn_id)
        if not target.name or str(self.path).endswith("/"):
            raise PrefineryInputError("path", f"must name a file, not a folder: {self.path!r}")
        return target

    def execute(self, context: Context) -> dict[str, Any]:
        target = self.target()
        fmt = format_of(self.file_format, target.name)
        source = self.open_source()
        self.log.info(
            "Exporting %s of project %s to %s (%s)", source.resource.name, source.beta_id, target, fmt.name
        )
        size = self._write_atomically(target, fmt, source)
        summary = {**source.summary(), "file_format": fmt.name, "path": str(target), "bytes": size}
        self.log.info(
            "Exported %s %s (%s bytes) to %s with %d requests",
            f"{summary['rows']:,}", summary["resource"], f"{size:,}", target, summary["requests"],
        )  # fmt: skip
        self._describe_outlets(context, summary)
        return summary

    def _write_atomically(self, target: Any, fmt: Format, source: ExportSource) -> int:
        """Write everything to a temporary beside ``target``, then move it there; on failure, remove it."""
        if target.protocol in LOCAL_PROTOCOLS:
            target.parent.mkdir(parents=True, exist_ok=True)
        temporary = temporary_beside(target)
        try:
            with temporary.open("wb") as sink:
                writer = fmt.writer(sink, source.resource)
                try:
                    for batch in source.batches(self.batch_size):
                        writer.write(batch)
                finally:
                    writer.close()  # also on failure, so the file is closed cleanly before it is removed
            size = int(temporary.size())
            temporary.move(target)
        except BaseException:
            with contextlib.suppress(Exception):
                if temporary.exists():
                    temporary.unlink()
            raise
        return size

    def _describe_outlets(self, context: Context, summary: dict[str, Any]) -> None:
        """Put the summary (the dated path above all) on the asset events of this task's outlets."""
        events = context.get("outlet_events") if hasattr(context, "get") else None
        if events is None:
            return
        for outlet in self.outlets or []:
            with contextlib.suppress(KeyError, TypeError, AttributeError):
                events[outlet].extra.update(summary)

    def lineage_output(self) -> tuple[str, str]:
        """The written file as ``(namespace, name)``, e.g. ``("s3://bucket", "exports/users.csv")``."""
        target = self.target()
        return target.namespace, target.key or target.path
