"""SQL snippets shared by operations: guards, ownership records, dependant checks, backups.

Everything is composed with :mod:`psycopg.sql`; catalog functions are schema-qualified
(``pg_catalog.``) so a hostile object earlier in ``search_path`` cannot change what runs.
"""

from __future__ import annotations

from dataclasses import replace

from psycopg import sql

from dbdeploy.model.names import derived_name, split_table
from dbdeploy.ops.base import PlanContext
from dbdeploy.sql import acl, ident, literal, qualified, regclass, render
from dbdeploy.sql.blocks import block, if_then

S = sql.SQL


UNVALIDATED_NOT_NULL = S(
    "EXISTS (SELECT 1 FROM pg_catalog.pg_constraint nn WHERE nn.conrelid = a.attrelid"
    " AND nn.contype = 'n' AND nn.conkey[1] = a.attnum AND NOT nn.convalidated)")
"""Condition on ``pg_attribute a``: the column's NOT NULL is a ``NOT NULL … NOT VALID`` constraint
(PostgreSQL 18: contype ``'n'``, ``convalidated`` false). ``a.attnotnull`` is then true although
rows written before the constraint may still be NULL: the column is declared NOT NULL (new writes
are checked) but not proven free of NULLs. Always false before 18, which has no ``'n'`` rows; the
SQL is valid on every version (``contype``/``convalidated``/``conkey`` exist everywhere). Source:
PostgreSQL 18 docs, ``pg_constraint``, ``pg_attribute`` and ``ALTER TABLE … NOT VALID``."""

NOT_NULL_PROVEN = S("a.attnotnull AND NOT ") + UNVALIDATED_NOT_NULL
"""Condition on ``pg_attribute a``: the column holds no NULL — ``attnotnull`` and not an
unvalidated NOT NULL (:data:`UNVALIDATED_NOT_NULL`). Before 18 it is ``attnotnull``."""


def relation_exists(table: str) -> sql.Composable:
    return S("{} IS NOT NULL").format(regclass(table))


def relation_missing(table: str) -> sql.Composable:
    return S("{} IS NULL").format(regclass(table))


def column_exists(table: str, column: str) -> sql.Composable:
    return S(
        "EXISTS (SELECT 1 FROM pg_catalog.pg_attribute"
        " WHERE attrelid = {rel} AND attname = {col} AND attnum > 0 AND NOT attisdropped)"
    ).format(rel=regclass(table), col=literal(column))


def constraint_exists(table: str, name: str) -> sql.Composable:
    return S(
        "EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = {rel} AND conname = {name})"
    ).format(rel=regclass(table), name=literal(name))


def constraint_not_validated(table: str, name: str) -> sql.Composable:
    return S(
        "EXISTS (SELECT 1 FROM pg_catalog.pg_constraint"
        " WHERE conrelid = {rel} AND conname = {name} AND NOT convalidated)"
    ).format(rel=regclass(table), name=literal(name))


def notice(ctx: PlanContext, message: str) -> sql.Composable:
    return S("RAISE NOTICE '%', {};").format(literal(f"dbdeploy {ctx.label}: {message}"))


def warning(ctx: PlanContext, message: str) -> sql.Composable:
    return S("RAISE WARNING '%', {};").format(literal(f"dbdeploy {ctx.label}: {message}"))


def fail(ctx: PlanContext, message: str, hint: str, detail: sql.Composable | None = None) -> sql.Composable:
    """RAISE EXCEPTION with a fixed message, an optional runtime detail and a hint."""
    if detail is None:
        return S("RAISE EXCEPTION '%', {msg} USING HINT = {hint};").format(
            msg=literal(f"dbdeploy {ctx.label}: {message}"), hint=literal(hint))
    return S("RAISE EXCEPTION '% %', {msg}, {detail} USING HINT = {hint};").format(
        msg=literal(f"dbdeploy {ctx.label}: {message}"), detail=detail, hint=literal(hint))


def require_server_version(ctx: PlanContext, minimum: int, feature: str, fix: str) -> sql.Composable:
    """PL/pgSQL: stop before any change when the server is older than ``minimum``
    (``server_version_num``, e.g. 150000) because ``feature`` needs it; ``fix`` is the way on."""
    return if_then(
        S("pg_catalog.current_setting('server_version_num')::int < {}").format(literal(minimum)),
        fail(ctx, f"{feature} needs PostgreSQL {minimum // 10000} or later; this server is older",
             f"Nothing was changed by this step. {fix}"))


# --- ownership: rollback drops only what this migration created -------------------------

def _objects_table(ctx: PlanContext) -> sql.Composable:
    return ident(ctx.history_schema, "migration_objects")


def record_owned(ctx: PlanContext, kind: str, name: str) -> sql.Composable:
    return S(
        "INSERT INTO {tbl} (version, object_type, object_name) VALUES ({v}, {k}, {n})"
        " ON CONFLICT DO NOTHING;"
    ).format(tbl=_objects_table(ctx), v=literal(ctx.version), k=literal(kind), n=literal(name))


def is_owned(ctx: PlanContext, kind: str, name: str) -> sql.Composable:
    return S(
        "EXISTS (SELECT 1 FROM {tbl} WHERE version = {v} AND object_type = {k} AND object_name = {n})"
    ).format(tbl=_objects_table(ctx), v=literal(ctx.version), k=literal(kind), n=literal(name))


def forget_owned(ctx: PlanContext, kind: str, name: str) -> sql.Composable:
    return S(
        "DELETE FROM {tbl} WHERE version = {v} AND object_type = {k} AND object_name = {n};"
    ).format(tbl=_objects_table(ctx), v=literal(ctx.version), k=literal(kind), n=literal(name))


# --- dependants: refuse instead of CASCADE ----------------------------------------------

def table_dependant_rows(table: str, skip_fk: sql.Composable | None = None,
                         skip_view: sql.Composable | None = None) -> sql.Composable:
    """A query with one row (column ``dep``) per other table's foreign key or view that depends on ``table``.

    ``skip_fk`` (a condition on the ``pg_constraint`` row ``c``) leaves out foreign keys the
    rollback removes itself (:func:`released_foreign_key`), ``skip_view`` (on the ``pg_class`` row
    ``v``) such views (:func:`released_view`).
    """
    return S(
        "\n    SELECT c.conrelid::pg_catalog.regclass::text || ' (foreign key ' || c.conname || ')' AS dep"
        "\n    FROM pg_catalog.pg_constraint c"
        "\n    WHERE c.contype = 'f' AND c.confrelid = {rel} AND c.conrelid <> c.confrelid{skip}"
        "\n    UNION ALL"
        "\n    SELECT v.oid::pg_catalog.regclass::text || ' (view)'"
        "\n    FROM pg_catalog.pg_depend d"
        "\n    JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid"
        "\n    JOIN pg_catalog.pg_class v ON v.oid = r.ev_class"
        "\n    WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass"
        "\n      AND d.refobjid = {rel} AND v.oid <> d.refobjid{skip_view}"
    ).format(rel=regclass(table), skip=_skip(skip_fk), skip_view=_skip(skip_view))


def column_dependant_rows(table: str, column: str, skip_fk: sql.Composable | None = None,
                          skip_view: sql.Composable | None = None) -> sql.Composable:
    """A query with one row (column ``dep``) per other table's foreign key or view that uses ``table.column``
    (``skip_fk`` as in :func:`table_dependant_rows`)."""
    return S(
        "\n    SELECT c.conrelid::pg_catalog.regclass::text || ' (foreign key ' || c.conname || ')' AS dep"
        "\n    FROM pg_catalog.pg_constraint c"
        "\n    WHERE c.contype = 'f' AND c.confrelid = {rel} AND c.conrelid <> c.confrelid"
        "\n      AND {attnum} = ANY (c.confkey){skip}"
        "\n    UNION ALL"
        "\n    SELECT v.oid::pg_catalog.regclass::text || ' (view)'"
        "\n    FROM pg_catalog.pg_depend d"
        "\n    JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid"
        "\n    JOIN pg_catalog.pg_class v ON v.oid = r.ev_class"
        "\n    WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass"
        "\n      AND d.refobjid = {rel} AND d.refobjsubid = {attnum} AND v.oid <> d.refobjid{skip_view}"
    ).format(rel=regclass(table), attnum=attnum(table, column), skip=_skip(skip_fk), skip_view=_skip(skip_view))


def _skip(condition: sql.Composable | None) -> sql.Composable:
    return S("") if condition is None else S("\n      AND NOT {}").format(condition)


def _constraint_table_name(alias: str = "c") -> sql.Composable:
    """``schema.table`` of the table a ``pg_constraint`` row belongs to, spelled like the specs spell it."""
    return S("(SELECT n.nspname || '.' || r.relname FROM pg_catalog.pg_class r"
             " JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace WHERE r.oid = {a}.conrelid)").format(
        a=sql.Identifier(alias))


def released_foreign_key(ctx: PlanContext, alias: str = "c") -> sql.Composable:
    """A condition on the foreign-key row ``alias`` of ``pg_constraint``: the rollback removes this
    foreign key itself — it belongs to a table the rollback drops (one of ``ctx.rollback_drops`` that
    this version created, recorded in ``migration_objects``) or this version added it (AddForeignKey,
    optional foreign keys). Such a foreign key is no reason to refuse: :func:`release_foreign_keys`
    drops it before the table or column it references (the rows stay: the tables are copied to the
    backup schema when dropped)."""
    dropped_table = S("") if not ctx.rollback_drops else S(
        "(o.object_type = 'table' AND o.object_name IN ({drops})"
        " AND o.object_name = n.nspname || '.' || r.relname) OR ").format(
        drops=S(", ").join(literal(t) for t in sorted(ctx.rollback_drops)))
    removed = S("")
    if ctx.rollback_removes:
        names = S(", ").join(literal(n) for n in sorted(ctx.rollback_removes))
        removed = S("n.nspname || '.' || r.relname IN ({names})"
                    " OR n.nspname || '.' || r.relname || '.' || {a}.conname IN ({names}) OR ").format(
            names=names, a=sql.Identifier(alias))
        return S(
            "EXISTS (SELECT 1 FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace"
            " WHERE r.oid = {a}.conrelid AND ({removed}EXISTS (SELECT 1 FROM {tbl} o WHERE o.version = {v}"
            " AND ({dropped}(o.object_type = 'constraint'"
            " AND o.object_name = n.nspname || '.' || r.relname || '.' || {a}.conname)))))").format(
            tbl=_objects_table(ctx), a=sql.Identifier(alias), v=literal(ctx.version), dropped=dropped_table,
            removed=removed)
    return S(
        "EXISTS (SELECT 1 FROM {tbl} o, pg_catalog.pg_class r"
        " JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace"
        " WHERE r.oid = {a}.conrelid AND o.version = {v} AND ({dropped}(o.object_type = 'constraint'"
        " AND o.object_name = n.nspname || '.' || r.relname || '.' || {a}.conname)))").format(
        tbl=_objects_table(ctx), a=sql.Identifier(alias), v=literal(ctx.version), dropped=dropped_table)


def released_view(ctx: PlanContext, alias: str = "v") -> sql.Composable | None:
    """A condition on the ``pg_class`` row ``alias`` of a view: a RawSQL rollback of the migration
    drops it before the checked step (``ctx.rollback_removes``); None when there is none."""
    if not ctx.rollback_removes:
        return None
    return S("(SELECT n.nspname || '.' || {a}.relname FROM pg_catalog.pg_namespace n"
             " WHERE n.oid = {a}.relnamespace) IN ({names})").format(
        a=sql.Identifier(alias), names=S(", ").join(literal(n) for n in sorted(ctx.rollback_removes)))


def release_foreign_keys(ctx: PlanContext, table: str, column: str | None = None) -> sql.Composable:
    """Drop the foreign keys onto ``table`` (or onto ``table.column``) that the rollback removes
    anyway (:func:`released_foreign_key`), so the tables this migration created can be dropped in
    any order (a foreign key from an earlier-created table to a later one, cycles). Needs ``v_fk``
    (record); the constraints this version recorded as its own are forgotten."""
    on_column = S("") if column is None else S(" AND {} = ANY (c.confkey)").format(attnum(table, column))
    return S(
        "FOR v_fk IN SELECT c.conrelid::pg_catalog.regclass::text AS tbl, c.conname::text AS name,"
        " {t} AS spec_table\n"
        "    FROM pg_catalog.pg_constraint c\n"
        "    WHERE c.contype = 'f' AND c.confrelid = {rel} AND c.conrelid <> c.confrelid{col}\n"
        "      AND {released}\n"
        "LOOP\n"
        "    EXECUTE 'ALTER TABLE ' || v_fk.tbl || ' DROP CONSTRAINT ' || pg_catalog.quote_ident(v_fk.name);\n"
        "    DELETE FROM {objects} WHERE version = {v} AND object_type = 'constraint'"
        " AND object_name = v_fk.spec_table || '.' || v_fk.name;\n"
        "    RAISE NOTICE '%', {msg} || v_fk.name || ' on ' || v_fk.tbl;\n"
        "END LOOP;").format(
        t=_constraint_table_name(), rel=regclass(table), col=on_column,
        # Only what dbdeploy itself removes: what a RawSQL rollback should have dropped is left alone.
        released=released_foreign_key(replace(ctx, rollback_removes=frozenset())),
        objects=_objects_table(ctx), v=literal(ctx.version),
        msg=literal(f"dbdeploy {ctx.label}: dropped foreign key (the rollback removes it anyway) "))


def preflight_dependants(ctx: PlanContext, what: str, dependants: sql.Composable,
                         when: sql.Composable | None = None) -> sql.Composable:
    """Preflight form of :func:`refuse_if_dependants`: refuse when ``dependants`` (a text or NULL)
    is not NULL; ``when`` limits the check to the case the rollback step really drops (it exists and
    this version owns it)."""
    check = refuse_if_dependants(ctx, what, dependants)
    return check if when is None else if_then(when, check)


def _aggregated(rows: sql.Composable) -> sql.Composable:
    return S("(SELECT pg_catalog.string_agg(DISTINCT dep, ', ') FROM ({rows}\n) deps)").format(rows=rows)


def table_dependants(table: str, skip_fk: sql.Composable | None = None,
                     skip_view: sql.Composable | None = None) -> sql.Composable:
    """A text listing other tables' foreign keys and views that depend on ``table`` (or NULL)."""
    return _aggregated(table_dependant_rows(table, skip_fk, skip_view))


def column_dependants(table: str, column: str, skip_fk: sql.Composable | None = None,
                      skip_view: sql.Composable | None = None) -> sql.Composable:
    """Foreign keys from other tables and views that use ``table.column`` (or NULL)."""
    return _aggregated(column_dependant_rows(table, column, skip_fk, skip_view))


def attnum(table: str, column: str) -> sql.Composable:
    return S(
        "(SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = {rel} AND attname = {col})"
    ).format(rel=regclass(table), col=literal(column))


def refuse_if_dependants(ctx: PlanContext, what: str, dependants: sql.Composable) -> sql.Composable:
    """Raise (never CASCADE) when something outside the migration depends on ``what``."""
    return block(
        S("v_dependants := {};").format(dependants),
        if_then(
            S("v_dependants IS NOT NULL"),
            fail(ctx, f"refusing to drop {what}; these depend on it:",
                 "Drop or change the dependants first (dbdeploy never uses CASCADE), then re-run.",
                 detail=S("v_dependants")),
        ),
    )


# --- backups -----------------------------------------------------------------------------

def backup_name(ctx: PlanContext, *parts: str) -> str:
    """A deterministic backup table name for this migration (≤ 63 bytes)."""
    return derived_name(f"v{ctx.version}", *parts)


def rollback_backup_prefix(version: str, base: str) -> str:
    """The fixed part of a rollback-time backup's name (a timestamp follows it)."""
    return derived_name(f"r{version}", base)[:40].rstrip("_")


# The bigint variables copy_to_timestamped_backup may count into (KeyError for any other name).
_COUNTERS = {"v_copied": S("v_copied"), "v_total": S("v_total")}


def copy_to_timestamped_backup(ctx: PlanContext, base: str, select: sql.Composable,
                               what: str, count_into: str | None = None) -> sql.Composable:
    """Copy ``select`` into a new backup table named ``base_<timestamp>`` (needs ``v_backup``).

    Rollback-time backups get a timestamp so repeated forward/rollback cycles never collide;
    the name is announced with a NOTICE so the operator can find it. With ``count_into`` (the name
    of a declared bigint variable) the number of rows copied is stored there and announced too.
    """
    base = rollback_backup_prefix(ctx.version, base)
    query = render(select)
    if count_into is None:
        counted: list[sql.Composable] = []
        announce = S("RAISE NOTICE '%', {msg} || v_backup;").format(
            msg=literal(f"dbdeploy {ctx.label}: copied {what} to {ctx.backup_schema}."))
    else:
        counter = _COUNTERS[count_into]
        counted = [S("GET DIAGNOSTICS {} = ROW_COUNT;").format(counter)]
        announce = S("RAISE NOTICE '%', {msg} || {n} || {rows} || v_backup;").format(
            msg=literal(f"dbdeploy {ctx.label}: copied {what} ("), n=counter,
            rows=literal(f" row(s)) to {ctx.backup_schema}."))
    return block(
        S("v_backup := {base} || '_' || pg_catalog.to_char(pg_catalog.clock_timestamp(),"
          " 'YYYYMMDD_HH24MISS_US');").format(base=literal(base)),
        S("EXECUTE 'CREATE TABLE ' || pg_catalog.quote_ident({schema}) || '.'"
          " || pg_catalog.quote_ident(v_backup) || ' AS ' || {query};").format(
            schema=literal(ctx.backup_schema), query=literal(query)),
        *counted,
        acl.restrict_dynamic(ctx.backup_schema, S("v_backup")),
        announce,
    )


def backup_table(ctx: PlanContext, name: str) -> sql.Identifier:
    return ident(ctx.backup_schema, name)


def qualified_name_text(table: str) -> str:
    schema, name = split_table(table)
    return f"{schema}.{name}"


__all__ = [
    "NOT_NULL_PROVEN", "S", "UNVALIDATED_NOT_NULL", "attnum", "backup_name", "backup_table",
    "column_dependant_rows", "column_dependants", "column_exists", "constraint_exists", "constraint_not_validated",
    "copy_to_timestamped_backup", "fail", "forget_owned", "ident", "is_owned", "literal", "notice", "qualified",
    "preflight_dependants", "qualified_name_text", "record_owned", "refuse_if_dependants", "release_foreign_keys",
    "released_foreign_key", "released_view", "regclass", "relation_exists", "relation_missing", "render",
    "table_dependant_rows", "table_dependants", "warning",
]
