"""Backups and history are not readable through default privileges (issue 10, item 2).

The attack: a reader may see ``app.customers(id, name)`` but not ``ssn`` (a column grant), and
``ALTER DEFAULT PRIVILEGES … GRANT SELECT ON TABLES / USAGE ON SCHEMAS TO reader`` is in force for
the deploying role. A migration drops ``ssn``: its values land in ``dbdeploy_backup``, and without
an explicit ACL the reader would read every one of them there — and the history besides.

Each test runs in a fresh database on a real server, with hundreds of rows in the tables the
migration changes, as a superuser deploy (the executor and psql) against less privileged roles
whose names contain ``acl`` and that are dropped again. After the deploy the reader is refused on
every schema and relation dbdeploy keeps, both when it connects and in the catalog: every ACL there
names only the owner and the configured ``backup_readers``.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.executor_support import Project, write_spec
from tests.pg import TestDatabase

HISTORY, BACKUP = "migrations", "dbdeploy_backup"
ROWS = 400

CUSTOMERS = f"""
CREATE SCHEMA app;
CREATE TABLE app.customers (id bigint PRIMARY KEY, name text NOT NULL, ssn text NOT NULL);
INSERT INTO app.customers SELECT g, 'customer ' || g, pg_catalog.lpad(g::text, 3, '0') || '-45-' || (1000 + g)
FROM generate_series(1, {ROWS}) g;
"""

DROP_SSN = '''
from dbdeploy import DropColumn, Migration

migration = Migration(version="001", name="drop_ssn", operations=[
    DropColumn(table="app.customers", column="ssn"),
])
'''


class Roles:
    """Roles created for one test (unique names containing ``acl``), dropped at teardown."""

    def __init__(self, db: TestDatabase) -> None:
        self.db = db
        self.names: list[str] = []

    def make(self, purpose: str, *options: str) -> str:
        name = f"dbd_acl_{purpose}_{secrets.token_hex(4)}"
        self.db.execute(sql.SQL("CREATE ROLE {} LOGIN {}").format(sql.Identifier(name), sql.SQL(" ".join(options))))
        self.names.append(name)
        return name

    def drop(self) -> None:
        self.db.close()
        for name in self.names:
            self.db.execute(sql.SQL("REASSIGN OWNED BY {r} TO CURRENT_USER; DROP OWNED BY {r}").format(
                r=sql.Identifier(name)))
            self.db.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def roles(fresh_db: TestDatabase) -> Iterator[Roles]:
    made = Roles(fresh_db)
    try:
        yield made
    finally:
        made.drop()


def project(root: Path, db: TestDatabase, specs: dict[str, str], readers: list[str] | None = None,
            dsn: str | None = None) -> Project:
    """A project with ``specs``, ``backup_readers`` (top level of dbdeploy.toml) and a ``test``
    environment; bundles generated with the real CLI."""
    for filename, source in specs.items():
        write_spec(root / "specs", filename, source)
    lines = [] if readers is None else [f"backup_readers = {json.dumps(readers)}"]
    lines += ["", "[environments.test]", f"dsn = {json.dumps(dsn or db.dsn)}", 'lock_timeout = "2s"', ""]
    (root / "dbdeploy.toml").write_text("\n".join(lines))
    result = Project(root).run("generate")
    assert result.returncode == 0, result.stderr
    return Project(root)


def forward(proj: Project, version: str) -> Path:
    v = f"V{int(version):03d}"
    return next(p for p in proj.generated.glob(f"{v}__*/{v}__*.sql") if "__rollback_" not in p.name)


def rollback_file(proj: Project, version: str) -> Path:
    v = f"V{int(version):03d}"
    return next(proj.generated.glob(f"{v}__*/{v}__rollback_*.sql"))


def apply(proj: Project, db: TestDatabase, via: str, version: str) -> None:
    if via == "psql":
        db.psql_file(forward(proj, version))
    else:
        result = proj.run("apply", "--env", "test", "--to", version)
        assert result.returncode == 0, result.stdout + result.stderr


def roll_back(proj: Project, db: TestDatabase, via: str, to: str, version: str) -> None:
    if via == "psql":
        db.psql_file(rollback_file(proj, version))
    else:
        result = proj.run("rollback", "--env", "test", "--to", to)
        assert result.returncode == 0, result.stdout + result.stderr


def default_privileges_to(db: TestDatabase, grantee: str, *, for_role: str | None = None,
                          in_schema: str | None = None) -> None:
    """Every kind of default privilege that would let ``grantee`` read what the role creates."""
    target = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
    prefix = sql.SQL("ALTER DEFAULT PRIVILEGES")
    if for_role:
        prefix += sql.SQL(" FOR ROLE {}").format(sql.Identifier(for_role))
    if in_schema:
        prefix += sql.SQL(" IN SCHEMA {}").format(sql.Identifier(in_schema))
    grants = ["GRANT ALL ON TABLES TO {t}", "GRANT ALL ON SEQUENCES TO {t}"]
    if not in_schema:
        grants.append("GRANT ALL ON SCHEMAS TO {t}")
    for grant in grants:
        db.execute(prefix + sql.SQL(" ") + sql.SQL(grant).format(t=target))


def kept_relations(db: TestDatabase) -> list[str]:
    return [r[0] for r in db.execute(
        "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname IN (%s, %s) AND c.relkind IN ('r', 'p', 'S', 'v', 'm', 'f') ORDER BY 1", [HISTORY, BACKUP])]


def acl_violations(db: TestDatabase, readers: tuple[str, ...] = ()) -> list[tuple]:
    """Every ACL entry on dbdeploy's schemas and relations (and every column ACL there) that names
    someone other than the owner, unless it is a configured reader's plain USAGE / SELECT; and
    every relation or schema whose ACL is still the implicit default (NULL)."""
    return db.execute("""
        WITH readers AS (SELECT oid FROM pg_roles WHERE rolname = ANY (%(readers)s))
        SELECT 'schema', s.nspname, a.grantee::regrole::text, a.privilege_type
        FROM pg_namespace s, aclexplode(s.nspacl) a
        WHERE s.nspname IN (%(h)s, %(b)s) AND a.grantee <> s.nspowner
          AND NOT (a.grantee IN (SELECT oid FROM readers) AND a.privilege_type = 'USAGE' AND NOT a.is_grantable)
        UNION ALL
        SELECT 'schema', s.nspname, 'implicit ACL', '' FROM pg_namespace s
        WHERE s.nspname IN (%(h)s, %(b)s) AND s.nspacl IS NULL
        UNION ALL
        SELECT 'relation', c.oid::regclass::text, a.grantee::regrole::text, a.privilege_type
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a
        WHERE n.nspname IN (%(h)s, %(b)s) AND a.grantee <> c.relowner
          AND NOT (a.grantee IN (SELECT oid FROM readers) AND a.privilege_type = 'SELECT' AND NOT a.is_grantable)
        UNION ALL
        SELECT 'relation', c.oid::regclass::text, 'implicit ACL', '' FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN (%(h)s, %(b)s) AND c.relkind IN ('r', 'p', 'S') AND c.relacl IS NULL
        UNION ALL
        SELECT 'column', c.oid::regclass::text || '.' || t.attname, a.grantee::regrole::text, a.privilege_type
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute t ON t.attrelid = c.oid, aclexplode(t.attacl) a
        WHERE n.nspname IN (%(h)s, %(b)s)
        ORDER BY 1, 2, 3, 4""", {"readers": list(readers), "h": HISTORY, "b": BACKUP})


def as_role(db: TestDatabase, role: str) -> psycopg.Connection:
    return psycopg.connect(make_conninfo(db.dsn, user=role), autocommit=True)


def refused_everywhere(db: TestDatabase, role: str) -> None:
    """Connected as ``role``: every relation dbdeploy keeps refuses SELECT, and so does every
    schema's USAGE (checked one by one, so none can slip through)."""
    relations = kept_relations(db)
    assert relations, "the deploy kept nothing to check"
    with as_role(db, role) as conn:
        for relation in relations:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT * FROM {relation} LIMIT 1")
        for schema in (HISTORY, BACKUP):
            assert conn.execute("SELECT has_schema_privilege(%s, 'USAGE')", [schema]).fetchone() == (False,)
        privileges = conn.execute(
            "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname IN (%s, %s) AND c.relkind IN ('r', 'p', 'S')"
            "   AND (has_table_privilege(c.oid, 'SELECT') OR has_table_privilege(c.oid, 'INSERT')"
            "        OR has_table_privilege(c.oid, 'UPDATE') OR has_table_privilege(c.oid, 'DELETE')"
            "        OR has_any_column_privilege(c.oid, 'SELECT'))", [HISTORY, BACKUP]).fetchall()
        assert privileges == []


def customers_with_ssn_grant(db: TestDatabase, reader: str) -> None:
    db.execute(CUSTOMERS)
    db.execute(sql.SQL("GRANT USAGE ON SCHEMA app TO {r}; GRANT SELECT (id, name) ON app.customers TO {r}").format(
        r=sql.Identifier(reader)))


def saved_ssn_count(db: TestDatabase) -> int:
    table = db.execute("SELECT backup_table FROM dbdeploy_backup.dropped_columns WHERE column_name = 'ssn'")[0][0]
    return db.execute(sql.SQL("SELECT count(*) FROM {} WHERE ssn LIKE '%%-45-%%'").format(
        sql.Identifier(BACKUP, table)))[0][0]


# --- the attack --------------------------------------------------------------------


@pytest.mark.parametrize("via", ["executor", "psql"])
def test_a_dropped_column_denied_to_a_reader_stays_unreadable_despite_default_privileges(
        fresh_db_each: TestDatabase, tmp_path: Path, via: str) -> None:
    """The issue's input, on PostgreSQL 15 and 16."""
    roles = Roles(fresh_db_each)
    try:
        _dropped_column_attack(fresh_db_each, roles, tmp_path, via)
    finally:
        roles.drop()


def _dropped_column_attack(db: TestDatabase, roles: Roles, tmp_path: Path, via: str) -> None:
    reader = roles.make("reader")
    customers_with_ssn_grant(db, reader)
    deployer = db.execute("SELECT current_user")[0][0]
    default_privileges_to(db, reader, for_role=deployer)
    # The default privileges are live: a schema and table created the ordinary way are the reader's.
    db.execute("CREATE SCHEMA probe; CREATE TABLE probe.t AS SELECT 1 AS x")
    with as_role(db, reader) as conn:
        assert conn.execute("SELECT x FROM probe.t").fetchall() == [(1,)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT ssn FROM app.customers")
    db.execute("DROP SCHEMA probe CASCADE")

    proj = project(tmp_path, db, {"V001_drop_ssn.py": DROP_SSN})
    apply(proj, db, via, "1")

    assert saved_ssn_count(db) == ROWS                  # the values really are in the backup
    refused_everywhere(db, reader)
    assert acl_violations(db) == []
    with as_role(db, reader) as conn:                   # what the reader had, it still has
        assert conn.execute("SELECT count(*) FROM app.customers").fetchone() == (ROWS,)

    roll_back(proj, db, via, "0", "1")
    assert db.execute("SELECT count(*) FROM app.customers WHERE ssn LIKE '%%-45-%%'") == [(ROWS,)]
    with as_role(db, reader) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT ssn FROM app.customers")
    refused_everywhere(db, reader)
    assert acl_violations(db) == []


@pytest.mark.parametrize("via", ["executor", "psql"])
def test_default_privileges_to_public_and_in_the_backup_schema(fresh_db: TestDatabase, roles: Roles,
                                                              tmp_path: Path, via: str) -> None:
    """PUBLIC through default privileges, and default privileges IN SCHEMA dbdeploy_backup (the
    schema exists from an earlier migration), for a Backfill's backup, a SeedRows log and the
    executor's history tables."""
    db = fresh_db
    reader = roles.make("reader")
    customers_with_ssn_grant(db, reader)
    db.execute("CREATE TABLE app.tiers (code text PRIMARY KEY, label text)")
    default_privileges_to(db, "PUBLIC")
    first = '''
from dbdeploy import AddColumn, Column, Migration

migration = Migration(version="001", name="nickname", operations=[
    AddColumn(table="app.customers", column=Column(name="nickname", type="text")),
])
'''
    second = '''
from dbdeploy import Backfill, Migration, SeedRows

migration = Migration(version="002", name="fill", operations=[
    Backfill(table="app.customers", set={"nickname": "upper(name)"}, key=["id"], batch_size=150),
    SeedRows(table="app.tiers", rows=[{"code": f"t{i}", "label": f"Tier {i}"} for i in range(300)],
             conflict_columns=["code"]),
])
'''
    proj = project(tmp_path, db, {"V001_nickname.py": first, "V002_fill.py": second})
    apply(proj, db, via, "1")
    default_privileges_to(db, reader, in_schema=BACKUP)
    default_privileges_to(db, "PUBLIC", in_schema=BACKUP)
    default_privileges_to(db, reader, in_schema=HISTORY)
    apply(proj, db, via, "2")

    names = kept_relations(db)
    for kept in ("v002_op1_customers", "v002_op1_customers_progress", "v002_op2_seeded_tiers"):
        assert f"{BACKUP}.{kept}" in names, names
    assert db.execute("SELECT count(*) FROM dbdeploy_backup.v002_op1_customers") == [(ROWS,)]
    assert db.execute("SELECT count(*) FROM dbdeploy_backup.v002_op2_seeded_tiers") == [(300,)]
    assert db.execute("SELECT count(*) FROM app.customers WHERE nickname = upper(name)") == [(ROWS,)]
    refused_everywhere(db, reader)
    assert acl_violations(db) == []
    with as_role(db, reader) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT count(*) FROM migrations.migration_log")

    roll_back(proj, db, via, "1", "2")
    assert db.execute("SELECT count(*) FROM app.customers WHERE nickname IS NULL") == [(ROWS,)]
    refused_everywhere(db, reader)
    assert acl_violations(db) == []


# --- DropTable sets the application's table aside --------------------------------------------


DROP_ORDERS = '''
from dbdeploy import DropTable, Migration

migration = Migration(version="001", name="drop_orders", operations=[DropTable(table="app.orders")])
'''


def _table_grants(db: TestDatabase, table: str) -> list[tuple]:
    return db.execute(
        "SELECT 'table', NULL, a.grantee::regrole::text, a.privilege_type, a.is_grantable"
        " FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = %(t)s::regclass AND a.grantee <> c.relowner"
        " UNION ALL SELECT 'column', t.attname::text, a.grantee::regrole::text, a.privilege_type, a.is_grantable"
        " FROM pg_attribute t, aclexplode(t.attacl) a WHERE t.attrelid = %(t)s::regclass"
        " UNION ALL SELECT 'sequence', NULL, a.grantee::regrole::text, a.privilege_type, a.is_grantable"
        " FROM pg_class q, aclexplode(q.relacl) a"
        " WHERE q.oid = pg_get_serial_sequence(%(t)s::text, 'id')::regclass AND a.grantee <> q.relowner"
        " ORDER BY 1, 2, 3, 4", {"t": table})


@pytest.mark.parametrize("via", ["executor", "psql"])
def test_a_dropped_table_set_aside_loses_its_grants_and_gets_them_back_on_rollback(
        fresh_db: TestDatabase, roles: Roles, tmp_path: Path, via: str) -> None:
    db = fresh_db
    reader, writer = roles.make("reader"), roles.make("writer")
    db.execute(sql.SQL(
        "CREATE SCHEMA app;"
        " CREATE TABLE app.orders (id serial PRIMARY KEY, customer text NOT NULL, card text NOT NULL);"
        " INSERT INTO app.orders (customer, card) SELECT 'c' || g, '4111-' || g FROM generate_series(1, 500) g;"
        " GRANT USAGE ON SCHEMA app TO {r}, {w};"
        " GRANT SELECT (id, customer) ON app.orders TO {r};"
        " GRANT SELECT, INSERT, UPDATE ON app.orders TO {w} WITH GRANT OPTION;"
        " GRANT USAGE ON SEQUENCE app.orders_id_seq TO {w};"
        " GRANT SELECT ON app.orders TO PUBLIC").format(r=sql.Identifier(reader), w=sql.Identifier(writer)))
    before = _table_grants(db, "app.orders")
    assert len(before) >= 7
    default_privileges_to(db, reader)

    proj = project(tmp_path, db, {"V001_drop_orders.py": DROP_ORDERS})
    apply(proj, db, via, "1")
    kept = db.execute("SELECT backup_table FROM dbdeploy_backup.dropped_tables")[0][0]
    assert db.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(BACKUP, kept))) == [(500,)]
    assert acl_violations(db) == []
    refused_everywhere(db, reader)
    refused_everywhere(db, writer)

    roll_back(proj, db, via, "0", "1")
    assert db.execute("SELECT count(*) FROM app.orders") == [(500,)]
    assert _table_grants(db, "app.orders") == before
    with as_role(db, reader) as conn:
        assert conn.execute("SELECT count(customer) FROM app.orders").fetchone() == (500,)
    with as_role(db, writer) as conn:   # the sequence grant is back too: an insert takes the next id
        conn.execute("INSERT INTO app.orders (customer, card) VALUES ('new', '4111-x')")
    assert db.execute("SELECT count(*) FROM dbdeploy_backup.set_aside_grants") == [(0,)]
    assert acl_violations(db) == []


def test_a_dropped_serial_columns_sequence_set_aside_gets_its_grants_back(
        fresh_db: TestDatabase, roles: Roles, tmp_path: Path) -> None:
    db = fresh_db
    writer = roles.make("writer")
    db.execute(sql.SQL(
        "CREATE SCHEMA app; CREATE TABLE app.tickets (id bigint PRIMARY KEY, number serial, title text);"
        " INSERT INTO app.tickets (id, title) SELECT g, 't' || g FROM generate_series(1, 300) g;"
        " GRANT USAGE ON SCHEMA app TO {w}; GRANT SELECT, INSERT ON app.tickets TO {w};"
        " GRANT USAGE, SELECT ON SEQUENCE app.tickets_number_seq TO {w}").format(w=sql.Identifier(writer)))
    drop = DROP_SSN.replace('"app.customers", column="ssn"', '"app.tickets", column="number"')
    proj = project(tmp_path, db, {"V001_drop_number.py": drop})
    apply(proj, db, "executor", "1")
    assert acl_violations(db) == []
    refused_everywhere(db, writer)
    roll_back(proj, db, "executor", "0", "1")
    with as_role(db, writer) as conn:
        conn.execute("INSERT INTO app.tickets (id, title) VALUES (301, 'new')")
        assert conn.execute("SELECT number FROM app.tickets WHERE id = 301").fetchone() == (301,)


# --- configured readers ----------------------------------------------------------------------


@pytest.mark.parametrize("via", ["executor", "psql"])
def test_a_configured_backup_reader_reads_history_and_backups_and_nothing_more(
        fresh_db: TestDatabase, roles: Roles, tmp_path: Path, via: str) -> None:
    db = fresh_db
    reader, auditor = roles.make("reader"), roles.make("auditor")
    customers_with_ssn_grant(db, reader)
    default_privileges_to(db, reader)
    proj = project(tmp_path, db, {"V001_drop_ssn.py": DROP_SSN}, readers=[auditor, "dbd_acl_nobody_here"])
    apply(proj, db, via, "1")

    assert acl_violations(db, (auditor,)) == []
    refused_everywhere(db, reader)
    relations = [r for r in kept_relations(db) if not r.endswith("_seq")]
    with as_role(db, auditor) as conn:
        for relation in relations:
            conn.execute(f"SELECT * FROM {relation} LIMIT 1")
        table = conn.execute("SELECT backup_table FROM dbdeploy_backup.dropped_columns").fetchone()[0]
        assert conn.execute(sql.SQL("SELECT count(ssn) FROM {}").format(sql.Identifier(BACKUP, table))).fetchone() \
            == (ROWS,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM migrations.migration_log")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT 1 FROM app.customers")     # only dbdeploy's schemas

    # Taking the auditor out of the configuration takes its access away at the next bundle.
    second = DROP_SSN.replace('"001", name="drop_ssn"', '"002", name="drop_name"').replace('"ssn"', '"name"')
    proj2 = project(tmp_path / "later", db, {"V001_drop_ssn.py": DROP_SSN, "V002_drop_name.py": second})
    apply(proj2, db, via, "2")
    assert acl_violations(db) == []
    refused_everywhere(db, auditor)


def test_a_reader_that_is_not_a_role_is_a_warning(fresh_db: TestDatabase, roles: Roles, tmp_path: Path) -> None:
    db = fresh_db
    reader = roles.make("reader")
    customers_with_ssn_grant(db, reader)
    proj = project(tmp_path, db, {"V001_drop_ssn.py": DROP_SSN}, readers=["dbd_acl_missing_role"])
    result = proj.run("apply", "--env", "test")
    assert result.returncode == 0, result.stderr
    assert "backup reader dbd_acl_missing_role is not a role in this database" in result.stdout + result.stderr
    assert acl_violations(db) == []


# --- objects from earlier dbdeploy versions ----------------------------------------------------


@pytest.mark.parametrize("via", ["executor", "psql"])
def test_the_preamble_closes_history_and_backups_an_earlier_version_left_open(
        fresh_db: TestDatabase, roles: Roles, tmp_path: Path, via: str) -> None:
    """Schemas and tables as an older dbdeploy left them — granted to a reader and to PUBLIC,
    with column grants and a backup of values — are closed by the next bundle's preamble. (A write
    privilege another role holds is not repaired but refused: tests/test_trust_boundary.py.)"""
    db = fresh_db
    reader = roles.make("reader")
    customers_with_ssn_grant(db, reader)
    db.execute(sql.SQL(
        "CREATE SCHEMA migrations; CREATE SCHEMA dbdeploy_backup;"
        " GRANT USAGE ON SCHEMA migrations, dbdeploy_backup TO {r}, PUBLIC;"
        " CREATE TABLE migrations.migration_log (version text PRIMARY KEY, script_name text, description text,"
        "   applied_by text, applied_at timestamptz, completed_at timestamptz, status text, notes text,"
        "   checksum text, environment text, duration_ms bigint, rows_affected bigint, dbdeploy_version text,"
        "   host text, rolled_back_at timestamptz);"
        " GRANT SELECT ON migrations.migration_log TO PUBLIC;"
        " CREATE TABLE dbdeploy_backup.v000_old_ssn AS SELECT id, ssn FROM app.customers;"
        " GRANT SELECT (ssn) ON dbdeploy_backup.v000_old_ssn TO {r};"
        " GRANT SELECT ON dbdeploy_backup.v000_old_ssn TO {r} WITH GRANT OPTION").format(r=sql.Identifier(reader)))
    with as_role(db, reader) as conn:   # open before
        assert conn.execute("SELECT count(ssn) FROM dbdeploy_backup.v000_old_ssn").fetchone() == (ROWS,)
    nothing = '''
from dbdeploy import Migration, RawSQL

migration = Migration(version="001", name="noop", operations=[
    RawSQL(forward="SELECT 1", rollback="SELECT 1"),
])
'''
    proj = project(tmp_path, db, {"V001_noop.py": nothing})
    apply(proj, db, via, "1")
    assert acl_violations(db) == []
    refused_everywhere(db, reader)


def test_backup_readers_configuration_errors(tmp_path: Path) -> None:
    cases = {
        'backup_readers = "auditor"': "must be a list of role names",
        'backup_readers = ["public"]': "PUBLIC is every role",
        'backup_readers = ["a\\"b"]': "is not a usable role name",
        'backup_readers = [""]': "is not a usable role name",
    }
    for n, (line, message) in enumerate(cases.items()):
        root = tmp_path / f"p{n}"
        write_spec(root / "specs", "V001_drop_ssn.py", DROP_SSN)
        (root / "dbdeploy.toml").write_text(line + "\n")
        result = Project(root).run("generate")
        assert result.returncode == 2, (line, result.stdout, result.stderr)
        assert message in result.stderr and "backup_readers" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert not (root / "generated").exists()


def test_a_table_an_earlier_version_set_aside_keeps_its_grants_for_the_rollback(
        fresh_db: TestDatabase, roles: Roles, tmp_path: Path) -> None:
    """A table set aside by a dbdeploy without this protection still carries its grants (and no
    record of them): the next bundle's preamble records them before closing it, and the rollback of
    the old version gives them back."""
    db = fresh_db
    reader = roles.make("reader")
    db.execute(sql.SQL(
        "CREATE SCHEMA app; CREATE TABLE app.orders (id serial PRIMARY KEY, customer text NOT NULL);"
        " INSERT INTO app.orders (customer) SELECT 'c' || g FROM generate_series(1, 250) g;"
        " GRANT USAGE ON SCHEMA app TO {r}; GRANT SELECT (id, customer) ON app.orders TO {r};"
        " GRANT USAGE ON SEQUENCE app.orders_id_seq TO {r}").format(r=sql.Identifier(reader)))
    before = _table_grants(db, "app.orders")
    later = '''
from dbdeploy import Migration, RawSQL

migration = Migration(version="002", name="noop", operations=[RawSQL(forward="SELECT 1", rollback="SELECT 1")])
'''
    proj = project(tmp_path, db, {"V001_drop_orders.py": DROP_ORDERS, "V002_noop.py": later})
    apply(proj, db, "executor", "1")
    kept = db.execute("SELECT backup_table FROM dbdeploy_backup.dropped_tables")[0][0]
    # As an older dbdeploy left it: the grants still on the kept table and its sequence, no record.
    seq = db.execute(sql.SQL("SELECT pg_get_serial_sequence({}, 'id')").format(
        sql.Literal(f"{BACKUP}.{kept}")))[0][0]
    db.execute(sql.SQL("DROP TABLE dbdeploy_backup.set_aside_grants;"
                       " GRANT SELECT (id, customer) ON {t} TO {r}; GRANT USAGE ON SEQUENCE {s} TO {r}").format(
        t=sql.Identifier(BACKUP, kept), s=sql.SQL(seq), r=sql.Identifier(reader)))
    assert acl_violations(db) != []

    apply(proj, db, "executor", "2")
    assert acl_violations(db) == []
    refused_everywhere(db, reader)
    roll_back(proj, db, "executor", "0", "2")
    assert _table_grants(db, "app.orders") == before
    assert acl_violations(db) == []


def test_a_less_privileged_deployer_with_its_own_default_privileges(
        fresh_db: TestDatabase, roles: Roles, tmp_path: Path) -> None:
    """The deploying role is no superuser and granted the reader everything it creates by default
    itself (``ALTER DEFAULT PRIVILEGES`` without FOR ROLE); executor for V001, psql as that role for
    V002."""
    db = fresh_db
    reader, deployer = roles.make("reader"), roles.make("deployer")
    db.execute(sql.SQL("GRANT CREATE ON DATABASE {d} TO {u}").format(d=sql.Identifier(db.name),
                                                                     u=sql.Identifier(deployer)))
    dsn = make_conninfo(db.dsn, user=deployer)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(CUSTOMERS)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA app TO {r}; GRANT SELECT (id, name) ON app.customers TO {r};"
                             " ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO {r};"
                             " ALTER DEFAULT PRIVILEGES GRANT ALL ON SCHEMAS TO {r};"
                             " ALTER DEFAULT PRIVILEGES GRANT ALL ON SEQUENCES TO PUBLIC").format(
            r=sql.Identifier(reader)))
    second = DROP_SSN.replace('"001", name="drop_ssn"', '"002", name="drop_name"').replace('"ssn"', '"name"')
    proj = project(tmp_path, db, {"V001_drop_ssn.py": DROP_SSN, "V002_drop_name.py": second}, dsn=dsn)
    result = proj.run("apply", "--env", "test", "--to", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert saved_ssn_count(db) == ROWS
    assert acl_violations(db) == []
    refused_everywhere(db, reader)
    assert db.execute("SELECT DISTINCT relowner::regrole::text FROM pg_class c"
                      " WHERE relnamespace = 'dbdeploy_backup'::regnamespace") == [(deployer,)]
    proc = subprocess.run([db.server.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f",
                           str(forward(proj, "2"))], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    owners = db.execute("SELECT DISTINCT relowner::regrole::text FROM pg_class c"
                        " WHERE relnamespace = 'dbdeploy_backup'::regnamespace AND relname LIKE 'v002%%'")
    assert owners == [(deployer,)]
    assert acl_violations(db) == []
    refused_everywhere(db, reader)


def test_backup_readers_are_read_from_dbdeploy_toml_and_pyproject(tmp_path: Path) -> None:
    from dbdeploy.errors import ConfigError
    from dbdeploy.executor.config import load_config

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "dbdeploy.toml").write_text('backup_readers = ["auditor", "Report Team", "auditor"]\n')
    assert load_config(tmp_path / "a").backup_readers == ("auditor", "Report Team")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "pyproject.toml").write_text('[tool.dbdeploy]\nbackup_readers = ["auditor"]\n')
    assert load_config(tmp_path / "b").backup_readers == ("auditor",)
    (tmp_path / "c").mkdir()
    assert load_config(tmp_path / "c").backup_readers == ()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "pyproject.toml").write_text('[tool.dbdeploy]\nbackup_readers = [1]\n')
    with pytest.raises(ConfigError, match=r"tool\.dbdeploy\.backup_readers must be a list of role names"):
        load_config(tmp_path / "d")
