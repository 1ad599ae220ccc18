"""The export's reader thread: it stops when the consumer stops, whatever the reason."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from exporter.export import prefetch


def endless() -> Iterator[int]:
    n = 0
    while True:
        n += 1
        yield n


def readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "prefetch"]


def test_prefetch_yields_in_order_and_finishes() -> None:
    assert list(prefetch(iter(range(100)), depth=3)) == list(range(100))
    assert readers() == []


def test_prefetch_thread_stops_when_closed_early() -> None:
    items = prefetch(endless(), depth=2)
    assert next(items) == 1
    time.sleep(0.2)  # the reader has filled the queue and waits
    items.close()
    assert readers() == []


def test_prefetch_hands_the_reader_error_to_the_consumer() -> None:
    def failing() -> Iterator[int]:
        yield 1
        raise OSError("disk gone")

    items = prefetch(failing())
    assert next(items) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(items)
    assert readers() == []


def test_prefetch_thread_stops_when_the_consumer_fails() -> None:
    items = prefetch(endless(), depth=2)
    with pytest.raises(ZeroDivisionError):
        for n in items:
            if n == 3:
                raise ZeroDivisionError
    items.close()
    assert readers() == []
