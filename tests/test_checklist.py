"""deployment_checklist.md: golden files, structure checked against the manifest, and every query
run on a real PostgreSQL.

- Golden files (``tests/golden_checklist/``) for the V001-V003 examples and the small specs below,
  whose checks depend on earlier operations of the same migration; regenerate with
  ``UPDATE_GOLDEN=1 pytest tests/test_checklist.py`` and review the diff. (The checklist of every
  single-operation case in ``tests/golden_cases.py`` is pinned by ``tests/test_golden.py``, which
  compares whole bundles.)
- The lock-impact table has one row per manifest step with the same number, summary, lock and
  target, and read/write blocking as the PostgreSQL lock conflict table says.
- Every SQL block parses with pglast.
- Pre-deployment queries give their expected result on a database prepared for the migration
  (earlier bundles applied, rows present), and report violations when the data would make the
  migration fail; health checks give their expected result after the bundle ran with psql; the
  rollback check after the rollback file ran.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pglast
import pytest

from dbdeploy import (
    AddCheck,
    AddColumn,
    AddForeignKey,
    AddUnique,
    Backfill,
    Check,
    Column,
    CreateIndex,
    CreateTable,
    ForeignKey,
    Index,
    Migration,
    RawSQL,
    SeedRows,
    Unique,
)
from dbdeploy.plan.loader import LoadedMigration
from dbdeploy.plan.migration_plan import plan_all
from dbdeploy.render.bundle import render_bundle
from dbdeploy.render.checklist import CHECKLIST_NAME
from dbdeploy.render.writer import build_bundles
from tests.bundles import write_bundles
from tests.golden_cases import CASES
from tests.pg import TestDatabase

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden_checklist"

# Independent oracle for the lock table: which of plain reads (ACCESS SHARE) and writes
# (ROW EXCLUSIVE) each lock level makes wait (PostgreSQL docs, "Table-Level Lock Modes").
BLOCKS = {
    "ACCESS EXCLUSIVE": ("yes", "yes"), "EXCLUSIVE": ("no", "yes"), "SHARE ROW EXCLUSIVE": ("no", "yes"),
    "SHARE": ("no", "yes"), "SHARE UPDATE EXCLUSIVE": ("no", "no"), "ROW EXCLUSIVE": ("no", "no"),
    "ROW SHARE": ("no", "no"), "ACCESS SHARE": ("no", "no"), "NONE": ("no", "no"),
}


def _m(version: str, name: str, *ops) -> Migration:
    return Migration(version=version, name=name, operations=list(ops))


SHOP = CreateTable(table="public.orders", columns=[
    Column(name="id", type="bigint", identity=True),
    Column(name="customer_id", type="bigint"),
    Column(name="status", type="text", nullable=False, default="'new'"),
    Column(name="code", type="text"),
], primary_key=["id"])
CUSTOMERS = CreateTable(table="public.customers", columns=[Column(name="id", type="bigint")], primary_key=["id"])

# Small specs whose pre-deployment checks must look at data as earlier operations of the same
# migration leave it (new tables, seed rows, new and backfilled columns).
OWN_CASES: dict[str, list[Migration]] = {
    "fk_to_existing_table": [_m("001", "base", CUSTOMERS, SHOP), _m("002", "fk", AddForeignKey(
        table="public.orders", foreign_key=ForeignKey(columns=["customer_id"], references="public.customers",
                                                      ref_columns=["id"])))],
    "check_unique_on_new_filled_column": [_m("001", "base", SHOP), _m(
        "002", "region",
        AddColumn(table="public.orders", column=Column(name="region", type="text", nullable=False)),
        Backfill(table="public.orders", set={"region": "upper(status)"}, where="region IS NULL", batch_size=2),
        AddCheck(table="public.orders", check=Check(name="orders_region_check", expression="region <> 'BAD'")),
        AddUnique(table="public.orders", unique=Unique(columns=["code"])),
        CreateIndex(table="public.orders", index=Index(columns=["status", "code"], unique=True, name="orders_sc_key")),
    )],
    # public.kinds is not created by any spec (it exists in the database): its current rows plus
    # the rows seeded here are what the foreign key is validated against.
    "seed_then_fk_to_unknown_table": [_m(
        "001", "kinds",
        SeedRows(table="public.kinds", conflict_columns=["code"], rows=[{"code": 2, "label": "two"}]),
        AddForeignKey(table="public.items", foreign_key=ForeignKey(
            columns=["kind_code"], references="public.kinds", ref_columns=["code"])),
        RawSQL(forward="CREATE VIEW public.kind_labels AS SELECT code, label FROM public.kinds",
               rollback="DROP VIEW IF EXISTS public.kind_labels",
               verify="SELECT to_regclass('public.kind_labels') IS NOT NULL"),
    )],
}
SETUP_UNKNOWN = ("CREATE TABLE public.kinds (code bigint PRIMARY KEY, label text);"
                 "INSERT INTO public.kinds VALUES (1, 'one');"
                 "CREATE TABLE public.items (id bigint PRIMARY KEY, kind_code bigint);"
                 "INSERT INTO public.items VALUES (1, 1), (2, 2), (3, NULL);")


def _render(migrations: list[Migration]) -> dict[str, str]:
    loaded = [LoadedMigration(m, Path(f"golden_{m.version}.py")) for m in migrations]
    return render_bundle(plan_all(loaded)[-1], loaded[-1].source.name).files


@functools.cache
def _examples() -> dict[str, dict[str, str]]:
    return {b.folder: b.files for b in build_bundles(ROOT / "specs")}


@functools.cache
def _all_bundles() -> dict[str, dict[str, str]]:
    """Every bundle the checklist tests read, rendered once per process (the tests only read them)."""
    bundles = {f"example {folder}": files for folder, files in _examples().items()}
    for name, migrations in {**CASES, **OWN_CASES}.items():
        bundles[name] = _render(migrations)
    return bundles


# --- parsing the checklist --------------------------------------------------------------

@dataclass(frozen=True)
class Query:
    section: str
    title: str
    sql: str
    expected: str | None      # None: informational
    lenient: bool             # another result is allowed ("otherwise")


_QUERY = re.compile(
    r"^- (?:\[ \] )?\*\*(?P<title>[^\n]+?)\*\*\n  ```sql\n(?P<sql>.*?)\n  ```\n"
    r"  (?:Expected: `(?P<expected>[^`]*)`(?P<otherwise> — [^\n]*)?|Informational: note the result\.)$",
    re.MULTILINE | re.DOTALL)


def queries(markdown: str) -> list[Query]:
    found = []
    for section in re.split(r"^## ", markdown, flags=re.MULTILINE)[1:]:
        heading = section.splitlines()[0]
        for match in _QUERY.finditer(section):
            found.append(Query(heading, match["title"], textwrap.dedent(match["sql"]), match["expected"],
                               bool(match["otherwise"])))
    return found


def section(markdown: str, number: int) -> list[Query]:
    return [q for q in queries(markdown) if q.section.startswith(f"{number}. ")]


def lock_table(markdown: str) -> list[list[str]]:
    part = markdown.split("### Lock impact", 1)[1]
    lines = [line for line in part.splitlines() if line.startswith("| ")][1:]   # without the header
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


def _value(value) -> str:
    return {True: "true", False: "false"}.get(value, str(value)) if isinstance(value, bool) else str(value)


def run_queries(db: TestDatabase, found: list[Query], *, strict: bool = True) -> None:
    for q in found:
        rows = db.execute(q.sql)
        if q.expected is None or (q.lenient and not strict):
            continue
        if q.expected == "no rows":
            assert rows == [], f"{q.title}: expected no rows, got {rows}"
            continue
        assert len(rows) == 1 and len(rows[0]) == 1, f"{q.title}: expected one value, got {rows}"
        if q.lenient:
            continue
        assert _value(rows[0][0]) == q.expected, f"{q.title}: expected {q.expected}, got {rows[0][0]!r}\n{q.sql}"


# --- golden files and structure -----------------------------------------------------------

def _golden_inputs() -> dict[str, str]:
    out = {f"example_{folder}": files[CHECKLIST_NAME] for folder, files in _examples().items()}
    for case in OWN_CASES:
        out[f"case_{case}"] = _render(OWN_CASES[case])[CHECKLIST_NAME]
    return out


@pytest.mark.parametrize("name", sorted(_golden_inputs()))
def test_checklist_matches_golden(name: str) -> None:
    content = _golden_inputs()[name]
    path = GOLDEN / f"{name}.md"
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(content)
    assert path.exists(), f"no golden file for {name}; run with UPDATE_GOLDEN=1"
    assert path.read_text() == content, f"{path.name} differs from the rendered checklist"


def test_no_stale_golden_files() -> None:
    names = {f"{n}.md" for n in _golden_inputs()}
    assert {p.name for p in GOLDEN.iterdir()} == names


def test_rendering_is_deterministic() -> None:
    first, second = _all_bundles(), _all_bundles()
    for name in first:
        assert first[name][CHECKLIST_NAME].encode() == second[name][CHECKLIST_NAME].encode(), name


@pytest.mark.parametrize("name", sorted(_all_bundles()))
def test_lock_table_has_one_row_per_manifest_step(name: str) -> None:
    files = _all_bundles()[name]
    manifest = json.loads(files["manifest.json"])
    rows = lock_table(files[CHECKLIST_NAME])
    assert len(rows) == len(manifest["steps"])
    for row, step in zip(rows, manifest["steps"], strict=True):
        number, summary, lock, target, reads, writes, duration = row
        assert (int(number), summary, lock, target) == (step["n"], step["summary"], step["lock"], step["target"])
        assert (reads, writes) == BLOCKS[step["lock"]], (step, row)
        assert duration and duration != "see the step's SQL", f"no duration for step {step['n']} ({step['kind']})"


@pytest.mark.parametrize("name", sorted(_all_bundles()))
def test_every_query_parses(name: str) -> None:
    markdown = _all_bundles()[name][CHECKLIST_NAME]
    blocks = re.findall(r"^  ```sql\n(.*?)\n  ```$", markdown, re.MULTILINE | re.DOTALL)
    assert len(blocks) == len(queries(markdown)) > 0
    for block in blocks:
        pglast.parse_sql(textwrap.dedent(block))


@pytest.mark.parametrize("name", sorted(_all_bundles()))
def test_sections_and_sign_off(name: str) -> None:
    files = _all_bundles()[name]
    manifest = json.loads(files["manifest.json"])
    markdown = files[CHECKLIST_NAME]
    headings = re.findall(r"^## (.+)$", markdown, re.MULTILINE)
    assert headings == ["1. Pre-deployment", "2. Deployment", "3. Post-deployment health checks", "4. Rollback",
                        "5. Sign-off"]
    version = manifest["version"]
    assert manifest["checksum"][:12] in markdown
    for env in ("dev", "staging"):
        assert f"`dbdeploy apply --env {env} --to {version}`" in markdown
    production = f"dbdeploy apply --env production --to {version} --yes"
    assert production + (" --allow-destructive`" if manifest["destructive"] else "`") in markdown
    assert f"psql -v ON_ERROR_STOP=1 -f {manifest['files']['forward']['name']}" in markdown
    assert f"psql -v ON_ERROR_STOP=1 -f {manifest['files']['rollback']['name']}" in markdown
    previous = str(int(version) - 1).zfill(len(version))
    assert f"dbdeploy rollback --env <env> --to {previous}" in markdown
    for step in manifest["rollback_steps"]:
        assert f"{step['n']}. {step['summary']} ({step['lock']}" in markdown
    for what in ("Reviewed by", "DBA approval", "Staging verified", "Production verified", "Rollback tested"):
        assert f"- [ ] {what}:" in markdown
    for name_ in manifest["files"].values():
        assert f"- `{name_['name']}`" in markdown


def test_manifest_lists_the_checklist() -> None:
    for files in _all_bundles().values():
        manifest = json.loads(files["manifest.json"])
        entry = manifest["files"]["checklist"]
        assert entry["name"] == CHECKLIST_NAME
        assert entry["sha256"] == hashlib.sha256(files[CHECKLIST_NAME].encode()).hexdigest()


def test_committed_bundles_carry_their_checklist() -> None:
    for folder, files in _examples().items():
        assert (ROOT / "generated" / folder / CHECKLIST_NAME).read_text() == files[CHECKLIST_NAME]


def test_backups_and_dependants_per_operation() -> None:
    v3 = _examples()["V003__retire_site_tracking_legacy"][CHECKLIST_NAME]
    assert "--table=raw.site_tracking_events_r \\" in v3 and "--table=raw.site_tracking_sessions_r \\" in v3
    pre = section(v3, 1)
    assert sum(q.expected == "no rows" for q in pre) == 2      # DropColumn and DropTable dependants
    v1 = _examples()["V001__create_site_tracking_raw_layer"][CHECKLIST_NAME]
    assert "pg_dump" not in v1                                 # only new objects
    optional = [q for q in section(v1, 1) if "auth.tenant_h" in q.title]
    assert len(optional) == 1 and optional[0].lenient


# --- on a real database -----------------------------------------------------------------

def _write(files: dict[str, str], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (folder / name).write_text(content)
    return folder


def test_examples_queries_on_a_real_database(fresh_db: TestDatabase, tmp_path: Path) -> None:
    bundles = build_bundles(ROOT / "specs")
    folders = [_write(b.files, tmp_path / b.folder) for b in bundles]

    def forward(folder: Path) -> Path:
        return folder / json.loads((folder / "manifest.json").read_text())["files"]["forward"]["name"]

    for i, folder in enumerate(folders):
        checklist = (folder / CHECKLIST_NAME).read_text()
        run_queries(fresh_db, section(checklist, 1))          # prepared: earlier bundles applied
        fresh_db.psql_file(forward(folder))
        run_queries(fresh_db, section(checklist, 3))
        run_queries(fresh_db, section(checklist, 2), strict=False)   # progress queries run
        if i == 0:                                             # rows for V002's backfills and checks
            fresh_db.execute("INSERT INTO raw.site_tracking_events_r (raw_payload) "
                             "SELECT jsonb_build_object('event_type', 'e' || g) FROM generate_series(1, 30) g")
            fresh_db.execute("INSERT INTO raw.site_tracking_events_r (raw_payload) VALUES ('{}')")
    for folder in reversed(folders):
        manifest = json.loads((folder / "manifest.json").read_text())
        fresh_db.psql_file(folder / manifest["files"]["rollback"]["name"])
        run_queries(fresh_db, section((folder / CHECKLIST_NAME).read_text(), 4))


def test_v002_pre_checks_find_rows_that_would_fail(fresh_db: TestDatabase, tmp_path: Path) -> None:
    """The CHECK is on a column V002 adds and backfills; the FK points at a table V002 creates and
    seeds. The pre-deployment queries see the data as those steps will leave it."""
    bundles = build_bundles(ROOT / "specs")
    v1, v2 = (_write(b.files, tmp_path / b.folder) for b in bundles[:2])
    fresh_db.psql_file(v1 / "V001__create_site_tracking_raw_layer.sql")
    fresh_db.execute("INSERT INTO raw.site_tracking_events_r (raw_payload, record_source) VALUES "
                     "('{\"event_type\": \"\"}', 'site_tracker'), ('{}', 'legacy_importer'), ('{}', 'mobile_sdk')")
    results = {q.title: fresh_db.execute(q.sql)[0][0] for q in section((v2 / CHECKLIST_NAME).read_text(), 1)
               if q.expected == "0"}
    check = next(v for t, v in results.items() if "CHECK chk_site_tracking_events_r_event_type" in t)
    fk = next(v for t, v in results.items() if "missing row of raw.record_sources" in t)
    not_null = next(v for t, v in results.items() if "left with event_type NULL" in t)
    assert (check, fk, not_null) == (1, 1, 0)
    failed = fresh_db.psql_file(v2 / "V002__evolve_site_tracking_events.sql", check=False)
    assert failed.returncode != 0                               # the checks were right to warn


def test_v003_dependants_query_names_the_view(fresh_db: TestDatabase, tmp_path: Path) -> None:
    bundles = build_bundles(ROOT / "specs")
    folders = [_write(b.files, tmp_path / b.folder) for b in bundles]
    for folder, bundle in zip(folders[:2], bundles[:2], strict=True):
        fresh_db.psql_file(folder / f"{bundle.folder}.sql")
    fresh_db.execute("CREATE VIEW public.sessions_v AS SELECT session_id FROM raw.site_tracking_sessions_r")
    fresh_db.execute("CREATE VIEW public.errors_v AS SELECT error_message FROM raw.site_tracking_events_r")
    dependants = [q for q in section((folders[2] / CHECKLIST_NAME).read_text(), 1) if q.expected == "no rows"]
    assert [fresh_db.execute(q.sql) for q in dependants] == [[("errors_v (view)",)],
                                                             [("sessions_v (view)",)]]


@pytest.mark.parametrize("case", sorted(OWN_CASES))
def test_own_cases_on_a_real_database(fresh_db: TestDatabase, tmp_path: Path, case: str) -> None:
    migrations = OWN_CASES[case]
    if case == "seed_then_fk_to_unknown_table":
        fresh_db.execute(SETUP_UNKNOWN)
    bundles = write_bundles(migrations, tmp_path)
    *earlier, last = [bundles[m.version] for m in migrations]
    for bundle in earlier:
        fresh_db.psql_file(bundle.forward)
    if case == "fk_to_existing_table":
        fresh_db.execute("INSERT INTO public.customers VALUES (1), (2)")
    if case != "seed_then_fk_to_unknown_table":
        fresh_db.execute("INSERT INTO public.orders (customer_id, status, code) "
                         "SELECT 1 + g % 2, 'new', 'c' || g FROM generate_series(1, 7) g")
    checklist = (last.folder / CHECKLIST_NAME).read_text()
    run_queries(fresh_db, section(checklist, 1))
    fresh_db.psql_file(last.forward)
    run_queries(fresh_db, section(checklist, 3))
    fresh_db.psql_file(last.rollback)
    run_queries(fresh_db, section(checklist, 4))


@pytest.mark.parametrize("case", sorted(OWN_CASES))
def test_own_cases_pre_checks_count_violations(fresh_db: TestDatabase, tmp_path: Path, case: str) -> None:
    migrations = OWN_CASES[case]
    if case == "seed_then_fk_to_unknown_table":
        fresh_db.execute(SETUP_UNKNOWN)
        fresh_db.execute("INSERT INTO public.items VALUES (4, 3)")                 # kind 3 exists nowhere
    bundles = write_bundles(migrations, tmp_path)
    *earlier, last = [bundles[m.version] for m in migrations]
    for bundle in earlier:
        fresh_db.psql_file(bundle.forward)
    if case == "fk_to_existing_table":
        fresh_db.execute("INSERT INTO public.customers VALUES (1)")
        fresh_db.execute("INSERT INTO public.orders (customer_id) VALUES (1), (5), (NULL)")
    elif case == "check_unique_on_new_filled_column":
        fresh_db.execute("INSERT INTO public.orders (status, code) VALUES ('bad', 'x'), ('ok', 'x'), ('ok', 'x')")
    counts = [fresh_db.execute(q.sql)[0][0] for q in section((last.folder / CHECKLIST_NAME).read_text(), 1)
              if q.expected == "0" and "long_transactions" not in q.sql]
    expected = {"fk_to_existing_table": [1], "check_unique_on_new_filled_column": [0, 1, 1, 1],
                "seed_then_fk_to_unknown_table": [1]}[case]
    assert counts == expected
    assert fresh_db.psql_file(last.forward, check=False).returncode != 0


def test_merging_contributions_keeps_each_entry_once_and_replaces_queries_in_place() -> None:
    """Operations' checklist contributions merge in operation order (the planner adds each once,
    so thousands of operations merge in linear time; it used to re-merge every earlier part for
    each operation, and a migration of 1,000 CreateTables did not finish in 10 minutes)."""
    from dbdeploy.ops.base import ChecklistItems, CheckQuery

    first = CheckQuery("rows of a", "SELECT 1", "0", key="a")
    second = CheckQuery("rows of b", "SELECT 2", "0")
    newer = CheckQuery("rows of a, again", "SELECT 3", "0", key="a")
    parts = [ChecklistItems(created_tables=["public.a", "public.b"], prerequisites=[first, second]),
             ChecklistItems(created_tables=["public.b", "public.c"], prerequisites=[newer], notes=["n"]),
             ChecklistItems(created_tables=["public.c"], notes=["n", "m"])]
    merged = ChecklistItems.merged(parts)
    assert merged.created_tables == ["public.a", "public.b", "public.c"]
    assert merged.prerequisites == [newer, second]
    assert merged.notes == ["n", "m"]
    running = ChecklistItems()
    for part in parts:
        running.add(part)
    assert running == merged
    # lists given by hand are indexed when first merged into
    given = ChecklistItems(created_tables=["public.z"])
    given.add(parts[0])
    assert given.created_tables == ["public.z", "public.a", "public.b"]


def test_every_forward_step_says_how_its_duration_scales():
    """Each operation states how its steps' durations grow on the Step itself (``Step.scales``), where it
    builds them; the checklist reads it from there and never re-derives the forward steps."""
    import ast
    import inspect

    from dbdeploy import ops as ops_package
    from dbdeploy.ops import SchemaState
    from dbdeploy.plan.migration_plan import plan_migration
    from tests.golden_cases import CASES

    unscaled = []
    for name, migrations in CASES.items():
        state = SchemaState(complete=True)
        plan = [plan_migration(m, state) for m in migrations][-1]
        unscaled += [f"{name}: step {i} ({step.summary})" for i, step in enumerate(plan.forward, 1) if not step.scales]
    assert not unscaled, "forward steps without Step.scales:\n" + "\n".join(unscaled)

    for op_type in ops_package.OPERATION_TYPES:
        tree = ast.parse(inspect.getsource(op_type))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == "checklist":
                calls = [c for c in ast.walk(node) if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute)
                         and c.func.attr == "forward"]
                assert not calls, f"{op_type.__name__}.checklist() re-derives the forward steps"
