"""PNG plots (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

COLORS = {"naive": "#c0392b", "safe": "#2e86c1", "dbdeploy": "#27ae60", "plain": "#c0392b",
          "dbdeploy-5s": "#d68910", "single": "#7f8c8d",
          "batched-no-copy": "#2e86c1", "unprepared": "#a569bd"}


def _latency_panel(ax, run: dict, title: str, color: str, steps_as_spans: bool = False) -> None:
    """Every writer statement as a dot at its start; a statement over 100 ms also as a bar to its end."""
    series = run["series"]
    xs = [t for t, _ in series]
    ys = [max(lat * 1000, 0.01) for _, lat in series]
    ax.scatter(xs, ys, s=2, color=color, alpha=0.6, linewidths=0, rasterized=True)
    for start, latency in series:
        if latency > 0.1:
            ax.hlines(latency * 1000, start, start + latency, color=color, linewidth=2.5, alpha=0.9)
    ax.set_yscale("log")
    ax.axhline(100, color="grey", linestyle=":", linewidth=0.8)
    ax.set_ylabel("writer latency (ms)")
    ax.set_title(title, fontsize=10, loc="left")
    begin = run["begin"]
    top = max(ys) * 3 if ys else 1000
    ax.set_ylim(0.05, max(top, 500))
    if steps_as_spans:
        for i, step in enumerate(run["steps"]):
            ax.axvspan(step["start"] - begin, step["end"] - begin, color=["#f5b7b1", "#aed6f1"][i % 2], alpha=0.35,
                       label=step["label"])
        ax.legend(loc="upper right", fontsize=7)
        return
    for step in run["steps"]:
        ax.axvline(step["start"] - begin, color="black", linewidth=0.6, alpha=0.6)
    if run["steps"]:
        ax.axvline(run["steps"][-1]["end"] - begin, color="black", linewidth=0.6, alpha=0.6)
    # Label the longest steps first; a label that would overlap one already placed is left out
    # (every step and its duration is listed in BENCHMARKS.md).
    span = max((xs[-1] - xs[0]) if xs else 1.0, 1e-6)
    placed: list[float] = []
    for step in sorted(run["steps"], key=lambda s: s["end"] - s["start"], reverse=True):
        x = step["start"] - begin
        if all(abs(x - other) > 0.025 * span for other in placed):
            placed.append(x)
            ax.text(x, ax.get_ylim()[1], " " + step["label"], rotation=90, fontsize=6.5, va="top", ha="left",
                    alpha=0.85)


def stall_plot(result: dict, labels: dict[str, str], path: Path) -> None:
    plotted = result["plotted"]
    fig, axes = plt.subplots(len(plotted), 1, figsize=(11, 3.2 * len(plotted)), squeeze=False)
    for ax, (contender, run) in zip(axes[:, 0], plotted.items(), strict=True):
        title = (f"{labels[contender]} (round {run['round']}): wall {run['wall']:.1f} s, "
                 f"writer max {run['max_latency'] * 1000:,.1f} ms")
        _latency_panel(ax, run, title, COLORS.get(contender, "black"))
    axes[-1, 0].set_xlabel("seconds since the change started (vertical lines: step starts; a bar: one writer "
                           "statement over 100 ms, from its start to its end)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def lock_queue_plot(result: dict, labels: dict[str, str], blocker: float, path: Path) -> None:
    plotted = result["plotted"]
    fig, axes = plt.subplots(len(plotted), 1, figsize=(11, 3.0 * len(plotted)), squeeze=False)
    for ax, (contender, run) in zip(axes[:, 0], plotted.items(), strict=True):
        title = (f"{labels[contender]} (round {run['round']}): longest stall {run['max_latency'] * 1000:,.0f} ms, "
                 f"stalls {run['stall_seconds']:.2f} s in total")
        _latency_panel(ax, run, title, COLORS.get(contender, "black"), steps_as_spans=True)
    axes[-1, 0].set_xlabel(f"seconds since the blocker took its lock (blocker holds it {blocker:g} s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def backfill_plot(result: dict, labels: dict[str, str], short: dict[str, str], path: Path) -> None:
    summary, plotted = result["summary"], result["plotted"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.6), gridspec_kw={"width_ratios": [1.2, 1.6]})
    names = list(summary)
    values = [summary[n]["rows_per_second"] / 1000 for n in names]
    bars = left.bar(range(len(names)), values, color=[COLORS.get(n, "grey") for n in names])
    left.set_xticks(range(len(names)), [short[n] for n in names], fontsize=7)
    left.set_ylabel("thousand rows/s (median)")
    for bar, n in zip(bars, names, strict=True):
        left.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"{summary[n]['ratio_vs_single']:.2f}x",
                  ha="center", va="bottom", fontsize=8)
    left.set_title("throughput (ratio to single UPDATE)", fontsize=10, loc="left")
    for n, run in plotted.items():
        if run["batch_times"]:
            right.plot([t * 1000 for t in run["batch_times"]], linewidth=0.7, color=COLORS.get(n, "grey"),
                       label=labels[n])
    right.axhline(50, color="grey", linestyle=":", linewidth=0.8)
    right.set_xlabel("batch number")
    right.set_ylabel("batch duration (ms)")
    right.set_title("per-batch duration (5,000 rows; dotted: 50 ms)", fontsize=10, loc="left")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def overhead_plot(apply_result: dict, apply_labels: dict[str, str], gen_result: dict, path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    names = list(apply_result["summary"])
    values = [apply_result["summary"][n] for n in names]
    left.barh(range(len(names)), values, color="#5d6d7e")
    left.set_yticks(range(len(names)), [apply_labels[n].replace("`", "") for n in names], fontsize=7)
    left.invert_yaxis()
    left.set_xlabel("seconds, whole process (median)")
    tables = apply_result["tables"]
    left.set_title(f"apply overhead ({tables} tables, {tables} indexes, {tables} FKs)", fontsize=10, loc="left")
    for i, v in enumerate(values):
        left.text(v, i, f" {v:.2f}s", va="center", fontsize=7)
    left.set_xlim(0, max(values) * 1.18)
    sizes = gen_result["sizes"]
    summary = gen_result["summary"]
    width = 0.38
    for k, tool in enumerate(("dbdeploy", "alembic")):
        xs = [i + (k - 0.5) * width for i in range(len(sizes))]
        ys = [summary[f"{tool}_{n}"] for n in sizes]
        right.bar(xs, ys, width, label=tool if tool == "dbdeploy" else "alembic upgrade --sql",
                  color="#27ae60" if tool == "dbdeploy" else "#8e44ad")
        for x, y in zip(xs, ys, strict=True):
            right.text(x, y, f"{y:.1f}s", ha="center", va="bottom", fontsize=7)
    right.set_yscale("log")
    lowest = min(summary[f"{tool}_{n}"] for n in sizes for tool in ("dbdeploy", "alembic"))
    highest = max(summary[f"{tool}_{n}"] for n in sizes for tool in ("dbdeploy", "alembic"))
    right.set_ylim(lowest / 3, highest * 2.5)
    right.set_xticks(range(len(sizes)), [f"{n:,} migrations\n({5 * n:,} operations)" for n in sizes], fontsize=8)
    right.set_ylabel("seconds, whole process (median, log)")
    right.set_title("generation", fontsize=10, loc="left")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def op_stalls_plot(result: dict, bound: float, path: Path) -> None:
    """Benchmark 7: the worst writer statement per operation, forward and rollback, against lock_timeout."""
    cases = result["cases"]
    labels = [c["label"] for c in cases]
    forward = [c["forward"]["worst"] * 1000 for c in cases]
    rollback = [c["rollback"]["worst"] * 1000 for c in cases]
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(cases) + 1.6))
    ys = range(len(cases))
    ax.barh([y - 0.2 for y in ys], forward, height=0.4, color="#27ae60", label="forward (apply)")
    ax.barh([y + 0.2 for y in ys], rollback, height=0.4, color="#2e86c1", label="rollback")
    ax.axvline(bound * 1000, color="#c0392b", linestyle="--", label=f"lock_timeout ({bound * 1000:.0f} ms)")
    ax.set_yticks(list(ys), labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("worst writer statement during the phase (ms, log scale)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
