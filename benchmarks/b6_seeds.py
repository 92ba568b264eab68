"""Benchmark 6, seed data (issue 9, kind 12): ``dbdeploy generate`` of one migration that creates a
product table and seeds it with 200,000 rows, side by side with the same migration seeding 1,000 rows.

Each size is a whole ``dbdeploy generate`` process (spawn to exit) into an empty ``generated/``;
its peak memory is that process's own maximum resident set size (``os.wait4``'s rusage, so the
figure belongs to that one process and nothing else). The rows are what a product catalogue seed
looks like: explicit ids into an identity column, SKU, name (some with tabs and quotes), a
``Decimal`` price and a flag — built by the spec itself, so loading and validating them counts; a
third case ("rich") adds a date and a small jsonb object to every row (the spec's own objects for
200,000 such rows take ~150 MB of Python memory before dbdeploy does anything). Also reported: the
sizes of the bundle's files (the forward carries the rows as ``COPY … FROM STDIN`` data; manifest,
generated test and checklist carry a count and a digest), and ``psql -f`` of the forward into a
fresh database followed by the application's first INSERT into the identity column (it must not
collide with the seeded ids).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from benchmarks.common import Context, fmt_s, median

DBDEPLOY = shutil.which("dbdeploy", path=str(Path(sys.executable).parent)) or "dbdeploy"
FILES = ("forward", "manifest", "tests", "checklist")


PLAIN_ROW = ('{"id": i, "sku": f"SKU-{i:07d}", "name": f"Product {i}" if i % 9 else f"Product\\t{i} \'quoted\'",'
             ' "price": decimal.Decimal(i % 10_000) / 100, "active": i % 10 != 0}')
RICH_ROW = ('{"id": i, "sku": f"SKU-{i:07d}", "name": f"Product {i}" if i % 9 else f"Product\\t{i} \'quoted\'",'
            ' "price": decimal.Decimal(i % 10_000) / 100, "active": i % 10 != 0,'
            ' "released": datetime.date(2020, 1, 1) + datetime.timedelta(days=i % 1500),'
            ' "attributes": {"color": COLORS[i % 5], "weight_g": i % 2000}}')


def seed_spec(rows: int, rich: bool = False) -> str:
    """One migration: a products table (identity id) and ``rows`` seed rows with explicit ids; ``rich``
    rows also carry a date and a jsonb object each."""
    row = RICH_ROW if rich else PLAIN_ROW
    return textwrap.dedent(f'''\
        """A product catalogue seeded with {rows:,} rows."""
        import datetime
        import decimal

        from dbdeploy import Column, CreateTable, Migration, SeedRows

        COLORS = ["red", "green", "blue", "black", "white"]
        ROWS = [{row}
                for i in range(1, {rows} + 1)]

        migration = Migration(
            version="001", name="product_catalogue", description="Product catalogue with its seed rows.",
            operations=[
                CreateTable(table="public.products", columns=[
                    Column(name="id", type="bigint", identity=True),
                    Column(name="sku", type="text", nullable=False),
                    Column(name="name", type="text", nullable=False),
                    Column(name="price", type="numeric(10,2)", nullable=False),
                    Column(name="active", type="boolean", nullable=False),
                    Column(name="released", type="date"),
                    Column(name="attributes", type="jsonb"),
                ], primary_key=["id"]),
                SeedRows(table="public.products", conflict_columns=["id"], rows=ROWS),
            ],
        )
        ''')


def generate_measured(root: Path) -> tuple[float, int]:
    """``dbdeploy generate`` in ``root`` as its own process: (seconds, peak RSS in bytes)."""
    shutil.rmtree(root / "generated", ignore_errors=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DBDEPLOY_")}
    with open(root / "generate.log", "w") as log:
        start = time.perf_counter()
        proc = subprocess.Popen([DBDEPLOY, "generate"], cwd=root, env=environ, stdout=log, stderr=log)
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"dbdeploy generate failed in {root}:\n{(root / 'generate.log').read_text()[-3000:]}")
    return seconds, usage.ru_maxrss * 1024       # Linux reports kilobytes


def bundle_sizes(root: Path) -> dict[str, int]:
    (folder,) = [p for p in (root / "generated").iterdir() if p.is_dir()]   # beside .gitattributes
    names = {"forward": f"{folder.name}.sql", "manifest": "manifest.json", "tests": f"test_{folder.name}.py",
             "checklist": "deployment_checklist.md"}
    return {k: (folder / v).stat().st_size for k, v in names.items()}


def apply_with_psql(ctx: Context, root: Path, rows: int) -> float:
    """``psql -f`` of the forward into a fresh database; checks the rows and the application's next id."""
    (folder,) = [p for p in (root / "generated").iterdir() if p.is_dir()]   # beside .gitattributes
    name = ctx.server.create_db(f"seeds_{rows}")
    try:
        start = time.perf_counter()
        proc = subprocess.run([ctx.server.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", ctx.server.dsn(name),
                               "-f", str(folder / f"{folder.name}.sql")], capture_output=True, text=True,
                              timeout=1800, check=False)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"psql -f of the {rows}-row seed failed:\n{proc.stderr[-3000:]}")
        with ctx.server.connect(name) as conn:
            count = conn.execute("SELECT count(*) FROM public.products").fetchone()[0]
            next_id = conn.execute("INSERT INTO public.products (sku, name, price, active)"
                                   " VALUES ('app', 'app', 1, true) RETURNING id").fetchone()[0]
            conn.commit()
        if count != rows or next_id != rows + 1:
            raise RuntimeError(f"seed of {rows} rows: {count} rows, next id {next_id}")
        return seconds
    finally:
        ctx.server.drop_db(name)


def run(ctx: Context) -> dict:
    small, large = (1_000, 20_000) if ctx.settings.quick else (1_000, 200_000)
    cases = {"small": (small, False), "large": (large, False), "large_rich": (large, True)}
    roots = {}
    for key, (n, rich) in cases.items():
        roots[key] = ctx.work / f"seeds_{key}"
        (roots[key] / "specs").mkdir(parents=True, exist_ok=True)
        (roots[key] / "specs" / "V001_product_catalogue.py").write_text(seed_spec(n, rich))
        (roots[key] / "dbdeploy.toml").write_text("")
    seconds: dict[str, list[float]] = {k: [] for k in cases}
    memory: dict[str, list[int]] = {k: [] for k in cases}
    for round_no in range(1, ctx.settings.rounds + 1):
        for key, (n, _rich) in cases.items():
            t, rss = generate_measured(roots[key])
            seconds[key].append(t)
            memory[key].append(rss)
            ctx.log(f"  seeds round {round_no} {key:10s} {n:7,} rows: generate {fmt_s(t)}, peak {rss / 2**20:.0f} MB")
    summary = {}
    for key, (n, rich) in cases.items():
        sizes = bundle_sizes(roots[key])
        applied = apply_with_psql(ctx, roots[key], n)
        ctx.log(f"  seeds {key:10s} {n:7,} rows: psql -f {fmt_s(applied)}; files "
                + ", ".join(f"{k} {v / 1024:,.0f} KiB" for k, v in sizes.items()))
        summary[key] = {"rows": n, "rich": rich, "generate_s": median(seconds[key]),
                        "peak_rss_mb": max(memory[key]) / 2**20, "psql_apply_s": applied, "files": sizes}
    return {"sizes": [small, large], "rounds": ctx.settings.rounds, "summary": summary}
