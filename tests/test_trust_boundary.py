"""No privilege escalation through dbdeploy's own objects (issue 10, item 1).

The attacker is a less privileged role (LOGIN, NOSUPERUSER) that owns the test database, so it
may create schemas. It plants objects where dbdeploy keeps its history (``migrations``) and its
backups (``dbdeploy_backup``): a trigger, a rule, a policy, a view, a table of its own, write
privileges, its own sequence, function or type. The deploy then runs as the superuser
``postgres`` — through the executor (``dbdeploy apply`` / ``rollback``) and through psql
(``psql -v ON_ERROR_STOP=1 -f``) — and must refuse before anything runs, naming the object, with
the attacker still not a superuser and nothing of the migration applied. Where a planted object
really fires (trigger, rule), a control INSERT by the superuser proves the attack is live.

Positive cases: schemas a DBA prepared for a configured ``owner`` role work once that role is
named in dbdeploy.toml, and a table a DropTable set aside (owned by the application's role, with
its trigger) does not block later runs.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.executor_support import Project, make_project, write_spec
from tests.pg import TestDatabase
from tests.roundtrip import data_snapshot, relation_exists

# Fast form in the default suite: every 3rd test plus CI_KEEP (the issue's inputs);
# DBDEPLOY_FULL=1 runs every test (tests/conftest.py, README "Testing").
CI_FAST_FORM = 3
CI_KEEP = (
    "test_the_issue_attacks_on_every_server",
)

SPECS = {
    "V001_channel.py": '''
from dbdeploy import AddColumn, Column, DropColumn, Migration

migration = Migration(version="001", name="channel", operations=[
    AddColumn(table="app.orders", column=Column(name="channel", type="text")),
    DropColumn(table="app.orders", column="note"),
])
''',
}
DROP_SPEC = '''
from dbdeploy import DropTable, Migration

migration = Migration(version="002", name="retire_legacy", operations=[DropTable(table="app.legacy")])
'''
LATER_SPEC = '''
from dbdeploy import AddColumn, Column, Migration

migration = Migration(version="003", name="region", operations=[
    AddColumn(table="app.orders", column=Column(name="region", type="text")),
])
'''
TABLES = {"app.orders": "id"}
LOG_COLUMNS = ("version text PRIMARY KEY, script_name text, description text, applied_by text, applied_at timestamptz,"
               " completed_at timestamptz, status text, notes text, checksum text, environment text,"
               " duration_ms bigint, rows_affected bigint, dbdeploy_version text, host text,"
               " rolled_back_at timestamptz")
OBJECTS_COLUMNS = ("version text NOT NULL, object_type text NOT NULL, object_name text NOT NULL,"
                   " created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (version, object_type, object_name)")


@dataclass
class Scene:
    db: TestDatabase
    attacker: str
    attacker_dsn: str

    def as_attacker(self, statements: str) -> None:
        with psycopg.connect(self.attacker_dsn, autocommit=True) as conn:
            conn.execute(statements.replace("ATTACKER", sql.Identifier(self.attacker).as_string(conn)))

    def superuser(self) -> bool:
        return self.db.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [self.attacker])[0][0]


@contextlib.contextmanager
def _scene(db: TestDatabase) -> Iterator[Scene]:
    """``db`` handed to a new NOSUPERUSER role as its owner, with the application's schema and rows."""
    role = f"dbdeploy_t_trust_{secrets.token_hex(4)}"
    db.execute(sql.SQL("CREATE ROLE {r} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(r=sql.Identifier(role)))
    try:
        db.execute(sql.SQL("ALTER DATABASE {d} OWNER TO {r}").format(d=sql.Identifier(db.name),
                                                                    r=sql.Identifier(role)))
        db.execute("""
            CREATE SCHEMA app;
            CREATE TABLE app.orders (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, customer text NOT NULL,
                                     amount numeric(10,2) NOT NULL, note text);
            INSERT INTO app.orders (customer, amount, note)
            SELECT 'customer ' || g % 97, (g % 300) * 1.25, CASE WHEN g % 4 = 0 THEN NULL ELSE 'note ' || g END
            FROM generate_series(1, 1200) g;
        """)
        scene = Scene(db, role, make_conninfo(db.dsn, user=role))
        # SECURITY INVOKER: whoever fires them runs them. A superuser would make the attacker one.
        scene.as_attacker("""
            CREATE FUNCTION public.dbd_escalate() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN EXECUTE 'ALTER ROLE ATTACKER SUPERUSER'; RETURN NEW; END $$;
            CREATE FUNCTION public.dbd_escalate_fn() RETURNS integer LANGUAGE plpgsql AS $$
            BEGIN EXECUTE 'ALTER ROLE ATTACKER SUPERUSER'; RETURN 1; END $$;
            CREATE FUNCTION public.dbd_escalate_bool() RETURNS boolean LANGUAGE plpgsql AS $$
            BEGIN EXECUTE 'ALTER ROLE ATTACKER SUPERUSER'; RETURN true; END $$;
        """)
        yield scene
    finally:
        db.close()
        db.execute(sql.SQL("ALTER DATABASE {d} OWNER TO CURRENT_USER").format(d=sql.Identifier(db.name)))
        db.execute(sql.SQL("REASSIGN OWNED BY {r} TO CURRENT_USER; DROP OWNED BY {r}").format(r=sql.Identifier(role)))
        db.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def scene(fresh_db: TestDatabase) -> Iterator[Scene]:
    """On the primary server."""
    with _scene(fresh_db) as made:
        yield made


@pytest.fixture
def scene_each(fresh_db_each: TestDatabase) -> Iterator[Scene]:
    """On every server (PostgreSQL 15 and 16)."""
    with _scene(fresh_db_each) as made:
        yield made


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The bundles, generated once; every test deploys them with --dsn (as the superuser)."""
    root = tmp_path_factory.mktemp("trust")
    for name, source in SPECS.items():
        write_spec(root / "specs", name, source)
    return make_project(root / "project", specs=root / "specs")


def _clean(result) -> str:
    text = result.stdout + result.stderr
    assert "Traceback" not in text, text
    return text


def _applied(db: TestDatabase) -> bool:
    return bool(db.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'app.orders'::regclass"
                           " AND attname = 'channel' AND NOT attisdropped")[0][0])


# --- the planted objects ---------------------------------------------------------------------------

def _trigger_on_log(s: Scene) -> None:
    s.as_attacker(f"CREATE SCHEMA migrations; CREATE TABLE migrations.migration_log ({LOG_COLUMNS});"
                  " CREATE TRIGGER audit BEFORE INSERT OR UPDATE ON migrations.migration_log"
                  " FOR EACH ROW EXECUTE FUNCTION public.dbd_escalate();")


def _rule_on_log(s: Scene) -> None:
    s.as_attacker(f"CREATE SCHEMA migrations; CREATE TABLE migrations.migration_log ({LOG_COLUMNS});"
                  " CREATE RULE audit AS ON INSERT TO migrations.migration_log DO ALSO"
                  " SELECT public.dbd_escalate_fn();")


def _policy_on_log(s: Scene) -> None:
    s.as_attacker(f"CREATE SCHEMA migrations; CREATE TABLE migrations.migration_log ({LOG_COLUMNS});"
                  " ALTER TABLE migrations.migration_log ENABLE ROW LEVEL SECURITY;"
                  " CREATE POLICY audit ON migrations.migration_log USING (public.dbd_escalate_bool())"
                  " WITH CHECK (public.dbd_escalate_bool());")


def _trigger_on_objects(s: Scene) -> None:
    s.as_attacker(f"CREATE SCHEMA migrations; CREATE TABLE migrations.migration_objects ({OBJECTS_COLUMNS});"
                  " CREATE TRIGGER audit BEFORE INSERT ON migrations.migration_objects"
                  " FOR EACH ROW EXECUTE FUNCTION public.dbd_escalate();")


def _view_as_log(s: Scene) -> None:
    # An auto-updatable view: an INSERT into it goes to the attacker's table and fires its trigger.
    s.as_attacker(f"CREATE SCHEMA migrations; CREATE TABLE public.log_store ({LOG_COLUMNS});"
                  " CREATE TRIGGER audit BEFORE INSERT ON public.log_store"
                  " FOR EACH ROW EXECUTE FUNCTION public.dbd_escalate();"
                  " CREATE VIEW migrations.migration_log AS SELECT * FROM public.log_store;")


def _foreign_table_as_log(s: Scene) -> None:
    # A DBA installed postgres_fdw and let the database owner use it: writes to the foreign "log"
    # would go wherever the attacker's server points, with the deploying role's user mapping.
    s.db.execute(sql.SQL("CREATE EXTENSION postgres_fdw;"
                         " GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO {}").format(sql.Identifier(s.attacker)))
    s.as_attacker(f"CREATE SCHEMA migrations; CREATE SERVER loopback FOREIGN DATA WRAPPER postgres_fdw;"
                  f" CREATE FOREIGN TABLE migrations.migration_log ({LOG_COLUMNS.replace(' PRIMARY KEY', '')})"
                  " SERVER loopback OPTIONS (schema_name 'public', table_name 'log_store')")


def _planted_backup_table(s: Scene) -> None:
    s.as_attacker("CREATE SCHEMA dbdeploy_backup;"
                  " CREATE TABLE dbdeploy_backup.dropped_columns (version text, table_name text, column_name text,"
                  " column_type text, not_null boolean, default_expr text, key_columns text[], restore_ddl text[],"
                  " backup_table text, PRIMARY KEY (version, table_name, column_name));"
                  " INSERT INTO dbdeploy_backup.dropped_columns VALUES ('001', 'app.orders', 'note',"
                  " 'text; ALTER ROLE ATTACKER SUPERUSER', false, NULL, '{id}',"
                  " ARRAY['ALTER ROLE ATTACKER SUPERUSER'], 'x');"
                  " CREATE TRIGGER audit BEFORE INSERT OR UPDATE OR DELETE ON dbdeploy_backup.dropped_columns"
                  " FOR EACH ROW EXECUTE FUNCTION public.dbd_escalate();")


def _schema_only(s: Scene) -> None:
    s.as_attacker("CREATE SCHEMA migrations")


def _backup_schema_only(s: Scene) -> None:
    s.as_attacker("CREATE SCHEMA dbdeploy_backup")


def _dba_made(s: Scene) -> None:
    """What a DBA prepares for the superuser deploy: both schemas, owned by postgres."""
    s.db.execute("CREATE SCHEMA migrations; CREATE SCHEMA dbdeploy_backup;"
                 f" CREATE TABLE migrations.migration_log ({LOG_COLUMNS});"
                 f" CREATE TABLE migrations.migration_objects ({OBJECTS_COLUMNS})")


def _grant(statement: str) -> Callable[[Scene], None]:
    def setup(s: Scene) -> None:
        _dba_made(s)
        s.db.execute(statement.replace("ATTACKER", sql.Identifier(s.attacker).as_string(None)))
    return setup


def _attacker_table_in_dba_schema(s: Scene) -> None:
    _dba_made(s)
    s.db.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA dbdeploy_backup TO {}").format(sql.Identifier(s.attacker)))
    s.as_attacker("CREATE TABLE dbdeploy_backup.v001_op2_orders_note (id integer, note text);"
                  " CREATE TRIGGER audit BEFORE INSERT ON dbdeploy_backup.v001_op2_orders_note"
                  " FOR EACH ROW EXECUTE FUNCTION public.dbd_escalate();")
    s.db.execute(sql.SQL("REVOKE CREATE ON SCHEMA dbdeploy_backup FROM {}").format(sql.Identifier(s.attacker)))


def _left_behind(kind: str) -> Callable[[Scene], None]:
    """An object the attacker made while a DBA had let it create in the schema (then revoked)."""
    body = {"sequence": "CREATE SEQUENCE migrations.migration_events_id_seq",
            "type": "CREATE DOMAIN migrations.version_text AS text CHECK (public.dbd_escalate_bool())",
            "function": "CREATE FUNCTION migrations.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT now() $$"}[kind]

    def setup(s: Scene) -> None:
        _dba_made(s)
        s.db.execute(sql.SQL("GRANT CREATE ON SCHEMA migrations TO {}").format(sql.Identifier(s.attacker)))
        s.as_attacker(body)
        s.db.execute(sql.SQL("REVOKE CREATE ON SCHEMA migrations FROM {}").format(sql.Identifier(s.attacker)))
    return setup


# (setup, text the refusal names, whether the planted object fires on a superuser's INSERT into the log)
ATTACKS: dict[str, tuple[Callable[[Scene], None], str, str | None]] = {
    "trigger on migration_log": (_trigger_on_log, "migrations.migration_log has trigger audit", "log"),
    "rule on migration_log": (_rule_on_log, "migrations.migration_log has rule audit", "log"),
    "policy on migration_log": (_policy_on_log, "migrations.migration_log has policy audit", None),
    "trigger on migration_objects": (_trigger_on_objects, "migrations.migration_objects has trigger audit",
                                     "objects"),
    "view planted as migration_log": (_view_as_log, "migrations.migration_log is a view, not an ordinary table",
                                      "log"),
    "foreign table planted as migration_log": (
        _foreign_table_as_log, "migrations.migration_log is a foreign table, not an ordinary table", None),
    "planted dropped_columns in the backup schema": (
        _planted_backup_table, "dbdeploy_backup.dropped_columns is owned by role", None),
    "history schema owned by the attacker": (_schema_only, "schema migrations is owned by role", None),
    "backup schema owned by the attacker": (_backup_schema_only, "schema dbdeploy_backup is owned by role", None),
    "INSERT granted on migration_log": (_grant("GRANT INSERT ON migrations.migration_log TO ATTACKER"),
                                        "migrations.migration_log: role {a} may change it (INSERT)", None),
    "TRIGGER granted on migration_objects": (_grant("GRANT TRIGGER ON migrations.migration_objects TO ATTACKER"),
                                             "migrations.migration_objects: role {a} may change it (TRIGGER)", None),
    "UPDATE, DELETE, TRUNCATE, REFERENCES to PUBLIC": (
        _grant("GRANT UPDATE, DELETE, TRUNCATE, REFERENCES ON migrations.migration_log TO PUBLIC"),
        "migrations.migration_log: role PUBLIC may change it (TRUNCATE)", None),
    "column UPDATE granted": (_grant("GRANT UPDATE (status) ON migrations.migration_log TO ATTACKER"),
                              "migrations.migration_log column status: role {a} may change it (UPDATE)", None),
    "CREATE on the history schema": (_grant("GRANT CREATE ON SCHEMA migrations TO ATTACKER"),
                                     "schema migrations: role {a} may create objects in it (CREATE)", None),
    "CREATE on the backup schema": (_grant("GRANT USAGE, CREATE ON SCHEMA dbdeploy_backup TO ATTACKER"),
                                    "schema dbdeploy_backup: role {a} may create objects in it (CREATE)", None),
    "attacker's table in the backup schema": (_attacker_table_in_dba_schema,
                                              "dbdeploy_backup.v001_op2_orders_note is owned by role {a}", None),
    "attacker's sequence in the history schema": (_left_behind("sequence"),
                                                  "migrations.migration_events_id_seq is owned by role {a}", None),
    "attacker's domain in the history schema": (_left_behind("type"),
                                                "type migrations.version_text is owned by role {a}", None),
    "attacker's function in the history schema": (_left_behind("function"),
                                                  "function migrations.now is owned by role {a}", None),
}


def _prove_live(s: Scene, fires: str | None) -> None:
    """The control: the planted object really escalates when a superuser writes the table."""
    if fires is None:
        return
    table = "migrations.migration_log" if fires == "log" else "migrations.migration_objects"
    columns = "(version)" if fires == "log" else "(version, object_type, object_name)"
    values = "('999')" if fires == "log" else "('999', 'table', 'app.x')"
    s.db.execute(f"INSERT INTO {table} {columns} VALUES {values}")
    assert s.superuser(), "the planted object did not fire: the test would prove nothing"


@pytest.mark.parametrize("via", ["executor", "psql"])
@pytest.mark.parametrize("attack", list(ATTACKS))
def test_apply_refuses_untrusted_objects(scene: Scene, project: Project, attack: str, via: str) -> None:
    setup, named, fires = ATTACKS[attack]
    setup(scene)
    before = data_snapshot(scene.db.connect(), TABLES)
    expected = named.format(a=scene.attacker)
    if via == "executor":
        result = project.run("apply", "--dsn", scene.db.dsn, "--plain")
        text = _clean(result)
        assert result.returncode == 3, text
        assert expected in text and "refusing to apply" in text and "nothing was run" in text, text
    else:
        forward = next(project.generated.glob("V001__*/V001__channel.sql"))
        proc = scene.db.psql_file(forward, check=False)
        assert proc.returncode != 0, proc.stdout + proc.stderr
        assert "refusing to use dbdeploy's schemas" in proc.stderr and expected in proc.stderr, proc.stderr
    assert not scene.superuser(), "the attacker became superuser"
    assert not _applied(scene.db) and data_snapshot(scene.db.connect(), TABLES) == before
    _prove_live(scene, fires)


def _hand_backup_schema_over(s: Scene) -> None:
    """After a legitimate apply, a DBA mistake hands the backup schema to the attacker, who swaps
    dropped_columns for a table of its own whose rows hold SQL text and a trigger."""
    s.db.execute(sql.SQL("ALTER SCHEMA dbdeploy_backup OWNER TO {}").format(sql.Identifier(s.attacker)))
    s.as_attacker("DROP TABLE dbdeploy_backup.dropped_columns")
    _planted_backup_table_in_place(s)


def _planted_backup_table_in_place(s: Scene) -> None:
    s.as_attacker("CREATE TABLE dbdeploy_backup.dropped_columns (version text, table_name text, column_name text,"
                  " column_type text, not_null boolean, default_expr text, key_columns text[], restore_ddl text[],"
                  " backup_table text, PRIMARY KEY (version, table_name, column_name));"
                  " INSERT INTO dbdeploy_backup.dropped_columns VALUES ('001', 'app.orders', 'note',"
                  " 'text; ALTER ROLE ATTACKER SUPERUSER', false, NULL, '{id}',"
                  " ARRAY['ALTER ROLE ATTACKER SUPERUSER'], 'v001_op2_orders_note');"
                  " CREATE TRIGGER audit BEFORE INSERT OR UPDATE OR DELETE ON dbdeploy_backup.dropped_columns"
                  " FOR EACH ROW EXECUTE FUNCTION public.dbd_escalate();")


def _grant_write_on_dropped_columns(s: Scene) -> None:
    s.db.execute(sql.SQL("GRANT USAGE ON SCHEMA dbdeploy_backup TO {r};"
                         " GRANT UPDATE ON dbdeploy_backup.dropped_columns TO {r}").format(
        r=sql.Identifier(s.attacker)))
    s.as_attacker("UPDATE dbdeploy_backup.dropped_columns SET column_type = 'text; ALTER ROLE ATTACKER SUPERUSER'")


ROLLBACK_ATTACKS = {
    "backup schema handed over, dropped_columns replaced": (_hand_backup_schema_over,
                                                            "dbdeploy_backup.dropped_columns has trigger audit"),
    "UPDATE granted on dropped_columns": (_grant_write_on_dropped_columns,
                                          "dbdeploy_backup.dropped_columns: role {a} may change it (UPDATE)"),
}


@pytest.mark.parametrize("via", ["executor", "psql"])
@pytest.mark.parametrize("attack", list(ROLLBACK_ATTACKS))
def test_rollback_refuses_a_tampered_backup_schema(scene: Scene, project: Project, attack: str, via: str) -> None:
    applied = project.run("apply", "--dsn", scene.db.dsn, "--plain")
    assert applied.returncode == 0, _clean(applied)
    assert _applied(scene.db)
    setup, named = ROLLBACK_ATTACKS[attack]
    setup(scene)
    before = data_snapshot(scene.db.connect(), TABLES)
    if via == "executor":
        result = project.run("rollback", "--to", "0", "--dsn", scene.db.dsn, "--plain")
        text = _clean(result)
        assert result.returncode == 3, text
        assert named.format(a=scene.attacker) in text and "refusing to rollback" in text, text
    else:
        rollback = next(project.generated.glob("V001__*/V001__rollback_channel.sql"))
        proc = scene.db.psql_file(rollback, check=False)
        assert proc.returncode != 0, proc.stdout + proc.stderr
        assert named.format(a=scene.attacker) in proc.stderr, proc.stderr
    assert not scene.superuser(), "the attacker became superuser"
    assert _applied(scene.db) and data_snapshot(scene.db.connect(), TABLES) == before
    assert scene.db.execute("SELECT status FROM migrations.migration_log WHERE version = '001'")[0][0] == "completed"


def test_read_only_commands_refuse_a_view_planted_as_the_log(scene: Scene, project: Project) -> None:
    """status and verify only read the history, but a SELECT from a view runs the attacker's code."""
    scene.as_attacker(f"CREATE SCHEMA migrations; CREATE TABLE public.log_store ({LOG_COLUMNS});"
                      " INSERT INTO public.log_store (version, status) VALUES ('001', 'completed');"
                      " CREATE VIEW migrations.migration_log AS SELECT * FROM public.log_store"
                      " WHERE public.dbd_escalate_bool()")
    for command in ("status", "verify"):
        result = project.run(command, "--dsn", scene.db.dsn)
        text = _clean(result)
        assert result.returncode == 3, text
        assert "migrations.migration_log is a view, not an ordinary table" in text, text
        assert not scene.superuser()
    scene.db.execute("SELECT count(*) FROM migrations.migration_log")
    assert scene.superuser(), "control: reading the view escalates"


def test_read_only_commands_accept_history_owned_by_another_role(scene: Scene, project: Project) -> None:
    """Reading a plain table fires nothing: status does not demand that the reader owns the history."""
    assert project.run("apply", "--dsn", scene.db.dsn).returncode == 0
    scene.db.execute(sql.SQL("GRANT USAGE ON SCHEMA migrations, dbdeploy_backup TO {r};"
                             " GRANT SELECT ON ALL TABLES IN SCHEMA migrations TO {r}").format(
        r=sql.Identifier(scene.attacker)))
    result = project.run("status", "--dsn", scene.attacker_dsn, "--json")
    assert result.returncode == 0, _clean(result)
    assert [r["state"] for r in json.loads(result.stdout)] == ["applied"]


# --- what still works --------------------------------------------------------------------------------

def _owner_project(root: Path, owner: str | None) -> Project:
    for name, source in SPECS.items():
        write_spec(root / "specs", name, source)
    return make_project(root / "project", specs=root / "specs",
                        extra_env="" if owner is None else f'owner = "{owner}"\n')


@pytest.mark.parametrize("via", ["executor", "psql"])
def test_configured_owner_role_is_trusted(fresh_db: TestDatabase, tmp_path: Path, via: str) -> None:
    """A DBA made dbdeploy's schemas for a dedicated owner role; naming it with `owner` lets the
    superuser's deploy use them, and without it the same deploy refuses."""
    db = fresh_db
    role = f"dbdeploy_t_trust_own_{secrets.token_hex(4)}"
    db.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    try:
        db.execute(sql.SQL("CREATE SCHEMA migrations AUTHORIZATION {r};"
                           " CREATE SCHEMA dbdeploy_backup AUTHORIZATION {r};"
                           " CREATE SCHEMA app; CREATE TABLE app.orders (id integer GENERATED ALWAYS AS IDENTITY"
                           " PRIMARY KEY, customer text NOT NULL, amount numeric(10,2) NOT NULL, note text);"
                           " INSERT INTO app.orders (customer, amount, note) SELECT 'c' || g, g * 0.5, 'n' || g"
                           " FROM generate_series(1, 900) g").format(r=sql.Identifier(role)))
        plain = _owner_project(tmp_path / "plain", None)
        trusted = _owner_project(tmp_path / "trusted", role)
        before = data_snapshot(db.connect(), TABLES)
        if via == "executor":
            refused = plain.run("apply", "--dsn", db.dsn)
            assert refused.returncode == 3 and f"schema migrations is owned by role {role}" in _clean(refused)
            assert not _applied(db) and data_snapshot(db.connect(), TABLES) == before
            ok = trusted.run("apply", "--dsn", db.dsn)
            assert ok.returncode == 0, _clean(ok)
            assert _applied(db)
            back = trusted.run("rollback", "--to", "0", "--dsn", db.dsn)
            assert back.returncode == 0, _clean(back)
        else:
            name = "V001__*/V001__channel.sql"
            refused = db.psql_file(next(plain.generated.glob(name)), check=False)
            assert refused.returncode != 0 and f"schema migrations is owned by role {role}" in refused.stderr
            assert not _applied(db)
            db.psql_file(next(trusted.generated.glob(name)))
            assert _applied(db)
            db.psql_file(next(trusted.generated.glob("V001__*/V001__rollback_channel.sql")))
        assert not _applied(db) and data_snapshot(db.connect(), TABLES) == before
    finally:
        db.close()
        db.execute(sql.SQL("REASSIGN OWNED BY {r} TO CURRENT_USER; DROP OWNED BY {r}; DROP ROLE {r}").format(
            r=sql.Identifier(role)))


def test_a_set_aside_table_of_another_owner_does_not_block_later_runs(scene: Scene, tmp_path: Path) -> None:
    """DropTable keeps the dropped table (owner, triggers and all) in the backup schema and only moves
    it: later applies and rollbacks go on. Under another name than the recorded one, it is refused."""
    scene.db.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA app TO {}").format(sql.Identifier(scene.attacker)))
    scene.as_attacker("CREATE TABLE app.legacy (id integer PRIMARY KEY, payload text);"
                      " INSERT INTO app.legacy SELECT g, 'p' || g FROM generate_series(1, 300) g;"
                      " CREATE TRIGGER audit BEFORE INSERT ON app.legacy FOR EACH ROW EXECUTE FUNCTION"
                      " public.dbd_escalate();")
    specs = tmp_path / "specs"
    write_spec(specs, "V001_channel.py", SPECS["V001_channel.py"])
    write_spec(specs, "V002_retire_legacy.py", DROP_SPEC)
    write_spec(specs, "V003_region.py", LATER_SPEC)
    project = make_project(tmp_path / "project", specs=specs)
    dsn = scene.db.dsn
    for to in ("001", "002", "003"):
        result = project.run("apply", "--to", to, "--dsn", dsn, "--plain")
        assert result.returncode == 0, _clean(result)
    assert relation_exists(scene.db.connect(), "dbdeploy_backup.v002_op1_app_legacy")
    back = project.run("rollback", "--to", "1", "--dsn", dsn, "--plain")
    assert back.returncode == 0, _clean(back)
    assert scene.db.execute("SELECT count(*) FROM app.legacy")[0][0] == 300
    again = project.run("apply", "--dsn", dsn, "--plain")
    assert again.returncode == 0, _clean(again)
    assert not scene.superuser()
    # The attacker owns the set-aside table, but PostgreSQL lets nobody without CREATE on the backup
    # schema rename it (say, to a name dbdeploy writes); should it get such a name anyway (a DBA's
    # mistake here), it is no longer the recorded set-aside table and the run refuses.
    scene.db.execute(sql.SQL("GRANT USAGE ON SCHEMA dbdeploy_backup TO {}").format(sql.Identifier(scene.attacker)))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        scene.as_attacker("ALTER TABLE dbdeploy_backup.v002_op1_app_legacy RENAME TO v003_op1_orders_region_log")
    scene.db.execute("ALTER TABLE dbdeploy_backup.v002_op1_app_legacy RENAME TO v003_op1_orders_region_log")
    result = project.run("rollback", "--to", "1", "--dsn", dsn, "--plain")
    text = _clean(result)
    assert result.returncode == 3, text
    assert f"dbdeploy_backup.v003_op1_orders_region_log is owned by role {scene.attacker}" in text, text
    assert not scene.superuser()


@pytest.mark.parametrize("via", ["executor", "psql"])
def test_the_issue_attacks_on_every_server(scene_each: Scene, project: Project, via: str) -> None:
    """The issue's two inputs, on PostgreSQL 15 and 16: a trigger on migration_log before the first
    apply, and a planted dropped_columns (backup schema handed over) before a rollback."""
    s = scene_each
    _trigger_on_log(s)
    forward = next(project.generated.glob("V001__*/V001__channel.sql"))
    rollback = next(project.generated.glob("V001__*/V001__rollback_channel.sql"))
    if via == "executor":
        refused = project.run("apply", "--dsn", s.db.dsn)
        assert refused.returncode == 3 and "migrations.migration_log has trigger audit" in _clean(refused)
    else:
        refused = s.db.psql_file(forward, check=False)
        assert refused.returncode != 0 and "migrations.migration_log has trigger audit" in refused.stderr
    assert not s.superuser() and not _applied(s.db)
    _prove_live(s, "log")
    # The DBA cleans up, applies, and then hands the backup schema over by mistake.
    s.db.execute(sql.SQL("ALTER ROLE {} NOSUPERUSER; DROP SCHEMA migrations CASCADE").format(
        sql.Identifier(s.attacker)))
    if via == "executor":
        assert project.run("apply", "--dsn", s.db.dsn).returncode == 0
    else:
        s.db.psql_file(forward)
    assert _applied(s.db)
    _hand_backup_schema_over(s)
    if via == "executor":
        refused = project.run("rollback", "--to", "0", "--dsn", s.db.dsn)
        text = _clean(refused)
        assert refused.returncode == 3 and "dbdeploy_backup.dropped_columns has trigger audit" in text, text
    else:
        refused = s.db.psql_file(rollback, check=False)
        assert refused.returncode != 0 and "dbdeploy_backup.dropped_columns has trigger audit" in refused.stderr
    assert not s.superuser() and _applied(s.db)


def test_membership_in_the_owner_is_not_trust(scene: Scene, project: Project) -> None:
    """A least-privilege deploy role that is a member of the attacker's role (granted by a DBA's
    mistake, or by the role itself where PostgreSQL allows it) still refuses the attacker's schema:
    trust is ownership by the deploying role itself, a configured owner or a superuser."""
    db = scene.db
    deployer = f"dbdeploy_t_trust_dep_{secrets.token_hex(4)}"
    ident = sql.Identifier(deployer)
    db.execute(sql.SQL("CREATE ROLE {r} LOGIN NOSUPERUSER; GRANT CONNECT ON DATABASE {d} TO {r};"
                       " CREATE SCHEMA dbdeploy_backup AUTHORIZATION {r}; GRANT {a} TO {r}").format(
        r=ident, d=sql.Identifier(db.name), a=sql.Identifier(scene.attacker)))
    try:
        _trigger_on_log(scene)
        assert db.execute("SELECT pg_has_role(%s, %s, 'USAGE')", [deployer, scene.attacker])[0][0]
        dsn = make_conninfo(db.dsn, user=deployer)
        result = project.run("apply", "--dsn", dsn)
        text = _clean(result)
        assert result.returncode == 3, text
        assert f"schema migrations is owned by role {scene.attacker}" in text, text
        assert "migrations.migration_log has trigger audit" in text, text
        forward = next(project.generated.glob("V001__*/V001__channel.sql"))
        proc = subprocess.run([db.server.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", str(forward)],
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode != 0 and "migrations.migration_log has trigger audit" in proc.stderr, proc.stderr
        assert db.execute("SELECT count(*) FROM migrations.migration_log")[0][0] == 0
        assert not _applied(db)
    finally:
        db.close()
        db.execute(sql.SQL("REASSIGN OWNED BY {r} TO CURRENT_USER; DROP OWNED BY {r}; DROP ROLE {r}").format(r=ident))


@pytest.mark.parametrize("value", ["5", "[\"app_owner\", 7]", "\"\"", "[\"" + "r" * 64 + "\"]"])
def test_a_bad_owner_setting_is_one_clear_error(tmp_path: Path, value: str) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "dbdeploy.toml").write_text(f"owner = {value}\n")
    result = Project(tmp_path).run("generate")
    text = _clean(result)
    assert result.returncode == 2, text
    assert "dbdeploy.toml: owner must be a role name or a list of role names" in text, text
    assert not (tmp_path / "generated").exists()
