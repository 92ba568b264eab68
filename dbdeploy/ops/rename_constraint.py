"""RenameConstraint: ``ALTER TABLE … RENAME CONSTRAINT`` — metadata only; the rollback renames it back.

Lock (PostgreSQL docs, ALTER TABLE, "RENAME"): ACCESS EXCLUSIVE on the table for a catalog change
only (no scan, no rewrite), bounded by the environment's short ``lock_timeout``. The index of a unique,
primary key or exclusion constraint is renamed with it by PostgreSQL (docs, ALTER INDEX: "If you
rename such a constraint, it will implicitly rename its corresponding index").
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from psycopg import sql

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import Identifier, TableName
from dbdeploy.model.names import derived_name, split_table
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import (
    S,
    constraint_exists,
    fail,
    forget_owned,
    is_owned,
    notice,
    record_owned,
    relation_exists,
)
from dbdeploy.sql import ident, literal, qualified, regclass
from dbdeploy.sql.blocks import do_block, if_then

OWNED_KIND = "renamed_constraint"


def known_constraint(state: SchemaState, table: str, name: str) -> tuple[str, tuple[str, ...]] | None:
    """What the specs know of constraint ``name`` of ``table``: ``(contype, key columns)`` — ``p``, ``u``,
    ``f``, ``c`` (a CHECK's columns sorted) — or None when the specs did not create it."""
    schema = split_table(table)[0]
    if state.relations.get(f"{schema}.{name}") == ("the primary key", table):
        known = state.tables.get(table)
        return ("p", tuple(known.primary_key) if known else ())
    known = state.tables.get(table)
    if known is not None and name in known.uniques:
        return ("u", known.uniques[name])
    if (table, name) in state.foreign_keys:
        return ("f", state.foreign_keys[(table, name)].columns)
    if (table, name) in state.checks:
        return ("c", tuple(sorted(state.checks[(table, name)].columns)))
    return None


def primary_key_name(state: SchemaState, table: str) -> str | None:
    """The name of ``table``'s primary key as the specs made it (the relation of kind "the primary key")."""
    for qualified_name, (kind, owner) in state.relations.items():
        if kind == "the primary key" and owner == table:
            return qualified_name.partition(".")[2]
    return None


def default_primary_key_name(table: str) -> str:
    return derived_name(split_table(table)[1], suffix="pkey")


class RenameConstraint(Operation):
    """Rename constraint ``name`` of ``table`` to ``new_name`` (any kind).

    Shapes: ``RenameConstraint(table="shop.orders", name="orders_total_check", new_name="total_not_negative")``.
    Errors (at load): ``new_name`` equal to ``name``; on a table the specs created, a constraint it does
    not have or a name it already has; for a unique or primary key, a relation name already in use. At
    run time the forward stops, changing nothing, when both names exist or neither does. The rollback
    renames back only what this version renamed (recorded in ``migration_objects``)."""

    kind: ClassVar[str] = "rename_constraint"
    table: TableName
    name: Identifier
    new_name: Identifier

    def apply(self, state: SchemaState) -> None:
        if self.new_name == self.name:
            raise ValueError(f"new_name is the constraint's current name {self.name!r} — fix: give another name, "
                             "or remove this RenameConstraint")
        known = state.tables.get(self.table)
        if known is not None:
            if self.name not in known.constraints:
                raise ValueError(f"{self.table} has no constraint {self.name!r} (its constraints: "
                                 f"{', '.join(sorted(known.constraints)) or 'none'}) — fix: check the name")
            if self.new_name in known.constraints:
                raise ValueError(f"{self.table} already has a constraint named {self.new_name!r} — fix: pick "
                                 "another name")
            state.tables[self.table] = replace(
                known, constraints=(known.constraints - {self.name}) | {self.new_name},
                uniques={(self.new_name if n == self.name else n): c for n, c in known.uniques.items()})
        schema = split_table(self.table)[0]
        old_rel = f"{schema}.{self.name}"
        if old_rel in state.relations and state.relations[old_rel][1] == self.table:
            kind, owner = state.relations.pop(old_rel)
            state.claim(f"{schema}.{self.new_name}", kind, owner)
        key = (self.table, self.name)
        if key in state.foreign_keys:
            fact = state.foreign_keys.pop(key)
            state.foreign_keys[(self.table, self.new_name)] = replace(fact, name=self.new_name)
        if key in state.checks:
            fact = state.checks.pop(key)
            state.checks[(self.table, self.new_name)] = replace(fact, name=self.new_name)

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        known = known_constraint(ctx.state, self.table, self.name)
        kind, columns = known if known else (None, ())
        return [expect.Constraint(self.table, self.new_name, columns=tuple(sorted(columns)), constraint_kind=kind),
                expect.Constraint(self.table, self.name, present=False, columns=tuple(sorted(columns)),
                                  constraint_kind=kind)]

    def forward(self, ctx: PlanContext) -> list[Step]:
        t = qualified(self.table)
        body = if_then(
            constraint_exists(self.table, self.name),
            if_then(constraint_exists(self.table, self.new_name),
                    fail(ctx, f"cannot rename constraint {self.name} of {self.table} to {self.new_name}: a constraint "
                              f"{self.new_name} exists too", "Drop or rename one of them, then re-run.")),
            S("ALTER TABLE {} RENAME CONSTRAINT {} TO {};").format(t, ident(self.name), ident(self.new_name)),
            record_owned(ctx, OWNED_KIND, f"{self.table}.{self.new_name}"),
            otherwise=[if_then(constraint_exists(self.table, self.new_name),
                               notice(ctx, f"constraint {self.name} of {self.table} is already renamed to "
                                           f"{self.new_name}"),
                               otherwise=[fail(ctx, f"constraint {self.name} of {self.table} does not exist (nor "
                                                    f"{self.new_name})", "Check the table and constraint names.")])])
        body = if_then(relation_exists(self.table), body,
                       otherwise=[fail(ctx, f"table {self.table} does not exist", "Check the table name.")])
        return scaled([Step(self.kind, self.table, "ACCESS EXCLUSIVE", True, do_block(body),
                            f"rename constraint {self.name} of {self.table} to {self.new_name}")], queries.CATALOG_ONLY)

    def _owned(self, ctx: PlanContext) -> sql.Composable:
        return is_owned(ctx, OWNED_KIND, f"{self.table}.{self.new_name}")

    def rollback(self, ctx: PlanContext) -> list[Step]:
        body = if_then(
            S("{} AND {} AND {} AND NOT {}").format(self._owned(ctx), relation_exists(self.table),
                                                    constraint_exists(self.table, self.new_name),
                                                    constraint_exists(self.table, self.name)),
            S("ALTER TABLE {} RENAME CONSTRAINT {} TO {};").format(qualified(self.table), ident(self.new_name),
                                                                   ident(self.name)),
            forget_owned(ctx, OWNED_KIND, f"{self.table}.{self.new_name}"),
            otherwise=[if_then(S("NOT {}").format(self._owned(ctx)),
                               notice(ctx, f"constraint {self.new_name} of {self.table} was not renamed by "
                                           f"{ctx.label}; left as it is"))])
        return [Step(self.kind, self.table, "ACCESS EXCLUSIVE", True, do_block(body),
                     f"rename constraint {self.new_name} of {self.table} back to {self.name} if {ctx.label} "
                     "renamed it")]

    def rollback_preflight(self, ctx: PlanContext) -> list[sql.Composable]:
        return [if_then(
            S("{} AND {} AND {} AND {}").format(self._owned(ctx), relation_exists(self.table),
                                                constraint_exists(self.table, self.new_name),
                                                constraint_exists(self.table, self.name)),
            fail(ctx, f"cannot rename constraint {self.new_name} of {self.table} back to {self.name}: a constraint "
                      f"{self.name} exists again",
            f"Drop or rename constraint {self.name}, then re-run the rollback."))]

    def _state_query(self, first: str, second: str) -> str:
        return queries.query(S(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = {rel} AND conname = {a})\n"
            "   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = {rel} AND conname = {b})"
            " AS ok").format(rel=regclass(self.table), a=literal(first), b=literal(second)))

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        return ChecklistItems(
            prerequisites=[queries.table_exists(self.table),
                           CheckQuery(f"Constraint {self.name} of {self.table} exists, {self.new_name} does not",
                                      self._state_query(self.name, self.new_name), "true",
                                      otherwise="`false` after an earlier run of this version is expected")],
            health_checks=[CheckQuery(f"Constraint {self.name} of {self.table} is renamed to {self.new_name}",
                                      self._state_query(self.new_name, self.name), "true")],
            rollback_notes=[f"Constraint {self.new_name} of {self.table} is renamed back to {self.name} only if "
                            f"{ctx.label} renamed it (a short ACCESS EXCLUSIVE catalog change; a unique or primary "
                            "key's index is renamed with it)."])


__all__ = ["RenameConstraint", "default_primary_key_name", "known_constraint", "primary_key_name"]
