"""RenameTable: a metadata-only rename, or (``online=True``) an expansion with a view under the old name.

Plain form (PostgreSQL docs, ALTER TABLE ``RENAME TO``: catalog only, ACCESS EXCLUSIVE for a moment,
bounded by the executor's short ``lock_timeout``): renames the table unless it already has the new
name; neither name present stops the step. Indexes, constraints, sequences and the foreign keys of
other tables follow the table (they refer to it by oid). The rollback renames it back only when this
version renamed it. A rename never moves a table to another schema (that is ``SET SCHEMA``, refused
at load).

Online form (expand/contract, ops/expansion.py): the table is renamed and a view ``SELECT * FROM
<new>`` is created under the old name, owned by the deploying role, with the table's table-level
grants. Such a view is *automatically updatable* (PostgreSQL docs, CREATE VIEW, "Updatable Views":
one table in FROM, no aggregates, DISTINCT, set operations or LIMIT), so the application version
still running can SELECT, INSERT, UPDATE and DELETE through the old name; INSERTs through it get
the table's column defaults. Columns added to the table later do not appear in the view (``*`` is
expanded when the view is created). ``Contract(version=…)`` drops the view; its rollback creates it
again. The rollback of the expansion drops the view and renames the table back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from psycopg import sql
from pydantic import PrivateAttr, model_validator

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import TableName
from dbdeploy.model.names import split_table
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import (
    S,
    fail,
    forget_owned,
    is_owned,
    notice,
    record_owned,
    refuse_if_dependants,
    relation_exists,
    relation_missing,
    table_dependants,
)
from dbdeploy.ops.expansion import Expands
from dbdeploy.sql import ident, literal, qualified, regclass, render
from dbdeploy.sql.blocks import block, do_block, if_then


@dataclass(frozen=True)
class _ThroughView(expect.Column):
    """A column of the old table name, read through the expansion's view: there after the forward
    (presence only: a view column has no NOT NULL or default) and, on the table, after the rollback.
    It redefines the typed entry of an earlier version, which the view would not match."""

    def after_rollback(self, rollback: expect.Rollback) -> tuple[expect.Expectation, ...]:
        return (expect.Column(self.table, self.name),)


@dataclass(frozen=True)
class _MovedIndex(expect.Index):
    """An index of the renamed table (index names are per schema, so it keeps its name); after the
    rollback it is there on the old name, which the generated test does not check again."""

    def after_rollback(self, rollback: expect.Rollback) -> tuple[expect.Expectation, ...]:
        return ()


@dataclass(frozen=True)
class _MovedForeignKey(expect.Constraint):
    """Another table's foreign key onto the renamed table (it references the table by oid, so the old
    entry's referenced name would now be the view): checked for presence and key; there after the
    rollback too."""

    def after_rollback(self, rollback: expect.Rollback) -> tuple[expect.Expectation, ...]:
        return (expect.Presence(self.kind, self.name, self.table, True),)


def rename_table_in_state(state: SchemaState, old: str, new: str) -> None:
    """Record that table ``old`` is now ``new`` (both ``schema.name``): its columns and keys, its relation
    name, its indexes, its checks and foreign keys, and the foreign keys of other tables onto it.
    Refuses (ValueError) a new name another relation of the specs already has."""
    if new in state.relations:
        state.claim(new, "a table", new)       # raises, naming who has it
    known = state.tables.pop(old, None)
    if known is not None:
        state.tables[new] = known
    state.relations = {(new if n == old else n): (kind, new if owner == old else owner)
                       for n, (kind, owner) in state.relations.items()}
    if old not in state.relations and new not in state.relations and known is not None:
        state.relations[new] = ("table", new)
    state.indexes = {n: ((new, index) if owner == old else (owner, index))
                     for n, (owner, index) in state.indexes.items()}
    state.foreign_keys = {
        ((new, name) if table == old else (table, name)): replace(
            fact, table=new if fact.table == old else fact.table,
            references=new if fact.references == old else fact.references)
        for (table, name), fact in state.foreign_keys.items()}
    state.checks = {((new, name) if table == old else (table, name)): replace(
        fact, table=new if fact.table == old else fact.table) for (table, name), fact in state.checks.items()}


class RenameTable(Expands, Operation):
    """Rename ``table`` to ``new_name`` (``schema.name``, same schema): metadata only, or with
    ``online=True`` an expansion that leaves an updatable view under the old name until a later
    ``Contract(version=…)`` (module docstring). Spec errors: ValueError "reason — fix: …"."""

    kind: ClassVar[str] = "rename_table"
    table: TableName
    new_name: TableName
    online: bool = False
    _version: str = PrivateAttr(default="")

    @model_validator(mode="after")
    def _same_schema(self) -> RenameTable:
        old_schema, old_name = split_table(self.table)
        new_schema, new_name = split_table(self.new_name)
        if old_schema != new_schema:
            raise ValueError(f"new_name {self.new_name} is in schema {new_schema!r}, the table in {old_schema!r}: "
                             "moving a table to another schema is not a rename — fix: keep the schema "
                             f"({old_schema}.{new_name}), or move it with RawSQL (ALTER TABLE … SET SCHEMA)")
        if old_name == new_name:
            raise ValueError(f"new_name is the table's current name {self.table} — fix: give another name, or remove "
                             "this rename")
        return self

    def apply(self, state: SchemaState) -> None:
        kind, _owner = state.relations.get(self.table, ("", ""))
        if kind and kind != "table":
            raise ValueError(f"{self.table} is {kind}, not a table — fix: rename tables only")
        if state.complete and self.table not in state.tables and self.new_name in state.tables:
            raise ValueError(f"{self.table} was already renamed to {self.new_name} by an earlier spec — fix: remove "
                             "this rename")
        for version, ops in state.expansions.items():
            if any(getattr(op, "table", None) == self.table for op in ops):
                raise ValueError(f"V{version} left an expansion on {self.table} open (its Contract works on that "
                                 "name) — fix: rename the table in a migration after that Contract")
        self._version = state.at.version
        rename_table_in_state(state, self.table, self.new_name)
        if self.online:
            state.claim(self.table, "a view", self.new_name)
            state.views[self.table] = self.new_name
            state.open_expansion(self)

    def target(self) -> str:
        return self.table

    def describe(self) -> str:
        return f"{self.kind} {self.table} -> {self.new_name}"

    def describe_expansion(self) -> str:
        return f"{self.table} → {self.new_name} (table: a view keeps the old name)"

    @property
    def _renamed_key(self) -> str:
        return f"{self.table}>{self.new_name}"

    def _is_table(self, name: str) -> sql.Composable:
        return S("EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = {} AND relkind IN ('r', 'p'))").format(
            regclass(name))

    def _is_view(self, name: str) -> sql.Composable:
        return S("EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = {} AND relkind = 'v')").format(regclass(name))

    def _rename(self, ctx: PlanContext) -> sql.Composable:
        old, new = self.table, self.new_name
        return block(
            if_then(S("{} AND {}").format(relation_exists(old), relation_exists(new)),
                    fail(ctx, f"both {old} and {new} exist",
                         f"Drop or rename one of them first; then re-run {ctx.label}.")),
            if_then(relation_exists(old),
                    if_then(S("NOT {}").format(self._is_table(old)),
                            fail(ctx, f"{old} is not a table", "Check the name in the spec.")),
                    S("ALTER TABLE {t} RENAME TO {n};").format(t=qualified(old), n=ident(split_table(new)[1])),
                    record_owned(ctx, "renamed_table", self._renamed_key),
                    otherwise=[if_then(relation_exists(new), notice(ctx, f"table {old} is already named {new}"),
                                       otherwise=[fail(ctx, f"neither {old} nor {new} exists",
                                                       "Check the table name in the spec.")])]))

    # --- the old name as a view ------------------------------------------------------------------------

    def _create_view(self, ctx: PlanContext, owner: PlanContext) -> sql.Composable:
        """PL/pgSQL: the view under the old name over the new table, with the table's table-level grants
        (privilege keywords and role names read from the catalog, quoted as data), recorded as ``owner``'s."""
        view = qualified(self.table)
        return block(
            S("CREATE VIEW {v} AS SELECT * FROM {t};").format(v=view, t=qualified(self.new_name)),
            S("FOR v_grant IN SELECT a.privilege_type, a.grantee, r.rolname\n"
              "    FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a\n"
              "    LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee\n"
              "    WHERE c.oid = {rel} AND a.grantee <> c.relowner\n"
              "      AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRIGGER', 'REFERENCES')\n"
              "LOOP\n"
              "    EXECUTE 'GRANT ' || v_grant.privilege_type || ' ON ' || {v} || ' TO '\n"
              "        || CASE WHEN v_grant.grantee = 0 THEN 'PUBLIC'"
              " ELSE pg_catalog.quote_ident(v_grant.rolname) END;\n"
              "END LOOP;").format(rel=regclass(self.new_name), v=literal(render(qualified(self.table)))),
            record_owned(owner, "view", self.table))

    def _drop_view(self, ctx: PlanContext, owner: PlanContext, record: str | None) -> sql.Composable:
        """PL/pgSQL: drop the view under the old name if ``owner``'s version created it (refusing views
        on it: never CASCADE)."""
        return if_then(
            S("{} AND {}").format(self._is_view(self.table), is_owned(owner, "view", self.table)),
            refuse_if_dependants(ctx, f"view {self.table}", table_dependants(self.table)),
            S("DROP VIEW {};").format(qualified(self.table)),
            record_owned(ctx, "contracted_view", self.table) if record else forget_owned(owner, "view", self.table))

    def _expanded(self, ctx: PlanContext) -> PlanContext:
        return replace(ctx, version=self._version)

    # --- the operation ---------------------------------------------------------------------------------

    def forward(self, ctx: PlanContext) -> list[Step]:
        if not self.online:
            return scaled([Step(self.kind, self.table, "ACCESS EXCLUSIVE", True, do_block(self._rename(ctx)),
                                f"rename table {self.table} to {self.new_name}")], queries.CATALOG_ONLY)
        body = block(
            if_then(S("{} AND {} AND {}").format(self._is_view(self.table), relation_exists(self.new_name),
                                                 is_owned(ctx, "view", self.table)),
                    notice(ctx, f"table {self.table} is already {self.new_name} with a view under the old name"),
                    S("RETURN;")),
            self._rename(ctx),
            if_then(relation_missing(self.table), self._create_view(ctx, ctx)))
        return scaled([Step("expand_table", self.table, "ACCESS EXCLUSIVE", True,
                            do_block(body, declare=["v_grant record"]),
                            f"rename table {self.table} to {self.new_name} and leave an updatable view under the "
                            "old name")], queries.CATALOG_ONLY)

    def rollback(self, ctx: PlanContext) -> list[Step]:
        old, new = self.table, self.new_name
        back = if_then(
            is_owned(ctx, "renamed_table", self._renamed_key),
            if_then(S("{} AND {}").format(relation_exists(new), relation_missing(old)),
                    S("ALTER TABLE {t} RENAME TO {n};").format(t=qualified(new), n=ident(split_table(old)[1]))),
            forget_owned(ctx, "renamed_table", self._renamed_key),
            otherwise=[if_then(relation_exists(new), notice(ctx, f"table {new} was not renamed by {ctx.label}; "
                                                                 "left as is"))])
        body = block(self._drop_view(ctx, ctx, None), back) if self.online else back
        return [Step("rename_table_back", old, "ACCESS EXCLUSIVE", True, do_block(body, declare=["v_dependants text"]),
                     (f"drop the view {old} and " if self.online else "")
                     + f"rename table {new} back to {old} if {ctx.label} renamed it")]

    def rollback_preflight(self, ctx: PlanContext) -> list:
        checks = [if_then(
            S("{} AND (NOT {} OR ({} AND NOT ({} AND {})))").format(
                is_owned(ctx, "renamed_table", self._renamed_key), relation_exists(self.new_name),
                relation_exists(self.table), self._is_view(self.table), is_owned(ctx, "view", self.table)),
            fail(ctx, f"cannot rename {self.new_name} back to {self.table}: it is gone, or another relation "
                      f"named {self.table} exists", f"Restore {self.new_name} (or move the other {self.table} "
                                                    "away), then run the rollback again."))]
        if self.online:
            checks.append(if_then(
                S("{} AND {}").format(self._is_view(self.table), is_owned(ctx, "view", self.table)),
                refuse_if_dependants(ctx, f"view {self.table}", table_dependants(self.table))))
        return checks

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        if self.online:
            return [expect.Table(self.new_name), *self._old_name_expects(ctx)]
        return [expect.Table(self.new_name), expect.Table(self.table, present=False)]

    def _old_name_expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        """What earlier versions expect of the old name, as it is while the view stands (so ``verify``
        and the generated tests do not check the view as the table): its columns by presence, its
        constraints gone from the old name, its indexes and the foreign keys onto it on the new name."""
        from dbdeploy.ops.create_index import index_expect

        known = ctx.state.tables.get(self.table)
        out: list[expect.Expectation] = []
        if known is not None:
            out += [_ThroughView(self.table, column) for column in known.columns]
            out += [expect.Constraint(self.table, name, present=False) for name in sorted(known.constraints)]
        for _name, (owner, index) in sorted(ctx.state.indexes.items()):
            if owner == self.table:
                moved = index_expect(self.new_name, index.model_copy(update={"name": index.resolved_name(owner)}))
                out.append(_MovedIndex(moved.name, moved.table, columns=moved.columns, definition=moved.definition))
        for (table, name), fk in sorted(ctx.state.foreign_keys.items()):
            if fk.references == self.table and table != self.table:
                # presence, validation and key only: the fact does not keep ON DELETE, which the full
                # foreign-key check compares
                out.append(_MovedForeignKey(table, name, columns=tuple(sorted(fk.columns)), key=fk.columns))
        return out

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        old, new = self.table, self.new_name
        prerequisites = [CheckQuery(f"Table {old} exists (or is already named {new})", queries.query(S(
            "SELECT {} OR {} AS table_found").format(relation_exists(old), relation_exists(new))), "true")]
        health = [queries.table_exists(new)]
        if not self.online:
            return ChecklistItems(
                prerequisites=prerequisites, health_checks=[*health, queries.relation_missing_check(
                    old, f"No relation is named {old} any more")],
                notes=[f"Renaming {old} breaks every query of the running application that names it: deploy the "
                       "application that uses the new name together with it, or use online=True and a later "
                       "Contract."],
                rollback_notes=[f"{new} is renamed back to {old} only if {ctx.label} renamed it (catalog only)."])
        return ChecklistItems(
            prerequisites=prerequisites, health_checks=[*health, CheckQuery(
                f"{old} is a view over {new} until the contract", queries.query(S(
                    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = {} AND relkind = 'v') AS is_view"
                ).format(regclass(old))), "true")],
            notes=[f"Until the Contract of V{self._version}, {old} is an automatically updatable view "
                   f"(SELECT * FROM {new}): the running application reads and writes through it. Columns added to "
                   f"{new} later are not in the view; grants made on {new} later are not copied to it."],
            rollback_notes=[f"The view {old} is dropped and {new} renamed back to {old}, only if {ctx.label} did "
                            "them (catalog only); every row written through either name is in the table."])

    # --- the contract (ops/expansion.py) --------------------------------------------------------------

    def contract_apply(self, state: SchemaState) -> None:
        state.views.pop(self.table, None)
        if state.relations.get(self.table, ("", ""))[0] == "a view":
            state.relations.pop(self.table)

    def contract_forward(self, ctx: PlanContext) -> list[Step]:
        return scaled([Step("contract_table", self.table, "ACCESS EXCLUSIVE", True,
                            do_block(self._drop_view(ctx, self._expanded(ctx), "contracted"),
                                     declare=["v_dependants text"]),
                            f"drop the view {self.table} (the old name of {self.new_name})")], queries.CATALOG_ONLY)

    def contract_rollback(self, ctx: PlanContext) -> list[Step]:
        body = if_then(
            S("{} AND {} AND {}").format(is_owned(ctx, "contracted_view", self.table), relation_missing(self.table),
                                         relation_exists(self.new_name)),
            self._create_view(ctx, self._expanded(ctx)),
            forget_owned(ctx, "contracted_view", self.table))
        return [Step("restore_view", self.table, "ACCESS EXCLUSIVE", True, do_block(body, declare=["v_grant record"]),
                     f"create the view {self.table} over {self.new_name} again")]

    def contract_rollback_preflight(self, ctx: PlanContext) -> list:
        return [if_then(
            S("{} AND ({} OR NOT {})").format(is_owned(ctx, "contracted_view", self.table),
                                             relation_exists(self.table), relation_exists(self.new_name)),
            fail(ctx, f"cannot create the view {self.table} again: {self.new_name} is gone or {self.table} exists",
                 f"Restore {self.new_name} (or move the other {self.table} away), then run the rollback again."))]

    def contract_expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [expect.Table(self.table, present=False)]

    def contract_checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        return ChecklistItems(
            prerequisites=[queries.table_exists(self.new_name)],
            notes=[f"After this contract the view {self.table} is gone: every application instance that still names "
                   f"{self.table} must be gone before it runs."],
            health_checks=[queries.relation_missing_check(self.table, f"No relation is named {self.table} any more")],
            rollback_notes=[f"The view {self.table} over {self.new_name} is created again (catalog only)."])


__all__ = ["RenameTable", "rename_table_in_state"]
