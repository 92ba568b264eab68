"""The application load: a separate process doing single-row UPDATEs, timing every statement.

Run as ``python -m benchmarks.writer --dsn DSN --max-id N --out FILE``. It connects (autocommit,
one prepared statement), prints ``ready``, then updates one random row of ``app.events`` per
statement at a fixed pace (``--rate`` per second; a late statement does not cause a burst of
catch-up statements). For every statement it records the wall-clock start (``time.time()``,
comparable across processes) and the latency. It stops when a line arrives on stdin (or stdin
closes), after ``--max-seconds`` or ``--max-statements``, whichever comes first, and writes the
samples to ``--out`` as JSON.

:class:`Writer` starts and stops the process from the benchmark and reads the samples back.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

STATEMENT = "UPDATE app.events SET hits = hits + 1 WHERE id = %s"


def main(argv: list[str] | None = None) -> int:
    import psycopg

    parser = argparse.ArgumentParser(prog="python -m benchmarks.writer")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--max-id", type=int, required=True)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--max-statements", type=int, default=2_000_000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    conn = psycopg.connect(args.dsn, autocommit=True, application_name="dbdeploy-bench-writer")
    # A bound on any one statement, so the process always ends; far above any stall we measure.
    conn.execute("SET statement_timeout = '600s'")
    rng = random.Random(42)
    for _ in range(20):   # warm the prepared statement and the connection
        conn.execute(STATEMENT, [rng.randint(1, args.max_id)], prepare=True)

    stop = threading.Event()

    def wait_for_stop() -> None:
        sys.stdin.readline()
        stop.set()

    threading.Thread(target=wait_for_stop, daemon=True).start()
    print("ready", flush=True)

    starts: list[float] = []
    latencies: list[float] = []
    errors: list[str] = []
    interval = 1.0 / args.rate
    wall0, clock0 = time.time(), time.perf_counter()
    deadline = clock0 + args.max_seconds
    next_at = clock0
    while not stop.is_set() and len(starts) < args.max_statements:
        now = time.perf_counter()
        if now >= deadline:
            break
        if now < next_at:
            time.sleep(next_at - now)
        begin = time.perf_counter()
        try:
            conn.execute(STATEMENT, [rng.randint(1, args.max_id)], prepare=True)
        except psycopg.OperationalError as exc:   # connection gone: nothing more to measure
            errors.append(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            break
        except psycopg.Error as exc:
            errors.append(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        end = time.perf_counter()
        starts.append(wall0 + (begin - clock0))
        latencies.append(end - begin)
        next_at = max(next_at + interval, end)
    conn.close()
    Path(args.out).write_text(json.dumps({"starts": starts, "latencies": latencies, "errors": errors[:20],
                                          "error_count": len(errors), "rate": args.rate}))
    return 0


@dataclass
class Samples:
    starts: list[float]
    latencies: list[float]
    error_count: int
    errors: list[str]

    def window(self, begin: float, end: float) -> list[tuple[float, float]]:
        """(start, latency) of the statements that started in [begin, end]."""
        return [(s, lat) for s, lat in zip(self.starts, self.latencies, strict=True) if begin <= s <= end]


class Writer:
    """One writer process; use as a context manager so it is always stopped."""

    def __init__(self, dsn: str, max_id: int, out: Path, rate: float, max_seconds: float) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.writer", "--dsn", dsn, "--max-id", str(max_id), "--rate", str(rate),
             "--max-seconds", str(max_seconds), "--out", str(out)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=Path(__file__).resolve().parent.parent)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            raise RuntimeError(f"the writer process did not start: {err.strip()[-2000:]}")

    def stop(self, timeout: float = 60.0) -> Samples:
        try:
            self.proc.stdin.write("stop\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass
        _, err = self.proc.communicate(timeout=timeout)
        if self.proc.returncode != 0 or not self.out.exists():
            raise RuntimeError(f"the writer process failed ({self.proc.returncode}): {err.strip()[-2000:]}")
        data = json.loads(self.out.read_text())
        return Samples(data["starts"], data["latencies"], data["error_count"], data["errors"])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.kill()


if __name__ == "__main__":
    sys.exit(main())
