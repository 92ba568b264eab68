"""Progress events. Core code reports through a callback; only the CLI draws."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class StepStarted:
    label: str
    number: int
    total: int
    kind: str
    target: str
    summary: str
    lock: str


@dataclass(frozen=True)
class StepFinished:
    label: str
    number: int
    seconds: float
    rows: int
    attempts: int


@dataclass(frozen=True)
class BackfillProgress:
    """After each batch of a batched step: rows seen so far, the estimated total, the rate, the
    batches done so far and the rows of the batch just done (sized by time, at most batch_size)."""

    label: str
    number: int
    rows_done: int
    rows_total: int
    rows_per_second: float
    batches: int = 0
    batch_rows: int = 0


@dataclass(frozen=True)
class IndexProgress:
    label: str
    number: int
    phase: str
    done: int
    total: int


@dataclass(frozen=True)
class Message:
    text: str
    level: str = "info"      # info | notice | warning


ProgressEvent = StepStarted | StepFinished | BackfillProgress | IndexProgress | Message
ProgressCallback = Callable[[ProgressEvent], None]


def ignore(_event: ProgressEvent) -> None:
    """The default callback: library callers who don't care about progress."""
