"""RenameIndex: ``ALTER INDEX … RENAME TO`` — metadata only; the rollback renames it back.

Lock (PostgreSQL docs, ALTER INDEX; commit 1b5d797cd4f7, PostgreSQL 12): renaming an index takes
SHARE UPDATE EXCLUSIVE on the index only — reads and writes of the table continue. (``ALTER INDEX``
spelled on a relation that is not an index retries with ACCESS EXCLUSIVE, so the step first checks
that the name is an index.) An index that backs a constraint (unique, primary key, exclusion) is
refused: PostgreSQL renames the constraint with it, which is :class:`RenameConstraint`'s business.
"""

from __future__ import annotations

from typing import ClassVar

from psycopg import sql
from pydantic import field_validator

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import Identifier
from dbdeploy.model.names import check_table_name
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import S, fail, forget_owned, is_owned, notice, record_owned, regclass
from dbdeploy.sql import ident
from dbdeploy.sql.blocks import do_block, if_then

OWNED_KIND = "renamed_index"


def _is_index(rel: sql.Composable) -> sql.Composable:
    return S("EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = {} AND relkind IN ('i', 'I'))").format(rel)


def _backs_constraint(rel: sql.Composable) -> sql.Composable:
    return S("EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conindid = {} AND contype IN ('p', 'u', 'x'))"
             ).format(rel)


class RenameIndex(Operation):
    """Rename index ``name`` (``schema.index``) to ``new_name`` (same schema).

    Shapes: ``RenameIndex(name="shop.orders_status_idx", new_name="orders_open_status_idx")``.
    Errors (at load): ``new_name`` equal to the old name; an index the specs know as the index of a
    primary key or unique constraint (fix: ``RenameConstraint``); a new name an earlier operation uses.
    At run time the forward stops, changing nothing, when both names exist, when neither does, when
    ``name`` is not an index or backs a constraint. The rollback renames back only what this version
    renamed (recorded in ``migration_objects``)."""

    kind: ClassVar[str] = "rename_index"
    name: str
    new_name: Identifier

    @field_validator("name")
    @classmethod
    def _qualified(cls, value: str) -> str:
        return check_table_name(value, "index")

    @property
    def schema(self) -> str:
        return self.name.partition(".")[0]

    @property
    def old(self) -> str:
        return self.name.partition(".")[2]

    @property
    def new_qualified(self) -> str:
        return f"{self.schema}.{self.new_name}"

    def target(self) -> str:
        return self.name

    def apply(self, state: SchemaState) -> None:
        if self.new_name == self.old:
            raise ValueError(f"new_name is the index's current name {self.old!r} — fix: give another name, or "
                             "remove this RenameIndex")
        kind, table = state.relations.get(self.name, ("", ""))
        if kind in ("the primary key", "a unique constraint"):
            raise ValueError(f"{self.name} is the index behind {kind} of {table}; renaming it renames the "
                             "constraint too — fix: use RenameConstraint")
        if self.name in state.relations:
            state.claim(self.new_qualified, kind, table)
            del state.relations[self.name]
        if self.name in state.indexes:
            owner, index = state.indexes.pop(self.name)
            state.indexes[self.new_qualified] = (owner, index.model_copy(update={"name": self.new_name}))

    def _table(self, ctx: PlanContext) -> str:
        known = ctx.state.indexes.get(self.name)
        return known[0] if known else ""

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        table = self._table(ctx)
        return [expect.Index(self.new_qualified, table), expect.Index(self.name, table, present=False)]

    def forward(self, ctx: PlanContext) -> list[Step]:
        old, new = regclass(ident(self.schema, self.old)), regclass(ident(self.schema, self.new_name))
        body = if_then(
            S("{} IS NOT NULL").format(old),
            if_then(S("{} IS NOT NULL").format(new),
                    fail(ctx, f"cannot rename index {self.name} to {self.new_name}: a relation "
                              f"{self.new_qualified} exists too", "Drop or rename one of them, then re-run.")),
            if_then(S("NOT {}").format(_is_index(old)),
                    fail(ctx, f"{self.name} is not an index", "Check the name (schema.index).")),
            if_then(_backs_constraint(old),
                    fail(ctx, f"index {self.name} backs a constraint; renaming it renames the constraint too",
                         "Use RenameConstraint (table, name, new_name) instead.")),
            S("ALTER INDEX {} RENAME TO {};").format(ident(self.schema, self.old), ident(self.new_name)),
            record_owned(ctx, OWNED_KIND, self.new_qualified),
            otherwise=[if_then(S("{} IS NOT NULL").format(new),
                               notice(ctx, f"index {self.name} is already renamed to {self.new_name}"),
                               otherwise=[fail(ctx, f"index {self.name} does not exist (nor {self.new_qualified})",
                                               "Check the name (schema.index).")])])
        return scaled([Step(self.kind, self._table(ctx) or self.name, "SHARE UPDATE EXCLUSIVE", True,
                            do_block(body), f"rename index {self.name} to {self.new_name}")],
                      queries.CATALOG_ONLY)

    def rollback(self, ctx: PlanContext) -> list[Step]:
        old, new = regclass(ident(self.schema, self.old)), regclass(ident(self.schema, self.new_name))
        owned = is_owned(ctx, OWNED_KIND, self.new_qualified)
        body = if_then(
            S("{} AND {} IS NOT NULL AND {} IS NULL").format(owned, new, old),
            S("ALTER INDEX {} RENAME TO {};").format(ident(self.schema, self.new_name), ident(self.old)),
            forget_owned(ctx, OWNED_KIND, self.new_qualified),
            otherwise=[if_then(S("NOT {}").format(owned),
                               notice(ctx, f"index {self.new_qualified} was not renamed by {ctx.label}; "
                                           "left as it is"))])
        return [Step(self.kind, self._table(ctx) or self.name, "SHARE UPDATE EXCLUSIVE", True, do_block(body),
                     f"rename index {self.new_qualified} back to {self.old} if {ctx.label} renamed it")]

    def rollback_preflight(self, ctx: PlanContext) -> list[sql.Composable]:
        old, new = regclass(ident(self.schema, self.old)), regclass(ident(self.schema, self.new_name))
        return [if_then(
            S("{} AND {} IS NOT NULL AND {} IS NOT NULL").format(is_owned(ctx, OWNED_KIND, self.new_qualified),
                                                              new, old),
            fail(ctx, f"cannot rename index {self.new_qualified} back to {self.old}: a relation {self.name} "
                      "exists again", f"Drop or rename {self.name}, then re-run the rollback."))]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        new_rel = regclass(ident(self.schema, self.new_name))
        return ChecklistItems(
            prerequisites=[
                CheckQuery(f"Index {self.name} exists and no relation is named {self.new_qualified}",
                           queries.query(S("SELECT {} IS NOT NULL AND {} IS NULL AS can_rename").format(
                               regclass(ident(self.schema, self.old)), new_rel)), "true",
                           otherwise="`false` after an earlier run of this version is expected"),
            ],
            health_checks=[CheckQuery(f"Index {self.new_qualified} exists and {self.name} is gone", queries.query(
                S("SELECT {} IS NOT NULL AND {} IS NULL AS renamed").format(
                    new_rel, regclass(ident(self.schema, self.old)))), "true")],
            rollback_notes=[f"Index {self.new_qualified} is renamed back to {self.old} only if {ctx.label} renamed "
                            "it (SHARE UPDATE EXCLUSIVE on the index only)."])


__all__ = ["RenameIndex"]
