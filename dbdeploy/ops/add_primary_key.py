"""AddPrimaryKey on an existing table: a unique index built CONCURRENTLY, NOT NULL proven by validated
checks, then ``ADD CONSTRAINT … PRIMARY KEY USING INDEX``.

``ALTER TABLE … ADD PRIMARY KEY (cols)`` builds the index and scans for NULLs under ACCESS EXCLUSIVE
for as long as both take (PostgreSQL docs, ALTER TABLE: "ADD table_constraint_using_index … the
index is built/validated", and "SET NOT NULL … the table must be scanned unless a valid CHECK
constraint proves no NULL"). The forward instead:

1. ``add_primary_key_check`` (ACCESS SHARE; one scan): refuses, changing nothing, when the table
   already has a primary key, or when key columns hold NULLs or duplicated keys (the counts in the
   error); records which key columns are still nullable (``migration_objects``, kind ``not_null``) —
   the rollback makes only those nullable again;
2. ``drop_invalid_index`` and ``create_unique_index``: ``CREATE UNIQUE INDEX CONCURRENTLY`` under the
   constraint's name (SHARE UPDATE EXCLUSIVE: reads and writes continue); an INVALID leftover of a
   failed build is dropped concurrently and rebuilt (see :func:`~dbdeploy.ops.constraint_steps.drop_invalid_index`);
3. per key column, :func:`~dbdeploy.ops.add_column.not_null_steps`: ``CHECK (c IS NOT NULL) NOT VALID``,
   ``VALIDATE`` in its own transaction, ``SET NOT NULL`` (no scan) and the check dropped;
4. ``add_primary_key`` (ACCESS EXCLUSIVE, catalog only): ``ADD CONSTRAINT name PRIMARY KEY USING INDEX
   name`` — the index is valid and every column provably NOT NULL, so nothing is scanned.

The rollback drops the primary key only if this version added it (refusing, before any change, when
foreign keys now reference it), drops the index if this version built it and it is still there (a
failed forward), and makes nullable again only the columns this version made NOT NULL.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from psycopg import sql

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import ColumnList, Identifier, TableName
from dbdeploy.model.components import Index
from dbdeploy.model.names import spelled, split_table
from dbdeploy.model.static_checks import check_btree_columns
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops import constraint_steps as cs
from dbdeploy.ops import existing
from dbdeploy.ops.add_column import not_null_steps
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import (
    S,
    column_exists,
    constraint_exists,
    fail,
    forget_owned,
    is_owned,
    record_owned,
    relation_exists,
    relation_missing,
)
from dbdeploy.ops.rename_constraint import default_primary_key_name
from dbdeploy.sql import ident, literal, qualified, regclass
from dbdeploy.sql.blocks import block, do_block, if_then

NOT_NULL_KIND = "not_null"


class AddPrimaryKey(Operation):
    """Add primary key ``name`` (default ``<table>_pkey``) on ``columns`` of an existing ``table``, online.

    Shapes: ``AddPrimaryKey(table="public.legacy_events", columns=["id"])``. Errors (at load): on a
    table the specs created, one that already has a primary key, an unknown column or one a btree
    cannot index, a constraint name the table already has, a relation name already in use. At run
    time the forward refuses before any change when the table has a primary key, or when the key
    columns hold NULLs or duplicates (with their counts)."""

    kind: ClassVar[str] = "add_primary_key"
    table: TableName
    columns: ColumnList
    name: Identifier | None = None

    def resolved_name(self) -> str:
        return self.name or default_primary_key_name(self.table)

    def apply(self, state: SchemaState) -> None:
        state.refuse_partitioned(self.table, "AddPrimaryKey")
        known = state.tables.get(self.table)
        if known is not None and known.primary_key:
            raise ValueError(f"{self.table} already has a primary key ({', '.join(known.primary_key)}) — fix: drop "
                             "it first (DropConstraint), or remove this AddPrimaryKey")
        state.require_columns(self.table, self.columns, "columns")
        if known is not None:
            check_btree_columns("columns", self.columns, known.columns)
        state.register_constraint(self.table, self.resolved_name(), "name")
        state.claim(f"{split_table(self.table)[0]}.{self.resolved_name()}", "the primary key", self.table)
        known = state.tables.get(self.table)
        if known is not None:   # copy-on-write, see SchemaState.copy
            columns = {n: (c.model_copy(update={"nullable": False}) if n in self.columns else c)
                       for n, c in known.columns.items()}
            state.tables[self.table] = replace(known, primary_key=list(self.columns), columns=columns)

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [expect.Constraint(self.table, self.resolved_name(), columns=tuple(self.columns),
                                  constraint_kind="p", key=tuple(self.columns))]

    def _index(self) -> Index:
        return Index(columns=[spelled(c) for c in self.columns], unique=True, name=spelled(self.resolved_name()))

    def _null_counts(self) -> sql.Composable:
        return S(", ").join(
            S("pg_catalog.count(*) FILTER (WHERE {c} IS NULL)").format(c=ident(c)) for c in self.columns)

    def _check_step(self, ctx: PlanContext) -> Step:
        name, t = self.resolved_name(), qualified(self.table)
        cols = S(", ").join(ident(c) for c in self.columns)
        nulls = S(" || ', ' || ").join(
            S("{} || ': ' || pg_catalog.count(*) FILTER (WHERE {} IS NULL)").format(literal(c), ident(c))
            for c in self.columns)
        any_null = S(" OR ").join(S("{} IS NULL").format(ident(c)) for c in self.columns)
        record = [if_then(S("{} AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = {rel}"
                            " AND attname = {c} AND NOT attnotnull)").format(
                              column_exists(self.table, c), rel=regclass(self.table), c=literal(c)),
                          record_owned(ctx, NOT_NULL_KIND, f"{self.table}.{c}"))
                  for c in self.columns]
        body = block(
            if_then(relation_missing(self.table),
                    fail(ctx, f"table {self.table} does not exist", "Check the table name.")),
            if_then(constraint_exists(self.table, name), S("RETURN;")),
            S("SELECT c.conname::text INTO v_existing FROM pg_catalog.pg_constraint c"
              " WHERE c.conrelid = {rel} AND c.contype = 'p';").format(rel=regclass(self.table)),
            if_then(S("v_existing IS NOT NULL"),
                    fail(ctx, f"{self.table} already has a primary key; nothing was changed:",
                         "Drop that primary key first (DropConstraint), or remove this AddPrimaryKey.",
                         detail=S("v_existing"))),
            S("SELECT pg_catalog.count(*) FILTER (WHERE {any}), {nulls} INTO v_null_rows, v_nulls FROM {t};").format(
                any=any_null, nulls=nulls, t=t),
            if_then(S("v_null_rows > 0"),
                    fail(ctx, f"cannot add primary key {name} on {self.table} ({', '.join(self.columns)}): rows with a "
                              "NULL key column; nothing was changed; rows:",
                         "Fill or delete the rows with NULL keys (counts per column in the message), then re-run.",
                         detail=S("v_null_rows || ' (' || v_nulls || ')'"))),
            S("SELECT pg_catalog.count(*) INTO v_duplicated FROM (SELECT 1 FROM {t} GROUP BY {cols}"
              " HAVING pg_catalog.count(*) > 1) AS d;").format(t=t, cols=cols),
            if_then(S("v_duplicated > 0"),
                    S("RAISE EXCEPTION '% %', {msg}, v_duplicated || ' key(s) appear more than once'"
                      " USING ERRCODE = 'unique_violation', HINT = {hint};").format(
                        msg=literal(f"dbdeploy {ctx.label}: cannot add primary key {name} on {self.table} "
                                    f"({', '.join(self.columns)}); nothing was changed:"),
                        hint=literal("Remove the duplicated keys, then re-run."))),
            *record,
        )
        return Step("add_primary_key_check", self.table, "ACCESS SHARE", True,
                    do_block(body, declare=["v_existing text", "v_null_rows bigint", "v_nulls text",
                                            "v_duplicated bigint"]),
                    f"refuse unless {self.table} has no primary key and ({', '.join(self.columns)}) holds no NULL and "
                    "no duplicate")

    def _attach_step(self, ctx: PlanContext) -> Step:
        name = self.resolved_name()
        probe = S("PRIMARY KEY ({})").format(S(", ").join(ident(c) for c in self.columns))
        body = if_then(
            S("NOT {}").format(constraint_exists(self.table, name)),
            S("ALTER TABLE {t} ADD CONSTRAINT {n} PRIMARY KEY USING INDEX {n};").format(
                t=qualified(self.table), n=ident(name)),
            record_owned(ctx, "constraint", f"{self.table}.{name}"),
            otherwise=[cs.check_existing_constraint(ctx, self.table, name, probe_body=probe)])
        return Step(self.kind, self.table, "ACCESS EXCLUSIVE", True, do_block(body, declare=existing.DECLARE),
                    f"attach unique index {name} to {self.table} as its primary key")

    def forward(self, ctx: PlanContext) -> list[Step]:
        not_null = [step for c in self.columns for step in not_null_steps(ctx, self.table, c)]
        per_column = (queries.NOT_VALID, queries.VALIDATE, "constant (uses the validated CHECK; no scan)")
        return scaled([
            self._check_step(ctx),
            *cs.build_index_concurrently(ctx, "create_unique_index", self.table, self._index()),
            *not_null,
            self._attach_step(ctx),
        ], "proportional to rows (counts NULL and duplicated keys: one scan, ACCESS SHARE)",
            queries.DROP_INVALID_INDEX, queries.CONCURRENT_INDEX, *(per_column * len(self.columns)),
            "constant (catalog only: the index is built and the columns are NOT NULL)")

    def _drop_not_null_step(self, ctx: PlanContext) -> Step:
        body = block(*[
            if_then(S("{} AND {} AND {}").format(relation_exists(self.table), column_exists(self.table, c),
                                                 is_owned(ctx, NOT_NULL_KIND, f"{self.table}.{c}")),
                    S("ALTER TABLE {t} ALTER COLUMN {c} DROP NOT NULL;").format(t=qualified(self.table), c=ident(c)),
                    forget_owned(ctx, NOT_NULL_KIND, f"{self.table}.{c}"))
            for c in self.columns])
        return Step("drop_not_null", self.table, "ACCESS EXCLUSIVE", True, do_block(body),
                    f"make ({', '.join(self.columns)}) of {self.table} nullable again where {ctx.label} made them "
                    "NOT NULL")

    def rollback(self, ctx: PlanContext) -> list[Step]:
        name = self.resolved_name()
        return [
            cs.drop_constraint(ctx, self.table, name),
            cs.drop_owned_index(ctx, self.table, name),
            self._drop_not_null_step(ctx),
        ]

    def rollback_preflight(self, ctx: PlanContext) -> list:
        name = self.resolved_name()
        owned = S("({} OR {})").format(is_owned(ctx, "constraint", f"{self.table}.{name}"),
                                       is_owned(ctx, "index", f"{split_table(self.table)[0]}.{name}"))
        return [cs.index_dependants_preflight(ctx, self.table, name, owned)]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        name = self.resolved_name()
        existing_table = self.table not in earlier.created_tables
        prerequisites: list[CheckQuery] = []
        if existing_table:
            prerequisites = [
                queries.table_exists(self.table),
                CheckQuery(f"{self.table} has no primary key yet (the forward refuses otherwise)", queries.query(S(
                    "SELECT count(*) AS primary_keys FROM pg_catalog.pg_constraint\n"
                    "WHERE conrelid = {rel} AND contype = 'p' AND conname <> {n}").format(
                    rel=regclass(self.table), n=literal(name))), "0"),
                *[queries.not_null_violations(self.table, c, earlier.changes) for c in self.columns],
                queries.duplicate_keys(self.table, name, self.columns, None, (), earlier.changes),
            ]
        qualified_index = f"{split_table(self.table)[0]}.{name}"
        return ChecklistItems(
            prerequisites=prerequisites,
            notes=[queries.CONCURRENT_NOTE] if existing_table else [],
            health_checks=[queries.constraint_validated(self.table, name, "Primary key"),
                           queries.index_valid(qualified_index)],
            watch=[queries.index_build_progress(self.table)],
            rollback_notes=[f"Primary key {name} (and its index) is dropped only if {ctx.label} added it — refused, "
                            "changing nothing, while foreign keys reference it; only the columns "
                            f"{ctx.label} made NOT NULL are made nullable again."])


__all__ = ["AddPrimaryKey"]
