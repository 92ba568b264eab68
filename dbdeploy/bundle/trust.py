"""The trust check on dbdeploy's own schemas: the one place its SQL is written.

A deploy often runs as a superuser (or another role more privileged than the database's owner).
Anything that fires code when dbdeploy writes its history or backups — a trigger, a rule, a
row-level security policy, a view or foreign table planted under a dbdeploy name — would then run
with the deploying role's privileges. So before dbdeploy uses its history schema and its backup
schema it proves from the catalog alone (``pg_namespace``, ``pg_class``, ``pg_trigger``,
``pg_rewrite``, ``pg_policy``, ``pg_attribute``, ``pg_proc``, ``pg_type``; nothing that could run
code is read) that:

- both schemas, and every relation, function and type in them, are owned by a *trusted* role: the
  deploying role (``current_user``), a role named by ``owner`` in ``dbdeploy.toml``, or a
  superuser (a superuser gains nothing by attacking another);
- nobody else may create objects in the schemas (``CREATE`` in ``nspacl``, PUBLIC included);
- every relation is an ordinary table, an index or a sequence (no view, foreign, partitioned
  table, materialized view or composite type);
- no table carries a user trigger (``NOT tgisinternal``), a rule, row-level security or a policy;
- nobody else holds INSERT, UPDATE, DELETE, TRUNCATE, TRIGGER or REFERENCES on a table (or a
  column) or UPDATE on a sequence.

The exception: a table that a ``DropTable`` set aside in the backup schema keeps its original
owner (and triggers). It is recognised by its name in ``<backup>.dropped_tables`` — read only
after that table itself passed the checks — and dbdeploy only ever moves and renames it (DDL,
which fires nothing), never reads or writes its rows. Its indexes and owned sequences are exempt
with it.

:func:`check_block` renders the check as one ``DO`` block that raises ``dbdeploy: refusing to use
…`` naming every offending object. The bundle's preamble runs it before its first write
(``render.bookkeeping.ensure_tables``); the executor runs the same block before any command reads
or writes the history (``executor.trust.verify``), under ``search_path = pg_catalog, pg_temp``.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from dbdeploy.sql import ident, literal
from dbdeploy.sql.blocks import block, do_block, if_then

S = sql.SQL

MESSAGE = "dbdeploy: refusing to use dbdeploy's schemas"
"""How the check's exception starts (the executor recognises it by this prefix)."""

HINT = ("These objects could run code as the deploying role, or be changed by another role, when dbdeploy "
        "writes its history and backups. Have a DBA drop them or hand them to the deploying role "
        "(ALTER ... OWNER TO, DROP TRIGGER / RULE / POLICY, REVOKE), or, if their owner is trusted, name it "
        "with owner = [\"role\"] in dbdeploy.toml and regenerate. See \"Security\" in the dbdeploy README.")

_WRITE = S("('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'TRIGGER', 'REFERENCES')")


def _trusted(owners: Sequence[str]) -> sql.Composable:
    """The trusted roles' oids, as a subquery."""
    return S("(SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user OR r.rolsuper"
             " OR r.rolname = ANY ({}::text[]))").format(literal(list(owners)))


def problems_query(schemas: Sequence[str], owners: Sequence[str], kept: sql.Composable,
                   writing: bool = True) -> sql.Composable:
    """A SELECT of one text column ``problem``: every reason not to trust ``schemas``.

    ``writing=False`` keeps only what makes a plain SELECT of dbdeploy's tables run code (a
    relation that is not an ordinary table, a rule, row-level security): the check of commands that
    only read the history (status, verify, dry runs), which other roles than the deploying one run.

    ``kept``: an ``oid[]`` expression, the tables a DropTable set aside (exempt, with their indexes
    and sequences). Reads the catalog only; an empty result means the schemas may be used.
    """
    trusted = _trusted(owners)
    names = literal(list(schemas))
    who = S("CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE a.grantee::pg_catalog.regrole::text END")
    return S(
        "SELECT problem FROM (\n"
        "WITH tr AS {trusted},\n"
        "s AS (SELECT n.oid, n.nspname, n.nspowner, n.nspacl FROM pg_catalog.pg_namespace n\n"
        "      WHERE n.nspname = ANY ({names}::text[])),\n"
        "rel AS (SELECT c.oid, c.relkind, c.relowner, c.relacl, c.relrowsecurity,\n"
        "               pg_catalog.format('%I.%I', s.nspname, c.relname) AS name\n"
        "        FROM pg_catalog.pg_class c JOIN s ON s.oid = c.relnamespace\n"
        "        WHERE NOT c.oid = ANY ({kept})\n"
        "          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indexrelid = c.oid"
        " AND i.indrelid = ANY ({kept}))\n"
        "          AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = c.tableoid"
        " AND d.objid = c.oid AND d.refclassid = c.tableoid AND d.refobjid = ANY ({kept})"
        " AND d.deptype IN ('a', 'i')))\n"
        "SELECT false AS reading,"
        " pg_catalog.format('schema %I is owned by role %s', s.nspname, s.nspowner::pg_catalog.regrole)"
        " AS problem\n"
        "    FROM s WHERE s.nspowner NOT IN (SELECT oid FROM tr)\n"
        "UNION ALL\n"
        "SELECT false AS reading,"
        " pg_catalog.format('schema %I: role %s may create objects in it (CREATE)', s.nspname, {who})\n"
        "    FROM s, pg_catalog.aclexplode(s.nspacl) a\n"
        "    WHERE a.privilege_type = 'CREATE' AND a.grantee <> s.nspowner AND a.grantee NOT IN (SELECT oid FROM tr)\n"
        "UNION ALL\n"
        "SELECT false AS reading,"
        " pg_catalog.format('%s is owned by role %s', rel.name, rel.relowner::pg_catalog.regrole)\n"
        "    FROM rel WHERE rel.relkind <> 'i' AND rel.relowner NOT IN (SELECT oid FROM tr)\n"
        "UNION ALL\n"
        "SELECT true AS reading,"
        " pg_catalog.format('%s is a %s, not an ordinary table', rel.name, CASE rel.relkind"
        " WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table'"
        " WHEN 'p' THEN 'partitioned table' WHEN 'c' THEN 'composite type' ELSE 'relation of kind '"
        " || rel.relkind::text END)\n"
        "    FROM rel WHERE rel.relkind NOT IN ('r', 'i', 'S')\n"
        "UNION ALL\n"
        "SELECT false AS reading,"
        " pg_catalog.format('%s has trigger %I', rel.name, t.tgname)\n"
        "    FROM rel JOIN pg_catalog.pg_trigger t ON t.tgrelid = rel.oid WHERE NOT t.tgisinternal\n"
        "UNION ALL\n"
        "SELECT true AS reading,"
        " pg_catalog.format('%s has rule %I', rel.name, w.rulename)\n"
        "    FROM rel JOIN pg_catalog.pg_rewrite w ON w.ev_class = rel.oid WHERE rel.relkind = 'r'\n"
        "UNION ALL\n"
        "SELECT true AS reading,"
        " pg_catalog.format('%s has row-level security enabled', rel.name) FROM rel WHERE rel.relrowsecurity\n"
        "UNION ALL\n"
        "SELECT true AS reading,"
        " pg_catalog.format('%s has policy %I', rel.name, p.polname)\n"
        "    FROM rel JOIN pg_catalog.pg_policy p ON p.polrelid = rel.oid\n"
        "UNION ALL\n"
        "SELECT false AS reading,"
        " pg_catalog.format('%s: role %s may change it (%s)', rel.name, {who}, a.privilege_type)\n"
        "    FROM rel, pg_catalog.aclexplode(rel.relacl) a\n"
        "    WHERE a.grantee <> rel.relowner AND a.grantee NOT IN (SELECT oid FROM tr)\n"
        "      AND (a.privilege_type IN {write} OR (rel.relkind = 'S' AND a.privilege_type = 'UPDATE'))\n"
        "UNION ALL\n"
        "SELECT false AS reading,"
        " pg_catalog.format('%s column %I: role %s may change it (%s)', rel.name, att.attname, {who},"
        " a.privilege_type)\n"
        "    FROM rel JOIN pg_catalog.pg_attribute att ON att.attrelid = rel.oid AND att.attacl IS NOT NULL,\n"
        "         pg_catalog.aclexplode(att.attacl) a\n"
        "    WHERE a.grantee <> rel.relowner AND a.grantee NOT IN (SELECT oid FROM tr)\n"
        "      AND a.privilege_type IN {write}\n"
        "UNION ALL\n"
        "SELECT false AS reading,"
        " pg_catalog.format('function %I.%I is owned by role %s', s.nspname, f.proname,"
        " f.proowner::pg_catalog.regrole)\n"
        "    FROM s JOIN pg_catalog.pg_proc f ON f.pronamespace = s.oid WHERE f.proowner NOT IN (SELECT oid FROM tr)\n"
        "UNION ALL\n"
        "SELECT false AS reading,"
        " pg_catalog.format('type %I.%I is owned by role %s', s.nspname, y.typname,"
        " y.typowner::pg_catalog.regrole)\n"
        "    FROM s JOIN pg_catalog.pg_type y ON y.typnamespace = s.oid\n"
        "    WHERE y.typrelid = 0 AND y.typcategory <> 'A' AND y.typowner NOT IN (SELECT oid FROM tr)\n"
        ") AS problems WHERE reading OR {writing}"
    ).format(names=names, kept=kept, trusted=trusted, who=who, write=_WRITE, writing=literal(writing))


def check_block(history_schema: str, backup_schema: str, owners: Sequence[str] = (), writing: bool = True) -> str:
    """The trust check as one ``DO`` block (text): raises ``MESSAGE`` + every problem, with ``HINT``.

    Needs ``search_path = pg_catalog, pg_temp`` (the preamble and the executor set it) so that no
    operator or function in it can resolve to a user's schema.
    """
    dropped = ident(backup_schema, "dropped_tables")
    trusted = _trusted(owners)
    # The tables a DropTable set aside, read from dropped_tables only once the catalog shows it is a
    # trusted ordinary table without rules or row-level security (a SELECT then fires nothing).
    read_kept = if_then(
        S("EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\n"
          "    WHERE n.nspname = {b} AND c.relname = 'dropped_tables' AND c.relkind = 'r' AND NOT c.relrowsecurity\n"
          "      AND c.relowner IN {trusted}\n"
          "      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite w WHERE w.ev_class = c.oid))").format(
            b=literal(backup_schema), trusted=trusted),
        S("SELECT COALESCE(pg_catalog.array_agg(c.oid), '{{}}') INTO v_kept\n"
          "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\n"
          "WHERE n.nspname = {b} AND c.relkind IN ('r', 'p')\n"
          "  AND c.relname::text IN (SELECT d.backup_table::text FROM {dropped} d);").format(
            b=literal(backup_schema), dropped=dropped))
    report = S(
        "SELECT pg_catalog.string_agg(problem, '; ' ORDER BY problem) INTO v_problems FROM ({q}) AS p;"
    ).format(q=problems_query([history_schema, backup_schema], owners, S("v_kept"), writing))
    refuse = if_then(S("v_problems IS NOT NULL"), S(
        "RAISE EXCEPTION '%', {msg} || v_problems USING HINT = {hint};").format(
        msg=literal(MESSAGE + ": "), hint=literal(HINT)))
    return do_block(block(read_kept, report, refuse), declare=["v_kept oid[] := '{}'", "v_problems text"])
