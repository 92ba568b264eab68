"""Benchmark 5, generation: ``dbdeploy generate`` for 100 and 1,000 migrations vs Alembic offline.

Each migration has 5 operations: create a table (id, name, created_at), add two columns, create
two indexes. The Alembic side is a throwaway environment in a temporary folder (alembic.ini,
an offline-only env.py, one revision file per migration with the same table, columns and
indexes) rendered with ``alembic upgrade head --sql``.

Both are timed as whole processes (spawn to exit, console scripts of the same virtualenv):
``dbdeploy generate`` into an empty ``generated/`` (it writes 5 files per migration: forward,
rollback, generated test, checklist, manifest), ``alembic … upgrade head --sql`` with its SQL
captured from stdout. Sizes are interleaved per round. Rounds stop early (never below one) when
the benchmark has run longer than its time budget; the report states the rounds run.

An in-process pass at each size times the phases of generation (load specs, lint, plan,
render, write files), so a phase that grows faster than the number of migrations shows.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
import time
from pathlib import Path

from benchmarks.common import Context, fmt_s, median, ratio
from benchmarks.project import Project, generation_specs, run_timed

ALEMBIC = shutil.which("alembic", path=str(Path(sys.executable).parent)) or "alembic"

ENV_PY = '''\
from alembic import context

if not context.is_offline_mode():
    raise SystemExit("this benchmark environment renders SQL offline only (--sql)")
context.configure(url=context.config.get_main_option("sqlalchemy.url"), literal_binds=True,
                  dialect_opts={"paramstyle": "named"})
with context.begin_transaction():
    context.run_migrations()
'''


def alembic_revision(i: int) -> str:
    """The same change as :func:`benchmarks.project.generation_specs` migration ``i``."""
    down = f'"r{i - 1:04d}"' if i > 1 else "None"
    return textwrap.dedent(f'''\
        import sqlalchemy as sa
        from alembic import op

        revision = "r{i:04d}"
        down_revision = {down}
        branch_labels = None
        depends_on = None


        def upgrade():
            op.create_table("item_{i:04d}",
                            sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
                            sa.Column("name", sa.Text(), nullable=False),
                            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                                      server_default=sa.text("now()")),
                            schema="public")
            op.add_column("item_{i:04d}", sa.Column("note", sa.Text()), schema="public")
            op.add_column("item_{i:04d}", sa.Column("amount", sa.Numeric(12, 2), nullable=False,
                                                    server_default=sa.text("0")), schema="public")
            op.create_index("item_{i:04d}_name_idx", "item_{i:04d}", ["name"], schema="public")
            op.create_index("item_{i:04d}_created_at_note_idx", "item_{i:04d}", ["created_at", "note"],
                            schema="public")


        def downgrade():
            op.drop_table("item_{i:04d}", schema="public")
        ''')


def make_alembic_env(root: Path, count: int) -> Path:
    (root / "alembic" / "versions").mkdir(parents=True)
    (root / "alembic" / "env.py").write_text(ENV_PY)
    for i in range(1, count + 1):
        (root / "alembic" / "versions" / f"r{i:04d}_table.py").write_text(alembic_revision(i))
    ini = root / "alembic.ini"
    ini.write_text("[alembic]\nscript_location = %(here)s/alembic\n"
                   "sqlalchemy.url = postgresql+psycopg://bench@127.0.0.1/bench\n")
    return ini


def in_process_breakdown(specs: Path, out: Path) -> dict:
    """Phase times of what ``dbdeploy generate`` does, measured in this process (one pass).

    load specs → lint (generate refuses error-level findings) → plan → render → write files.
    Each phase is called the way ``dbdeploy/render/writer.py`` calls it; a phase this version of
    dbdeploy does not have is skipped.
    """
    from dbdeploy.plan.loader import load_specs
    from dbdeploy.plan.migration_plan import plan_all
    from dbdeploy.render.bundle import render_bundle
    from dbdeploy.render.writer import write

    phases: dict[str, float] = {}
    begin = time.perf_counter()
    loaded = load_specs(specs)
    phases["load specs"] = time.perf_counter() - begin
    try:
        from dbdeploy.lint import lint_migrations, refuse_errors
    except ImportError:
        pass
    else:
        begin = time.perf_counter()
        refuse_errors(lint_migrations(loaded))
        phases["lint"] = time.perf_counter() - begin
    begin = time.perf_counter()
    plans = plan_all(loaded, "migrations")
    phases["plan"] = time.perf_counter() - begin
    begin = time.perf_counter()
    bundles = [render_bundle(plan, item.source.name, "migrations") for plan, item in zip(plans, loaded, strict=True)]
    phases["render"] = time.perf_counter() - begin
    begin = time.perf_counter()
    write(bundles, out)
    phases["write files"] = time.perf_counter() - begin
    return phases


def run(ctx: Context) -> dict:
    sizes = ctx.settings.generation_sizes
    projects, inis = {}, {}
    for n in sizes:
        projects[n] = Project.create(ctx.work / f"gen_{n}", generation_specs(n), generate=False)
        inis[n] = make_alembic_env(ctx.work / f"alembic_{n}", n)
    runs: dict[str, list[float]] = {f"{tool}_{n}": [] for n in sizes for tool in ("dbdeploy", "alembic")}
    started = time.monotonic()
    rounds = 0
    for round_no in range(1, ctx.settings.rounds + 1):
        if round_no > 1 and time.monotonic() - started > ctx.settings.generation_budget:
            ctx.log(f"  generation: time budget of {ctx.settings.generation_budget:.0f}s spent; "
                    f"stopping after {rounds} round(s)")
            break
        for n in sizes:
            shutil.rmtree(projects[n].root / "generated", ignore_errors=True)
            result = projects[n].dbdeploy("generate", timeout=3600).check(f"dbdeploy generate ({n} migrations)")
            bundles = len([p for p in (projects[n].root / "generated").iterdir() if p.is_dir()])
            if bundles != n:
                raise RuntimeError(f"dbdeploy generate wrote {bundles} bundles, expected {n}")
            runs[f"dbdeploy_{n}"].append(result.seconds)
            result = run_timed([ALEMBIC, "-c", str(inis[n]), "upgrade", "head", "--sql"], cwd=inis[n].parent,
                               timeout=3600).check(f"alembic upgrade head --sql ({n} revisions)")
            sql_out = result.stdout
            if sql_out.count("CREATE TABLE public.item_") != n or sql_out.count("CREATE INDEX") != 2 * n:
                raise RuntimeError("alembic's offline SQL does not hold the expected tables and indexes")
            runs[f"alembic_{n}"].append(result.seconds)
            ctx.log(f"  generation round {round_no} {n:5d} migrations: dbdeploy {fmt_s(runs[f'dbdeploy_{n}'][-1])}, "
                    f"alembic {fmt_s(runs[f'alembic_{n}'][-1])}")
        rounds = round_no
    small, large = sizes
    summary = {key: median(values) for key, values in runs.items()}
    for n in sizes:
        summary[f"dbdeploy_{n}_per_op"] = summary[f"dbdeploy_{n}"] / (5 * n)
        summary[f"alembic_{n}_per_op"] = summary[f"alembic_{n}"] / (5 * n)
    breakdown = {}
    for n in sizes:
        breakdown[n] = in_process_breakdown(projects[n].root / "specs", ctx.work / f"gen_{n}_in_process")
        ctx.log(f"  generation in-process phases at {n}: " + ", ".join(f"{k} {fmt_s(v)}"
                                                                     for k, v in breakdown[n].items()))
    return {"runs": runs, "summary": summary, "rounds": rounds, "sizes": sizes, "breakdown": breakdown,
            "ratios": {"dbdeploy_scaling": ratio(summary[f"dbdeploy_{large}"], summary[f"dbdeploy_{small}"]),
                       "alembic_scaling": ratio(summary[f"alembic_{large}"], summary[f"alembic_{small}"]),
                       "dbdeploy_vs_alembic_small": ratio(summary[f"dbdeploy_{small}"], summary[f"alembic_{small}"]),
                       "dbdeploy_vs_alembic_large": ratio(summary[f"dbdeploy_{large}"],
                                                          summary[f"alembic_{large}"])}}
