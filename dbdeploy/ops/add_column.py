"""AddColumn: never rewrites or long-locks a populated table.

- nullable, or NOT NULL with a non-volatile default: one ``ADD COLUMN IF NOT EXISTS`` (metadata
  only since PostgreSQL 11);
- volatile default: add the column bare, set the default for new rows, fill existing rows in
  batches;
- NOT NULL without a default or with a volatile one: add it nullable, (fill it), then
  ``CHECK (c IS NOT NULL) NOT VALID`` → ``VALIDATE`` → ``SET NOT NULL`` (no scan thanks to the
  validated check) → drop the helper check. When the migration has a Backfill that sets the
  column, these NOT NULL steps are placed after it by the planner.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from psycopg import sql
from pydantic import model_validator

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import TableName
from dbdeploy.model.components import Column
from dbdeploy.model.names import derived_name, split_table
from dbdeploy.model.static_checks import too_many_columns
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops import constraint_steps as cs
from dbdeploy.ops import existing
from dbdeploy.ops.backfill import Backfill
from dbdeploy.ops.backfill_steps import BackfillPlan
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import (
    NOT_NULL_PROVEN,
    UNVALIDATED_NOT_NULL,
    S,
    attnum,
    column_dependants,
    column_exists,
    constraint_exists,
    copy_to_timestamped_backup,
    forget_owned,
    is_owned,
    notice,
    preflight_dependants,
    record_owned,
    refuse_if_dependants,
    relation_exists,
    relation_missing,
    release_foreign_keys,
    released_foreign_key,
    released_view,
    rollback_backup_prefix,
)
from dbdeploy.ops.ddl import column_def
from dbdeploy.sql import column_default, ident, literal, qualified, regclass, render
from dbdeploy.sql.blocks import block, do_block, if_then


class AddColumn(Operation):
    kind: ClassVar[str] = "add_column"
    table: TableName
    column: Column

    @model_validator(mode="after")
    def _no_identity(self) -> AddColumn:
        if self.column.identity:
            raise ValueError(
                "adding an identity column to an existing table rewrites it under ACCESS EXCLUSIVE — fix: "
                "add a bigint column with a sequence default instead (it is filled in batches)")
        if self.column.generated is not None:
            raise ValueError(
                "adding a generated column to an existing table rewrites it under ACCESS EXCLUSIVE (PostgreSQL "
                "computes the value for every row while reads and writes wait) — fix: define it in the table's "
                "CreateTable, or add a plain column and fill it with a Backfill (and a trigger or the application "
                "for new rows)")
        return self

    @property
    def column_key(self) -> str:
        return f"{self.table}.{self.column.name}"

    @property
    def needs_fill(self) -> bool:
        """Existing rows must be filled in batches (volatile default)."""
        return self.column.default_is_volatile

    @property
    def needs_not_null_steps(self) -> bool:
        return not self.column.nullable and (self.column.default is None or self.needs_fill)

    # The NOT NULL-after-backfill rule, written here only: a NOT NULL column that existing rows get no
    # value for from a default must be set by a later Backfill of its migration (check_later, at
    # validation), and NOT NULL steps run right after the last Backfill that sets the column (the
    # planner, with not_null_after), which the checklist says in its notes and checks before that Backfill.

    def not_null_after(self, later_ops) -> int | None:
        """Where this column's NOT NULL steps (check NOT VALID, validate, SET NOT NULL) go: the position, in
        ``later_ops`` (the operations after this one in its migration), of the last Backfill that sets the
        column; None when they follow the ADD COLUMN (no such Backfill, or no NOT NULL steps)."""
        if not self.needs_not_null_steps:
            return None
        last = None
        for k, later in enumerate(later_ops):
            if isinstance(later, Backfill) and later.table == self.table and self.column.name in later.set:
                last = k
        return last

    @property
    def needs_backfill(self) -> bool:
        """NOT NULL without a default: existing rows get their value only from a later Backfill."""
        return not self.column.nullable and self.column.default is None

    def check_later(self, later_ops) -> None:
        """Raise ValueError when the column needs a backfill (:attr:`needs_backfill`) and no operation in
        ``later_ops`` sets it."""
        if self.needs_backfill and self.not_null_after(later_ops) is None:
            raise ValueError(
                f"column {self.column.name!r} is NOT NULL without a default, so existing rows would have no value "
                f"— fix: add a default or a Backfill of {self.table} that sets {self.column.name!r} later in this "
                "migration")

    def apply(self, state: SchemaState) -> None:
        table = state.tables.get(self.table)
        if table is None:
            return
        if self.column.name in table.columns:
            raise ValueError(f"column {self.column.name!r} already exists in {self.table} — fix: remove this "
                             "AddColumn, or give the new column another name")
        crowded = too_many_columns(self.table, len(table.columns) + 1)
        if crowded:
            raise ValueError(crowded)
        # Replace, never mutate: planning and lint keep shallow snapshots of the state.
        state.tables[self.table] = replace(table, columns={**table.columns, self.column.name: self.column})

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [column_expect(self.table, self.column, not_null=not self.column.nullable)]

    def fill_key(self, ctx: PlanContext) -> list[str]:
        table = ctx.state.tables.get(self.table)
        if table is None or not table.primary_key:
            raise ValueError(
                f"column {self.column.name!r} has a volatile default, so existing rows are filled in "
                f"batches by primary key, but {self.table}'s primary key is not known from the specs — fix: "
                "add the column without a default and use a Backfill with key=[...]")
        return table.primary_key

    def forward(self, ctx: PlanContext) -> list[Step]:
        simple = not self.needs_fill and not self.needs_not_null_steps
        definition = column_def(self.column, with_default=not self.needs_fill, with_not_null=simple)
        statements = [
            if_then(S("NOT {}").format(column_exists(self.table, self.column.name)),
                    record_owned(ctx, "column", self.column_key),
                    otherwise=[if_then(S("NOT {}").format(is_owned(ctx, "column", self.column_key)),
                                       self._check_existing(ctx))]),
            S("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {d};").format(t=qualified(self.table), d=definition),
        ]
        if self.needs_fill:
            statements.append(S("ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT {d};").format(
                t=qualified(self.table), c=ident(self.column.name), d=self.column.default.sql()))
        if self.column.comment is not None:
            statements.append(S("COMMENT ON COLUMN {} IS {};").format(
                ident(*split_table(self.table), self.column.name), literal(self.column.comment)))
        steps = scaled([Step(self.kind, self.table, "ACCESS EXCLUSIVE", True,
                             do_block(block(*statements), declare=existing.DECLARE),
                             f"add column {self.column.name} to {self.table}")], queries.CATALOG_ONLY)
        if self.needs_fill:
            plan = self._fill_plan(ctx)
            steps += scaled([plan.setup_step(), plan.run_step()], "constant (creates the cursor table)",
                            f"proportional to rows, in batches of at most {plan.batch_size} (each about batch_time)")
        return steps

    def _check_existing(self, ctx: PlanContext):
        """PL/pgSQL: a column of this name that dbdeploy did not add must already have the spec's
        type, default and nullability (as the migration leaves it), or the step stops — ``ADD
        COLUMN IF NOT EXISTS`` alone would accept any column of that name."""
        return block(
            existing.probe_with(column_def(self.column)),
            existing.compare_columns(self.table, only=[self.column.name]),
            existing.drop_probe(),
            existing.refuse_if_different(ctx, f"column {self.column_key}"),
        )

    def _fill_plan(self, ctx: PlanContext) -> BackfillPlan:
        return BackfillPlan(ctx, self.table, {self.column.name: self.column.default},
                            S("{} IS NULL").format(ident(self.column.name)), self.fill_key(ctx), 1000,
                            keep_old=False, tag=f"op{ctx.index}_fill")

    def not_null_steps(self, ctx: PlanContext) -> list[Step]:
        return scaled(not_null_steps(ctx, self.table, self.column.name), queries.NOT_VALID, queries.VALIDATE,
                      "constant (uses the validated CHECK; no scan)")

    def not_null_undo(self, ctx: PlanContext) -> Step:
        """Rollback counterpart of the NOT NULL steps: lets a backfill's restore put NULLs back."""
        body = if_then(
            S("{} AND {}").format(is_owned(ctx, "column", self.column_key),
                                  column_exists(self.table, self.column.name)),
            S("ALTER TABLE {t} ALTER COLUMN {c} DROP NOT NULL;").format(
                t=qualified(self.table), c=ident(self.column.name)))
        return Step("drop_not_null", self.table, "ACCESS EXCLUSIVE", True, do_block(body),
                    f"make {self.column.name} nullable again so earlier values can be restored")

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        column, table = self.column.name, self.table
        existing = table not in earlier.created_tables
        filled_later = self.needs_backfill and self.not_null_after(ctx.later_ops) is not None
        notes = []
        if filled_later and existing:
            notes.append(f"{table}.{column} is made NOT NULL after this migration's backfill fills it: from the "
                         f"moment the migration starts, the application must write {column} in every row it "
                         "inserts, or SET NOT NULL fails (and inserts without it fail afterwards).")
        if self.needs_fill and existing:
            notes.append(f"Existing rows of {table} get {column} = {self.column.default} in batches of at most "
                         "1000 rows (each sized to take about batch_time); new rows get it from the column default.")
        health: list[CheckQuery] = [queries.column_state(table, column, not self.column.nullable)]
        watch: list[CheckQuery] = []
        if self.needs_fill:
            plan = self._fill_plan(ctx)
            health.append(queries.backfill_finished(table, plan.progress, f"{ctx.backup_schema}.{plan.progress_name}",
                                                   plan.key))
            watch.append(queries.backfill_progress(table, plan.progress, f"{ctx.backup_schema}.{plan.progress_name}"))
        prefix = rollback_backup_prefix(ctx.version, f"{split_table(table)[1]}_{column}")
        return ChecklistItems(
            prerequisites=[queries.table_exists(table)] if existing else [],
            backups=[table] if existing else [], notes=notes, health_checks=health, watch=watch,
            rollback_notes=[f"Column {table}.{column} is dropped only if {ctx.label} added it; every non-NULL value "
                            "in it, whoever wrote it (the column default, the fill, or the application since the "
                            "deploy), is copied with the row's primary key to "
                            f"{ctx.backup_schema}.{prefix}_<timestamp> first; a NOTICE names the table and the number "
                            "of rows copied. Nothing is written back into the table's other columns."],
            changes=[queries.added_column_value(table, column, self.column.type, self.column.default)],
            not_null_pending=[self.column_key] if filled_later else [])

    def rollback(self, ctx: PlanContext) -> list[Step]:
        steps = self._fill_plan(ctx).restore_steps() if self.needs_fill else []
        return [drop_owned_column(ctx, self.table, self.column.name, ctx.state), *steps]

    def rollback_preflight(self, ctx: PlanContext) -> list:
        return [drop_owned_column_preflight(ctx, self.table, self.column.name)]


def drop_owned_column_preflight(ctx: PlanContext, table: str, column: str):
    """The refusal of :func:`drop_owned_column`, checked before the rollback changes anything."""
    key = f"{table}.{column}"
    return preflight_dependants(
        ctx, f"column {key}", column_dependants(table, column, released_foreign_key(ctx), released_view(ctx)),
        when=S("{} AND {} AND {}").format(relation_exists(table), column_exists(table, column),
                                          is_owned(ctx, "column", key)))


def not_null_steps(ctx: PlanContext, table: str, column: str, *, when: sql.Composable | None = None,
                   first: tuple[sql.Composable, ...] = (), on_set: tuple[sql.Composable, ...] = (),
                   finish: tuple[sql.Composable, ...] = (), count_nulls: bool = False) -> list[Step]:
    """Make ``column`` NOT NULL without a long ACCESS EXCLUSIVE scan: a helper ``CHECK (c IS NOT NULL)
    NOT VALID``, its VALIDATE (a scan that lets reads and writes continue; fails on a NULL row),
    then ``SET NOT NULL`` (no scan: the validated CHECK proves it) and the helper dropped.

    The steps are skipped only when the column is proven free of NULLs (:data:`NOT_NULL_PROVEN`).
    On PostgreSQL 18 a ``NOT NULL … NOT VALID`` made by hand sets ``attnotnull`` while NULL rows may
    remain; it is replaced by a validated NOT NULL: the helper CHECK is validated as above, then in
    the last step ``DROP NOT NULL`` and ``SET NOT NULL`` (catalog only, as ``SET NOT NULL`` alone
    would validate the unvalidated constraint by a scan under ACCESS EXCLUSIVE); the constraint's
    name becomes PostgreSQL's default one.

    The same steps serve SetNotNull and DropNotNull's rollback (one implementation): ``when`` (a
    condition) limits the helper check and ``SET NOT NULL`` to the case it holds (DropNotNull's
    rollback: this version dropped the NOT NULL); ``first`` runs at the start of the first step
    (SetNotNull: refuse a missing column); ``on_set`` runs in the transaction of the ``SET NOT
    NULL`` when the column had no NOT NULL at all (``attnotnull`` false: SetNotNull records that this
    version set it); ``finish`` runs at the end of the last step whatever happened; ``count_nulls``
    makes a failed VALIDATE name the number of NULL rows (:func:`constraint_steps.validate`)."""
    name = derived_name(split_table(table)[1], column, suffix="not_null")
    attribute = S("SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = {rel} AND a.attname = {col}").format(
        rel=regclass(table), col=literal(column))
    nullable = S("EXISTS ({att} AND NOT ({proven}))").format(att=attribute, proven=NOT_NULL_PROVEN)
    unvalidated = S("EXISTS ({att} AND {unvalidated})").format(att=attribute, unvalidated=UNVALIDATED_NOT_NULL)
    needed = nullable if when is None else S("{} AND {}").format(when, nullable)
    add = if_then(S("{} AND NOT {}").format(needed, constraint_exists(table, name)),
                  S("ALTER TABLE {t} ADD CONSTRAINT {n} CHECK ({c} IS NOT NULL) NOT VALID;").format(
                      t=qualified(table), n=ident(name), c=ident(column)))
    if first:
        add = block(*first, add)
    set_first = []
    if on_set:
        absent = S("EXISTS ({att} AND NOT a.attnotnull)").format(att=attribute)
        set_first = [if_then(absent, *on_set)]
    # Only the helper CHECK: on PostgreSQL 18 the column's NOT NULL constraint may carry the same name.
    drop_helper = if_then(
        S("EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = {rel} AND conname = {n}"
          " AND contype = 'c')").format(rel=regclass(table), n=literal(name)),
        S("ALTER TABLE {t} DROP CONSTRAINT {n};").format(t=qualified(table), n=ident(name)))
    # PostgreSQL 18 names the NOT NULL constraint SET NOT NULL creates <table>_<column>_not_null, the
    # helper's name, which is taken at that moment: it gets a "1" appended. Once the helper is gone the
    # constraint gets the name (the name CREATE TABLE gives it, so a rollback restores the same catalog).
    rename = if_then(
        S("NOT {}").format(constraint_exists(table, name)),
        S("FOR v_name IN SELECT nn.conname::text FROM pg_catalog.pg_constraint nn WHERE nn.conrelid = {rel}"
          " AND nn.contype = 'n' AND nn.conkey[1] = {num} LOOP\n"
          "    EXECUTE 'ALTER TABLE ' || {qt} || ' RENAME CONSTRAINT ' || pg_catalog.quote_ident(v_name)"
          " || ' TO ' || {qn};\n"
          "END LOOP;").format(rel=regclass(table), num=attnum(table, column), qt=literal(render(qualified(table))),
                              qn=literal(render(ident(name)))))
    set_not_null = block(
        if_then(needed,
                *set_first,
                if_then(unvalidated, S("ALTER TABLE {t} ALTER COLUMN {c} DROP NOT NULL;").format(
                    t=qualified(table), c=ident(column))),
                S("ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL;").format(t=qualified(table), c=ident(column)),
                drop_helper, rename,
                otherwise=[drop_helper]),
        *finish,
    )
    explain = None
    if count_nulls:
        explain = if_then(S("v_state = '23514'"), S(
            "v_message := (SELECT pg_catalog.count(*) FROM {t} WHERE {c} IS NULL) || {rows} || v_message;").format(
            t=qualified(table), c=ident(column),
            rows=literal(f" row(s) of {table} have {column} NULL, so it cannot be made NOT NULL (give them a value "
                         "first); ")))
    return [
        Step("add_check", table, "ACCESS EXCLUSIVE", True, do_block(add),
             f"add {name} CHECK ({column} IS NOT NULL) NOT VALID"),
        cs.validate(ctx, table, name, explain=explain),
        Step("set_not_null", table, "ACCESS EXCLUSIVE", True, do_block(set_not_null, declare=["v_name text"]),
             f"set {column} NOT NULL using the validated check, then drop the check"),
    ]


def drop_owned_column(ctx: PlanContext, table: str, column: str, state: SchemaState) -> Step:
    """Rollback of AddColumn: refuse on dependants, copy non-NULL values out, drop the column."""
    key = f"{table}.{column}"
    known = state.tables.get(table)
    pk = known.primary_key if known and known.primary_key else None
    selected = S(", ").join(ident(c) for c in [*pk, column]) if pk else S("*")
    body = block(
        if_then(S("{} OR NOT {}").format(relation_missing(table), column_exists(table, column)),
                notice(ctx, f"column {key} is already gone"), S("RETURN;")),
        if_then(S("NOT {}").format(is_owned(ctx, "column", key)),
                notice(ctx, f"column {key} was not created by {ctx.label}; left in place"), S("RETURN;")),
        release_foreign_keys(ctx, table, column),
        refuse_if_dependants(ctx, f"column {key}", column_dependants(table, column)),
        if_then(S("EXISTS (SELECT 1 FROM {t} WHERE {c} IS NOT NULL)").format(t=qualified(table), c=ident(column)),
                copy_to_timestamped_backup(
                    ctx, f"{split_table(table)[1]}_{column}",
                    S("SELECT {sel} FROM {t} WHERE {c} IS NOT NULL").format(
                        sel=selected, t=qualified(table), c=ident(column)),
                    f"the non-NULL values of {key}", count_into="v_copied")),
        S("ALTER TABLE {t} DROP COLUMN {c};").format(t=qualified(table), c=ident(column)),
        forget_owned(ctx, "column", key),
    )
    return Step("drop_column", table, "ACCESS EXCLUSIVE", True,
                do_block(body, declare=["v_dependants text", "v_backup text", "v_copied bigint", "v_fk record"]),
                f"drop column {column} of {table} (values copied to the backup schema first)")


def column_expect(table: str, column: Column, *, not_null: bool) -> expect.Column:
    """The expectation of spec column ``column`` of ``table``: type, default (in its DEFAULT-safe
    form), identity and NOT NULL as the check compares them."""
    return expect.Column(table, column.name, not_null=not_null, type_name=column.type,
                         default=column_default(column.default) if column.default else None,
                         identity=bool(column.identity), identity_always=column.identity == "always",
                         generated=column.generated, collation=column.collation)
