"""What the export operators share: the resource, its filters and project, rows in batches, the summary.

The operators stay thin: they check their input (here, before any request), ask ``PrefineryHook``'s public
``list_*`` method for a lazy iterator, turn records into rows with the one column table
(``export_columns``) and hand batches to their target. The names lineage needs (issue: OpenLineage facets)
are :meth:`PrefineryExportOperator.lineage_input` and each operator's ``lineage_output``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_prefinery import validation as v
from airflow_provider_prefinery.hooks.prefinery import PrefineryHook
from airflow_provider_prefinery.transfers.export_columns import Resource, Row, check_filters, resource_of

LINEAGE_NAMESPACE = "prefinery://{beta_id}"
"""The namespace of an exported resource's dataset (its name is the resource: ``users``, ``rewards``...)."""


def templated(value: Any) -> bool:
    """True for a value Airflow will still render (checked again in ``execute``)."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, Mapping):
        return any(templated(k) or templated(item) for k, item in value.items())
    if isinstance(value, (list, tuple)):
        return any(templated(item) for item in value)
    return not isinstance(value, (int, float, bool, type(None)))  # an XComArg or another template object


@dataclass
class ExportSource:
    """The rows of one resource of one project, pulled lazily through the hook, one page at a time."""

    resource: Resource
    beta_id: int
    filters: dict[str, Any]
    records: Iterator[dict[str, Any]]
    hook: PrefineryHook
    progress_interval: float = 10.0
    rows: int = 0
    started: float = field(default_factory=time.monotonic)
    _before: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._before = self.hook.stats

    def _made(self, counter: str) -> int:
        return self.hook.stats.get(counter, 0) - self._before.get(counter, 0)

    @property
    def requests(self) -> int:
        return self._made("requests")

    def batches(self, size: int) -> Iterator[list[Row]]:
        """Rows in lists of at most ``size``; progress logged at most every ``progress_interval`` s."""
        rows = self.resource.rows(self.records, self.beta_id)
        logged = time.monotonic()
        while batch := list(itertools.islice(rows, size)):
            self.rows += len(batch)
            yield batch
            if self.progress_interval and time.monotonic() - logged >= self.progress_interval:
                logged = time.monotonic()
                self.hook.log.info(
                    "Exported %s %s of project %s so far (%d requests, %.0f s)",
                    f"{self.rows:,}", self.resource.name, self.beta_id, self.requests, logged - self.started,
                )  # fmt: skip

    def summary(self) -> dict[str, Any]:
        """The part of the XCom summary every target shares."""
        return {
            "resource": self.resource.name,
            "beta_id": self.beta_id,
            "filters": self.filters,
            "rows": self.rows,
            "requests": self.requests,
            "retries": self._made("retries"),
            "seconds": round(time.monotonic() - self.started, 3),
        }


class PrefineryExportOperator(BaseOperator):
    """Base of the exports: one resource of one project, with the list filters its hook method has.

    :param resource: ``users``, ``rewards``, ``points`` or ``suppressions``.
    :param filters: keyword filters of the resource's ``PrefineryHook.list_*`` method, e.g.
        ``{"status": ["active", "idle"]}`` for users or ``{"status": "earned"}`` for rewards (templated).
    :param beta_id: the project (default: the connection's API Beta ID).
    :param prefinery_conn_id: the Prefinery connection.
    :param batch_size: rows per batch (a Parquet row group, a SQL transaction): memory holds one batch.
    :param progress_interval: log progress at most this often, in seconds (0: never).
    """

    template_fields: Sequence[str] = ("resource", "filters", "beta_id", "prefinery_conn_id")
    ui_color = "#dbeafe"
    default_batch_size = 5000

    def __init__(
        self,
        *,
        resource: str,
        filters: Mapping[str, Any] | None = None,
        beta_id: int | str | None = None,
        prefinery_conn_id: str = PrefineryHook.default_conn_name,
        batch_size: int | None = None,
        progress_interval: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.resource = resource
        self.filters = filters
        self.beta_id = beta_id
        self.prefinery_conn_id = prefinery_conn_id
        self.batch_size = v.positive_int(
            "batch_size", self.default_batch_size if batch_size is None else batch_size
        )
        self.progress_interval = progress_interval
        if not templated(resource):
            checked = resource_of(resource)
            if not templated(filters):
                check_filters(checked, filters)

    @cached_property
    def hook(self) -> PrefineryHook:
        return PrefineryHook(self.prefinery_conn_id, beta_id=self.beta_id)

    def open_source(self) -> ExportSource:
        """Check the rendered resource and filters, resolve the project, and get the lazy listing.

        The hook method checks the filter values and sends nothing until the first row is read.
        """
        resource = resource_of(self.resource)
        filters = check_filters(resource, self.filters)
        beta_id = self.hook.resolve_beta_id(self.beta_id)
        records = getattr(self.hook, resource.list_method)(beta_id=beta_id, **filters)
        return ExportSource(resource, beta_id, filters, records, self.hook, self.progress_interval)

    def lineage_input(self, beta_id: int) -> tuple[str, str]:
        """The exported dataset as ``(namespace, name)``, e.g. ``("prefinery://1001", "users")``."""
        return LINEAGE_NAMESPACE.format(beta_id=beta_id), str(self.resource)
