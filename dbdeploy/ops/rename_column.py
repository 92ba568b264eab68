"""RenameColumn: a metadata-only rename, or (``online=True``) an expansion that keeps both names working.

Plain form (PostgreSQL docs, ALTER TABLE ``RENAME COLUMN``: catalog only, ACCESS EXCLUSIVE for a
moment, bounded by the executor's short ``lock_timeout``): one step that renames the column unless
it already has the new name (idempotent); neither name present stops the step. The rollback renames
back only when this version renamed it (an ownership record ``renamed_column``).

Online form (expand/contract, ops/expansion.py): the application version still running reads and
writes the old name while the new one reads and writes the new name.

1. ``expand_column`` (one short transaction, ACCESS EXCLUSIVE: ADD COLUMN is catalog only) adds the
   new column with the old one's type and collation (PostgreSQL's ``format_type``), nullable and
   without a default, ``CHECK (new IS NOT NULL) NOT VALID`` when the old one is NOT NULL, and a
   ``BEFORE INSERT OR UPDATE … FOR EACH ROW`` trigger keeping both columns equal in both directions:

   - UPDATE that changes one side: it is copied to the other; when both change, the new column wins;
   - INSERT, and UPDATE that changes neither (a row not filled yet): a NULL new column gets the old
     one's value (old code writes only the old name; the backfill's rows), otherwise the new value
     is copied to the old one (new code; the old column's default, which new code did not ask for,
     never wins over the value it wrote). The same rule fills the old column while a contract's
     rollback re-adds it (the old one is then NULL in rows not filled yet).
2. A batched backfill (``ops/backfill_steps.py``) sets the new column from the old one in key order,
   one short transaction per batch.
3. ``VALIDATE`` of the NOT NULL check (SHARE UPDATE EXCLUSIVE), a no-op when there is none.
4. Indexes and unique constraints on the old column alone that the specs know are built on the new
   one concurrently (named ``<index>_<new>`` shortened). Multi-column and expression indexes, indexes
   the specs do not know, foreign keys and checks are not mirrored (the checklist says so).

``Contract(version=…)`` then drops the trigger and the old column (its values copied to the backup
schema first) and gives the new column the old one's default and, when the old one was NOT NULL, SET
NOT NULL (proven by the validated check, no scan; the check is dropped); its rollback re-adds the old
column, fills it from the new one in batches, puts the trigger back and both columns' NOT NULL as
they were during the expansion. The rollback of the expansion drops
the trigger and the new column: the trigger kept the old column equal to it, so every value written
through either name is in the old column.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from psycopg import sql
from pydantic import Field, PrivateAttr

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import ColumnList, Identifier, TableName
from dbdeploy.model.components import Index
from dbdeploy.model.names import derived_name, spelled, split_table
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops import constraint_steps as cs
from dbdeploy.ops.add_column import drop_owned_column_preflight
from dbdeploy.ops.backfill_steps import BackfillPlan
from dbdeploy.ops.base import CheckFact, ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import (
    S,
    backup_table,
    column_dependants,
    column_exists,
    constraint_exists,
    fail,
    forget_owned,
    is_owned,
    notice,
    record_owned,
    refuse_if_dependants,
    relation_exists,
    relation_missing,
)
from dbdeploy.ops.expansion import Expands
from dbdeploy.sql import acl, ident, literal, qualified, regclass, render
from dbdeploy.sql.blocks import block, do_block, if_then

BATCH_SIZE = 1000


class _ColumnValue:
    """A column's value, converted, as the value of a backfill assignment (``BackfillPlan`` calls
    ``.sql()``): ``convert`` maps the column reference to the expression (identity for a rename)."""

    def __init__(self, column: str, convert) -> None:
        self.column = column
        self.columns = frozenset({column})
        self.volatile = False
        self._convert = convert

    def sql(self) -> sql.Composable:
        return self._convert(ident(self.column))


# --- the schema state ------------------------------------------------------------------------------

def rename_column_in_state(state: SchemaState, table: str, old: str, new: str) -> None:
    """Record that ``table.old`` is now ``table.new``: the column, primary key, unique constraints,
    indexes (keys and INCLUDE columns; an index named after its columns keeps its name), foreign keys
    (from and onto the column) and checks (their column sets; an expression's text keeps the old name).
    Every mapping and TableState is replaced, never changed in place (:meth:`SchemaState.copy`)."""

    def swap(names):
        return type(names)(new if n == old else n for n in names)

    known = state.tables.get(table)
    if known is not None:
        columns = {(new if k == old else k): (v.model_copy(update={"name": new}) if k == old else v)
                   for k, v in known.columns.items()}
        state.tables[table] = replace(known, columns=columns, primary_key=swap(known.primary_key),
                                      uniques={n: swap(c) for n, c in known.uniques.items()})
    indexes = {}
    for name, (owner, index) in state.indexes.items():
        if owner == table and (old in index.columns or old in index.include):
            index = index.model_copy(update={"columns": swap(index.columns), "include": swap(index.include),
                                             "name": index.resolved_name(table)})
        indexes[name] = (owner, index)
    state.indexes = indexes
    foreign_keys = {}
    for key, fact in state.foreign_keys.items():
        if fact.table == table and old in fact.columns:
            fact = replace(fact, columns=swap(fact.columns))
        if fact.references == table and old in fact.ref_columns:
            fact = replace(fact, ref_columns=swap(fact.ref_columns))
        foreign_keys[key] = fact
    state.foreign_keys = foreign_keys
    checks: dict[tuple[str, str], CheckFact] = {}
    for key, check in state.checks.items():
        if check.table == table and old in check.columns:
            check = replace(check, columns=frozenset(swap(tuple(check.columns))),
                            not_null_column=new if check.not_null_column == old else check.not_null_column)
        checks[key] = check
    state.checks = checks


def _unknown_column(table: str, column: str, new: str, known) -> ValueError:
    if new in known.columns:
        return ValueError(f"{table} has no column {column!r}: an earlier spec already named it {new!r} — fix: "
                          "remove this rename")
    return ValueError(f"{table} has no column {column!r} to rename (its columns: {', '.join(known.columns)}) — "
                      "fix: check the column name")


class RenameColumn(Expands, Operation):
    """Rename ``table.column`` to ``new_name``: metadata only, or with ``online=True`` an expansion
    (both names work until a later ``Contract(version=…)``; see the module docstring).

    ``key`` (online only): the unique, indexed column(s) the backfill batches by; default: the
    table's primary key as the specs know it. Spec errors: ValueError "reason — fix: …"."""

    kind: ClassVar[str] = "rename_column"
    table: TableName
    column: Identifier
    new_name: Identifier
    online: bool = False
    key: ColumnList | None = None
    batch_size: int = Field(default=BATCH_SIZE, ge=1, le=1_000_000)
    # The version that ran this operation (set by apply): Contract renders its steps with it.
    _version: str = PrivateAttr(default="")

    # --- validation and the schema state ---------------------------------------------------------

    def apply(self, state: SchemaState) -> None:
        if self.column == self.new_name:
            raise ValueError(f"new_name is the column's current name {self.column!r} — fix: give another name, "
                             "or remove this rename")
        if self.key is not None and not self.online:
            raise ValueError("key is only used by the online form — fix: remove key, or set online=True")
        known = state.tables.get(self.table)
        if known is not None:
            if self.column not in known.columns:
                raise _unknown_column(self.table, self.column, self.new_name, known)
            if self.new_name in known.columns:
                raise ValueError(f"{self.table} already has a column {self.new_name!r} — fix: pick another new_name")
        self._version = state.at.version
        if not self.online:
            rename_column_in_state(state, self.table, self.column, self.new_name)
            return
        if known is not None:
            old = known.columns[self.column]
            if old.identity:
                raise ValueError(f"{self.table}.{self.column} is an identity column, which the online rename cannot "
                                 "mirror — fix: rename it with online=False")
            if self.column in known.primary_key:
                raise ValueError(f"{self.column!r} is part of {self.table}'s primary key, which the online rename "
                                 "cannot mirror — fix: rename it with online=False")
            columns = dict(known.columns)
            columns[self.new_name] = old.model_copy(update={"name": self.new_name})
            state.tables[self.table] = replace(known, columns=columns)
        if self.key or known is not None or state.complete:
            self._resolve_key(state)   # else: resolved when every spec is planned together
        for name, index in self._mirrored(state):
            state.claim(name, "an index", self.table)
            state.indexes[name] = (self.table, index)
        state.open_expansion(self)

    def _resolve_key(self, state: SchemaState) -> list[str]:
        if self.key:
            state.require_columns(self.table, self.key, "key")
            if self.column in self.key or self.new_name in self.key:
                raise ValueError("key cannot hold the renamed column — fix: batch by another unique key")
            return list(self.key)
        known = state.tables.get(self.table)
        if known is None or not known.primary_key:
            raise ValueError(f"online=True fills the new column in batches by key, but {self.table}'s primary key "
                             "is not known from the specs — fix: set key=[...] to its unique, indexed column(s)")
        return list(known.primary_key)

    def _sources(self, state: SchemaState) -> list[tuple[Index, str | None]]:
        """The spec-known btree indexes and unique constraints on the old column alone (no INCLUDE, no
        predicate), as ``(index, constraint name or None)``."""
        sources: list[tuple[Index, str | None]] = [
            (index, None) for owner, index in state.indexes.values()
            if owner == self.table and index.columns == [self.column] and not index.include and not index.where
            and index.method == "btree"]
        known = state.tables.get(self.table)
        for name, columns in (known.uniques.items() if known is not None else ()):
            if tuple(columns) == (self.column,):
                sources.append((Index(columns=[spelled(self.column)], unique=True, name=spelled(name)), name))
        return sources

    def _mirrored(self, state: SchemaState) -> list[tuple[str, Index]]:
        """The indexes the expansion builds on the new column, one per :meth:`_sources` entry:
        ``(qualified name, Index)``."""
        schema = split_table(self.table)[0]
        found = []
        for index, _constraint in self._sources(state):
            name = derived_name(index.resolved_name(self.table), suffix=self.new_name)
            found.append((f"{schema}.{name}", Index(columns=[spelled(self.new_name)], unique=index.unique,
                                                        name=spelled(name))))
        return found

    def target(self) -> str:
        return self.table

    def describe(self) -> str:
        return f"{self.kind} {self.table}.{self.column} -> {self.new_name}"

    def describe_expansion(self) -> str:
        return f"{self.table}.{self.column} → {self.new_name} (column: both names synced by a trigger)"

    # --- names ---------------------------------------------------------------------------------------

    @property
    def _renamed_key(self) -> str:
        return f"{self.table}.{self.column}>{self.new_name}"

    def _new_key(self) -> str:
        return f"{self.table}.{self.new_name}"

    def _fn(self, ctx: PlanContext) -> sql.Identifier:
        return ident(ctx.backup_schema, derived_name(f"v{self._version}", split_table(self.table)[1], self.new_name,
                                                     suffix="sync"))

    def _trigger(self) -> str:
        return derived_name("dbdeploy", f"v{self._version}", "sync", self.new_name)

    def _not_null_check(self) -> str:
        return derived_name(f"dbdeploy_v{self._version}", self.new_name, suffix="not_null")

    # --- what the online form converts (a rename: nothing; AlterColumnType(online=True): the type) -------

    def _to_new(self, old_value: sql.Composable) -> sql.Composable:
        """The new column's value for the old column's value ``old_value`` (an expression)."""
        return old_value

    def _to_old(self, new_value: sql.Composable) -> sql.Composable:
        """The old column's value for the new column's value ``new_value`` (an expression)."""
        return new_value

    def _column_definition(self, ctx: PlanContext, target: str, source: str) -> sql.Composable:
        """PL/pgSQL adding ``target`` (the new column at the expansion, the old one when a contract is
        rolled back) for ``source``: here the same type and collation (:meth:`_add_like`)."""
        return self._add_like(target, source)

    def _default_from(self, target: str, default: sql.Composable) -> sql.Composable | None:
        """The text of ``SET DEFAULT`` for ``target`` from the other column's default text ``default``
        (None: ``target`` keeps the default :meth:`_column_definition` gave it)."""
        return default

    def _keep_in_backup(self, ctx: PlanContext, backup: sql.Identifier) -> sql.Composable | None:
        """PL/pgSQL run once the contract has copied the old column to ``backup``: what else the contract's
        rollback needs from it (here nothing: the old column comes back like the new one)."""
        return None

    def _fill_plan(self, ctx: PlanContext, *, into: str, source: str, tag: str) -> BackfillPlan:
        convert = self._to_new if into == self.new_name else self._to_old
        return BackfillPlan(ctx, self.table, {into: _ColumnValue(source, convert)},
                            S("{} IS DISTINCT FROM {}").format(ident(into), convert(ident(source))),
                            self._resolve_key(ctx.state), self.batch_size, keep_old=False, tag=tag)

    # --- plain form ------------------------------------------------------------------------------------

    def _plain_forward(self, ctx: PlanContext) -> list[Step]:
        t, old, new = qualified(self.table), self.column, self.new_name
        body = block(
            if_then(relation_missing(self.table),
                    fail(ctx, f"table {self.table} does not exist",
                         "Check the table name, or create the table first.")),
            if_then(S("{} AND {}").format(column_exists(self.table, old), column_exists(self.table, new)),
                    fail(ctx, f"{self.table} has both {old!r} and {new!r}",
                         f"Drop or rename one of them first; then re-run {ctx.label}.")),
            if_then(column_exists(self.table, old),
                    S("ALTER TABLE {t} RENAME COLUMN {o} TO {n};").format(t=t, o=ident(old), n=ident(new)),
                    record_owned(ctx, "renamed_column", self._renamed_key),
                    otherwise=[if_then(column_exists(self.table, new),
                                       notice(ctx, f"column {self.table}.{old} is already named {new}"),
                                       otherwise=[fail(ctx, f"{self.table} has neither column {old!r} nor {new!r}",
                                                       "Check the column name in the spec.")])]),
        )
        return scaled([Step(self.kind, self.table, "ACCESS EXCLUSIVE", True, do_block(body),
                            f"rename column {self.table}.{old} to {new}")], queries.CATALOG_ONLY)

    def _plain_rollback(self, ctx: PlanContext) -> list[Step]:
        t, old, new = qualified(self.table), self.column, self.new_name
        body = if_then(
            is_owned(ctx, "renamed_column", self._renamed_key),
            if_then(S("{} AND NOT {}").format(column_exists(self.table, new), column_exists(self.table, old)),
                    S("ALTER TABLE {t} RENAME COLUMN {n} TO {o};").format(t=t, o=ident(old), n=ident(new))),
            forget_owned(ctx, "renamed_column", self._renamed_key),
            otherwise=[if_then(column_exists(self.table, new),
                               notice(ctx, f"column {self.table}.{new} was not renamed by {ctx.label}; left as is"))])
        return [Step("rename_column_back", self.table, "ACCESS EXCLUSIVE", True, do_block(body),
                     f"rename column {self.table}.{new} back to {old} if {ctx.label} renamed it")]

    def _plain_preflight(self, ctx: PlanContext) -> list:
        return [if_then(
            S("{} AND ({} OR NOT {} OR {})").format(
                is_owned(ctx, "renamed_column", self._renamed_key), relation_missing(self.table),
                column_exists(self.table, self.new_name), column_exists(self.table, self.column)),
            fail(ctx, f"cannot rename {self.table}.{self.new_name} back to {self.column}: the table or column is "
                      f"gone, or a column {self.column!r} exists again",
                 f"Restore {self.table}.{self.new_name} (or drop the new {self.column!r}), then run the rollback "
                 "again."))]

    # --- online form: the trigger ---------------------------------------------------------------------

    def _sync_function(self, ctx: PlanContext) -> sql.Composable:
        """CREATE OR REPLACE FUNCTION of the trigger function keeping both columns equal (see the module
        docstring); in the backup schema, EXECUTE revoked from PUBLIC (a trigger fires without it)."""
        o, n = ident(self.column), ident(self.new_name)
        body = S(
            "BEGIN\n"
            "    IF TG_OP = 'UPDATE' THEN\n"
            "        IF NEW.{n} IS DISTINCT FROM OLD.{n} THEN\n"
            "            NEW.{o} := {to_old};\n"
            "            RETURN NEW;\n"
            "        ELSIF NEW.{o} IS DISTINCT FROM OLD.{o} THEN\n"
            "            NEW.{n} := {to_new};\n"
            "            RETURN NEW;\n"
            "        END IF;\n"
            "    END IF;\n"
            "    IF NEW.{n} IS NULL THEN\n"
            "        NEW.{n} := {to_new};\n"
            "    ELSE\n"
            "        NEW.{o} := {to_old};\n"
            "    END IF;\n"
            "    RETURN NEW;\n"
            "END").format(o=o, n=n, to_new=self._to_new(S("NEW.{}").format(o)),
                          to_old=self._to_old(S("NEW.{}").format(n)))
        fn = self._fn(ctx)
        return block(
            S("CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql"
              " SET search_path = pg_catalog, pg_temp AS {body};").format(fn=fn, body=literal(render(body))),
            S("REVOKE ALL ON FUNCTION {fn}() FROM PUBLIC;").format(fn=fn))

    def _create_trigger(self, ctx: PlanContext) -> sql.Composable:
        return if_then(
            S("NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = {rel} AND tgname = {name})").format(
                rel=regclass(self.table), name=literal(self._trigger())),
            S("CREATE TRIGGER {tg} BEFORE INSERT OR UPDATE ON {t} FOR EACH ROW EXECUTE FUNCTION {fn}();").format(
                tg=ident(self._trigger()), t=qualified(self.table), fn=self._fn(ctx)))

    def _drop_trigger(self, ctx: PlanContext) -> sql.Composable:
        return block(S("DROP TRIGGER IF EXISTS {tg} ON {t};").format(tg=ident(self._trigger()),
                                                                     t=qualified(self.table)),
                     S("DROP FUNCTION IF EXISTS {fn}();").format(fn=self._fn(ctx)))

    def _add_like(self, target: str, source: str, relation: sql.Composable | None = None) -> sql.Composable:
        """PL/pgSQL: add column ``target`` with the type and collation of column ``source`` of ``relation``
        (default: the table itself; PostgreSQL's ``format_type`` and the collation's quoted name: catalog
        deparse, never text from a table), nullable and without a default (catalog only, no rewrite)."""
        return S(
            "SELECT pg_catalog.format_type(a.atttypid, a.atttypmod)\n"
            "    || CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation\n"
            "       THEN ' COLLATE ' || pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(c.collname)"
            " ELSE '' END\n"
            "    INTO v_def\n"
            "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid\n"
            "LEFT JOIN pg_catalog.pg_collation c ON c.oid = a.attcollation\n"
            "LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = c.collnamespace\n"
            "WHERE a.attrelid = {src_rel} AND a.attname = {src} AND a.attnum > 0 AND NOT a.attisdropped;\n"
            "EXECUTE 'ALTER TABLE ' || {rel}::pg_catalog.text || ' ADD COLUMN ' || {tgt} || ' ' || v_def;").format(
            rel=regclass(self.table), src_rel=regclass(self.table) if relation is None else regclass(relation),
            src=literal(source), tgt=literal(render(ident(target))))

    def _attr(self, column: str, what: str) -> sql.Composable:
        """``pg_attribute.<what>`` of ``table.column`` (``what``: attnotnull, attidentity, attgenerated)."""
        return S("(SELECT {w} FROM pg_catalog.pg_attribute WHERE attrelid = {rel} AND attname = {col})").format(
            w=sql.Identifier(what), rel=regclass(self.table), col=literal(column))

    # --- online form: the expansion -------------------------------------------------------------------

    def _expand_step(self, ctx: PlanContext) -> Step:
        t, old, new = qualified(self.table), self.column, self.new_name
        check = self._not_null_check()
        body = block(
            if_then(relation_missing(self.table),
                    fail(ctx, f"table {self.table} does not exist",
                         "Check the table name, or create the table first.")),
            if_then(S("NOT {}").format(column_exists(self.table, old)),
                    fail(ctx, f"{self.table} has no column {old!r} to expand",
                         "Check the column name in the spec (the online rename needs the old column).")),
            if_then(S("NOT {}").format(column_exists(self.table, new)),
                    if_then(S("{} <> '' OR {} <> ''").format(self._attr(old, "attidentity"),
                                                            self._attr(old, "attgenerated")),
                            fail(ctx, f"{self.table}.{old} is an identity or generated column, which the online "
                                      "rename cannot mirror", "Rename it with online=False.")),
                    self._column_definition(ctx, new, old),
                    record_owned(ctx, "column", self._new_key()),
                    if_then(self._attr(old, "attnotnull"),
                            S("ALTER TABLE {t} ADD CONSTRAINT {c} CHECK ({n} IS NOT NULL) NOT VALID;").format(
                                t=t, c=ident(check), n=ident(new)),
                            record_owned(ctx, "constraint", f"{self.table}.{check}")),
                    otherwise=[if_then(S("NOT {}").format(is_owned(ctx, "column", self._new_key())),
                                       fail(ctx, f"{self.table} already has a column {new!r} that {ctx.label} did not "
                                                 "add", "Pick another new_name, or drop that column first."))]),
            self._sync_function(ctx),
            self._create_trigger(ctx),
        )
        return Step("expand_column", self.table, "ACCESS EXCLUSIVE", True, do_block(body, declare=["v_def text"]),
                    f"add {self.table}.{new} beside {old} with a trigger keeping both equal")

    def _online_forward(self, ctx: PlanContext) -> list[Step]:
        plan = self._fill_plan(ctx, into=self.new_name, source=self.column, tag=f"op{ctx.index}_sync")
        steps = scaled([self._expand_step(ctx), plan.setup_step(), plan.run_step(),
                        cs.validate(ctx, self.table, self._not_null_check(),
                                    owned_key=f"{self.table}.{self._not_null_check()}")],
                       queries.CATALOG_ONLY, "constant (creates the cursor table)",
                       f"proportional to rows, in batches of at most {self.batch_size} (each about batch_time)",
                       queries.VALIDATE)
        for _name, index in self._mirrored(ctx.state):
            steps += scaled(cs.build_index_concurrently(ctx, "create_index", self.table, index),
                            queries.DROP_INVALID_INDEX, queries.CONCURRENT_INDEX)
        return steps

    def _online_rollback(self, ctx: PlanContext) -> list[Step]:
        steps = [cs.drop_owned_index(ctx, self.table, index.resolved_name(self.table))
                 for _name, index in reversed(self._mirrored(ctx.state))]
        key = self._new_key()
        check = self._not_null_check()
        body = block(
            self._drop_trigger(ctx),
            if_then(S("{} AND {} AND {}").format(relation_exists(self.table), column_exists(self.table, self.new_name),
                                                 is_owned(ctx, "column", key)),
                    refuse_if_dependants(ctx, f"column {key}", column_dependants(self.table, self.new_name)),
                    S("ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {c};").format(t=qualified(self.table), c=ident(check)),
                    S("ALTER TABLE {t} DROP COLUMN {n};").format(t=qualified(self.table), n=ident(self.new_name))),
            forget_owned(ctx, "column", key),
            forget_owned(ctx, "constraint", f"{self.table}.{check}"),
        )
        steps.append(Step("drop_expansion", self.table, "ACCESS EXCLUSIVE", True,
                          do_block(body, declare=["v_dependants text"]),
                          f"drop the trigger and {self.table}.{self.new_name} (the trigger kept {self.column} equal)"))
        steps += self._fill_plan(ctx, into=self.new_name, source=self.column, tag=f"op{ctx.index}_sync").restore_steps()
        return steps

    # --- the operation ---------------------------------------------------------------------------------

    def forward(self, ctx: PlanContext) -> list[Step]:
        return self._online_forward(ctx) if self.online else self._plain_forward(ctx)

    def rollback(self, ctx: PlanContext) -> list[Step]:
        return self._online_rollback(ctx) if self.online else self._plain_rollback(ctx)

    def rollback_preflight(self, ctx: PlanContext) -> list:
        if not self.online:
            return self._plain_preflight(ctx)
        return [drop_owned_column_preflight(ctx, self.table, self.new_name)]

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        if self.online:
            return [expect.Column(self.table, self.new_name)]
        return [expect.Column(self.table, self.new_name), expect.Column(self.table, self.column, present=False)]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        table, old, new = self.table, self.column, self.new_name
        existing = table not in earlier.created_tables
        prerequisites = [queries.table_exists(table)] if existing else []
        prerequisites.append(CheckQuery(
            f"Column {table}.{old} exists (or is already named {new})", queries.query(S(
                "SELECT {} OR {} AS column_found").format(column_exists(table, old), column_exists(table, new))),
            "true"))
        if not self.online:
            return ChecklistItems(
                prerequisites=prerequisites,
                notes=[f"Renaming {table}.{old} breaks every query of the running application that names {old}: "
                       "deploy the application that reads the new name together with it, or use online=True and a "
                       "later Contract."] if existing else [],
                health_checks=[queries.column_state(table, new, None), queries.column_gone(table, old)],
                rollback_notes=[f"{table}.{new} is renamed back to {old} only if {ctx.label} renamed it "
                                "(catalog only)."])
        plan = self._fill_plan(ctx, into=new, source=old, tag=f"op{ctx.index}_sync")
        mirrored = [name for name, _index in self._mirrored(ctx.state)]
        notes = [f"Until the Contract of V{self._version}, {table}.{old} and {table}.{new} hold the same value in "
                 f"every row (a trigger copies writes of either to the other; when both are written differently, {new} "
                 "wins). The new column has no default until the contract: new code that omits it gets the old "
                 "column's default through the trigger.",
                 "Mirrored on the new column: " + (", ".join(mirrored) if mirrored else "no index") + ". Not mirrored: "
                 "multi-column, expression and partial indexes, indexes the specs do not know, foreign keys and "
                 "CHECK constraints on the old column (they stay on it and go with it at the contract)."]
        return ChecklistItems(
            prerequisites=prerequisites, backups=[table] if existing else [], notes=notes,
            health_checks=[queries.column_state(table, new, None),
                           queries.backfill_finished(table, plan.progress, f"{ctx.backup_schema}.{plan.progress_name}",
                                                     plan.key)],
            watch=[queries.backfill_progress(table, plan.progress, f"{ctx.backup_schema}.{plan.progress_name}")],
            rollback_notes=[f"The trigger and {table}.{new} are dropped (only if {ctx.label} added it); every value "
                            f"written through either name is in {old}, which the trigger kept equal."])

    # --- the contract (ops/expansion.py) --------------------------------------------------------------

    def _backup_name(self, ctx: PlanContext) -> str:
        return derived_name(f"v{ctx.version}", f"op{ctx.index}", split_table(self.table)[1], self.column)

    def contract_apply(self, state: SchemaState) -> None:
        known = state.tables.get(self.table)
        if known is not None and self.column in known.columns:
            state.tables[self.table] = replace(
                known, columns={k: v for k, v in known.columns.items() if k != self.column})
        state.forget_column(self.table, self.column)

    def contract_forward(self, ctx: PlanContext) -> list[Step]:
        t, old, new = qualified(self.table), self.column, self.new_name
        key = self._resolve_key(ctx.state)
        backup = backup_table(ctx, self._backup_name(ctx))
        copy = if_then(
            S("{} AND {} AND {} IS NULL").format(relation_exists(self.table), column_exists(self.table, old),
                                                 regclass(backup)),
            S("CREATE TABLE {b} AS SELECT {cols} FROM {t};").format(
                b=backup, t=t, cols=S(", ").join(ident(c) for c in [*key, old])),
            acl.restrict_table(backup),
            self._keep_in_backup(ctx, backup))
        drop = block(
            if_then(relation_missing(self.table),
                    fail(ctx, f"table {self.table} does not exist", "Check the table name.")),
            if_then(S("NOT {}").format(column_exists(self.table, new)),
                    fail(ctx, f"{self.table} has no column {new!r}: the expansion of V{self._version} is not in place",
                         f"Apply V{self._version} first (or roll this migration back).")),
            if_then(column_exists(self.table, old),
                    refuse_if_dependants(ctx, f"column {self.table}.{old}", column_dependants(self.table, old)),
                    S("SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) INTO v_def FROM pg_catalog.pg_attrdef d"
                      " WHERE d.adrelid = {rel} AND d.adnum = (SELECT attnum FROM pg_catalog.pg_attribute"
                      " WHERE attrelid = {rel} AND attname = {o});").format(rel=regclass(self.table), o=literal(old)),
                    if_then(S("v_def IS NOT NULL"),
                            S("EXECUTE 'ALTER TABLE ' || {rel}::pg_catalog.text || ' ALTER COLUMN ' || {n}"
                              " || ' SET DEFAULT ' || {d};").format(rel=regclass(self.table),
                                                                    n=literal(render(ident(new))),
                                                                    d=self._default_from(new, S("v_def")))),
                    self._drop_trigger(ctx),
                    S("ALTER TABLE {t} DROP COLUMN {o};").format(t=t, o=ident(old)),
                    record_owned(ctx, "contracted_column", f"{self.table}.{old}")),
            # The validated CHECK (new IS NOT NULL) proves SET NOT NULL without a scan (PostgreSQL 12+).
            if_then(constraint_exists(self.table, self._not_null_check()),
                    S("ALTER TABLE {t} ALTER COLUMN {n} SET NOT NULL;").format(t=t, n=ident(new)),
                    S("ALTER TABLE {t} DROP CONSTRAINT {c};").format(t=t, c=ident(self._not_null_check())),
                    record_owned(ctx, "contracted_not_null", f"{self.table}.{new}")),
        )
        return scaled([
            Step("contract_copy", self.table, "ACCESS SHARE", True, do_block(copy),
                 f"copy {self.table}.{old} with the key to {ctx.backup_schema}.{self._backup_name(ctx)}"),
            Step("contract_column", self.table, "ACCESS EXCLUSIVE", True,
                 do_block(drop, declare=["v_def text", "v_dependants text"]),
                 f"drop the trigger and {self.table}.{old}; {new} takes its default (and NOT NULL)"),
        ], "proportional to rows (one read of the table; reads and writes continue)", queries.CATALOG_ONLY)

    def contract_rollback(self, ctx: PlanContext) -> list[Step]:
        t, old, new = qualified(self.table), self.column, self.new_name
        owned = is_owned(ctx, "contracted_column", f"{self.table}.{old}")
        old_default = self._default_from(old, S("v_def"))
        restore = if_then(
            S("{} AND NOT {}").format(owned, column_exists(self.table, old)),
            self._column_definition(ctx, old, new),
            self._sync_function(ctx),
            self._create_trigger(ctx),
            S("SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) INTO v_def FROM pg_catalog.pg_attrdef d"
              " WHERE d.adrelid = {rel} AND d.adnum = (SELECT attnum FROM pg_catalog.pg_attribute"
              " WHERE attrelid = {rel} AND attname = {n});").format(rel=regclass(self.table), n=literal(new)),
            if_then(S("v_def IS NOT NULL"),
                    None if old_default is None else S(
                        "EXECUTE 'ALTER TABLE ' || {rel}::pg_catalog.text || ' ALTER COLUMN ' || {o}"
                        " || ' SET DEFAULT ' || {d};").format(rel=regclass(self.table), o=literal(render(ident(old))),
                                                              d=old_default),
                    S("ALTER TABLE {t} ALTER COLUMN {n} DROP DEFAULT;").format(t=t, n=ident(new))))
        not_null_owned = is_owned(ctx, "contracted_not_null", f"{self.table}.{new}")
        restore = block(restore, if_then(
            S("{} AND NOT {}").format(not_null_owned, constraint_exists(self.table, self._not_null_check())),
            S("ALTER TABLE {t} ADD CONSTRAINT {c} CHECK ({n} IS NOT NULL) NOT VALID;").format(
                t=t, c=ident(self._not_null_check()), n=ident(new))))
        plan = self._fill_plan(ctx, into=old, source=new, tag=f"op{ctx.index}_{self.column}_resync")
        check = self._not_null_check()
        old_check = derived_name(f"dbdeploy_v{ctx.version}", old, suffix="not_null")
        add_check = if_then(
            S("{} AND {} AND NOT {}").format(owned, constraint_exists(self.table, check),
                                             constraint_exists(self.table, old_check)),
            S("ALTER TABLE {t} ADD CONSTRAINT {c} CHECK ({o} IS NOT NULL) NOT VALID;").format(
                t=t, c=ident(old_check), o=ident(old)))
        set_not_null = block(
            if_then(S("{} AND {}").format(owned, constraint_exists(self.table, old_check)),
                    S("ALTER TABLE {t} ALTER COLUMN {o} SET NOT NULL;").format(t=t, o=ident(old)),
                    S("ALTER TABLE {t} DROP CONSTRAINT {c};").format(t=t, c=ident(old_check))),
            if_then(owned, forget_owned(ctx, "contracted_column", f"{self.table}.{old}")),
            if_then(S("{} AND {}").format(not_null_owned, column_exists(self.table, new)),
                    S("ALTER TABLE {t} ALTER COLUMN {n} DROP NOT NULL;").format(t=t, n=ident(new))),
            forget_owned(ctx, "contracted_not_null", f"{self.table}.{new}"),
            S("DROP TABLE IF EXISTS {};").format(backup_table(ctx, self._backup_name(ctx))))
        rebuild: list[Step] = []
        for index, constraint in self._sources(ctx.state):
            rebuild += cs.build_index_concurrently(ctx, "create_index", self.table, index)
            if constraint is not None:
                rebuild.append(cs.attach_unique(ctx, self.table, constraint, index.columns, owned=False))
        return [
            Step("restore_column", self.table, "ACCESS EXCLUSIVE", True, do_block(restore, declare=["v_def text"]),
                 f"re-add {self.table}.{old} beside {new} with the trigger keeping both equal"),
            plan.setup_step(), plan.run_step(),
            Step("restore_not_null_check", self.table, "ACCESS EXCLUSIVE", True, do_block(add_check),
                 f"CHECK ({old} IS NOT NULL) NOT VALID when {new} is NOT NULL"),
            cs.validate(ctx, self.table, old_check),
            cs.validate(ctx, self.table, check),
            Step("restore_not_null", self.table, "ACCESS EXCLUSIVE", True, do_block(set_not_null),
                 f"SET NOT NULL on {old} (proven by the validated check), {new} back to its CHECK, "
                 "forget the contract"),
            *rebuild,
            *plan.restore_steps(),
        ]

    def contract_rollback_preflight(self, ctx: PlanContext) -> list:
        return [if_then(
            S("{} AND ({} OR NOT {})").format(is_owned(ctx, "contracted_column", f"{self.table}.{self.column}"),
                                              relation_missing(self.table), column_exists(self.table, self.new_name)),
            fail(ctx, f"cannot restore {self.table}.{self.column}: {self.table}.{self.new_name} is gone",
                 f"Restore {self.table}.{self.new_name} first, then run the rollback again."))]

    def contract_expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [expect.Column(self.table, self.column, present=False)]

    def contract_checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        return ChecklistItems(
            prerequisites=[queries.column_state(self.table, self.new_name, None)],
            backups=[self.table],
            notes=[f"After this contract only {self.new_name} exists: every application instance that still names "
                   f"{self.table}.{self.column} must be gone before it runs."],
            health_checks=[queries.column_gone(self.table, self.column)],
            rollback_notes=[f"{self.table}.{self.column} is re-added and filled from {self.new_name} in batches (every "
                            "value written since the contract), with the trigger keeping both equal again."])


__all__ = ["RenameColumn", "rename_column_in_state"]
