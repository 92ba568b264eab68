"""Draws progress events: rich progress bars on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time

from dbdeploy.executor.progress import (
    BackfillProgress,
    IndexProgress,
    Message,
    ProgressEvent,
    StepFinished,
    StepStarted,
)


class ProgressView:
    def __init__(self, secrets: list[str] | None = None, force_plain: bool = False) -> None:
        self.rich = sys.stderr.isatty() and not force_plain
        self.console = None
        if self.rich:  # rich is imported only when it will draw
            from rich.console import Console

            self.console = Console(stderr=True, highlight=False)
        self.secrets = [s for s in (secrets or []) if s]
        self._progress = None
        self._task = None
        self._last_plain = 0.0

    def _clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def __call__(self, event: ProgressEvent) -> None:
        if isinstance(event, Message):
            self._line(self._clean(event.text), event.level)
        elif isinstance(event, StepStarted):
            text = f"{event.label} step {event.number}/{event.total} {event.kind} {event.target} [{event.lock}]"
            if self.rich:
                self._start_bar(text)
            else:
                self._line(text)
        elif isinstance(event, BackfillProgress):
            self._bar(event.rows_done, event.rows_total,
                      f"rows {event.rows_done}/{event.rows_total} ({event.rows_per_second:,.0f} rows/s, "
                      f"{event.batches} batches, last {event.batch_rows} rows)")
        elif isinstance(event, IndexProgress):
            self._bar(event.done, event.total, f"index build: {event.phase} {event.done}/{event.total}")
        elif isinstance(event, StepFinished):
            if self._progress is not None:
                self._progress.stop()
                self._progress = None
            suffix = f", {event.attempts} attempts" if event.attempts > 1 else ""
            self._line(f"  done in {event.seconds:.2f}s, {event.rows} row(s){suffix}", "dim")

    def _line(self, text: str, level: str = "info") -> None:
        if self.rich:
            style = {"warning": "yellow", "notice": "cyan", "dim": "dim"}.get(level)
            (self._progress.console if self._progress else self.console).print(text, style=style)
        else:
            print(text, file=sys.stderr, flush=True)

    def _start_bar(self, text: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=self.console,
                                  transient=True)
        self._progress.start()
        self._task = self._progress.add_task(text, total=None, detail="")

    def _bar(self, done: int, total: int, detail: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=total or None, detail=detail)
        elif time.monotonic() - self._last_plain >= 1.0:
            self._last_plain = time.monotonic()
            self._line(f"  {detail}")
