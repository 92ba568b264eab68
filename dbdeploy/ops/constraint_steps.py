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

from dbdeploy.bundle.step import Step
from dbdeploy.model.components import Index
from dbdeploy.model.names import derived_name
from dbdeploy.ops import existing
from dbdeploy.ops.base import PlanContext
from dbdeploy.ops.common import (
    S,
    constraint_exists,
    constraint_not_validated,
    fail,
    forget_owned,
    is_owned,
    notice,
    record_owned,
    regclass,
    relation_exists,
    relation_missing,
    released_foreign_key,
    require_server_version,
)
from dbdeploy.ops.ddl import create_index, index_identifier
from dbdeploy.sql import IndexElement, ident, literal, qualified, render
from dbdeploy.sql.blocks import block, do_block, if_then


def check_existing_constraint(ctx: PlanContext, table: str, name: str, *, probe_body: sql.Composable | None = None,
                              expected_text: sql.Composable | None = None) -> sql.Composable:
    """PL/pgSQL (needs ``v_diff``): stop when constraint ``name`` of ``table`` exists with another
    definition than the spec's. ``probe_body`` (CHECK, UNIQUE) is added to a probe copy of the
    table so PostgreSQL spells the expected definition; ``expected_text`` (foreign keys) is the
    ``pg_get_constraintdef`` text computed in the database. A ``NOT VALID`` constraint counts as
    its valid form: the next step validates it."""
    what = f"constraint {name} on {table}"
    if probe_body is not None:
        return block(
            existing.probe_like(table),
            S("ALTER TABLE {p} ADD CONSTRAINT {n} {b};").format(p=existing.PROBE, n=ident(name), b=probe_body),
            existing.compare_constraints(table, probed=[name], strip_not_valid=True),
            existing.drop_probe(),
            existing.refuse_if_different(ctx, what),
        )
    return block(existing.compare_constraints(table, texts={name: expected_text}, strip_not_valid=True),
                 existing.refuse_if_different(ctx, what))


def add_not_valid(ctx: PlanContext, kind: str, table: str, name: str, body: sql.Composable, lock: str,
                  *, requires_table: str | None = None, expected_text: sql.Composable | None = None) -> Step:
    """Add a constraint NOT VALID unless it exists; optionally skip while ``requires_table`` is missing.

    An existing constraint of that name must have the spec's definition (compared through a probe,
    or with ``expected_text`` for foreign keys), or the step stops. ``lock`` is the lock of the
    ALTER TABLE form (PostgreSQL docs, ALTER TABLE): ``ADD FOREIGN KEY`` takes SHARE ROW EXCLUSIVE
    on both tables, ``ADD CHECK`` ACCESS EXCLUSIVE.
    """
    add = S("ALTER TABLE {t} ADD CONSTRAINT {n} {body} NOT VALID;").format(
        t=qualified(table), n=ident(name), body=body)
    check = (check_existing_constraint(ctx, table, name, expected_text=expected_text) if expected_text is not None
             else check_existing_constraint(ctx, table, name, probe_body=body))
    guarded = if_then(S("NOT {}").format(constraint_exists(table, name)), add,
                      record_owned(ctx, "constraint", f"{table}.{name}"), otherwise=[check])
    if requires_table:
        guarded = if_then(
            relation_missing(requires_table),
            notice(ctx, f"{requires_table} does not exist yet; foreign key {name} skipped "
                        "(re-run this migration once it exists to add it)"),
            otherwise=[guarded])
    return Step(kind, table, lock, True, do_block(guarded, declare=existing.DECLARE),
                f"add {name} on {table} (NOT VALID)")


def failed_hint(ctx: PlanContext) -> str:
    """The one way on after a failed version (README "When a migration fails"), for error hints."""
    return (f"{ctx.label} is failed. The way on: roll it back with the bundle that ran (`dbdeploy rollback --to "
            f"<the version before {ctx.label}>`; with psql, that bundle's rollback file), fix the spec (or "
            "the data), `dbdeploy generate`, `dbdeploy apply`.")


CLEANUP_LOCK_TIMEOUT = S(
    "COALESCE(NULLIF(pg_catalog.current_setting('dbdeploy.lock_timeout', true), ''), '5s')")


def validate(ctx: PlanContext, table: str, name: str, *, owned_key: str | None = None,
             explain: sql.Composable | None = None) -> Step:
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

    VALIDATE takes SHARE UPDATE EXCLUSIVE on the table (ALTER TABLE docs: reads and writes continue);
    validating a foreign key also takes ROW SHARE on the referenced table, which is weaker.

    ``explain`` (PL/pgSQL; may read ``v_state`` and change ``v_message``) runs after the clean-up is
    committed, in a new transaction holding no lock on the table yet, before the error is raised: a
    count of the offending rows for the message (SetNotNull).
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
        *([explain] if explain is not None else []),
        S("RAISE EXCEPTION USING ERRCODE = v_state,"),
        S("    MESSAGE = {label} || v_message").format(label=literal(f"dbdeploy {ctx.label}: ")),
        S("        || COALESCE(' (' || NULLIF(v_detail, '') || ')', '') || '; ' || v_cleanup,"),
        S("    HINT = {};").format(literal(failed_hint(ctx))),
    )
    return Step("validate_constraint", table, "SHARE UPDATE EXCLUSIVE", False,
                do_block(body, declare=["v_state text", "v_message text", "v_detail text", "v_cleanup text"]),
                f"validate {name} on {table} (on a data error: drop the NOT VALID constraint, then fail)")


def add_foreign_key_from_json(table_text: sql.Composable, name: sql.Composable) -> sql.Composable:
    """PL/pgSQL ``EXECUTE 'ALTER TABLE … ADD CONSTRAINT … FOREIGN KEY … NOT VALID'`` re-creating a foreign key
    from the jsonb variable ``v_fk`` (keys ``columns``, ``ref_schema``, ``ref_table``, ``ref_columns`` and
    pg_constraint's ``match``/``on_update``/``on_delete`` codes, ``deferrable``, ``deferred``), as saved by
    DropColumn and DropConstraint. ``table_text`` is the quoted table as a text expression, ``name`` the
    constraint name as a text expression (quoted here). Every name goes through ``quote_ident``: the saved
    values are data, never SQL. The caller validates it afterwards (pg_constraint codes: PostgreSQL
    documentation, "pg_constraint")."""
    return S(
        "EXECUTE 'ALTER TABLE ' || {qt} || ' ADD CONSTRAINT ' || pg_catalog.quote_ident({n})\n"
        "    || ' FOREIGN KEY (' || (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(x), ', ')"
        " FROM pg_catalog.jsonb_array_elements_text(v_fk->'columns') AS x)\n"
        "    || ') REFERENCES ' || pg_catalog.quote_ident(v_fk->>'ref_schema') || '.'"
        " || pg_catalog.quote_ident(v_fk->>'ref_table')\n"
        "    || ' (' || (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(x), ', ')"
        " FROM pg_catalog.jsonb_array_elements_text(v_fk->'ref_columns') AS x) || ')'\n"
        "    || CASE v_fk->>'match' WHEN 'f' THEN ' MATCH FULL' ELSE '' END\n"
        "    || ' ON UPDATE ' || CASE v_fk->>'on_update' WHEN 'r' THEN 'RESTRICT' WHEN 'c' THEN 'CASCADE'"
        " WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT' ELSE 'NO ACTION' END\n"
        "    || ' ON DELETE ' || CASE v_fk->>'on_delete' WHEN 'r' THEN 'RESTRICT' WHEN 'c' THEN 'CASCADE'"
        " WHEN 'n' THEN 'SET NULL' WHEN 'd' THEN 'SET DEFAULT' ELSE 'NO ACTION' END\n"
        "    || CASE WHEN (v_fk->>'deferrable')::boolean THEN ' DEFERRABLE' ELSE '' END\n"
        "    || CASE WHEN (v_fk->>'deferred')::boolean THEN ' INITIALLY DEFERRED' ELSE '' END\n"
        "    || ' NOT VALID';").format(qt=table_text, n=name)


def drop_constraint(ctx: PlanContext, table: str, name: str) -> Step:
    """Drop a constraint only if this migration added it (a pre-existing one is left alone).

    ACCESS EXCLUSIVE on the table; dropping a foreign key takes ACCESS EXCLUSIVE on the referenced
    table too (its triggers are removed)."""
    key = f"{table}.{name}"
    body = if_then(
        is_owned(ctx, "constraint", key),
        S("ALTER TABLE IF EXISTS {t} DROP CONSTRAINT IF EXISTS {n};").format(t=qualified(table), n=ident(name)),
        forget_owned(ctx, "constraint", key),
        otherwise=[if_then(constraint_exists(table, name),
                           notice(ctx, f"constraint {name} on {table} was not added by {ctx.label}; left in place"))])
    return Step("drop_constraint", table, "ACCESS EXCLUSIVE", True, do_block(body), f"drop {name} on {table}")


def invalid_leftover_name(table: str, index: Index) -> str:
    """The name an INVALID leftover of ``index`` is renamed to before it is dropped concurrently."""
    return derived_name(index.resolved_name(table), suffix="dbdeploy_invalid")


def drop_invalid_index(ctx: PlanContext, table: str, index: Index) -> Step:
    """Drop an INVALID index a failed concurrent build left under the index's name — concurrently.

    ``DROP INDEX CONCURRENTLY`` cannot run in a transaction block or a DO block, and whether to
    drop depends on the catalog, so the step is two statements that psql and the executor both
    run as they are: a DO block that only *decides* — it renames an INVALID index of ``table``
    with this name to a dedicated name (``ALTER INDEX … RENAME`` takes SHARE UPDATE EXCLUSIVE on
    the index only, since PostgreSQL 12; no lock on the table) — and a plain
    ``DROP INDEX CONCURRENTLY IF EXISTS`` of that dedicated name (SHARE UPDATE EXCLUSIVE on the
    table and the index; it waits for transactions using the table without blocking their reads
    or writes; see the PostgreSQL docs, DROP INDEX and "Table-level Locks"). A valid index, or
    an INVALID one of another table, is never renamed; a relation that already has the dedicated
    name and is not such a leftover makes the step stop instead of being dropped.
    """
    schema = table.partition(".")[0]
    name = index.resolved_name(table)
    leftover = invalid_leftover_name(table, index)
    current = regclass(f"{schema}.{name}")
    renamed = regclass(f"{schema}.{leftover}")

    def invalid_of_table(rel: sql.Composable) -> sql.Composable:
        return S("EXISTS (SELECT 1 FROM pg_catalog.pg_index WHERE indexrelid = {rel} AND indrelid = {t}"
                 " AND NOT indisvalid)").format(rel=rel, t=regclass(table))

    body = block(
        if_then(S("{} IS NOT NULL AND NOT {}").format(renamed, invalid_of_table(renamed)),
                fail(ctx, f"relation {schema}.{leftover} exists and is not an INVALID index of {table}; "
                          "dbdeploy uses that name to drop an INVALID index concurrently",
                     f"Rename or drop {schema}.{leftover} (it is not dbdeploy's), then run the migration again.")),
        if_then(invalid_of_table(current),
                if_then(S("{} IS NOT NULL").format(renamed),
                        fail(ctx, f"an INVALID index {schema}.{leftover} of {table} is still waiting to be dropped",
                             f"Drop it with DROP INDEX CONCURRENTLY {schema}.{leftover}; then run the migration "
                             "again.")),
                S("RAISE NOTICE '%', {};").format(literal(
                    f"dbdeploy {ctx.label}: index {render(ident(schema, name))} is INVALID (an earlier build failed); "
                    "renamed to "
                    f"{leftover} to drop it concurrently and build it again")),
                S("ALTER INDEX {} RENAME TO {};").format(ident(schema, name), ident(leftover))),
    )
    drop = S("DROP INDEX CONCURRENTLY IF EXISTS {};").format(ident(schema, leftover))
    return Step("drop_invalid_index", table, "SHARE UPDATE EXCLUSIVE", False,
                do_block(body) + "\n" + render(drop),
                f"drop an INVALID leftover of index {schema}.{name} concurrently, if a failed build left one")


def duplicate_precheck(ctx: PlanContext, table: str, index: Index, qualified_index: str, *,
                       hint: str | None = None) -> sql.Composable:
    """Refuse before a unique index is built when the rows already hold duplicate keys.

    A failed ``CREATE UNIQUE INDEX CONCURRENTLY`` leaves an INVALID index behind, and once the
    build got past its first phase (``indisready``) that index enforces uniqueness on new rows
    although the migration failed. Counting duplicates first (a scan under ACCESS SHARE) turns
    the common failure — duplicates in the data — into an error before anything is built. A
    duplicate written between this check and the build can still fail it; the executor then
    drops the INVALID index it owns (see ``Deployment._release``), and rolling back the failed
    version drops it under psql.

    PL/pgSQL (needs ``v_duplicated bigint``); does nothing when the index exists. The error
    (SQLSTATE 23505) carries the number of duplicated keys; ``hint`` is the way on after
    "Nothing was built." (default: the failed-version way on of a forward, :func:`failed_hint`).
    """
    keys = [S("({})").format(k.sql()) if isinstance(k, IndexElement) else ident(k) for k in index.columns]
    # NULLS NOT DISTINCT: NULL keys are equal, as in GROUP BY, so rows with NULLs count too
    condition = S(" AND ").join([S("{} IS NOT NULL").format(k) for k in keys if not index.nulls_not_distinct]
                                + ([S("({})").format(index.where.sql())] if index.where else []) or [S("true")])
    duplicated = S("SELECT pg_catalog.count(*) FROM (SELECT 1 FROM {t} WHERE {cond} GROUP BY {keys}"
                   " HAVING pg_catalog.count(*) > 1) AS d").format(
        t=qualified(table), cond=condition, keys=S(", ").join(keys))
    return block(
        if_then(S("{} IS NULL").format(regclass(index_identifier(table, index))),
                S("v_duplicated := ({});").format(duplicated),
                if_then(S("v_duplicated > 0"),
                        S("RAISE EXCEPTION '% %', {msg}, v_duplicated || ' key(s) appear more than once'"
                          " USING ERRCODE = 'unique_violation', HINT = {hint};").format(
                            msg=literal(f"dbdeploy {ctx.label}: cannot build unique index {qualified_index} on "
                                        f"{table} ({', '.join(index.columns)}):"),
                            hint=literal("Nothing was built. " + (hint or failed_hint(ctx)))))))


def qualified_index_name(table: str, index: Index) -> str:
    return f"{table.partition('.')[0]}.{index.resolved_name(table)}"


PROBE_INDEX = "dbdeploy_probe_idx"


def check_existing_index(ctx: PlanContext, table: str, index: Index) -> sql.Composable:
    """PL/pgSQL (needs ``v_diff``): stop when a relation with the index's name exists and is not
    this index of ``table`` as the spec defines it (see :mod:`dbdeploy.ops.existing`)."""
    schema = table.partition(".")[0]
    name = index.resolved_name(table)
    return block(
        existing.probe_like(table),
        S("{};").format(create_index(table, index, concurrently=False, if_not_exists=False, name=PROBE_INDEX,
                                     on=existing.PROBE)),
        existing.compare_index(table, schema, name, PROBE_INDEX),
        existing.drop_probe(),
        existing.refuse_if_different(ctx, f"index {schema}.{name}"),
    )


def build_index_concurrently(ctx: PlanContext, kind: str, table: str, index: Index) -> list[Step]:
    """Two steps, both SHARE UPDATE EXCLUSIVE and outside a transaction: drop an INVALID leftover
    concurrently (:func:`drop_invalid_index`), then ``CREATE INDEX CONCURRENTLY IF NOT EXISTS``
    after a DO block that records the index as this migration's when it is missing and stops
    when an index of that name exists with another definition (IF NOT EXISTS would accept it)."""
    qualified_index = render(index_identifier(table, index))
    body = block(
        require_server_version(ctx, 150000, f"NULLS NOT DISTINCT (index {index.resolved_name(table)})",
                               "Run this migration on PostgreSQL 15 or later, or remove nulls_not_distinct from the "
                               "spec.") if index.nulls_not_distinct else None,
        # A unique index over duplicate keys would fail half-way and leave an INVALID index that may
        # enforce uniqueness: count first, refuse before building anything.
        duplicate_precheck(ctx, table, index, qualified_index) if index.unique else None,
        if_then(S("{} IS NULL").format(regclass(index_identifier(table, index))),
                record_owned(ctx, "index", qualified_index_name(table, index)),
                otherwise=[check_existing_index(ctx, table, index)]))
    statements = [
        do_block(body, declare=existing.DECLARE + (["v_duplicated bigint"] if index.unique else [])),
        render(create_index(table, index, concurrently=True)) + ";",
    ]
    return [
        drop_invalid_index(ctx, table, index),
        Step(kind, table, "SHARE UPDATE EXCLUSIVE", False, "\n".join(statements),
             f"build index {index.resolved_name(table)} on {table} concurrently"),
    ]


def drop_owned_index(ctx: PlanContext, table: str, index_name: str) -> Step:
    """Rollback of an index this migration built, dropped concurrently; one that existed before is
    left alone.

    Whether to drop needs PL/pgSQL (the ownership record), where CONCURRENTLY is not allowed, so as
    in :func:`drop_invalid_index` a DO block only decides: it renames an index this migration built
    to a dedicated name (SHARE UPDATE EXCLUSIVE on the index only); a plain ``DROP INDEX
    CONCURRENTLY IF EXISTS`` of that name follows (SHARE UPDATE EXCLUSIVE on the table: reads and
    writes continue), and a last DO block forgets the ownership record once the index is gone. A
    relation that already has the dedicated name and is not an index of ``table`` stops the step.
    """
    schema = table.partition(".")[0]
    key = f"{schema}.{index_name}"
    dedicated = derived_name(index_name, suffix="dbdeploy_drop")
    current, renamed = regclass(key), regclass(f"{schema}.{dedicated}")
    index_of_table = S("EXISTS (SELECT 1 FROM pg_catalog.pg_index WHERE indexrelid = {} AND indrelid = {})").format(
        renamed, regclass(table))
    decide = block(
        if_then(S("{} IS NOT NULL AND NOT {}").format(renamed, index_of_table),
                fail(ctx, f"relation {schema}.{dedicated} exists and is not an index of {table}; dbdeploy uses that "
                          "name to drop an index concurrently",
                     f"Rename or drop {schema}.{dedicated} (it is not dbdeploy's), then run the rollback again.")),
        if_then(S("{} IS NOT NULL AND {}").format(current, is_owned(ctx, "index", key)),
                if_then(S("{} IS NOT NULL").format(renamed),
                        fail(ctx, f"index {schema}.{dedicated} of {table} is still waiting to be dropped",
                             f"Drop it with DROP INDEX CONCURRENTLY {schema}.{dedicated}; then run the rollback "
                             "again.")),
                S("ALTER INDEX {} RENAME TO {};").format(ident(schema, index_name), ident(dedicated)),
                otherwise=[if_then(S("{} IS NOT NULL AND NOT {}").format(current, is_owned(ctx, "index", key)),
                                   notice(ctx, f"index {key} was not built by {ctx.label}; left in place"))]),
    )
    drop = S("DROP INDEX CONCURRENTLY IF EXISTS {};").format(ident(schema, dedicated))
    forget = if_then(S("{} IS NULL AND {}").format(renamed, is_owned(ctx, "index", key)),
                     if_then(S("{} IS NULL").format(current), forget_owned(ctx, "index", key)))
    return Step("drop_index", table, "SHARE UPDATE EXCLUSIVE", False,
                "\n".join([do_block(decide), render(drop), do_block(forget)]),
                f"drop index {key} concurrently if {ctx.label} built it")


def drop_index_concurrently(ctx: PlanContext, kind: str, table: str, index_name: str) -> Step:
    schema = table.partition(".")[0]
    text = S("DROP INDEX CONCURRENTLY IF EXISTS {};").format(ident(schema, index_name))
    return Step(kind, table, "SHARE UPDATE EXCLUSIVE", False, render(text),
                f"drop index {schema}.{index_name} concurrently")


def attach_unique(ctx: PlanContext, table: str, name: str, columns=(), *, owned: bool = True,
                  nulls_not_distinct: bool = False) -> Step:
    """``ADD CONSTRAINT … UNIQUE USING INDEX`` (ACCESS EXCLUSIVE, catalog only); an existing
    constraint of that name must be ``UNIQUE (columns)``, or the step stops.

    ``owned=False`` (a rollback putting back a constraint that existed before the version, e.g.
    DropColumn's): the constraint is not recorded as this migration's, and the step does nothing
    while the index ``name`` is missing."""
    probe = S("{} ({})").format(S("UNIQUE NULLS NOT DISTINCT") if nulls_not_distinct else S("UNIQUE"),
                                S(", ").join(ident(c) for c in columns))
    attach = S("ALTER TABLE {t} ADD CONSTRAINT {n} UNIQUE USING INDEX {n};").format(t=qualified(table), n=ident(name))
    if not owned:
        attach = if_then(relation_exists(f"{table.partition('.')[0]}.{name}"), attach)
    body = if_then(
        S("NOT {}").format(constraint_exists(table, name)),
        attach,
        record_owned(ctx, "constraint", f"{table}.{name}") if owned else None,
        otherwise=[check_existing_constraint(ctx, table, name, probe_body=probe)])
    return Step("add_unique", table, "ACCESS EXCLUSIVE", True, do_block(body, declare=existing.DECLARE),
                f"attach unique index {name} to {table} as a constraint")


def index_dependants_preflight(ctx: PlanContext, table: str, index_name: str,
                               owned: sql.Composable) -> sql.Composable:
    """Preflight of a rollback that drops a unique index (or the unique constraint using it): foreign
    keys whose referenced key is that index make DROP fail, so refuse before any change, naming
    them all (foreign keys the rollback removes itself do not count). ``owned`` is the condition
    under which the rollback step really drops the index."""
    index = regclass(ident(table.partition(".")[0], index_name))
    dependants = S(
        "(SELECT pg_catalog.string_agg(c.conrelid::pg_catalog.regclass::text || ' (foreign key '"
        " || c.conname || ')', ', ' ORDER BY 1) FROM pg_catalog.pg_constraint c"
        " WHERE c.contype = 'f' AND c.conindid = {index} AND NOT {released})").format(
        index=index, released=released_foreign_key(ctx))
    return if_then(
        S("{} IS NOT NULL AND {}").format(index, owned),
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
    where = S(" AND ({})").format(index.where.sql()) if index.where else S("")
    duplicates = S("SELECT count(*) FROM (SELECT 1 FROM {t} WHERE {nn}{where} GROUP BY {keys}"
                   " HAVING count(*) > 1) dup").format(t=qualified(table), nn=not_null, where=where, keys=keys)
    return if_then(
        S("{} IS NULL AND {}").format(regclass(index_identifier(table, index)), relation_exists(table)),
        S("v_count := ({});").format(duplicates),
        if_then(S("v_count > 0"),
                fail(ctx, f"cannot rebuild unique index {index.resolved_name(table)} on {table}: key values "
                          f"({', '.join(index.columns)}) written since the drop are duplicated; duplicated keys:",
                     "Remove the duplicates (or rebuild the index by hand as non-unique), then re-run.",
                     detail=S("v_count"))))


__all__ = [
    "add_foreign_key_from_json",
    "add_not_valid", "attach_unique", "block", "build_index_concurrently", "drop_constraint",
    "drop_index_concurrently", "drop_owned_index", "drop_invalid_index", "index_dependants_preflight",
    "unique_index_rebuild_preflight", "validate",
]
