"""Explicit access control lists for everything dbdeploy keeps: its schemas, its history and backups.

Whatever ``ALTER DEFAULT PRIVILEGES`` says (for the deploying role, for a schema, to PUBLIC), every
schema and relation dbdeploy creates ends with an ACL that names only its owner and the roles
configured as ``backup_readers`` (README, "Configuration"): those get ``USAGE`` on dbdeploy's
schemas and ``SELECT`` on its tables and sequences, nothing else, and no grant option. Any other
grant — including one to PUBLIC, a column grant, or a reader's INSERT — is revoked (``CASCADE``,
so what a grantee passed on goes too) and the result is checked: a relation that still carries
another grant stops the statement with an exception naming it.

The readers travel to the server as the session setting ``dbdeploy.backup_readers`` (a ``text[]``
literal of role names), which every bundle's preamble sets explicitly (:func:`set_readers`), so a
value planted with ``ALTER DATABASE … SET`` or ``ALTER ROLE … SET`` never counts, and the steps
themselves — and with them the checksums of applied versions — do not change when the list does.
A configured role that does not exist is skipped; the preamble warns about it
(:func:`sweep_block`).

Every fragment here is a PL/pgSQL block with its own ``DECLARE`` (variables prefixed ``acl_``), so
it can be put inside any ``DO`` body without the caller declaring anything; :func:`do` wraps one
as a statement of its own. Role and relation names are quoted from the catalog with
``quote_ident``; nothing read from a table is executed as SQL.
"""

from __future__ import annotations

from collections.abc import Iterable

from psycopg import sql

from dbdeploy.sql.quote import dollar_quoted, literal, regclass, regclass_of, render

S = sql.SQL

READERS_SETTING = "dbdeploy.backup_readers"

# The configured readers that exist, as role oids (an unset or empty setting: none).
_READERS = (
    "ARRAY(SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = ANY (COALESCE(NULLIF("
    "pg_catalog.current_setting('dbdeploy.backup_readers', true), ''), '{}')::text[]))"
)

# One row per grantee of relation acl_rel that must go: anyone but the owner, except a reader
# holding plain SELECT; every column grant (readers read through their table grant).
_REL_EXTRA = (
    "SELECT a.grantee FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a\n"
    "    WHERE c.oid = acl_rel.oid AND a.grantee <> acl_rel.owner\n"
    "      AND NOT (a.grantee = ANY (acl_readers) AND a.privilege_type = 'SELECT' AND NOT a.is_grantable)\n"
    "    UNION\n"
    "    SELECT a.grantee FROM pg_catalog.pg_attribute t, pg_catalog.aclexplode(t.attacl) a\n"
    "    WHERE t.attrelid = acl_rel.oid AND t.attacl IS NOT NULL AND a.grantee <> acl_rel.owner"
)

_NSP_EXTRA = (
    "SELECT a.grantee FROM pg_catalog.pg_namespace s, pg_catalog.aclexplode(s.nspacl) a\n"
    "    WHERE s.oid = acl_rel.oid AND a.grantee <> acl_rel.owner\n"
    "      AND NOT (a.grantee = ANY (acl_readers) AND a.privilege_type = 'USAGE' AND NOT a.is_grantable)"
)

_GRANTEE = ("CASE WHEN acl_grantee = 0 THEN 'PUBLIC' ELSE (SELECT pg_catalog.quote_ident(r.rolname)"
            " FROM pg_catalog.pg_roles r WHERE r.oid = acl_grantee) END")

_HINT = literal("Run dbdeploy as the owner of dbdeploy's schemas and tables (or a superuser).")


def _relations_body(where: sql.Composable, readers: bool) -> sql.Composable:
    """The PL/pgSQL block restricting every relation ``c`` of ``pg_class`` that ``where`` selects."""
    return S(
        "DECLARE\n"
        "    acl_readers oid[] := {readers};\n"
        "    acl_rel record;\n"
        "    acl_grantee oid;\n"
        "BEGIN\n"
        "    FOR acl_rel IN\n"
        "        SELECT c.oid, c.relowner AS owner, CASE c.relkind WHEN 'S' THEN 'SEQUENCE ' ELSE 'TABLE ' END\n"
        "            || pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) AS target\n"
        "        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\n"
        "        WHERE c.relkind IN ('r', 'p', 'S', 'v', 'm', 'f') AND ({where})\n"
        "    LOOP\n"
        "        FOR acl_grantee IN {extra} LOOP\n"
        "            EXECUTE 'REVOKE ALL ON ' || acl_rel.target || ' FROM ' || {grantee} || ' CASCADE';\n"
        "        END LOOP;\n"
        "        IF (SELECT c.relacl IS NULL FROM pg_catalog.pg_class c WHERE c.oid = acl_rel.oid) THEN\n"
        "            EXECUTE 'REVOKE ALL ON ' || acl_rel.target || ' FROM PUBLIC';\n"
        "        END IF;\n"
        "        FOR acl_grantee IN SELECT g FROM pg_catalog.unnest(acl_readers) AS g WHERE g <> acl_rel.owner\n"
        "            AND NOT pg_catalog.has_table_privilege(g, acl_rel.oid, 'SELECT')\n"
        "        LOOP\n"
        "            EXECUTE 'GRANT SELECT ON ' || acl_rel.target || ' TO ' || {grantee};\n"
        "        END LOOP;\n"
        "        IF EXISTS ({extra}) THEN\n"
        "            RAISE EXCEPTION 'dbdeploy: cannot restrict access to %: it still grants privileges to roles other"
        " than its owner and the configured backup readers', acl_rel.target\n"
        "                USING HINT = {hint};\n"
        "        END IF;\n"
        "    END LOOP;\n"
        "END;"
    ).format(readers=S(_READERS) if readers else S("'{}'::oid[]"), where=where, extra=S(_REL_EXTRA),
             grantee=S(_GRANTEE), hint=_HINT)


def restrict_relation(relation: sql.Composable, *, readers: bool = True) -> sql.Composable:
    """A PL/pgSQL block (for a ``DO`` body) giving the relation ``relation`` (an SQL expression of
    type ``regclass`` or ``oid``, e.g. ``pg_catalog.to_regclass('s.t')``) and the sequences it owns
    (serial and identity columns) the ACL owner + readers (``readers=False``: owner only).
    Call it right after the ``CREATE``; a NULL relation does nothing."""
    where = S(
        "c.oid = {rel} OR (c.relkind = 'S' AND c.oid IN (SELECT d.objid FROM pg_catalog.pg_depend d\n"
        "            WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass\n"
        "              AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass\n"
        "              AND d.refobjid = {rel} AND d.deptype IN ('a', 'i')))").format(rel=relation)
    return _relations_body(where, readers)


def restrict_table(table: sql.Identifier, *, readers: bool = True) -> sql.Composable:
    """:func:`restrict_relation` for a table known when the bundle is generated (``ident(schema, name)``)."""
    return restrict_relation(regclass(table), readers=readers)


def restrict_dynamic(schema: str, name_expression: sql.Composable, *, readers: bool = True) -> sql.Composable:
    """:func:`restrict_relation` for a table whose name is only known at run time: ``name_expression``
    is a PL/pgSQL text expression (a variable such as ``S("v_backup")``) holding the unquoted name of a
    relation in ``schema``."""
    return restrict_relation(regclass_of(S("pg_catalog.quote_ident({s}) || '.' || pg_catalog.quote_ident({n})").format(
        s=literal(schema), n=name_expression)), readers=readers)


def restrict_schema(schema: str) -> sql.Composable:
    """A PL/pgSQL block giving schema ``schema`` the ACL owner + readers (``USAGE``) when the current
    role may act as its owner; a schema owned by another role is left to that role (a warning
    names it when its ACL grants more)."""
    return S(
        "DECLARE\n"
        "    acl_readers oid[] := {readers};\n"
        "    acl_rel record;\n"
        "    acl_grantee oid;\n"
        "BEGIN\n"
        "    SELECT s.oid, s.nspowner AS owner, 'SCHEMA ' || pg_catalog.quote_ident(s.nspname) AS target INTO acl_rel\n"
        "    FROM pg_catalog.pg_namespace s WHERE s.nspname = {name};\n"
        "    IF NOT FOUND THEN\n"
        "        NULL;\n"
        "    ELSIF NOT pg_catalog.pg_has_role(acl_rel.owner, 'USAGE') THEN\n"
        "        IF EXISTS ({extra}) THEN\n"
        "            RAISE WARNING 'dbdeploy: % is owned by role % and grants access to other roles; dbdeploy cannot"
        " restrict it', acl_rel.target, acl_rel.owner::pg_catalog.regrole;\n"
        "        END IF;\n"
        "    ELSE\n"
        "        FOR acl_grantee IN {extra} LOOP\n"
        "            EXECUTE 'REVOKE ALL ON ' || acl_rel.target || ' FROM ' || {grantee} || ' CASCADE';\n"
        "        END LOOP;\n"
        "        IF (SELECT s.nspacl IS NULL FROM pg_catalog.pg_namespace s WHERE s.oid = acl_rel.oid) THEN\n"
        "            EXECUTE 'REVOKE ALL ON ' || acl_rel.target || ' FROM PUBLIC';\n"
        "        END IF;\n"
        "        FOR acl_grantee IN SELECT g FROM pg_catalog.unnest(acl_readers) AS g WHERE g <> acl_rel.owner\n"
        "            AND NOT pg_catalog.has_schema_privilege(g, acl_rel.oid, 'USAGE')\n"
        "        LOOP\n"
        "            EXECUTE 'GRANT USAGE ON ' || acl_rel.target || ' TO ' || {grantee};\n"
        "        END LOOP;\n"
        "        IF EXISTS ({extra}) THEN\n"
        "            RAISE EXCEPTION 'dbdeploy: cannot restrict access to %: it still grants privileges to roles other"
        " than its owner and the configured backup readers', acl_rel.target\n"
        "                USING HINT = {hint};\n"
        "        END IF;\n"
        "    END IF;\n"
        "END;"
    ).format(readers=S(_READERS), name=literal(schema), extra=S(_NSP_EXTRA), grantee=S(_GRANTEE), hint=_HINT)


def sweep_block(history_schema: str, backup_schema: str) -> sql.Composable:
    """A PL/pgSQL block for the preamble: warn about configured readers that are not roles here,
    give both schemas their ACL (:func:`restrict_schema`), then give every relation in dbdeploy's
    two schemas that the current role may act as owner of the ACL owner + readers (what earlier
    dbdeploy versions created, or default privileges granted, is corrected; a reader removed from
    the configuration loses its access). Relations an earlier version set aside get their grants
    recorded first (:func:`put_back` returns them). Relations owned by other roles are left alone
    with a warning when their ACL grants more."""
    names = S(", ").join(literal(s) for s in dict.fromkeys([history_schema, backup_schema]))
    missing = S(
        "DECLARE\n"
        "    acl_name text;\n"
        "BEGIN\n"
        "    FOR acl_name IN SELECT u FROM pg_catalog.unnest(COALESCE(NULLIF("
        "pg_catalog.current_setting('dbdeploy.backup_readers', true), ''), '{}')::text[]) AS u\n"
        "        WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = u)\n"
        "    LOOP\n"
        "        RAISE WARNING 'dbdeploy: backup reader % is not a role in this database; it is given nothing',"
        " pg_catalog.quote_ident(acl_name);\n"
        "    END LOOP;\n"
        "END;")
    foreign = S(
        "DECLARE\n"
        "    acl_readers oid[] := {readers};\n"
        "    acl_rel record;\n"
        "BEGIN\n"
        "    FOR acl_rel IN\n"
        "        SELECT c.oid, c.relowner AS owner, pg_catalog.quote_ident(n.nspname) || '.'"
        " || pg_catalog.quote_ident(c.relname) AS target\n"
        "        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\n"
        "        WHERE n.nspname IN ({names}) AND c.relkind IN ('r', 'p', 'S', 'v', 'm', 'f')\n"
        "          AND NOT pg_catalog.pg_has_role(c.relowner, 'USAGE')\n"
        "    LOOP\n"
        "        IF EXISTS ({extra}) THEN\n"
        "            RAISE WARNING 'dbdeploy: % is owned by role % and grants access to other roles; dbdeploy cannot"
        " restrict it', acl_rel.target, acl_rel.owner::pg_catalog.regrole;\n"
        "        END IF;\n"
        "    END LOOP;\n"
        "END;").format(readers=S(_READERS), names=names, extra=S(_REL_EXTRA))
    # Only relations whose ACL is not yet what it should be (a preamble costs nothing otherwise).
    differs = S(
        "c.relacl IS NULL\n"
        "            OR EXISTS (SELECT 1 FROM pg_catalog.aclexplode(c.relacl) a WHERE a.grantee <> c.relowner\n"
        "                AND NOT (a.grantee = ANY (acl_readers) AND a.privilege_type = 'SELECT'"
        " AND NOT a.is_grantable))\n"
        "            OR EXISTS (SELECT 1 FROM pg_catalog.pg_attribute t WHERE t.attrelid = c.oid"
        " AND t.attacl IS NOT NULL)\n"
        "            OR EXISTS (SELECT 1 FROM pg_catalog.unnest(acl_readers) AS g WHERE g <> c.relowner\n"
        "                AND NOT pg_catalog.has_table_privilege(g, c.oid, 'SELECT'))")
    owned = _relations_body(S("n.nspname IN ({names}) AND pg_catalog.pg_has_role(c.relowner, 'USAGE')\n"
                              "          AND ({differs})").format(names=names, differs=differs), True)
    schemas = [restrict_schema(s) for s in dict.fromkeys([history_schema, backup_schema])]
    return S("\n").join([missing, *schemas, foreign, _legacy_set_aside(backup_schema), owned])


SET_ASIDE_TABLE = "set_aside_grants"
_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "MAINTAIN", "USAGE")


def grants_of(relation: sql.Composable) -> sql.Composable:
    """A ``jsonb`` expression: every grant on ``relation`` (an ``oid``/``regclass`` expression) to a
    role other than its owner, as ``[{"on": "relation"|"column"|"sequence", "column": …, "grantee":
    role name or null for PUBLIC, "privilege": …, "grantable": …}]``; column grants and the grants on
    the sequences its columns own (keyed by that column) included."""
    return S(
        "(SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('on', g.kind, 'column', g.col,"
        " 'grantee', r.rolname, 'privilege', g.privilege_type, 'grantable', g.is_grantable)"
        " ORDER BY g.kind, g.col, r.rolname, g.privilege_type), '[]')\n"
        "    FROM (SELECT 'relation' AS kind, NULL::text AS col, a.grantee, a.privilege_type, a.is_grantable\n"
        "          FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a\n"
        "          WHERE c.oid = {rel} AND a.grantee <> c.relowner\n"
        "          UNION ALL\n"
        "          SELECT 'column', t.attname::text, a.grantee, a.privilege_type, a.is_grantable\n"
        "          FROM pg_catalog.pg_attribute t, pg_catalog.aclexplode(t.attacl) a\n"
        "          WHERE t.attrelid = {rel} AND t.attnum > 0 AND NOT t.attisdropped AND t.attacl IS NOT NULL\n"
        "          UNION ALL\n"
        "          SELECT 'sequence', t.attname::text, a.grantee, a.privilege_type, a.is_grantable\n"
        "          FROM pg_catalog.pg_depend d\n"
        "          JOIN pg_catalog.pg_class q ON q.oid = d.objid AND q.relkind = 'S'\n"
        "          JOIN pg_catalog.pg_attribute t ON t.attrelid = d.refobjid AND t.attnum = d.refobjsubid,\n"
        "          pg_catalog.aclexplode(q.relacl) a\n"
        "          WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass\n"
        "            AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass\n"
        "            AND d.refobjid = {rel} AND d.deptype IN ('a', 'i') AND a.grantee <> q.relowner) g\n"
        "    LEFT JOIN pg_catalog.pg_roles r ON r.oid = g.grantee)").format(rel=relation)


def _set_aside_table(backup_schema: str) -> sql.Identifier:
    return sql.Identifier(backup_schema, SET_ASIDE_TABLE)


def _ensure_set_aside_table(backup_schema: str) -> sql.Composable:
    table = _set_aside_table(backup_schema)
    return S("\n").join([
        S("CREATE TABLE IF NOT EXISTS {} (\n"
          "    relation text PRIMARY KEY,\n"
          "    grants jsonb NOT NULL,\n"
          "    saved_at timestamptz NOT NULL DEFAULT pg_catalog.now()\n"
          ");").format(table),
        restrict_table(table),
    ])


def set_aside(backup_schema: str, relation: sql.Composable, name: sql.Composable) -> sql.Composable:
    """A PL/pgSQL block for right after an application relation was moved into the backup schema
    (DropTable's table, DropColumn's detached sequence): its grants (:func:`grants_of`) are recorded
    in ``<backup_schema>.set_aside_grants`` under ``name`` (a text expression: its name there), then
    it gets the ACL owner + backup readers like everything dbdeploy keeps. :func:`put_back` gives
    the grants back when the rollback returns it."""
    return S("\n").join([
        _ensure_set_aside_table(backup_schema),
        S("INSERT INTO {t} (relation, grants) VALUES ({n}, {g})\n"
          "    ON CONFLICT (relation) DO UPDATE SET grants = EXCLUDED.grants, saved_at = EXCLUDED.saved_at;").format(
            t=_set_aside_table(backup_schema), n=name, g=grants_of(relation)),
        restrict_relation(relation),
    ])


def put_back(backup_schema: str, relation: sql.Composable, name: sql.Composable) -> sql.Composable:
    """A PL/pgSQL block for right after the rollback moved a set-aside relation back: the backup
    readers lose their access (owner only), then the grants :func:`set_aside` recorded under
    ``name`` are given again (by the owner; a role dropped since, a column gone or a privilege
    dbdeploy does not know is skipped with a warning — the record is data, never run as SQL)."""
    table = _set_aside_table(backup_schema)
    return S(
        "DECLARE\n"
        "    acl_grants jsonb;\n"
        "    acl_g jsonb;\n"
        "    acl_target text;\n"
        "    acl_role text;\n"
        "    acl_what text;\n"
        "BEGIN\n"
        "    {owner_only}\n"
        "    IF {treg} IS NOT NULL THEN\n"
        "        IF NOT pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class c"
        " WHERE c.oid = {treg}), 'USAGE') THEN\n"
        "            RAISE EXCEPTION 'dbdeploy: % is owned by another role; refusing to restore grants from it',"
        " {tname};\n"
        "        END IF;\n"
        "        SELECT s.grants INTO acl_grants FROM {t} s WHERE s.relation = {n};\n"
        "        SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE ' ELSE 'TABLE ' END || c.oid::pg_catalog.regclass::text"
        " INTO acl_target FROM pg_catalog.pg_class c WHERE c.oid = {rel};\n"
        "        FOR acl_g IN SELECT e FROM pg_catalog.jsonb_array_elements(COALESCE(acl_grants, '[]')) AS e LOOP\n"
        "            acl_what := NULL;\n"
        "            IF NOT (acl_g ->> 'privilege' = ANY ({privileges})) THEN\n"
        "                RAISE WARNING 'dbdeploy: not restoring unknown privilege % on %', acl_g ->> 'privilege',"
        " acl_target;\n"
        "                CONTINUE;\n"
        "            END IF;\n"
        "            IF acl_g ->> 'grantee' IS NULL THEN\n"
        "                acl_role := 'PUBLIC';\n"
        "            ELSE\n"
        "                SELECT pg_catalog.quote_ident(r.rolname) INTO acl_role FROM pg_catalog.pg_roles r\n"
        "                WHERE r.rolname = acl_g ->> 'grantee';\n"
        "                IF NOT FOUND THEN\n"
        "                    RAISE WARNING 'dbdeploy: role % no longer exists; its % on % is not restored',"
        " acl_g ->> 'grantee', acl_g ->> 'privilege', acl_target;\n"
        "                    CONTINUE;\n"
        "                END IF;\n"
        "            END IF;\n"
        "            IF acl_g ->> 'on' = 'relation' THEN\n"
        "                acl_what := acl_target;\n"
        "            ELSIF acl_g ->> 'on' = 'column' THEN\n"
        "                SELECT '(' || pg_catalog.quote_ident(a.attname) || ') ON ' || acl_target INTO acl_what\n"
        "                FROM pg_catalog.pg_attribute a\n"
        "                WHERE a.attrelid = {rel} AND a.attname = acl_g ->> 'column' AND a.attnum > 0"
        " AND NOT a.attisdropped;\n"
        "            ELSIF acl_g ->> 'on' = 'sequence' THEN\n"
        "                acl_what := 'SEQUENCE '\n"
        "                    || pg_catalog.pg_get_serial_sequence(({rel})::pg_catalog.regclass::text,"
        " acl_g ->> 'column');\n"
        "            END IF;\n"
        "            IF acl_what IS NULL THEN\n"
        "                RAISE WARNING 'dbdeploy: not restoring % for % on %: no such column or sequence',"
        " acl_g ->> 'privilege', acl_role, acl_target;\n"
        "                CONTINUE;\n"
        "            END IF;\n"
        "            EXECUTE 'GRANT ' || (acl_g ->> 'privilege') || CASE WHEN acl_g ->> 'on' = 'column' THEN ' '"
        " ELSE ' ON ' END\n"
        "                || acl_what || ' TO ' || acl_role\n"
        "                || CASE WHEN (acl_g ->> 'grantable')::boolean THEN ' WITH GRANT OPTION' ELSE '' END;\n"
        "        END LOOP;\n"
        "        DELETE FROM {t} WHERE relation = {n};\n"
        "    END IF;\n"
        "END;"
    ).format(owner_only=restrict_relation(relation, readers=False), tname=literal(render(table)),
             treg=regclass(table), t=table,
             n=name, rel=relation, privileges=literal(list(_PRIVILEGES)))


def _legacy_set_aside(backup_schema: str) -> sql.Composable:
    """For the preamble, before the sweep: relations an earlier dbdeploy version set aside (listed in
    ``dropped_tables`` and ``dropped_columns``, still in the backup schema) with no record of their
    grants get one, so the sweep's restriction does not lose what their rollback gives back. Nothing
    is created when there is no such relation."""
    table = _set_aside_table(backup_schema)
    parts = []
    for meta, column in (("dropped_tables", "backup_table"), ("dropped_columns", "saved_sequence")):
        listed = sql.Identifier(backup_schema, meta)
        def relation(name: sql.Composable) -> sql.Composable:
            return regclass_of(S("pg_catalog.quote_ident({bk}) || '.' || pg_catalog.quote_ident({n})").format(
                bk=literal(backup_schema), n=name))

        parts.append(S(
            "IF EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = {lreg}"
            " AND attname = {cname} AND NOT attisdropped) THEN\n"
            "    FOR acl_name IN SELECT m.{col} FROM {listed} m WHERE m.{col} IS NOT NULL AND {listed_rel} IS NOT NULL"
            " LOOP\n"
            "        IF {treg} IS NULL THEN\n"
            "{ensure}\n"
            "        END IF;\n"
            "        IF NOT EXISTS (SELECT 1 FROM {t} s WHERE s.relation = acl_name) THEN\n"
            "            INSERT INTO {t} (relation, grants) VALUES (acl_name, {grants});\n"
            "        END IF;\n"
            "    END LOOP;\n"
            "END IF;").format(
                lreg=regclass(listed), listed=listed, col=sql.Identifier(column), cname=literal(column),
                listed_rel=relation(S("m.{}").format(sql.Identifier(column))),
                treg=regclass(table), t=table, ensure=_ensure_set_aside_table(backup_schema),
                grants=grants_of(relation(S("acl_name")))))
    return S(
        "DECLARE\n"
        "    acl_name text;\n"
        "BEGIN\n"
        "{parts}\n"
        "END;").format(parts=S("\n").join(parts))


def do(fragment: sql.Composable) -> str:
    """One of the blocks above as a ``DO`` statement of its own, as text (:func:`do_sql` rendered)."""
    return render(do_sql(fragment))


def do_sql(fragment: sql.Composable) -> sql.Composable:
    """One of the blocks above as a ``DO`` statement of its own, to compose with other statements."""
    return S("DO {};").format(dollar_quoted(S("BEGIN\n{}\nEND").format(fragment)))


def readers_literal(readers: Iterable[str]) -> str:
    """The ``text[]`` input form of ``readers``: every name double-quoted (names containing ``"`` or
    ``\\`` are refused by the configuration, so no escape is needed; ValueError here)."""
    names = list(dict.fromkeys(readers))
    bad = [r for r in names if '"' in r or "\\" in r]
    if bad:
        raise ValueError(f"backup reader names cannot contain a double quote or a backslash: {bad!r}")
    return "{" + ",".join(f'"{r}"' for r in names) + "}"


def set_readers(readers: Iterable[str]) -> sql.Composable:
    """``SET dbdeploy.backup_readers = '{…}'`` for the preamble (always set, even to no readers,
    so a database- or role-level default cannot add one)."""
    return S("SET dbdeploy.backup_readers = {};").format(literal(readers_literal(readers)))


__all__ = ["READERS_SETTING", "do", "readers_literal", "restrict_dynamic", "restrict_relation", "restrict_schema",
           "restrict_table", "set_readers", "sweep_block"]
