"""How long training waits for its data: the share of wall time spent waiting for the next
batch (``data_wait``), in every training stage's progress bar and metrics.jsonl, and per stage in
the report, so that a starved device can be told from a slow one."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any


class DataWait:
    """The share of wall time spent waiting for the next batch from the loader (``data_wait``):
    near 1, decoding sets the pace and a faster device would only wait longer (more
    ``data.num_workers``, or smaller images); near 0, the model does."""

    def __init__(self) -> None:
        self._waited = 0.0
        self._marks: dict[str, tuple[float, float]] = {}

    def timed(self, items: Iterable[Any]) -> Iterator[Any]:
        """``items``, timing each wait for the next one."""
        self._marks.setdefault("start", (time.perf_counter(), self._waited))
        it = iter(items)
        while True:
            t = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                return
            self._waited += time.perf_counter() - t
            yield item

    def share(self, reader: str = "log") -> float:
        """The share waited since this reader's last call (since the first batch was asked for, the first time)."""
        now = time.perf_counter()
        start, waited = self._marks.get(reader, self._marks.get("start", (now, self._waited)))
        self._marks[reader] = (now, self._waited)
        return round((self._waited - waited) / (now - start), 4) if now > start else 0.0
