"""Bounded concurrency for many calls: run one function over a stream of items in a few threads."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def bounded_map(
    fn: Callable[[T], R], items: Iterable[T], *, max_workers: int = 4
) -> Iterator[tuple[int, T, R | None, BaseException | None]]:
    """Run ``fn`` over ``items`` in threads, at most ``max_workers`` at once; yield as each finishes.

    Items are pulled lazily, so a 100,000-record input never has more than ``2 * max_workers`` futures
    alive. Each result is ``(index, item, value, error)``; one failing item never stops the others.
    """
    max_workers = max(1, int(max_workers))
    source = enumerate(items)
    window = 2 * max_workers
    pending: dict[Future[R], tuple[int, T]] = {}
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="prefinery") as pool:

        def fill() -> None:
            while len(pending) < window:
                nxt = next(source, None)
                if nxt is None:
                    return
                idx, item = nxt
                pending[pool.submit(fn, item)] = (idx, item)

        fill()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                idx, item = pending.pop(fut)
                exc = fut.exception()
                yield idx, item, (None if exc else fut.result()), exc
            fill()
