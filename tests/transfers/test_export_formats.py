"""The export writers (no server): batches streamed to one file per format, read back; format choice."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import pytest

from airflow_provider_prefinery.exceptions import PrefineryInputError
from airflow_provider_prefinery.transfers.export_columns import RESOURCES
from airflow_provider_prefinery.transfers.export_formats import FORMATS, Format, format_of
from tests.transfers.export_support import USER


@pytest.mark.parametrize("name", list(FORMATS))
def test_each_writer_streams_batches_that_read_back_as_one_file(name: str) -> None:
    spec = RESOURCES["users"]
    sink = io.BytesIO()
    writer = FORMATS[name].writer(sink, spec)
    first, second = dict(USER), {**USER, "id": 5002, "profile": {}, "responses": []}
    writer.write([spec.row(first, 1001)])
    writer.write([])
    writer.write([spec.row(second, 1001)])
    writer.close()

    data = sink.getvalue()
    if name == "jsonl":
        rows = [json.loads(line) for line in data.decode().splitlines()]
        assert rows[0]["applied_at"] == "2025-01-02T03:04:05Z" and rows[0]["profile_extra"]["score"] == 3
        assert rows[1]["profile_extra"] is None
    elif name == "csv":
        lines = data.decode().split("\n")
        assert lines[0].split(",")[:3] == ["id", "beta_id", "email"] and lines[-1] == ""
        assert '"{""favourite"":""teal"",""score"":3}"' in lines[1] and ",2025-01-02T03:04:05Z," in lines[1]
        rows = lines[1:-1]
    else:
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(io.BytesIO(data))
        assert parquet.metadata.num_row_groups == 2  # one per non-empty batch
        rows = parquet.read().to_pylist()
        assert rows[0]["applied_at"] == datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        assert json.loads(rows[0]["responses"]) == USER["responses"]
    assert len(rows) == 2


def test_the_format_comes_from_the_name_or_the_extension() -> None:
    assert format_of(None, "users.NDJSON").name == "jsonl"
    assert format_of(None, "users.pq").name == "parquet"
    assert format_of("csv", "users.txt").name == "csv"
    with pytest.raises(PrefineryInputError, match="allowed: jsonl, csv, parquet") as caught:
        format_of(None, "users.xlsx")
    assert caught.value.field == "file_format"


def test_a_format_whose_library_is_missing_names_the_extra() -> None:
    missing = Format("parquet", (".parquet",), FORMATS["parquet"].writer, "no_such_module_here", "parquet")

    with pytest.raises(PrefineryInputError, match=r"pip install 'airflow-provider-prefinery\[parquet\]'"):
        missing.require()
