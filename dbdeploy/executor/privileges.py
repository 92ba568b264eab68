"""Privilege preflight: before a run changes anything, check that the role may do all of it.

A least-privilege deploy role (README, "Least-privilege deploys") owns the application schemas
and dbdeploy's two schemas, which a DBA created for it, but has no CREATE on the database.
Instead of letting such a run die half-way on ``permission denied``, the executor asks the
catalog first (``has_database_privilege``, ``has_schema_privilege``, ``has_table_privilege``,
ownership through ``pg_has_role``) and raises one :class:`PrivilegeError` that lists every missing
privilege with the statement a DBA runs to grant it. Only catalog reads happen here: no lock
beyond the deployment's advisory lock, nothing written.

What each step needs comes from the bundle's manifest (step kind and target, the expectations'
referenced tables); RawSQL steps are not analysed (their text can do anything) — a privilege
they lack fails the step like any other error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from dbdeploy.bundle.schemas import BACKUP_SCHEMA
from dbdeploy.errors import PrivilegeError

# Step kinds that change a table's definition: PostgreSQL lets only its owner do that.
OWNER_KINDS = frozenset({
    "add_column", "drop_not_null", "add_check", "set_not_null", "drop_column", "add_foreign_key",
    "validate_constraint", "drop_constraint", "create_index", "drop_index", "add_unique", "drop_table",
    "restore_column", "drop_column_prepare", "restore_column_constraints", "restore_column_not_null",
    "restore_column_finish",
})
# ... of those, the ones that create an index in the table's schema (CREATE on the schema too).
CREATES_IN_SCHEMA = frozenset({"create_index", "add_unique", "restore_column", "restore_column_finish"})
# Step kinds that only read or write rows: table privileges suffice.
DATA_KINDS = {
    "backfill_setup": ("SELECT",),
    "backfill": ("SELECT", "UPDATE"),
    "restore_backfill": ("SELECT", "UPDATE"),          # an older backup restores in this step, in one UPDATE
    "restore_backfill_values": ("SELECT", "UPDATE"),
    "copy_column": ("SELECT", "UPDATE"),           # SELECT … FOR SHARE needs UPDATE (or DELETE …)
    "restore_column_values": ("SELECT", "UPDATE"),
    "seed_rows": ("SELECT", "INSERT"),
    "delete_seed_rows": ("SELECT", "DELETE"),
}
# History tables and what the executor and the bundles do with them.
HISTORY_TABLES = {
    "migration_log": ("SELECT", "INSERT", "UPDATE"),
    "migration_objects": ("SELECT", "INSERT", "DELETE"),
    "migration_events": ("SELECT", "INSERT"),
    "performance_log": ("SELECT", "INSERT"),
}


@dataclass(frozen=True)
class Missing:
    """One privilege the role lacks: what, what for, and the statement that grants it."""

    privilege: str
    needed_for: str
    grant: str

    def render(self) -> str:
        return f"{self.privilege} (needed for {self.needed_for}) — a DBA runs: {self.grant}"


class _Catalog:
    """Catalog questions about the connected role and database, answered without privileges."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.role, self.database, self.superuser = conn.execute(
            "SELECT current_user::text, pg_catalog.current_database()::text,"
            " (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)").fetchone()

    def q(self, *names: str) -> str:
        return sql.Identifier(*names).as_string(self.conn)

    @property
    def role_q(self) -> str:
        return self.q(self.role)

    def database_privilege(self, privilege: str) -> bool:
        return self.conn.execute("SELECT pg_catalog.has_database_privilege(pg_catalog.current_database(), %s)",
                                 [privilege]).fetchone()[0]

    def schema(self, name: str) -> tuple[bool, bool, bool] | None:
        """(usage, create, owned) for an existing schema, None when it does not exist."""
        return self.conn.execute(
            "SELECT pg_catalog.has_schema_privilege(oid, 'USAGE'), pg_catalog.has_schema_privilege(oid, 'CREATE'),"
            " pg_catalog.pg_has_role(nspowner, 'USAGE') FROM pg_catalog.pg_namespace WHERE nspname = %s",
            [name]).fetchone()

    def table(self, schema: str, name: str, privileges: Iterable[str] = ()) -> tuple[bool, str, list[str]] | None:
        """(owned, owner, missing privileges) for an existing relation, None when it does not exist."""
        row = self.conn.execute(
            "SELECT c.oid, pg_catalog.pg_has_role(c.relowner, 'USAGE'), c.relowner::pg_catalog.regrole::text"
            " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = %s", [schema, name]).fetchone()
        if row is None:
            return None
        oid, owned, owner = row
        missing = [p for p in privileges
                   if not self.conn.execute("SELECT pg_catalog.has_table_privilege(%s::pg_catalog.oid, %s)",
                                            [oid, p]).fetchone()[0]]
        return owned, owner, missing

    def extension(self, name: str) -> tuple[bool, bool | None, bool | None]:
        """(installed, trusted, superuser-only) for an extension."""
        installed = self.conn.execute("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = %s)",
                                      [name]).fetchone()[0]
        row = self.conn.execute(
            "SELECT v.trusted, v.superuser FROM pg_catalog.pg_available_extension_versions v"
            " JOIN pg_catalog.pg_available_extensions e ON e.name = v.name AND e.default_version = v.version"
            " WHERE v.name = %s", [name]).fetchone()
        return installed, row[0] if row else None, row[1] if row else None


def raise_if_missing(cat: _Catalog, missing: list[Missing], what: str) -> None:
    """Raise one PrivilegeError listing every missing privilege (duplicates once)."""
    unique = list(dict.fromkeys(missing))
    if not unique:
        return
    lines = "\n  - ".join(m.render() for m in unique)
    raise PrivilegeError(
        f"role {cat.role} lacks {'a privilege' if len(unique) == 1 else 'privileges'} that {what} needs on "
        f"database {cat.database}; nothing was run:\n  - {lines}\n"
        "(\"Least-privilege deploys\" in the README lists everything a DBA sets up for a deploy role)")


def _schema_needs(cat: _Catalog, schema: str, needed_for: str, *, create: bool) -> list[Missing]:
    found = cat.schema(schema)
    if found is None:
        if not create or cat.database_privilege("CREATE"):
            return []
        return [Missing(f"CREATE on database {cat.database}", f"creating schema {schema}",
                        f"CREATE SCHEMA {cat.q(schema)} AUTHORIZATION {cat.role_q};")]
    usage, create_ok, _owned = found
    lacking = [p for p, ok in (("USAGE", usage), ("CREATE", create_ok)) if not ok and (create or p == "USAGE")]
    if not lacking:
        return []
    privileges = ", ".join(lacking)
    return [Missing(f"{privileges} on schema {schema}", needed_for,
                    f"GRANT {privileges} ON SCHEMA {cat.q(schema)} TO {cat.role_q};")]


def bookkeeping(conn: psycopg.Connection, history_schema: str, backup_schemas: Iterable[str], what: str) -> None:
    """Refuse unless the role may create or use dbdeploy's schemas and write its history tables."""
    cat = _Catalog(conn)
    if cat.superuser:
        return
    missing: list[Missing] = []
    for schema in dict.fromkeys([history_schema, *backup_schemas]):
        missing += _schema_needs(cat, schema, f"dbdeploy's {'history' if schema == history_schema else 'backups'}",
                                 create=True)
    for table, privileges in HISTORY_TABLES.items():
        found = cat.table(history_schema, table, privileges)
        if found and found[2]:
            granted = ", ".join(found[2])
            missing.append(Missing(f"{granted} on table {history_schema}.{table}", "the migration history",
                                   f"GRANT {granted} ON TABLE {cat.q(history_schema, table)} TO {cat.role_q};"))
    raise_if_missing(cat, missing, what)


def readable(conn: psycopg.Connection, history_schema: str, backup_schemas: Iterable[str], what: str) -> None:
    """Refuse unless the role may read the history (status, verify, dry runs): USAGE on dbdeploy's
    schemas that exist and SELECT on the migration log when it exists. Nothing is created."""
    cat = _Catalog(conn)
    if cat.superuser:
        return
    missing: list[Missing] = []
    for schema in dict.fromkeys([history_schema, *backup_schemas]):
        purpose = "history" if schema == history_schema else "backups"
        missing += _schema_needs(cat, schema, f"reading dbdeploy's {purpose}", create=False)
    found = cat.table(history_schema, "migration_log", ("SELECT",))
    if found and found[2]:
        missing.append(Missing(f"SELECT on table {history_schema}.migration_log", "reading the migration history",
                               f"GRANT SELECT ON TABLE {cat.q(history_schema, 'migration_log')} TO {cat.role_q};"))
    raise_if_missing(cat, missing, what)


def steps(conn: psycopg.Connection, bundles: Iterable, direction: str, what: str) -> None:
    """Refuse unless the role may run every step of ``bundles`` (BundleOnDisk, in run order).

    ``direction`` is ``"forward"`` (the manifest's ``steps``) or ``"rollback"`` (``rollback_steps``).
    Tables and schemas that an earlier step of the same run creates or restores are skipped: the
    role owns what it creates.
    """
    cat = _Catalog(conn)
    if cat.superuser:
        return
    missing: list[Missing] = []
    made: set[str] = set()       # tables and schemas this run creates or restores before using them
    for bundle in bundles:
        entries = bundle.manifest.get("steps" if direction == "forward" else "rollback_steps", [])
        for step in entries:
            missing += _step_needs(cat, bundle.label, step, made)
        if direction == "forward":
            missing += _references(cat, bundle, made)
    raise_if_missing(cat, missing, what)


def _step_needs(cat: _Catalog, label: str, step: dict, made: set[str]) -> list[Missing]:
    kind, target = step.get("kind", ""), step.get("target", "")
    where = f"{label} step {step.get('n')}: {kind} {target}"
    if kind == "create_schema":
        if step.get("summary", "").startswith("create") and cat.schema(target) is None and target not in made:
            made.add(target)
            if not cat.database_privilege("CREATE"):
                return [Missing(f"CREATE on database {cat.database}", where,
                                f"CREATE SCHEMA {cat.q(target)} AUTHORIZATION {cat.role_q};")]
        return []
    if kind == "require_extension":
        return _extension_needs(cat, where, step, target)
    schema, dot, name = target.partition(".")
    if not dot or target in made:
        return []                       # RawSQL ("-") and tables this run made: nothing to ask
    if kind in ("create_table", "restore_table"):
        if cat.table(schema, name) is not None:
            return []
        made.add(target)
        if schema in made:
            return []
        return _schema_needs(cat, schema, where, create=True)
    needs = DATA_KINDS.get(kind, ())
    if kind not in OWNER_KINDS and not needs:
        return []
    found = cat.table(schema, name, needs)
    if found is None:
        return []                       # the step's own guard handles a missing table
    missing = _schema_needs(cat, schema, where, create=kind in CREATES_IN_SCHEMA)
    owned, owner, lacking = found
    if kind in OWNER_KINDS and not owned:
        missing.append(Missing(f"ownership of table {target} (owned by {owner})", where,
                               f"ALTER TABLE {cat.q(schema, name)} OWNER TO {cat.role_q};"))
    elif lacking:
        granted = ", ".join(lacking)
        missing.append(Missing(f"{granted} on table {target}", where,
                               f"GRANT {granted} ON TABLE {cat.q(schema, name)} TO {cat.role_q};"))
    return missing


def _extension_needs(cat: _Catalog, where: str, step: dict, name: str) -> list[Missing]:
    if not step.get("summary", "").startswith("create extension"):
        return []
    installed, trusted, superuser_only = cat.extension(name)
    if installed or trusted is None:
        return []                       # missing from the server: the step says so itself
    if superuser_only and not trusted:
        return [Missing(f"superuser (extension {name} is not trusted)", where,
                        f"CREATE EXTENSION {cat.q(name)};  -- as a superuser, in database {cat.q(cat.database)}")]
    if not cat.database_privilege("CREATE"):
        return [Missing(f"CREATE on database {cat.database}", where,
                        f"CREATE EXTENSION {cat.q(name)};  -- or: GRANT CREATE ON DATABASE {cat.q(cat.database)} "
                        f"TO {cat.role_q};")]
    return []


def _references(cat: _Catalog, bundle, made: set[str]) -> list[Missing]:
    """A foreign key needs REFERENCES on the table it points at."""
    missing = []
    for entry in bundle.manifest.get("expects", []):
        ref = entry.get("references")
        if entry.get("object") != "constraint" or not ref or ref in made or "." not in ref:
            continue
        schema, _, name = ref.partition(".")
        found = cat.table(schema, name, ("REFERENCES",))
        if found and found[2]:
            missing.append(Missing(f"REFERENCES on table {ref}", f"{bundle.label} foreign key {entry.get('name')}",
                                   f"GRANT REFERENCES ON TABLE {cat.q(schema, name)} TO {cat.role_q};"))
    return missing


def scratch_database(conn: psycopg.Connection) -> None:
    """``dbdeploy test`` creates a scratch database: the role needs CREATEDB."""
    cat = _Catalog(conn)
    createdb = conn.execute("SELECT rolcreatedb OR rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user"
                            ).fetchone()[0]
    if createdb:
        return
    raise PrivilegeError(
        f"role {cat.role} lacks CREATEDB, which dbdeploy test needs to create its scratch database; nothing was run. "
        f"A DBA runs: ALTER ROLE {cat.role_q} CREATEDB; — or prepare an empty database with the SQL of "
        "\"Least-privilege deploys\" in the README and run `dbdeploy test --existing --dsn <that database>`")


def temporary_tables(conn: psycopg.Connection) -> None:
    """The generated tests compare types through a temporary table: TEMPORARY on the database."""
    cat = _Catalog(conn)
    if cat.superuser or cat.database_privilege("TEMPORARY"):
        return
    raise_if_missing(cat, [Missing(f"TEMPORARY on database {cat.database}", "the generated tests' type probes",
                                   f"GRANT TEMPORARY ON DATABASE {cat.q(cat.database)} TO {cat.role_q};")],
                     "dbdeploy test")


def backup_schemas(bundles: Iterable) -> list[str]:
    """The backup schemas the bundles were generated for (``dbdeploy_backup`` by default)."""
    return list(dict.fromkeys(b.info.backup_schema for b in bundles)) or [BACKUP_SCHEMA]
