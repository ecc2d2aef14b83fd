"""The file formats of the export: JSON Lines, CSV and Parquet, each streaming batches of rows to a sink.

A writer gets a binary file object and the resource, takes batches of rows (``export_columns.Row``) and
holds nothing between batches but what its format needs (Parquet: the schema and the row-group index),
so memory stays flat whatever the export's size. ``close()`` finishes the file (Parquet's footer); the
caller owns and closes the sink. Parquet needs pyarrow, the ``parquet`` extra, imported only when used.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, Protocol

from airflow_provider_prefinery.exceptions import PrefineryInputError
from airflow_provider_prefinery.transfers.export_columns import Resource, Row, json_text, timestamp_text
from airflow_provider_prefinery.validation import one_of


class Writer(Protocol):
    def write(self, rows: Sequence[Row]) -> None: ...

    def close(self) -> None: ...


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return timestamp_text(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class JsonLinesWriter:
    """One JSON object per line, UTF-8, keys in column order; json columns embedded as JSON values."""

    def __init__(self, sink: BinaryIO, resource: Resource) -> None:
        self.sink = sink
        self.names = resource.column_names
        self.encode = json.JSONEncoder(
            ensure_ascii=False, separators=(",", ":"), default=_json_default
        ).encode

    def write(self, rows: Sequence[Row]) -> None:
        if rows:
            names, encode = self.names, self.encode
            text = "\n".join(encode(dict(zip(names, row, strict=True))) for row in rows) + "\n"
            self.sink.write(text.encode())

    def close(self) -> None:
        return None


def _csv_cell(kind: str) -> Callable[[Any], Any]:
    if kind == "timestamp":
        return lambda value: "" if value is None else timestamp_text(value)
    if kind == "json":
        return lambda value: "" if value is None else json_text(value)
    return lambda value: "" if value is None else value


class CsvWriter:
    """RFC 4180 quoting, UTF-8, a header row of the column names, ``\\n`` line ends, null as empty."""

    def __init__(self, sink: BinaryIO, resource: Resource) -> None:
        self.sink = sink
        self.cells = [_csv_cell(column.type) for column in resource.columns]
        self._write_lines([resource.column_names])

    def _write_lines(self, lines: Sequence[Sequence[Any]]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(lines)
        self.sink.write(buffer.getvalue().encode())

    def write(self, rows: Sequence[Row]) -> None:
        if rows:
            cells = self.cells
            self._write_lines([[cell(value) for cell, value in zip(cells, row, strict=True)] for row in rows])

    def close(self) -> None:
        return None


class ParquetWriter:
    """One row group per batch; int64, string, timestamp[us, UTC]; json columns as JSON text."""

    def __init__(self, sink: BinaryIO, resource: Resource) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        types = {"integer": pa.int64(), "text": pa.string(), "timestamp": pa.timestamp("us", tz="UTC")}
        self.pa = pa
        self.schema = pa.schema([pa.field(c.name, types.get(c.type, pa.string())) for c in resource.columns])
        self.json_columns = frozenset(i for i, c in enumerate(resource.columns) if c.type == "json")
        self.writer = pq.ParquetWriter(sink, self.schema, compression="snappy")

    def write(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        pa, arrays = self.pa, []
        for index, (values, spec) in enumerate(zip(zip(*rows, strict=True), self.schema, strict=True)):
            if index in self.json_columns:
                values = tuple(json_text(value) for value in values)
            arrays.append(pa.array(values, type=spec.type))
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))

    def close(self) -> None:
        self.writer.close()


@dataclass(frozen=True)
class Format:
    """A file format: its name, the file extensions that imply it, its writer, and the extra it needs."""

    name: str
    suffixes: tuple[str, ...]
    writer: Callable[[BinaryIO, Resource], Writer]
    module: str | None = None
    extra: str | None = None

    def require(self) -> None:
        """Fail before any request when the format's library is missing, naming the extra to install."""
        if self.module and importlib.util.find_spec(self.module) is None:
            raise PrefineryInputError(
                "file_format",
                f"{self.name!r} needs {self.module}, which is not installed: "
                f"pip install 'airflow-provider-prefinery[{self.extra}]'",
            )


FORMATS: dict[str, Format] = {
    "jsonl": Format("jsonl", (".jsonl", ".ndjson"), JsonLinesWriter),
    "csv": Format("csv", (".csv",), CsvWriter),
    "parquet": Format("parquet", (".parquet", ".pq"), ParquetWriter, module="pyarrow", extra="parquet"),
}


def format_of(name: Any, file_name: str) -> Format:
    """The format called ``name``, or (when None) the one the file's extension names; its library present."""
    if name is None:
        lowered = file_name.lower()
        found = [fmt for fmt in FORMATS.values() if lowered.endswith(fmt.suffixes)]
        if not found:
            suffixes = ", ".join(s for fmt in FORMATS.values() for s in fmt.suffixes)
            raise PrefineryInputError(
                "file_format",
                f"not given, and the file name {file_name!r} does not end in a known extension ({suffixes})",
                allowed=FORMATS,
            )
        fmt = found[0]
    else:
        fmt = FORMATS[one_of("file_format", name, FORMATS)]
    fmt.require()
    return fmt
