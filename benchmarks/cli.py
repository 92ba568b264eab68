"""``python -m benchmarks``: run the five benchmarks, write BENCHMARKS.md and the plots."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import (
    b1_stall,
    b2_lock_queue,
    b3_backfill,
    b4_apply,
    b5_generate,
    b6_seeds,
    b7_op_stalls,
    b8_rename,
    b9_alter_type,
    machine,
    plots,
    report,
)
from benchmarks.common import Context, Settings
from benchmarks.data import build_events_template
from benchmarks.server import PREFIX, discover

BENCHMARKS = ("stall", "lock_queue", "backfill", "apply", "generation", "seeds", "op_stalls", "rename",
              "alter_type")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="dbdeploy against naive SQL, hand-written safe SQL, psql and Alembic on a real PostgreSQL.")
    parser.add_argument("--rows", type=int, default=None,
                        help="rows in the benchmark table (default 20,000, the quick size; full size: 2000000)")
    parser.add_argument("--dsn", default=None,
                        help="admin DSN of the server to use (default: host=127.0.0.1 user=postgres, else an "
                             "embedded PostgreSQL 18)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds per benchmark (default 3, at least 3; --quick: 1)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where BENCHMARKS.md and benchmarks/plots/ go (default: the current folder; with "
                             "--quick a new temporary folder)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke-run sizes: one round, 1 s blocker, 10 and 50 migrations for generation, "
                             "short warm-up (for CI; figures are not comparable with the targets)")
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 3 and not args.quick:
        parser.error("--rounds must be at least 3 (medians of fewer are not measurements; --quick runs 1)")
    if args.rows is not None and args.rows < 10_000:
        parser.error("--rows must be at least 10000")
    args.only = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = set(args.only) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}")
    return args


def _on_sigterm(_signum, _frame) -> None:
    print("terminated (SIGTERM): dropping this run's databases", file=sys.stderr, flush=True)
    raise SystemExit(143)   # unwinds through the finally blocks that drop the databases


def _jsonable(results: dict) -> dict:
    """The results without the per-statement series (kept only for the plots)."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("series", "batch_times")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return strip(results)


def _without_out(argv: list[str]) -> list[str]:
    """The arguments as the report shows them: where the report was written is not a parameter."""
    shown, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--out":
            skip = True
        elif not arg.startswith("--out="):
            shown.append(arg)
    return shown


def timed(durations: dict[str, float], name: str, function, *args):
    begin = time.monotonic()
    try:
        return function(*args)
    finally:
        durations[name] = time.monotonic() - begin


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    settings = Settings.make(rows=args.rows, rounds=args.rounds, quick=args.quick)
    out = args.out or (Path(tempfile.mkdtemp(prefix="dbdeploy-bench-report-")) if args.quick else Path.cwd())
    plot_dir = out / "benchmarks" / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _on_sigterm)
    work = Path(tempfile.mkdtemp(prefix="dbdeploy-bench-"))
    server = discover(args.dsn)
    ctx = Context(server=server, settings=settings, work=work)
    started = time.monotonic()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results: dict = {}
    durations: dict[str, float] = {}
    try:
        ctx.log(f"server: {server.version_string.split(',')[0]} ({server.source}); rows {settings.rows:,}, "
                f"rounds {settings.rounds}{', quick' if settings.quick else ''}; databases "
                f"{PREFIX}{os.getpid()}_* (pid {os.getpid()})")
        info = machine.describe(server)
        if {"stall", "lock_queue", "backfill", "op_stalls", "rename"} & set(args.only):
            ctx.log("building the template database")
            template = timed(durations, "template", build_events_template, server, work, settings.rows, ctx.log)
            if "stall" in args.only:
                ctx.log("benchmark 1: online stall")
                results["stall"] = timed(durations, "stall", b1_stall.run, ctx, template)
            if "lock_queue" in args.only:
                ctx.log("benchmark 2: lock queue")
                results["lock_queue"] = timed(durations, "lock_queue", b2_lock_queue.run, ctx, template)
            if "backfill" in args.only:
                ctx.log("benchmark 3: backfill")
                results["backfill"] = timed(durations, "backfill", b3_backfill.run, ctx, template)
            if "op_stalls" in args.only:
                ctx.log("benchmark 7: every operation under the writer")
                results["op_stalls"] = timed(durations, "op_stalls", b7_op_stalls.run, ctx, template)
            if "rename" in args.only:
                ctx.log("benchmark 8: online rename under the writer")
                results["rename"] = timed(durations, "rename", b8_rename.run, ctx, template)
            server.drop_db(template)
        if "apply" in args.only:
            ctx.log("benchmark 4: apply overhead")
            results["apply"] = timed(durations, "apply", b4_apply.run, ctx)
        if "generation" in args.only:
            ctx.log("benchmark 5: generation")
            results["generation"] = timed(durations, "generation", b5_generate.run, ctx)
        if "seeds" in args.only:
            ctx.log("benchmark 6: seed data")
            results["seeds"] = timed(durations, "seeds", b6_seeds.run, ctx)
        if "alter_type" in args.only:
            ctx.log("benchmark 9: AlterColumnType integer -> bigint of a referenced key")
            results["alter_type"] = timed(durations, "alter_type", b9_alter_type.run, ctx)
    finally:
        left = server.drop_all()
        if left:
            print(f"could not drop: {', '.join(left)}", file=sys.stderr)
        server.close()
        shutil.rmtree(work, ignore_errors=True)

    info["load_average_end"] = machine.load_average()
    info["source_digest_end"] = machine.source_digest()
    if info["source_digest_end"] != info["source_digest"]:
        ctx.log("WARNING: dbdeploy's source changed while the benchmarks ran; the figures mix versions")
    paths = {name: f"benchmarks/plots/{name}.png"
             for name in ("stall", "lock_queue", "backfill", "overhead", "op_stalls")}
    if "stall" in results:
        plots.stall_plot(results["stall"], b1_stall.LABELS, out / paths["stall"])
    if "lock_queue" in results:
        plots.lock_queue_plot(results["lock_queue"], results["lock_queue"]["labels"], settings.blocker_seconds,
                              out / paths["lock_queue"])
    if "backfill" in results:
        plots.backfill_plot(results["backfill"], b3_backfill.LABELS, b3_backfill.SHORT, out / paths["backfill"])
    if "apply" in results and "generation" in results:
        plots.overhead_plot(results["apply"], b4_apply.LABELS, results["generation"], out / paths["overhead"])
    if "op_stalls" in results:
        plots.op_stalls_plot(results["op_stalls"], b7_op_stalls.lock_timeout_seconds(results["op_stalls"]),
                             out / paths["op_stalls"])
    targets = report.evaluate(results, settings)
    command = "python -m benchmarks" + "".join(f" {a}" for a in _without_out(argv))
    text = report.render(results, targets, settings, info, command, date, time.monotonic() - started, paths,
                         durations)
    (out / "BENCHMARKS.md").write_text(text)
    (out / "benchmarks" / "results.json").write_text(json.dumps(
        {"date": date, "command": command, "settings": settings.__dict__, "machine": info, "durations": durations,
         "targets": [t.__dict__ | {"verdict": t.verdict} for t in targets], "results": _jsonable(results)},
        indent=1, default=str))
    ctx.log(f"done in {time.monotonic() - started:.0f}s (" + ", ".join(f"{k} {v:.0f}s" for k, v in durations.items())
            + f"); report: {out / 'BENCHMARKS.md'}")
    for t in targets:
        print(f"  {t.verdict:4s}  {t.benchmark}: {t.text}: {t.measured}")
    return 0
