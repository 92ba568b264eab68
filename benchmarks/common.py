"""Settings, the run context, statistics and target verdicts shared by the benchmarks."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.server import Server

STALL_MS = 20.0       # a writer statement slower than this counts as a stall (typical: ~0.25 ms)
SLOW_MS = 100.0       # "seconds the writer spent in statements over 100 ms"


@dataclass(frozen=True)
class Settings:
    rows: int
    rounds: int
    quick: bool
    blocker_seconds: float          # benchmark 2: how long the blocker holds its lock
    generation_sizes: tuple[int, int]
    generation_budget: float        # benchmark 5: no new round starts after this many seconds
    wide_tables: int = 60
    writer_rate: float = 500.0      # writer statements per second (paced)
    warmup: float = 1.0             # writer runs this long before the change starts ...
    tail: float = 1.0               # ... and this long after it ends
    batch_size: int = 5000
    long_lock_timeout: str = "5s"   # benchmark 2's contrast: dbdeploy told to wait this long per attempt

    @classmethod
    def make(cls, *, rows: int | None, rounds: int | None, quick: bool) -> Settings:
        if quick:
            return cls(rows=rows or 20_000, rounds=rounds or 1, quick=True, blocker_seconds=1.0,
                       generation_sizes=(10, 50), generation_budget=20.0, warmup=0.3, tail=0.3, wide_tables=20)
        return cls(rows=rows or 20_000, rounds=rounds or 3, quick=False, blocker_seconds=8.0,
                   generation_sizes=(100, 1000), generation_budget=1200.0)


@dataclass
class Context:
    server: Server
    settings: Settings
    work: Path
    started: float = field(default_factory=time.monotonic)

    def log(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f}s] {text}", flush=True)


def median(values: list[float]) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Target:
    benchmark: str
    text: str          # the target as the issue states it
    measured: str      # the figure, formatted
    passed: bool
    note: str = ""

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "MISS"


def fmt_s(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "n/a"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_ms(seconds: float) -> str:
    if seconds != seconds:
        return "n/a"
    return f"{seconds * 1000:.1f} ms" if seconds < 0.1 else f"{seconds * 1000:,.0f} ms"
