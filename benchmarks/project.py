"""dbdeploy project folders for the benchmarks: specs, dbdeploy.toml, generated bundles, the CLI.

Every benchmark that applies bundles works like a user would: a folder with ``specs/`` and a
``dbdeploy.toml``, ``dbdeploy generate``, then ``dbdeploy apply --env bench`` with the target
database's DSN in ``$DBDEPLOY_BENCH_DSN``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

DBDEPLOY = shutil.which("dbdeploy", path=str(Path(sys.executable).parent)) or "dbdeploy"
DSN_VAR = "DBDEPLOY_BENCH_DSN"

# The populated table every online benchmark works on (V001 describes it; the template database
# has it applied and filled). ``category`` starts NULL for the backfill benchmark; the writer
# updates ``hits``.
BASE_SPEC = '''
from dbdeploy import Column, CreateSchema, CreateTable, Migration

migration = Migration(
    version="001",
    name="events_table",
    operations=[
        CreateSchema(name="app"),
        CreateTable(table="app.sources",
                    columns=[Column(name="id", type="integer"), Column(name="name", type="text", nullable=False)],
                    primary_key=["id"]),
        CreateTable(table="app.events", columns=[
            Column(name="id", type="bigint"),
            Column(name="source_id", type="integer", nullable=False),
            Column(name="external_id", type="bigint", nullable=False),
            Column(name="payload", type="jsonb", nullable=False),
            Column(name="created_at", type="timestamptz", nullable=False, default="now()"),
            Column(name="hits", type="integer", nullable=False, default="0"),
            Column(name="category", type="text"),
        ], primary_key=["id"]),
    ],
)
'''

# Benchmark 1: the change the naive and hand-written scripts make too.
STALL_SPEC = '''
from dbdeploy import (AddCheck, AddColumn, AddForeignKey, AddUnique, Backfill, Check, Column, CreateIndex,
                      ForeignKey, Index, Migration, Unique)

EVENTS = "app.events"

migration = Migration(
    version="002",
    name="evolve_events",
    operations=[
        AddColumn(table=EVENTS, column=Column(name="event_type", type="text", nullable=False)),
        Backfill(table=EVENTS, set={"event_type": "coalesce(payload ->> 'kind', 'unknown')"},
                 where="event_type IS NULL", batch_size=5000),
        CreateIndex(table=EVENTS, index=Index(name="idx_events_type_time", columns=["event_type", "created_at"])),
        AddForeignKey(table=EVENTS, foreign_key=ForeignKey(name="fk_events_source", columns=["source_id"],
                                                           references="app.sources", ref_columns=["id"])),
        AddCheck(table=EVENTS, check=Check(name="chk_events_type", expression="event_type <> ''")),
        AddUnique(table=EVENTS, unique=Unique(name="uq_events_external_id", columns=["external_id"])),
    ],
)
'''

# Benchmark 2: DDL that needs ACCESS EXCLUSIVE (so it queues behind a reader's ACCESS SHARE).
LOCK_SPEC = '''
from dbdeploy import AddCheck, AddColumn, Check, Column, Migration

migration = Migration(
    version="002",
    name="flag_events",
    operations=[
        AddColumn(table="app.events", column=Column(name="flagged", type="boolean", nullable=False,
                                                    default="false")),
        AddCheck(table="app.events", check=Check(name="chk_events_hits", expression="hits >= 0")),
    ],
)
'''

# Benchmark 3: one batched backfill (5,000-row batches, like the hand-written script).
BACKFILL_SPEC = '''
from dbdeploy import Backfill, Migration

migration = Migration(
    version="002",
    name="fill_category",
    operations=[
        Backfill(table="app.events", set={"category": "coalesce(payload ->> 'kind', 'unknown')"},
                 where="category IS NULL", batch_size=5000),
    ],
)
'''


def wide_spec(tables: int) -> str:
    """Benchmark 4: one migration creating ``tables`` tables, each with one index and one FK."""
    lines = [
        "from dbdeploy import Column, CreateSchema, CreateTable, ForeignKey, Index, Migration",
        "",
        "COLUMNS = [Column(name='id', type='bigint'), Column(name='parent_id', type='bigint'),",
        "           Column(name='name', type='text', nullable=False),",
        "           Column(name='created_at', type='timestamptz', nullable=False, default='now()')]",
        "",
        "operations = [CreateSchema(name='wide')]",
        f"for i in range({tables}):",
        "    parent = f'wide.t{i - 1:03d}' if i else 'wide.t000'",
        "    operations.append(CreateTable(",
        "        table=f'wide.t{i:03d}', columns=COLUMNS, primary_key=['id'],",
        "        foreign_keys=[ForeignKey(columns=['parent_id'], references=parent, ref_columns=['id'])],",
        "        indexes=[Index(columns=['name', 'created_at'])]))",
        "",
        "migration = Migration(version='001', name='wide_schema', operations=operations)",
        "",
    ]
    return "\n".join(lines)


def generation_specs(count: int) -> dict[str, str]:
    """Benchmark 5: ``count`` migrations of 5 operations each (a table, two columns, two indexes).

    :func:`benchmarks.b5_generate.alembic_revision` renders the same change for Alembic.
    """
    files = {}
    for i in range(1, count + 1):
        files[f"V{i:04d}_table_{i:04d}.py"] = textwrap.dedent(f'''\
            from dbdeploy import AddColumn, Column, CreateIndex, CreateTable, Index, Migration

            T = "public.item_{i:04d}"
            migration = Migration(version="{i:04d}", name="table_{i:04d}", operations=[
                CreateTable(table=T, columns=[Column(name="id", type="bigint"),
                                              Column(name="name", type="text", nullable=False),
                                              Column(name="created_at", type="timestamptz", nullable=False,
                                                     default="now()")], primary_key=["id"]),
                AddColumn(table=T, column=Column(name="note", type="text")),
                AddColumn(table=T, column=Column(name="amount", type="numeric(12,2)", nullable=False, default="0")),
                CreateIndex(table=T, index=Index(columns=["name"])),
                CreateIndex(table=T, index=Index(columns=["created_at", "note"])),
            ])
            ''')
    return files


@dataclass
class Timed:
    seconds: float
    returncode: int
    stdout: str
    stderr: str

    def check(self, what: str) -> Timed:
        if self.returncode != 0:
            raise RuntimeError(f"{what} failed with exit code {self.returncode}:\n{self.stdout[-3000:]}"
                               f"\n{self.stderr[-3000:]}")
        return self


def run_timed(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
              timeout: float = 1800) -> Timed:
    """Run a whole process and time it (spawn to exit)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DBDEPLOY_")}
    environ.update(env or {})
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=environ, capture_output=True, text=True, timeout=timeout, check=False)
    return Timed(time.perf_counter() - start, proc.returncode, proc.stdout, proc.stderr)


def default_settings() -> dict[str, str]:
    """dbdeploy's own defaults for an environment (what a dbdeploy.toml without these keys gets)."""
    from dbdeploy.executor.config import Environment

    env = Environment(name="bench", dsn="unused")
    found = {"lock_timeout": env.lock_timeout, "retries": str(env.retries)}
    if hasattr(env, "concurrent_lock_timeout"):
        found["concurrent_lock_timeout"] = env.concurrent_lock_timeout
    return found


@dataclass
class Project:
    root: Path
    settings: dict[str, object]

    @classmethod
    def create(cls, root: Path, specs: dict[str, str], *, generate: bool = True, **settings: object) -> Project:
        """A project folder; ``settings`` (lock_timeout="5s", retries=3, ...) go into the ``bench``
        environment, everything else is left to dbdeploy's own defaults."""
        (root / "specs").mkdir(parents=True, exist_ok=True)
        for name, text in specs.items():
            (root / "specs" / name).write_text(text)
        lines = ["[environments.bench]", f'dsn_env = "{DSN_VAR}"']
        lines += [f'{key} = "{value}"' if isinstance(value, str) else f"{key} = {value}"
                  for key, value in settings.items()]
        (root / "dbdeploy.toml").write_text("\n".join(lines) + "\n")
        project = cls(root, dict(settings))
        if generate:
            project.dbdeploy("generate").check(f"dbdeploy generate in {root}")
        return project

    def dbdeploy(self, *args: str, dsn: str | None = None, timeout: float = 1800) -> Timed:
        return run_timed([DBDEPLOY, *args], cwd=self.root, env={DSN_VAR: dsn} if dsn else None, timeout=timeout)

    def apply(self, dsn: str, *extra: str, timeout: float = 1800) -> Timed:
        return self.dbdeploy("apply", "--env", "bench", "--plain", *extra, dsn=dsn, timeout=timeout)

    def bundle_sql(self, version: str) -> Path:
        folder = next((self.root / "generated").glob(f"V{version}__*"))
        return next(p for p in folder.glob(f"V{version}__*.sql") if "__rollback_" not in p.name)
