"""Issue 9, kinds 2 and 3: a rollback checks everything it refuses on before its first change, and
succeeds on its own populated tables.

Kind 2 — a refused rollback changes nothing: every refusal condition of the whole rollback is checked
by its first step (``rollback_preflight``), under ``psql -v ON_ERROR_STOP=1 -f`` as under
``dbdeploy rollback``. For each refusal the tests compare the catalog snapshot (``tests/catalog.py``,
dbdeploy's own schemas included) and the contents of every table (the history tables too, except the
executor's event and step logs, which record the refusal) before and after, and check that the error
names every dependant.

Kind 3 — a rollback plans against what it removes later: with the application's rows in the
migration's tables (orders pointing at seeded customers, foreign keys between the created tables in
both directions, a created table pointing at seed rows of a table the rollback keeps) it succeeds, and
every dropped row is in the backup schema.

Every test runs on both servers (``fresh_db_each``) with hundreds to thousands of rows.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from psycopg import sql

from dbdeploy import AddCheck, Check, Column, CreateTable, Migration
from tests.bundles import write_bundles
from tests.catalog import diff, snapshot
from tests.executor_support import Project, make_project, write_spec
from tests.pg import TestDatabase
from tests.roundtrip import backup_tables, log_status

# The suite runs this module on the primary server (the round trips in tests/test_ops_roundtrip.py and the
# step-lock checks run on every server); DBDEPLOY_FULL=1 runs it on every server (README, "Testing").
PRIMARY_SERVER_ONLY_UNLESS_FULL = True

# The executor's own logs record the refusal itself; everything else must stay as it was.
EXECUTOR_LOGS = ("migrations.migration_events", "migrations.performance_log")

SHOP = '''
from dbdeploy import Column, CreateSchema, CreateTable, ForeignKey, Migration, SeedRows

migration = Migration(
    version="010",
    name="shop",
    description="Customers, orders and coupons.",
    operations=[
        CreateSchema(name="shop"),
        CreateTable(table="shop.customers", columns=[
            Column(name="id", type="bigint", nullable=False),
            Column(name="name", type="text", nullable=False)], primary_key=["id"]),
        CreateTable(table="shop.orders", columns=[
            Column(name="id", type="bigint", identity=True),
            Column(name="customer_id", type="bigint", nullable=False),
            Column(name="total", type="numeric(12,2)", nullable=False)], primary_key=["id"],
            foreign_keys=[ForeignKey(columns=["customer_id"], references="shop.customers", ref_columns=["id"])]),
        CreateTable(table="shop.coupons", columns=[
            Column(name="code", type="text", nullable=False),
            Column(name="percent", type="integer", nullable=False)], primary_key=["code"]),
        SeedRows(table="shop.customers", rows=[{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace"}],
                 conflict_columns=["id"]),
        SeedRows(table="shop.coupons", rows=[{"code": "WELCOME", "percent": 10}, {"code": "SPRING", "percent": 15}],
                 conflict_columns=["code"]),
    ],
)
'''


# --- helpers --------------------------------------------------------------------------------

def _project(tmp_path: Path, db: TestDatabase, *specs: tuple[str, str]) -> Project:
    source = tmp_path / "spec_sources"
    for filename, text in specs:
        write_spec(source, filename, textwrap.dedent(text))
    return make_project(tmp_path / "project", db.dsn, specs=source)


def _rollback_file(project: Project, version: str) -> Path:
    return next(project.generated.glob(f"V{version}__*/V{version}__rollback_*.sql"))


def _forward_file(project: Project, version: str) -> Path:
    folder = next(project.generated.glob(f"V{version}__*"))
    return next(p for p in folder.glob(f"V{version}__*.sql") if "__rollback_" not in p.name)


def _apply(project: Project) -> None:
    result = project.run("apply", "--env", "test")
    assert result.returncode == 0, result.stdout + result.stderr


def _all_rows(db: TestDatabase) -> dict[str, list[str]]:
    """Every row of every table in the database (user schemas, dbdeploy's history and backups), as text."""
    tables = db.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p') AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'"
        " ORDER BY 1, 2")
    rows = {}
    for schema, name in tables:
        if f"{schema}.{name}" in EXECUTOR_LOGS:
            continue
        query = sql.SQL("SELECT t::text FROM {} AS t ORDER BY 1").format(sql.Identifier(schema, name))
        rows[f"{schema}.{name}"] = [r[0] for r in db.execute(query)]
    return rows


def _state(db: TestDatabase) -> tuple[dict, dict]:
    with db.connect() as conn:
        return snapshot(conn, exclude_schemas=()), _all_rows(db)


def _assert_unchanged(db: TestDatabase, before: tuple[dict, dict], how: str) -> None:
    catalog_now, rows_now = _state(db)
    assert catalog_now == before[0], f"{how} changed the catalog:\n{diff(before[0], catalog_now)}"
    changed = sorted(t for t in set(rows_now) | set(before[1]) if rows_now.get(t) != before[1].get(t))
    assert not changed, f"{how} changed the rows of {changed}"


def _assert_refused(db: TestDatabase, project: Project, version: str, *dependants: str) -> None:
    """The rollback of ``version`` refuses, both ways, before any change, naming every dependant."""
    before = _state(db)
    status = log_status_of(db, version)

    result = project.run("rollback", "--env", "test", "--to", "0")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "refused before any change" in output, output
    for name in dependants:
        assert name in output, f"{name!r} not named by dbdeploy rollback:\n{output}"
    _assert_unchanged(db, before, "a refused `dbdeploy rollback`")
    assert log_status_of(db, version) == status
    event = db.execute("SELECT event, error FROM migrations.migration_events WHERE version = %s"
                       " ORDER BY id DESC LIMIT 1", [version])[0]
    assert event[0] == "rollback_refused"
    for name in dependants:
        assert name in event[1], f"{name!r} not in the recorded error: {event[1]}"

    proc = db.psql_file(_rollback_file(project, version), check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "rollback refused before any change" in output, output
    for name in dependants:
        assert name in output, f"{name!r} not named under psql:\n{output}"
    _assert_unchanged(db, before, "a refused psql rollback")
    assert log_status_of(db, version) == status


def log_status_of(db: TestDatabase, version: str) -> str | None:
    with db.connect() as conn:
        return log_status(conn, version)


def _count(db: TestDatabase, query: str) -> int:
    return db.execute(query)[0][0]


def _backup_count(db: TestDatabase, prefix: str) -> int:
    """Rows in the rollback-time backup tables whose name starts with ``prefix``."""
    with db.connect() as conn:
        names = backup_tables(conn, prefix.replace("_", "\\_") + "\\_%")
    return sum(_count(db, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("dbdeploy_backup", n)))
               for n in names)


def _shop_rows(db: TestDatabase) -> None:
    """What the application wrote after the deploy: customers, orders of the seeded customers too."""
    db.execute("INSERT INTO shop.customers (id, name) SELECT g, 'customer ' || g FROM generate_series(3, 800) g")
    db.execute("INSERT INTO shop.orders (customer_id, total)"
               " SELECT 1 + g % 800, (g % 97) * 1.25 FROM generate_series(1, 2500) g")
    db.execute("INSERT INTO shop.coupons (code, percent) SELECT 'C' || g, g % 50 FROM generate_series(1, 300) g")


# --- kind 2: the input -----------------------------------------------------------------

def test_handmade_table_referencing_customers_refuses_before_any_change(fresh_db_each, tmp_path) -> None:
    db = fresh_db_each
    project = _project(tmp_path, db, ("V010_shop.py", SHOP))
    _apply(project)
    _shop_rows(db)
    db.execute("CREATE TABLE public.notes (id int PRIMARY KEY, customer_id bigint REFERENCES shop.customers (id))")
    db.execute("INSERT INTO public.notes SELECT g, 1 + g % 800 FROM generate_series(1, 400) g")

    _assert_refused(db, project, "010", "public.notes (foreign key notes_customer_id_fkey)", "shop.customers")
    assert log_status_of(db, "010") == "completed"
    # The coupon seeds and the tables are all still there (today's bug deleted and dropped them).
    assert _count(db, "SELECT count(*) FROM shop.coupons WHERE code IN ('WELCOME', 'SPRING')") == 2
    assert _count(db, "SELECT count(*) FROM shop.orders") == 2500

    # Once the hand-made dependant is gone, the refusal is lifted; the hand-made table is never touched.
    db.execute("ALTER TABLE public.notes DROP CONSTRAINT notes_customer_id_fkey")
    db.execute("CREATE VIEW public.big_orders AS SELECT * FROM shop.orders WHERE total > 100")
    _assert_refused(db, project, "010", "public.big_orders (view)")
    db.execute("DROP VIEW public.big_orders")


def test_every_dependant_of_every_step_is_named_in_one_error(fresh_db_each, tmp_path) -> None:
    """A hand-made view on one created table and hand-made foreign keys (one ON DELETE CASCADE onto
    a seeded table) on another: one refusal names them all."""
    db = fresh_db_each
    project = _project(tmp_path, db, ("V010_shop.py", SHOP))
    _apply(project)
    _shop_rows(db)
    db.execute("CREATE VIEW public.order_totals AS SELECT customer_id, sum(total) FROM shop.orders GROUP BY 1")
    db.execute("CREATE TABLE public.loyalty (customer_id bigint PRIMARY KEY"
               " REFERENCES shop.customers (id) ON DELETE CASCADE, points int)")
    db.execute("INSERT INTO public.loyalty SELECT g, g * 3 FROM generate_series(1, 500) g")
    db.execute("CREATE TABLE public.coupon_uses (id int PRIMARY KEY, code text REFERENCES shop.coupons (code))")
    db.execute("INSERT INTO public.coupon_uses SELECT g, CASE WHEN g % 2 = 0 THEN 'WELCOME' ELSE 'C' || g END"
               " FROM generate_series(1, 300) g")

    _assert_refused(db, project, "010", "public.order_totals (view)",
                    "public.loyalty (foreign key loyalty_customer_id_fkey)",
                    "public.coupon_uses (foreign key coupon_uses_code_fkey)")


# --- kind 2: variants on other operations ----------------------------------------------------------

ACCOUNTS_CODE = '''
from dbdeploy import AddColumn, AddUnique, Column, Migration, Unique

migration = Migration(
    version="020",
    name="account_codes",
    description="A unique code per account.",
    operations=[
        AddColumn(table="public.accounts", column=Column(name="code", type="text")),
        AddUnique(table="public.accounts", unique=Unique(columns=["code"], name="accounts_code_key")),
    ],
)
'''


def test_handmade_fk_to_added_column_refuses_before_any_change(fresh_db_each, tmp_path) -> None:
    db = fresh_db_each
    db.execute("CREATE TABLE public.accounts (id bigint PRIMARY KEY, name text NOT NULL)")
    db.execute("INSERT INTO public.accounts SELECT g, 'account ' || g FROM generate_series(1, 1500) g")
    project = _project(tmp_path, db, ("V020_account_codes.py", ACCOUNTS_CODE))
    _apply(project)
    db.execute("UPDATE public.accounts SET code = 'A' || id WHERE id <= 1000")
    db.execute("CREATE TABLE public.invoices (id int PRIMARY KEY, account_code text REFERENCES public.accounts (code))")
    db.execute("INSERT INTO public.invoices SELECT g, 'A' || (1 + g % 1000) FROM generate_series(1, 700) g")

    # The unique constraint's drop (step 2) and the column's drop (step 3) both refuse on it.
    _assert_refused(db, project, "020", "public.invoices (foreign key invoices_account_code_fkey)",
                    "index accounts_code_key", "column public.accounts.code")
    assert _count(db, "SELECT count(*) FROM public.accounts WHERE code IS NOT NULL") == 1000

    db.execute("DROP TABLE public.invoices")
    result = project.run("rollback", "--env", "test", "--to", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _backup_count(db, "r020_accounts_code") == 1000


DROP_LEGACY = '''
from dbdeploy import AddColumn, Column, DropTable, Migration

migration = Migration(
    version="030",
    name="retire_legacy",
    description="Retire the legacy table; accounts get a note.",
    operations=[
        DropTable(table="public.legacy"),
        AddColumn(table="public.accounts", column=Column(name="note", type="text")),
    ],
)
'''


def test_drop_table_whose_backup_was_removed_refuses_before_any_change(fresh_db_each, tmp_path) -> None:
    db = fresh_db_each
    db.execute("CREATE TABLE public.accounts (id bigint PRIMARY KEY, name text NOT NULL)")
    db.execute("INSERT INTO public.accounts SELECT g, 'account ' || g FROM generate_series(1, 1200) g")
    db.execute("CREATE TABLE public.legacy (id bigint PRIMARY KEY, payload text)")
    db.execute("INSERT INTO public.legacy SELECT g, md5(g::text) FROM generate_series(1, 900) g")
    project = _project(tmp_path, db, ("V030_retire_legacy.py", DROP_LEGACY))
    _apply(project)
    db.execute("UPDATE public.accounts SET note = 'noted ' || id WHERE id % 3 = 0")
    # The set-aside copy (wherever the forward put it in the backup schema(s)), removed by hand.
    kept = db.execute("SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                      " WHERE c.relkind = 'r' AND c.relname LIKE '%legacy' AND n.nspname LIKE 'dbdeploy\\_backup%'")
    assert len(kept) == 1, kept
    db.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(*kept[0])))

    # The rollback would drop accounts.note first (its values copied out), then fail on the restore.
    _assert_refused(db, project, "030", "cannot restore public.legacy")
    assert _count(db, "SELECT count(*) FROM public.accounts WHERE note IS NOT NULL") == 400


def test_drop_column_restore_refusals_come_first(fresh_db_each, tmp_path) -> None:
    """DropColumn of a NOT NULL column, then rows inserted without it: the restore could not set
    NOT NULL again; the rollback refuses before dropping the column the same migration added."""
    db = fresh_db_each
    db.execute("CREATE TABLE public.accounts (id bigint PRIMARY KEY, name text NOT NULL, region text NOT NULL)")
    db.execute("INSERT INTO public.accounts SELECT g, 'account ' || g, 'eu' FROM generate_series(1, 1000) g")
    project = _project(tmp_path, db, ("V040_regions.py", '''
        from dbdeploy import AddColumn, Column, DropColumn, Migration

        migration = Migration(
            version="040",
            name="regions",
            description="Drop region; add a zone.",
            operations=[
                DropColumn(table="public.accounts", column="region"),
                AddColumn(table="public.accounts", column=Column(name="zone", type="text")),
            ],
        )
        '''))
    _apply(project)
    db.execute("UPDATE public.accounts SET zone = 'z' || (id % 7)")
    db.execute("INSERT INTO public.accounts (id, name, zone)"
               " SELECT g, 'new ' || g, 'z1' FROM generate_series(1001, 1040) g")

    _assert_refused(db, project, "040", "cannot restore NOT NULL column public.accounts.region",
                    "rows: 40")


# --- kind 3: rollbacks on the migration's own populated tables -------------------------------------

def test_shop_rollback_succeeds_with_orders_of_seeded_customers(fresh_db_each, tmp_path) -> None:
    """The issue's kind-3 input. Depends on helper h4's SeedRows.rollback honouring
    ctx.rollback_drops (no row-by-row seed delete on a table the rollback drops)."""
    db = fresh_db_each
    project = _project(tmp_path, db, ("V010_shop.py", SHOP))
    _apply(project)
    _shop_rows(db)
    before_rows = {t: _count(db, f"SELECT count(*) FROM shop.{t}") for t in ("customers", "orders", "coupons")}

    result = project.run("rollback", "--env", "test", "--to", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert log_status_of(db, "010") == "rolled_back"
    assert _count(db, "SELECT count(*) FROM pg_namespace WHERE nspname = 'shop'") == 0
    # Every dropped row is in the backup schema (the seed rows included).
    for table, count in before_rows.items():
        assert _backup_count(db, f"r010_{table}") >= count, table

    # And the same with nothing but psql.
    db.psql_file(_forward_file(project, "010"))
    _shop_rows(db)
    db.psql_file(_rollback_file(project, "010"))
    assert log_status_of(db, "010") == "rolled_back"
    assert _count(db, "SELECT count(*) FROM pg_namespace WHERE nspname = 'shop'") == 0


CYCLE = '''
from dbdeploy import AddForeignKey, Column, CreateTable, ForeignKey, Migration

migration = Migration(
    version="050",
    name="teams",
    description="Teams and members pointing at each other.",
    operations=[
        CreateTable(table="public.teams", columns=[
            Column(name="id", type="bigint", nullable=False),
            Column(name="parent_id", type="bigint"),
            Column(name="captain_id", type="bigint"),
            Column(name="name", type="text", nullable=False)], primary_key=["id"],
            foreign_keys=[
                ForeignKey(columns=["parent_id"], references="public.teams", ref_columns=["id"]),
                ForeignKey(columns=["captain_id"], references="public.members", ref_columns=["id"], optional=True,
                           name="teams_captain_fk"),
            ]),
        CreateTable(table="public.members", columns=[
            Column(name="id", type="bigint", nullable=False),
            Column(name="team_id", type="bigint", nullable=False),
            Column(name="mentor_id", type="bigint")], primary_key=["id"],
            foreign_keys=[ForeignKey(columns=["team_id"], references="public.teams", ref_columns=["id"])]),
        CreateTable(table="public.badges", columns=[
            Column(name="id", type="bigint", nullable=False),
            Column(name="member_id", type="bigint")], primary_key=["id"]),
        AddForeignKey(table="public.members", foreign_key=ForeignKey(
            columns=["mentor_id"], references="public.badges", ref_columns=["id"], name="members_badge_fk")),
    ],
)
'''


def _cycle_rows(db: TestDatabase) -> None:
    db.execute("INSERT INTO public.teams (id, parent_id, name) SELECT g, NULLIF(g / 10, 0), 'team ' || g"
               " FROM generate_series(1, 300) g")
    db.execute("INSERT INTO public.members (id, team_id) SELECT g, 1 + g % 300 FROM generate_series(1, 1200) g")
    db.execute("INSERT INTO public.badges (id, member_id) SELECT g, g FROM generate_series(1, 600) g")
    db.execute("UPDATE public.members SET mentor_id = 1 + id % 600")
    db.execute("UPDATE public.teams SET captain_id = id")
    # Made by hand between two created tables (earlier-created → later-created): the rollback drops
    # both tables, so it is no reason to refuse.
    db.execute("ALTER TABLE public.badges ADD CONSTRAINT badges_member_fk FOREIGN KEY (member_id)"
               " REFERENCES public.members (id)")


def test_foreign_keys_between_created_tables_in_both_directions(fresh_db_each, tmp_path) -> None:
    """teams → members is an optional FK from the earlier-created table to a later one (only added
    by a second run once members exists), members → teams the other way, teams → teams a
    self-reference, members → badges an AddForeignKey to a later table, badges → members a
    hand-made FK from the later table back. The rollback succeeds and keeps every row."""
    db = fresh_db_each
    project = _project(tmp_path, db, ("V050_teams.py", CYCLE))
    _apply(project)
    db.psql_file(_forward_file(project, "050"))       # the second run adds the optional FK teams → members
    assert _count(db, "SELECT count(*) FROM pg_constraint WHERE conname = 'teams_captain_fk'") == 1
    _cycle_rows(db)

    result = project.run("rollback", "--env", "test", "--to", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    for table in ("teams", "members", "badges"):
        assert _count(db, f"SELECT (to_regclass('public.{table}') IS NULL)::int") == 1, table
    assert _backup_count(db, "r050_teams") == 300
    assert _backup_count(db, "r050_members") == 1200
    assert _backup_count(db, "r050_badges") == 600

    # The same bundle with nothing but psql.
    db.psql_file(_forward_file(project, "050"))
    db.psql_file(_forward_file(project, "050"))
    _cycle_rows(db)
    db.psql_file(_rollback_file(project, "050"))
    assert log_status_of(db, "050") == "rolled_back"
    assert _count(db, "SELECT count(*) FROM pg_class WHERE relname IN ('teams', 'members', 'badges')"
                      " AND relnamespace = 'public'::regnamespace") == 0


def test_cycle_with_a_handmade_view_refuses_before_any_change(fresh_db_each, tmp_path) -> None:
    db = fresh_db_each
    project = _project(tmp_path, db, ("V050_teams.py", CYCLE))
    _apply(project)
    db.psql_file(_forward_file(project, "050"))
    _cycle_rows(db)
    db.execute("CREATE VIEW public.team_sizes AS SELECT team_id, count(*) FROM public.members GROUP BY 1")
    db.execute("CREATE TABLE public.awards (id int PRIMARY KEY, team_id bigint REFERENCES public.teams (id))")
    db.execute("INSERT INTO public.awards SELECT g, g FROM generate_series(1, 250) g")
    _assert_refused(db, project, "050", "public.team_sizes (view)", "public.awards (foreign key awards_team_id_fkey)")


PLANS = '''
from dbdeploy import Column, CreateTable, ForeignKey, Migration, SeedRows

migration = Migration(
    version="060",
    name="subscriptions",
    description="Subscriptions to the plans, and two new plans.",
    operations=[
        CreateTable(table="public.subscriptions", columns=[
            Column(name="id", type="bigint", nullable=False),
            Column(name="plan_code", type="text", nullable=False)], primary_key=["id"],
            foreign_keys=[ForeignKey(columns=["plan_code"], references="public.plans", ref_columns=["code"])]),
        SeedRows(table="public.plans", rows=[{"code": "pro", "price": 20}, {"code": "team", "price": 50}],
                 conflict_columns=["code"]),
    ],
)
'''


def test_seed_rows_of_a_kept_table_are_deleted_after_the_tables_referencing_them(fresh_db_each, tmp_path) -> None:
    """Seed rows in a table the rollback keeps, referenced by a table it drops: the drop (rows copied
    out) comes before the seed delete, so no foreign key error on a populated database."""
    db = fresh_db_each
    db.execute("CREATE TABLE public.plans (code text PRIMARY KEY, price int NOT NULL)")
    db.execute("INSERT INTO public.plans SELECT 'plan' || g, g FROM generate_series(1, 200) g")
    project = _project(tmp_path, db, ("V060_subscriptions.py", PLANS))
    _apply(project)
    db.execute("INSERT INTO public.subscriptions SELECT g, (ARRAY['pro', 'team', 'plan7'])[1 + g % 3]"
               " FROM generate_series(1, 1500) g")

    manifest = (project.generated / "V060__subscriptions" / "manifest.json").read_text()
    assert manifest.index('"kind": "drop_table"') < manifest.index('"kind": "delete_seed_rows"')
    result = project.run("rollback", "--env", "test", "--to", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _count(db, "SELECT count(*) FROM public.plans") == 200
    assert _backup_count(db, "r060_subscriptions") == 1500
    assert _backup_count(db, "r060_plans_seed") == 2


def test_requires_extension_dependants_refuse_and_backups_keep_it(fresh_db_each, tmp_path) -> None:
    db = fresh_db_each
    if not db.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'citext'")[0][0]:
        pytest.skip("citext is not available on this server")
    project = _project(tmp_path, db, ("V070_emails.py", '''
        from dbdeploy import Column, CreateTable, Migration, RequireExtension

        migration = Migration(
            version="070",
            name="emails",
            description="Case-insensitive e-mail addresses.",
            operations=[
                RequireExtension(name="citext", create=True),
                CreateTable(table="public.emails", columns=[
                    Column(name="id", type="bigint", nullable=False),
                    Column(name="address", type="public.citext", nullable=False)], primary_key=["id"]),
            ],
        )
        '''))
    _apply(project)
    db.execute("INSERT INTO public.emails SELECT g, 'User' || g || '@Example.com' FROM generate_series(1, 600) g")
    db.execute("CREATE TABLE public.contacts (id int PRIMARY KEY, email public.citext)")
    db.execute("INSERT INTO public.contacts SELECT g, 'c' || g || '@x.org' FROM generate_series(1, 300) g")
    # The created table's citext column is dropped by the rollback: only the hand-made one counts.
    _assert_refused(db, project, "070", "column email of table public.contacts")

    db.execute("DROP TABLE public.contacts")
    result = project.run("rollback", "--env", "test", "--to", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    # The copied rows keep citext values, so the extension stays (with a warning) instead of failing.
    assert _backup_count(db, "r070_emails") == 600
    assert "left in place" in result.stdout + result.stderr
    assert db.execute("SELECT count(*) FROM pg_extension WHERE extname = 'citext'")[0][0] == 1


def test_view_made_by_the_migrations_own_raw_sql_is_no_reason_to_refuse(fresh_db_each, tmp_path) -> None:
    """A RawSQL whose rollback drops its view (read with pglast) runs before the table's drop: the
    preflight does not refuse on it; a hand-made view next to it still is refused."""
    db = fresh_db_each
    project = _project(tmp_path, db, ("V080_report.py", '''
        from dbdeploy import Column, CreateTable, Migration, RawSQL

        migration = Migration(
            version="080",
            name="report",
            description="Events and a report view over them.",
            operations=[
                CreateTable(table="public.events", columns=[
                    Column(name="id", type="bigint", nullable=False),
                    Column(name="kind", type="text", nullable=False)], primary_key=["id"]),
                RawSQL(forward="CREATE VIEW public.event_kinds AS"
                               " SELECT kind, count(*) FROM public.events GROUP BY kind",
                       rollback="DROP VIEW IF EXISTS public.event_kinds"),
            ],
        )
        '''))
    _apply(project)
    db.execute("INSERT INTO public.events SELECT g, 'k' || (g % 9) FROM generate_series(1, 900) g")
    db.execute("CREATE VIEW public.recent_events AS SELECT * FROM public.events WHERE id > 800")
    _assert_refused(db, project, "080", "public.recent_events (view)")
    proc = db.psql_file(_rollback_file(project, "080"), check=False)
    assert "event_kinds" not in proc.stdout + proc.stderr

    db.execute("DROP VIEW public.recent_events")
    result = project.run("rollback", "--env", "test", "--to", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _backup_count(db, "r080_events") == 900


def test_unique_index_rebuild_with_duplicates_written_since_refuses_first(fresh_db_each, tmp_path) -> None:
    """DropIndex of a unique index, then duplicates written: the rebuild would fail after the column
    the same migration added was dropped; the preflight refuses first."""
    db = fresh_db_each
    db.execute("CREATE TABLE public.users (id bigint PRIMARY KEY, email text)")
    db.execute("INSERT INTO public.users SELECT g, 'u' || g || '@x.org' FROM generate_series(1, 1000) g")
    project = _project(tmp_path, db, ("V090_email_index.py", '''
        from dbdeploy import CreateIndex, Index, Migration

        migration = Migration(version="090", name="email_index", description="Unique e-mails.", operations=[
            CreateIndex(table="public.users", index=Index(columns=["email"], unique=True, name="users_email_uq")),
        ])
        '''), ("V091_relax.py", '''
        from dbdeploy import AddColumn, Column, DropIndex, Migration

        migration = Migration(version="091", name="relax", description="E-mails may repeat.", operations=[
            DropIndex(name="public.users_email_uq"),
            AddColumn(table="public.users", column=Column(name="nickname", type="text")),
        ])
        '''))
    _apply(project)
    db.execute("UPDATE public.users SET nickname = 'n' || id")
    db.execute("INSERT INTO public.users SELECT g, 'u' || (g - 1000) || '@x.org' FROM generate_series(1001, 1003) g")
    before = _state(db)
    result = project.run("rollback", "--env", "test", "--to", "090")
    assert result.returncode == 1
    assert "cannot rebuild unique index users_email_uq" in result.stdout + result.stderr
    assert "duplicated keys: 3" in result.stdout + result.stderr
    _assert_unchanged(db, before, "a refused `dbdeploy rollback`")
    proc = db.psql_file(_rollback_file(project, "091"), check=False)
    assert proc.returncode != 0 and "rollback refused before any change" in proc.stderr
    _assert_unchanged(db, before, "a refused psql rollback")


def test_preflight_step_only_when_an_operation_contributes(tmp_path) -> None:
    """The preflight is the first rollback step of a migration whose rollback can refuse, and absent
    (the preamble marks the version rolling_back) when none can."""
    files = write_bundles([
        Migration(version="001", name="t", description="t", operations=[
            CreateTable(table="public.t", columns=[Column(name="id", type="bigint", nullable=False)],
                        primary_key=["id"])]),
        Migration(version="002", name="c", description="c", operations=[
            AddCheck(table="public.t", check=Check(name="t_id_positive", expression="id > 0"))]),
    ], tmp_path)
    first = json.loads(files["001"].manifest.read_text())["rollback_steps"]
    assert first[0]["kind"] == "rollback_preflight" and first[0]["lock"] == "ACCESS SHARE"
    assert [s["kind"] for s in first[1:]] == ["drop_table"]
    text = files["001"].rollback.read_text()
    assert text.index("rollback_preflight") < text.index("SET status = 'rolling_back'")
    second = json.loads(files["002"].manifest.read_text())["rollback_steps"]
    assert [s["kind"] for s in second] == ["drop_constraint"]
    text = files["002"].rollback.read_text()
    assert text.index("SET status = 'rolling_back'") < text.index("dbdeploy:step 1")
