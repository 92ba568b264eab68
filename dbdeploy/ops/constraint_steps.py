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
    forget_owned,
    if_then,
    is_owned,
    notice,
    record_owned,
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
    guarded = if_then(S("NOT {}").format(constraint_exists(table, name)), add,
                      record_owned(ctx, "constraint", f"{table}.{name}"))
    if requires_table:
        guarded = if_then(
            relation_missing(requires_table),
            notice(ctx, f"{requires_table} does not exist yet; foreign key {name} skipped "
                        "(re-run this migration once it exists to add it)"),
            otherwise=[guarded])
    return Step(kind, table, lock, True, do_block(guarded), f"add {name} on {table} (NOT VALID)")


def failed_hint(ctx: PlanContext) -> str:
    """The one way on after a failed version (README "When a migration fails"), for error hints."""
    return (f"{ctx.label} is failed. The way on: roll it back with the bundle that ran (`dbdeploy rollback --to "
            f"<the version before {ctx.label}>`; with psql, that bundle's rollback file), fix the spec (or "
            "the data), `dbdeploy generate`, `dbdeploy apply`.")


CLEANUP_LOCK_TIMEOUT = S(
    "COALESCE(NULLIF(pg_catalog.current_setting('dbdeploy.lock_timeout', true), ''), '5s')")


def validate(ctx: PlanContext, table: str, name: str, *, owned_key: str | None = None) -> Step:
    """VALIDATE, run outside a transaction block; a no-op when validated or absent (skipped optional FK).

    When VALIDATE fails on the data (any error but a lock timeout or deadlock, which the executor
    retries), the NOT VALID constraint would keep rejecting writes that were legal before the
    migration. So the error is caught in an inner block, the constraint is dropped (only if this
    migration added it: ``owned_key`` names its ownership record; ``None`` for dbdeploy's own
    helper checks), that drop is committed, and the original error is raised again with the way
    on as its hint. Transaction control inside DO needs the block to run outside a transaction
    block, hence ``tx=none``. The drop takes ACCESS EXCLUSIVE for a moment, bounded by the
    environment's ``lock_timeout`` (``dbdeploy.lock_timeout``; 5s under psql); if it cannot get
    the lock the constraint stays and the error says so.
    """
    t, n = qualified(table), ident(name)
    drop = [S("PERFORM pg_catalog.set_config('lock_timeout', {}, true);").format(CLEANUP_LOCK_TIMEOUT),
            S("ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {n};").format(t=t, n=n)]
    if owned_key is not None:
        drop.append(forget_owned(ctx, "constraint", owned_key))
    dropped = f"the NOT VALID constraint {name} on {table} was dropped so it no longer rejects writes"
    kept = (f"the NOT VALID constraint {name} on {table} is still in place: roll {ctx.label} back to remove it "
            "(dropping it failed: ")
    cleanup = block(
        S("BEGIN"),
        *[S("    ") + s for s in drop],
        S("    v_cleanup := {};").format(literal(dropped)),
        S("EXCEPTION WHEN OTHERS THEN"),
        S("    v_cleanup := {} || SQLERRM || ')';").format(literal(kept)),
        S("END;"))
    if owned_key is not None:
        cleanup = if_then(is_owned(ctx, "constraint", owned_key), cleanup,
                          otherwise=[S("v_cleanup := {};").format(literal(
                              f"constraint {name} on {table} was not added by {ctx.label}; left in place"))])
    catch = block(
        S("BEGIN"),
        S("    ALTER TABLE {t} VALIDATE CONSTRAINT {n};").format(t=t, n=n),
        S("EXCEPTION WHEN OTHERS THEN"),
        S("    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,"),
        S("        v_detail = PG_EXCEPTION_DETAIL;"),
        S("END;"))
    body = block(
        if_then(constraint_not_validated(table, name), catch),
        if_then(S("v_state IS NULL"), S("RETURN;")),
        if_then(S("v_state IN ('55P03', '40P01')"),
                S("RAISE EXCEPTION USING ERRCODE = v_state, MESSAGE = v_message;")),
        cleanup,
        S("COMMIT;"),
        S("RAISE EXCEPTION USING ERRCODE = v_state,"),
        S("    MESSAGE = {label} || v_message").format(label=literal(f"dbdeploy {ctx.label}: ")),
        S("        || COALESCE(' (' || NULLIF(v_detail, '') || ')', '') || '; ' || v_cleanup,"),
        S("    HINT = {};").format(literal(failed_hint(ctx))),
    )
    return Step("validate_constraint", table, "SHARE UPDATE EXCLUSIVE", False,
                do_block(body, declare=["v_state text", "v_message text", "v_detail text", "v_cleanup text"]),
                f"validate {name} on {table} (on a data error: drop the NOT VALID constraint, then fail)")


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
                S("DROP INDEX {};").format(index_identifier(table, index))),
        duplicate_precheck(ctx, table, index, qualified_index) if index.unique else None)
    return do_block(body, declare=["v_duplicated bigint"] if index.unique else None)


def duplicate_precheck(ctx: PlanContext, table: str, index: Index, qualified_index: str) -> sql.Composable:
    """Refuse before a unique index is built when the rows already hold duplicate keys.

    A failed ``CREATE UNIQUE INDEX CONCURRENTLY`` leaves an INVALID index behind, and once the
    build got past its first phase (``indisready``) that index enforces uniqueness on new rows
    although the migration failed. Counting duplicates first (a scan under ACCESS SHARE) turns
    the common failure — duplicates in the data — into an error before anything is built. A
    duplicate written between this check and the build can still fail it; the executor then
    drops the INVALID index it owns (see ``Deployment._release``), and rolling back the failed
    version drops it under psql.
    """
    keys = [ident(k) if k.isidentifier() else S("({})").format(S(k)) for k in index.columns]
    condition = S(" AND ").join([S("{} IS NOT NULL").format(k) for k in keys]
                                + ([S("({})").format(S(index.where))] if index.where else []))
    duplicated = S("SELECT pg_catalog.count(*) FROM (SELECT 1 FROM {t} WHERE {cond} GROUP BY {keys}"
                   " HAVING pg_catalog.count(*) > 1) AS d").format(
        t=qualified(table), cond=condition, keys=S(", ").join(keys))
    return block(
        if_then(S("pg_catalog.to_regclass({}) IS NULL").format(literal(qualified_index)),
                S("v_duplicated := ({});").format(duplicated),
                if_then(S("v_duplicated > 0"),
                        S("RAISE EXCEPTION '% %', {msg}, v_duplicated || ' key(s) appear more than once'"
                          " USING ERRCODE = 'unique_violation', HINT = {hint};").format(
                            msg=literal(f"dbdeploy {ctx.label}: cannot build unique index {qualified_index} on "
                                        f"{table} ({', '.join(index.columns)}):"),
                            hint=literal("Nothing was built. " + failed_hint(ctx))))))


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


def table_exists_literal(table: str) -> sql.Composable:
    return regclass_literal(table)


__all__ = [
    "add_not_valid", "attach_unique", "block", "build_index_concurrently", "drop_constraint",
    "drop_index_concurrently", "drop_owned_index", "drop_invalid_index", "validate",
]
