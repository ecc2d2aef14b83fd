"""Prefinery's pagination: 25 items a page, and the ``X-Pagination`` header that describes the page."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_prefinery.sandbox.db import Database

PER_PAGE = 25

Render = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class Page:
    """One page of a Prefinery list and its ``X-Pagination`` header."""

    items: list[dict[str, Any]]
    header: dict[str, Any] = field(default_factory=dict)


def paginate(db: Database, select: str, params: Sequence[Any], page: int, render: Render) -> Page:
    """Page ``page`` (1-based; below 1 reads as 1) of the rows ``select`` finds, in id order."""
    total = db.value(f"SELECT COUNT(*) FROM ({select})", params)
    page = max(1, page)
    rows = db.rows(f"{select} ORDER BY id LIMIT {PER_PAGE} OFFSET {(page - 1) * PER_PAGE}", params)
    pages = math.ceil(total / PER_PAGE)
    items = [render(r) for r in rows]
    header = {
        "previous_page": page - 1 if page > 1 else None,
        "next_page": page + 1 if page < pages else None,
        "current_page": page,
        "per_page": PER_PAGE,
        "count": len(items),
        "pages": pages,
        "total_count": total,
    }
    return Page(items, header)
