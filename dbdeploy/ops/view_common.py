"""What CreateView, ReplaceView and DropView share: the fact the specs record, the dependants query,
the saved definitions table and the SQL that saves a view's definition and re-creates it.

A view's previous definition is read from the catalog at forward time and kept as data in
``<backup schema>.saved_views``: ``pg_get_viewdef(oid, true)`` (PostgreSQL's deparse of the view's
rule, printed with the bundle's ``search_path = pg_catalog`` so every relation is schema-qualified),
the view's column names in order, its ``reloptions`` (``security_barrier``, ``check_option``,
``security_invoker``), its comment and its grants (:func:`dbdeploy.sql.acl.grants_of`). The rollback
re-creates the view from that row with ``EXECUTE`` of the saved catalog text — never of spec text —
with the column names (``quote_ident``) and the options as the catalog spelled them.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from dbdeploy.model.names import split_table
from dbdeploy.ops.base import PlanContext, SchemaState
from dbdeploy.ops.common import S, fail
from dbdeploy.sql import acl, ident, literal, qualified, regclass, render
from dbdeploy.sql.blocks import block, if_then


@dataclass(frozen=True)
class ViewFact:
    """A view the specs created or replaced: its canonical query text (pglast's rendering), the
    relations the query reads, whether it is materialized, and the key columns of the unique indexes
    without WHERE its spec gives it (a materialized view; REFRESH … CONCURRENTLY needs one)."""

    query: str
    reads: frozenset[str] = frozenset()
    materialized: bool = False
    unique_keys: tuple[tuple[str, ...], ...] = ()


def saved_views_table(ctx: PlanContext) -> sql.Identifier:
    return ident(ctx.backup_schema, "saved_views")


def ensure_saved_views(ctx: PlanContext) -> sql.Composable:
    """PL/pgSQL: the saved definitions table exists, readable by its owner (and the backup readers) only."""
    meta = saved_views_table(ctx)
    return block(
        S("CREATE TABLE IF NOT EXISTS {meta} (\n"
          "    version text NOT NULL, operation integer NOT NULL, view_name text NOT NULL,\n"
          "    relkind text NOT NULL, definition text NOT NULL, columns text[] NOT NULL, options text[],\n"
          "    comment text, grants jsonb NOT NULL DEFAULT '[]',\n"
          "    saved_at timestamptz NOT NULL DEFAULT pg_catalog.now(),\n"
          "    PRIMARY KEY (version, operation)\n"
          ");").format(meta=meta),
        acl.restrict_table(meta))


def saved_where(ctx: PlanContext, alias: str = "m") -> sql.Composable:
    return S("{a}.version = {v} AND {a}.operation = {i}").format(
        a=sql.Identifier(alias), v=literal(ctx.version), i=literal(ctx.index))


def saved_exists(ctx: PlanContext) -> sql.Composable:
    """True when this operation of this version saved a definition (the table may not exist yet:
    the subquery is planned only when it does)."""
    meta = saved_views_table(ctx)
    return S("({reg} IS NOT NULL AND EXISTS (SELECT 1 FROM {meta} AS m WHERE {w}))").format(
        reg=regclass(meta), meta=meta, w=saved_where(ctx))


def save_definition(ctx: PlanContext, view: str) -> sql.Composable:
    """PL/pgSQL: replace this operation's saved row with ``view``'s definition as the catalog has it now."""
    meta, rel = saved_views_table(ctx), regclass(view)
    return block(
        S("DELETE FROM {meta} AS m WHERE {w};").format(meta=meta, w=saved_where(ctx)),
        S("INSERT INTO {meta} (version, operation, view_name, relkind, definition, columns, options, comment,"
          " grants)\n"
          "SELECT {v}, {i}, {n}, c.relkind::text, pg_catalog.pg_get_viewdef(c.oid, true),\n"
          "    ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0"
          " AND NOT a.attisdropped ORDER BY a.attnum),\n"
          "    c.reloptions::text[], pg_catalog.obj_description(c.oid, 'pg_class'), {grants}\n"
          "FROM pg_catalog.pg_class c WHERE c.oid = {rel};").format(
            meta=meta, v=literal(ctx.version), i=literal(ctx.index), n=literal(view), rel=rel,
            grants=acl.grants_of(rel)))


def load_saved(ctx: PlanContext) -> sql.Composable:
    """PL/pgSQL (needs ``v_def text``, ``v_columns text[]``, ``v_options text[]``, ``v_comment text``,
    ``v_grants jsonb``): this operation's saved row into those variables (``FOUND`` tells)."""
    return S("SELECT m.definition, m.columns, m.options, m.comment, m.grants"
             " INTO v_def, v_columns, v_options, v_comment, v_grants\n"
             "FROM {meta} AS m WHERE {w};").format(meta=saved_views_table(ctx), w=saved_where(ctx))


SAVED_DECLARE = ["v_def text", "v_columns text[]", "v_options text[]", "v_comment text", "v_grants jsonb",
                 "v_g jsonb", "v_role text"]


def recreate_statement(view: str, *, replace: bool) -> sql.Composable:
    """PL/pgSQL: ``EXECUTE`` of ``CREATE [OR REPLACE] VIEW <view> (<saved columns>) [WITH (<saved options>)]
    AS <saved definition>`` — every part of the text is catalog data saved at forward time, the column
    names through ``quote_ident``."""
    verb = S("'CREATE OR REPLACE VIEW '") if replace else S("'CREATE VIEW '")
    return S(
        "EXECUTE {verb} || {qv}\n"
        "    || ' (' || (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c), ', ' ORDER BY o)"
        " FROM pg_catalog.unnest(v_columns) WITH ORDINALITY AS x(c, o)) || ')'\n"
        "    || CASE WHEN v_options IS NULL THEN '' ELSE ' WITH (' || pg_catalog.array_to_string(v_options, ', ')"
        " || ')' END\n"
        "    || ' AS ' || v_def;").format(verb=verb, qv=literal(render(qualified(view))))


def restore_extras(view: str) -> sql.Composable:
    """PL/pgSQL after :func:`recreate_statement` of a view that was dropped: its saved comment and
    grants (a role dropped since, or an unknown privilege, is skipped with a warning)."""
    qv = literal(render(qualified(view)))
    return block(
        if_then(S("v_comment IS NOT NULL"),
                S("EXECUTE 'COMMENT ON VIEW ' || {qv} || ' IS ' || pg_catalog.quote_literal(v_comment);").format(
                    qv=qv)),
        S("FOR v_g IN SELECT e FROM pg_catalog.jsonb_array_elements(COALESCE(v_grants, '[]')) AS e"
          " WHERE e ->> 'on' = 'relation' LOOP\n"
          "    IF NOT (v_g ->> 'privilege' = ANY ({privileges})) THEN\n"
          "        RAISE WARNING 'dbdeploy: not restoring unknown privilege % on %', v_g ->> 'privilege', {qv};\n"
          "        CONTINUE;\n"
          "    END IF;\n"
          "    IF v_g ->> 'grantee' IS NULL THEN\n"
          "        v_role := 'PUBLIC';\n"
          "    ELSE\n"
          "        SELECT pg_catalog.quote_ident(r.rolname) INTO v_role FROM pg_catalog.pg_roles r"
          " WHERE r.rolname = v_g ->> 'grantee';\n"
          "        IF NOT FOUND THEN\n"
          "            RAISE WARNING 'dbdeploy: role % no longer exists; its % on % is not restored',"
          " v_g ->> 'grantee', v_g ->> 'privilege', {qv};\n"
          "            CONTINUE;\n"
          "        END IF;\n"
          "    END IF;\n"
          "    EXECUTE 'GRANT ' || (v_g ->> 'privilege') || ' ON ' || {qv} || ' TO ' || v_role\n"
          "        || CASE WHEN (v_g ->> 'grantable')::boolean THEN ' WITH GRANT OPTION' ELSE '' END;\n"
          "END LOOP;").format(qv=qv, privileges=literal(["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE",
                                                         "REFERENCES", "TRIGGER"])))


# --- dependants: refuse instead of CASCADE ----------------------------------------------------

def dependant_rows(view: str, skip_view: sql.Composable | None = None) -> sql.Composable:
    """One row (column ``dep``) per object that depends on ``view`` (``pg_depend``, normal dependencies):
    another view or materialized view through its rewrite rule (named ``schema.name (view)``), anything
    else as ``pg_describe_object`` names it (a function with a SQL-standard body, …). ``skip_view`` (a
    condition on the dependant view's ``pg_class`` row ``v``) leaves out views the rollback removes itself."""
    skip = S("") if skip_view is None else S(" AND NOT {}").format(skip_view)
    return S(
        "\n    SELECT v.oid::pg_catalog.regclass::text"
        " || CASE v.relkind WHEN 'm' THEN ' (materialized view)' ELSE ' (view)' END AS dep"
        "\n    FROM pg_catalog.pg_depend d"
        "\n    JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid"
        "\n    JOIN pg_catalog.pg_class v ON v.oid = r.ev_class"
        "\n    WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass"
        "\n      AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
        "\n      AND d.refobjid = {rel} AND v.oid <> d.refobjid{skip}"
        "\n    UNION ALL"
        "\n    SELECT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid)"
        "\n    FROM pg_catalog.pg_depend d"
        "\n    WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = {rel}"
        "\n      AND d.deptype = 'n' AND d.classid <> 'pg_catalog.pg_rewrite'::pg_catalog.regclass"
    ).format(rel=regclass(view), skip=skip)


def dependants(view: str, skip_view: sql.Composable | None = None) -> sql.Composable:
    """A text listing what depends on ``view`` (see :func:`dependant_rows`), or NULL."""
    return S("(SELECT pg_catalog.string_agg(DISTINCT dep, ', ') FROM ({rows}\n) deps)").format(
        rows=dependant_rows(view, skip_view))


def owned_view(ctx: PlanContext, alias: str = "v") -> sql.Composable:
    """A condition on the ``pg_class`` row ``alias`` of a dependant view: this version created it
    (CreateView or CreateMaterializedView recorded it), so its own rollback, which runs before, drops it;
    or a RawSQL rollback of the migration drops it (``ctx.rollback_removes``)."""
    name = S("(SELECT n.nspname || '.' || {a}.relname FROM pg_catalog.pg_namespace n"
             " WHERE n.oid = {a}.relnamespace)").format(a=sql.Identifier(alias))
    owned = S("EXISTS (SELECT 1 FROM {objects} o WHERE o.version = {v}"
              " AND o.object_type IN ('view', 'materialized_view') AND o.object_name = {name})").format(
        objects=ident(ctx.history_schema, "migration_objects"), v=literal(ctx.version), name=name)
    if ctx.rollback_removes:
        owned = S("({} OR {} IN ({}))").format(owned, name,
                                              S(", ").join(literal(n) for n in sorted(ctx.rollback_removes)))
    return owned


def refuse_dependants(ctx: PlanContext, what: str, view: str, hint: str,
                      skip_view: sql.Composable | None = None) -> sql.Composable:
    """PL/pgSQL (needs ``v_dependants text``): stop, naming them, when anything depends on ``view``."""
    return block(
        S("v_dependants := {};").format(dependants(view, skip_view)),
        if_then(S("v_dependants IS NOT NULL"),
                fail(ctx, f"{what}; these depend on {view}:", hint, detail=S("v_dependants"))))


def relkind_is(view: str, kinds: str) -> sql.Composable:
    return S("EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = {rel} AND c.relkind = ANY ({k}))").format(
        rel=regclass(view), k=literal(list(kinds)))


# --- the probe: the spec's query as PostgreSQL prints it ---------------------------------------

PROBE = ident("pg_temp", "dbdeploy_view_probe")


def same_definition(view: str, query: sql.Composable) -> sql.Composable:
    """PL/pgSQL (needs ``v_actual text``, ``v_expected text``): ``v_expected`` is ``pg_get_viewdef`` of a
    temporary view created from ``query`` (dropped again right after), ``v_actual`` the existing view's,
    both with their options; equal when the existing view is defined exactly as the spec says (the same
    deparse, printed in the same session with the same search_path)."""
    definition = S("pg_catalog.pg_get_viewdef(c.oid, true) || COALESCE(' WITH ' || c.reloptions::text, '')"
                   " || ' COLUMNS ' || ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a"
                   " WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)::text")
    return block(
        S("DROP VIEW IF EXISTS {};").format(PROBE),
        S("CREATE TEMPORARY VIEW {p} AS {q};").format(p=ident("dbdeploy_view_probe"), q=query),
        S("SELECT {d} INTO v_expected FROM pg_catalog.pg_class c"
          " WHERE c.oid = 'pg_temp.dbdeploy_view_probe'::pg_catalog.regclass;").format(d=definition),
        S("DROP VIEW {};").format(PROBE),
        S("SELECT {d} INTO v_actual FROM pg_catalog.pg_class c WHERE c.oid = {rel};").format(
            d=definition, rel=regclass(view)))


# --- what the specs know ------------------------------------------------------------------------

def check_reads(state: SchemaState, query, what: str = "query") -> None:
    """Refuse (ValueError: reason — fix) a query reading a relation the specs dropped and did not create
    again, or a column ``alias.column`` of a table the specs created that it does not have."""
    dropped = {table for table, column in state.dropped if not column}
    for relation in sorted(query.relations):
        if relation in dropped and relation not in state.tables and relation not in state.views:
            raise ValueError(f"{what} reads {relation}, which an earlier operation drops — fix: read an existing "
                             "table or view, or create it first")
    for relation, column in sorted(query.references):
        table = state.tables.get(relation)
        if table is not None and column not in table.columns:
            raise ValueError(f"{what} reads column {column!r} of {relation}, which it does not have (its columns: "
                             f"{', '.join(sorted(table.columns)) or 'none'}) — fix: use one of its columns, or add the "
                             "column first (AddColumn)")


def view_schema(view: str) -> str:
    return split_table(view)[0]


def read_relations_exist(view: str, query, earlier_created, what: str = "view") -> list:
    """Checklist prerequisites: each relation ``query`` reads exists, except those the migration's earlier
    operations create (``earlier_created``: tables, and views that CreateView/CreateMaterializedView add there)."""
    from dbdeploy.ops.base import CheckQuery
    from dbdeploy.ops.checklist_queries import query as checklist_query

    return [CheckQuery(f"Relation {r} exists (read by {what} {view})",
                       checklist_query(S("SELECT {} IS NOT NULL AS relation_exists").format(regclass(r))), "true",
                       key=f"relation-exists:{r}")
            for r in sorted(query.relations) if r not in earlier_created]
