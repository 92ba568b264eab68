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
    if_then,
    notice,
    relation_missing,
)
from dbdeploy.ops.ddl import create_index, index_identifier
from dbdeploy.spec.components import Index
from dbdeploy.sql import ident, literal, qualified, regclass_literal, render


def add_not_valid(ctx: PlanContext, kind: str, table: str, name: str, body: sql.Composable, lock: str,
                  *, requires_table: str | None = None) -> Step:
    """Add a constraint NOT VALID unless it exists; optionally skip while ``requires_table`` is missing."""
    add = S("ALTER TABLE {t} ADD CONSTRAINT {n} {body} NOT VALID;").format(
        t=qualified(table), n=ident(name), body=body)
    guarded = if_then(S("NOT {}").format(constraint_exists(table, name)), add)
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
    text = S("ALTER TABLE IF EXISTS {t} DROP CONSTRAINT IF EXISTS {n};").format(
        t=qualified(table), n=ident(name))
    return Step("drop_constraint", table, "ACCESS EXCLUSIVE", True, render(text), f"drop {name} on {table}")


def drop_invalid_index(ctx: PlanContext, table: str, index: Index) -> str:
    """A DO block that drops the named index if a failed concurrent build left it INVALID."""
    qualified_index = render(index_identifier(table, index))
    invalid = S(
        "EXISTS (SELECT 1 FROM pg_catalog.pg_index WHERE indexrelid = pg_catalog.to_regclass({}) "
        "AND NOT indisvalid)").format(literal(qualified_index))
    body = if_then(invalid,
                   S("RAISE NOTICE '%', {};").format(literal(
                       f"dbdeploy {ctx.label}: index {qualified_index} is INVALID (an earlier build "
                       "failed); dropping it to rebuild")),
                   S("DROP INDEX {};").format(index_identifier(table, index)))
    return do_block(body)


def build_index_concurrently(ctx: PlanContext, kind: str, table: str, index: Index) -> Step:
    statements = [
        drop_invalid_index(ctx, table, index),
        render(create_index(table, index, concurrently=True)) + ";",
    ]
    return Step(kind, table, "SHARE UPDATE EXCLUSIVE", False, "\n".join(statements),
                f"build index {index.resolved_name(table)} on {table} concurrently")


def drop_index_concurrently(ctx: PlanContext, kind: str, table: str, index_name: str) -> Step:
    schema = table.partition(".")[0]
    text = S("DROP INDEX CONCURRENTLY IF EXISTS {};").format(ident(schema, index_name))
    return Step(kind, table, "SHARE UPDATE EXCLUSIVE", False, render(text),
                f"drop index {schema}.{index_name} concurrently")


def attach_unique(ctx: PlanContext, table: str, name: str) -> Step:
    body = if_then(
        S("NOT {}").format(constraint_exists(table, name)),
        S("ALTER TABLE {t} ADD CONSTRAINT {n} UNIQUE USING INDEX {n};").format(
            t=qualified(table), n=ident(name)))
    return Step("add_unique", table, "ACCESS EXCLUSIVE", True, do_block(body),
                f"attach unique index {name} to {table} as a constraint")


def table_exists_literal(table: str) -> sql.Composable:
    return regclass_literal(table)


__all__ = [
    "add_not_valid", "attach_unique", "block", "build_index_concurrently", "drop_constraint",
    "drop_index_concurrently", "drop_invalid_index", "validate",
]
