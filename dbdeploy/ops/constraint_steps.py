"""Step builders for constraints and indexes on tables that may already hold data.

Shared by the Add*/CreateIndex operations and by CreateTable (optional foreign keys), so the
online-safe forms exist exactly once:
- FK / CHECK: added ``NOT VALID`` (brief lock, no scan), validated in a separate transaction
  (``SHARE UPDATE EXCLUSIVE``: reads and writes continue);
- index: ``CREATE INDEX CONCURRENTLY``; an INVALID leftover from a failed build is dropped and
  rebuilt instead of being silently accepted by ``IF NOT EXISTS``;
- unique: a concurrent unique index, then ``ADD CONSTRAINT … UNIQUE USING INDEX``.
"""

from __future__ import annotations

from psycopg import sql

from dbdeploy.ops.base import PlanContext, Step
from dbdeploy.ops.common import (
    S,
    block,
    constraint_exists,
    constraint_not_validated,
    do_block,
    fail,
    forget_owned,
    if_then,
    is_owned,
    notice,
    record_owned,
    relation_exists,
    relation_missing,
    released_foreign_key,
)
from dbdeploy.ops.ddl import create_index, index_identifier
from dbdeploy.spec.components import Index
from dbdeploy.sql import ident, literal, qualified, regclass_literal, render


def add_not_valid(ctx: PlanContext, kind: str, table: str, name: str, body: sql.Composable, lock: str,
                  *, requires_table: str | None = None) -> Step:
    """Add a constraint NOT VALID unless it exists; optionally skip while ``requires_table`` is missing."""
    add = S("ALTER TABLE {t} ADD CONSTRAINT {n} {body} NOT VALID;").format(
        t=qualified(table), n=ident(name), body=body)
    guarded = if_then(S("NOT {}").format(constraint_exists(table, name)), add,
                      record_owned(ctx, "constraint", f"{table}.{name}"))
    if requires_table:
        guarded = if_then(
            relation_missing(requires_table),
            notice(ctx, f"{requires_table} does not exist yet; foreign key {name} skipped "
                        "(re-run this migration once it exists to add it)"),
            otherwise=[guarded])
    return Step(kind, table, lock, True, do_block(guarded), f"add {name} on {table} (NOT VALID)")


def validate(ctx: PlanContext, table: str, name: str) -> Step:
    """VALIDATE in its own transaction; a no-op when validated or absent (skipped optional FK)."""
    body = if_then(constraint_not_validated(table, name),
                   S("ALTER TABLE {t} VALIDATE CONSTRAINT {n};").format(t=qualified(table), n=ident(name)))
    return Step("validate_constraint", table, "SHARE UPDATE EXCLUSIVE", True, do_block(body),
                f"validate {name} on {table}")


def drop_constraint(ctx: PlanContext, table: str, name: str) -> Step:
    """Drop a constraint only if this migration added it (a pre-existing one is left alone)."""
    key = f"{table}.{name}"
    body = if_then(
        is_owned(ctx, "constraint", key),
        S("ALTER TABLE IF EXISTS {t} DROP CONSTRAINT IF EXISTS {n};").format(t=qualified(table), n=ident(name)),
        forget_owned(ctx, "constraint", key),
        otherwise=[if_then(constraint_exists(table, name),
                           notice(ctx, f"constraint {name} on {table} was not added by {ctx.label}; left in place"))])
    return Step("drop_constraint", table, "ACCESS EXCLUSIVE", True, do_block(body), f"drop {name} on {table}")


def drop_invalid_index(ctx: PlanContext, table: str, index: Index) -> str:
    """A DO block that drops the named index if a failed concurrent build left it INVALID."""
    qualified_index = render(index_identifier(table, index))
    invalid = S(
        "EXISTS (SELECT 1 FROM pg_catalog.pg_index WHERE indexrelid = pg_catalog.to_regclass({}) "
        "AND NOT indisvalid)").format(literal(qualified_index))
    body = block(
        if_then(S("pg_catalog.to_regclass({}) IS NULL").format(literal(qualified_index)),
                record_owned(ctx, "index", qualified_index_name(table, index))),
        if_then(invalid,
                S("RAISE NOTICE '%', {};").format(literal(
                    f"dbdeploy {ctx.label}: index {qualified_index} is INVALID (an earlier build "
                    "failed); dropping it to rebuild")),
                S("DROP INDEX {};").format(index_identifier(table, index))))
    return do_block(body)


def qualified_index_name(table: str, index: Index) -> str:
    return f"{table.partition('.')[0]}.{index.resolved_name(table)}"


def build_index_concurrently(ctx: PlanContext, kind: str, table: str, index: Index) -> Step:
    statements = [
        drop_invalid_index(ctx, table, index),
        render(create_index(table, index, concurrently=True)) + ";",
    ]
    return Step(kind, table, "SHARE UPDATE EXCLUSIVE", False, "\n".join(statements),
                f"build index {index.resolved_name(table)} on {table} concurrently")


def drop_owned_index(ctx: PlanContext, table: str, index_name: str) -> Step:
    """Rollback of an index this migration built; one that existed before is left alone.

    The ownership test needs PL/pgSQL, where CONCURRENTLY is not allowed, so the drop is a plain
    DROP INDEX: it needs a brief ACCESS EXCLUSIVE lock, bounded by lock_timeout (and retried by
    the executor); dropping is instant once the lock is granted.
    """
    schema = table.partition(".")[0]
    key = f"{schema}.{index_name}"
    body = if_then(
        is_owned(ctx, "index", key),
        S("DROP INDEX IF EXISTS {};").format(ident(schema, index_name)),
        forget_owned(ctx, "index", key),
        otherwise=[if_then(S("pg_catalog.to_regclass({}) IS NOT NULL").format(
                               literal(render(ident(schema, index_name)))),
                           notice(ctx, f"index {key} was not built by {ctx.label}; left in place"))])
    return Step("drop_index", table, "ACCESS EXCLUSIVE", True, do_block(body),
                f"drop index {key} if {ctx.label} built it")


def drop_index_concurrently(ctx: PlanContext, kind: str, table: str, index_name: str) -> Step:
    schema = table.partition(".")[0]
    text = S("DROP INDEX CONCURRENTLY IF EXISTS {};").format(ident(schema, index_name))
    return Step(kind, table, "SHARE UPDATE EXCLUSIVE", False, render(text),
                f"drop index {schema}.{index_name} concurrently")


def attach_unique(ctx: PlanContext, table: str, name: str) -> Step:
    body = if_then(
        S("NOT {}").format(constraint_exists(table, name)),
        S("ALTER TABLE {t} ADD CONSTRAINT {n} UNIQUE USING INDEX {n};").format(
            t=qualified(table), n=ident(name)),
        record_owned(ctx, "constraint", f"{table}.{name}"))
    return Step("add_unique", table, "ACCESS EXCLUSIVE", True, do_block(body),
                f"attach unique index {name} to {table} as a constraint")


def index_dependants_preflight(ctx: PlanContext, table: str, index_name: str,
                               owned: sql.Composable) -> sql.Composable:
    """Preflight of a rollback that drops a unique index (or the unique constraint using it): foreign
    keys whose referenced key is that index make DROP fail, so refuse before any change, naming
    them all (foreign keys the rollback removes itself do not count). ``owned`` is the condition
    under which the rollback step really drops the index."""
    index = literal(render(ident(table.partition(".")[0], index_name)))
    dependants = S(
        "(SELECT pg_catalog.string_agg(c.conrelid::pg_catalog.regclass::text || ' (foreign key '"
        " || c.conname || ')', ', ' ORDER BY 1) FROM pg_catalog.pg_constraint c"
        " WHERE c.contype = 'f' AND c.conindid = pg_catalog.to_regclass({index}) AND NOT {released})").format(
        index=index, released=released_foreign_key(ctx))
    return if_then(
        S("pg_catalog.to_regclass({}) IS NOT NULL AND {}").format(index, owned),
        S("v_dependants := {};").format(dependants),
        if_then(S("v_dependants IS NOT NULL"),
                fail(ctx, f"refusing to drop index {index_name} of {table}; these foreign keys use it as "
                          "their referenced key:",
                     "Drop or change the dependants first (dbdeploy never uses CASCADE), then re-run.",
                     detail=S("v_dependants"))))


def unique_index_rebuild_preflight(ctx: PlanContext, table: str, index: Index) -> sql.Composable | None:
    """Preflight of a rollback that rebuilds a unique index (DropIndex): rows written since the drop
    may now have duplicate keys, and the concurrent build would fail after earlier rollback steps
    changed things. Only for indexes on plain columns (expression keys are left to the build)."""
    if not index.unique or not all(k.isidentifier() for k in index.columns):
        return None
    keys = S(", ").join(ident(k) for k in index.columns)
    not_null = S(" AND ").join(S("{} IS NOT NULL").format(ident(k)) for k in index.columns)
    where = S(" AND ({})").format(S(index.where)) if index.where else S("")
    qualified_index = literal(render(index_identifier(table, index)))
    duplicates = S("SELECT count(*) FROM (SELECT 1 FROM {t} WHERE {nn}{where} GROUP BY {keys}"
                   " HAVING count(*) > 1) dup").format(t=qualified(table), nn=not_null, where=where, keys=keys)
    return if_then(
        S("pg_catalog.to_regclass({}) IS NULL AND {}").format(qualified_index, relation_exists(table)),
        S("v_count := ({});").format(duplicates),
        if_then(S("v_count > 0"),
                fail(ctx, f"cannot rebuild unique index {index.resolved_name(table)} on {table}: key values "
                          f"({', '.join(index.columns)}) written since the drop are duplicated; duplicated keys:",
                     "Remove the duplicates (or rebuild the index by hand as non-unique), then re-run.",
                     detail=S("v_count"))))


def table_exists_literal(table: str) -> sql.Composable:
    return regclass_literal(table)


__all__ = [
    "add_not_valid", "attach_unique", "block", "build_index_concurrently", "drop_constraint",
    "drop_index_concurrently", "drop_owned_index", "drop_invalid_index", "index_dependants_preflight",
    "unique_index_rebuild_preflight", "validate",
]
