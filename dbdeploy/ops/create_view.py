"""CreateView: create a view from one SELECT, or accept an existing view defined exactly so.

The forward is one short transaction (``create_view``): ``CREATE VIEW`` takes ACCESS EXCLUSIVE on
the new view only and ACCESS SHARE on the relations its query reads (it reads no row; PostgreSQL
docs, "Explicit Locking": CREATE VIEW is not listed as taking more; tests/test_step_locks.py reads
``pg_locks``). When a relation of that name exists already, the step compares it with the spec:
``pg_get_viewdef`` of the existing view (with its options and column names) against the same of a
temporary view created from the spec's query in ``pg_temp`` (dropped again right away) — both
printed by PostgreSQL in the same session, so equal text means the same parsed definition. Equal:
accepted, not owned (the rollback leaves it). Different, or not a view: the step stops, changing
nothing. A view it creates is recorded as owned by the version.

The rollback drops the view only when this version created it; its preflight refuses before any
change while other views or objects depend on it (named; views that this version created on top of
it are dropped first by their own rollbacks), never with CASCADE.
"""

from __future__ import annotations

from typing import ClassVar

from psycopg import sql

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import SqlQuery, TableName
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops import view_common as vc
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import (
    S,
    fail,
    forget_owned,
    is_owned,
    notice,
    record_owned,
    relation_exists,
)
from dbdeploy.sql import qualified, regclass
from dbdeploy.sql.blocks import block, do_block, if_then


class CreateView(Operation):
    """Create view ``name`` (``schema.name``) as ``query`` (one SELECT, VALUES or WITH … SELECT,
    every table schema-qualified).

    Shapes: ``CreateView(name="shop.open_orders", query="SELECT o.id, o.total FROM shop.orders AS o
    WHERE o.status <> 'done'")``. Errors at load: a query that is not exactly one SELECT-like statement,
    reads an unqualified table, a table the specs dropped, or ``alias.column`` of a spec-created table
    that lacks the column; a name another relation of the specs uses. At run time the step stops,
    changing nothing, when a relation of that name exists and is not a view defined exactly so."""

    kind: ClassVar[str] = "create_view"
    name: TableName
    query: SqlQuery

    def target(self) -> str:
        return self.name

    def apply(self, state: SchemaState) -> None:
        vc.check_reads(state, self.query)
        if self.name in state.views:
            raise ValueError(f"view {self.name} is already created by an earlier operation — fix: pick another name, "
                             "or change it with ReplaceView")
        state.claim(self.name, "a view", self.name)
        state.views[self.name] = vc.ViewFact(str(self.query), self.query.relations)

    def forward(self, ctx: PlanContext) -> list[Step]:
        view = self.name
        differs = fail(ctx, f"{view} exists and is not defined as this CreateView says; nothing was changed",
                       "Change it with ReplaceView (its rollback restores the current definition), or drop it "
                       "first (DropView).",
                       detail=S("'it is: ' || COALESCE(v_actual, '?') || ' — the spec gives: ' || v_expected"))
        body = block(
            if_then(relation_exists(view),
                    if_then(S("NOT {}").format(vc.relkind_is(view, "v")),
                            fail(ctx, f"{view} exists and is not a view; nothing was changed",
                                 "Pick another name for the view.")),
                    vc.same_definition(view, self.query.sql()),
                    if_then(S("v_actual IS DISTINCT FROM v_expected"), differs),
                    notice(ctx, f"view {view} exists with this definition; kept as it is"),
                    S("RETURN;")),
            S("CREATE VIEW {v} AS {q};").format(v=qualified(view), q=self.query.sql()),
            record_owned(ctx, "view", view),
            notice(ctx, f"created view {view}"),
        )
        return scaled([Step(self.kind, view, "ACCESS EXCLUSIVE", True,
                            do_block(body, declare=["v_actual text", "v_expected text"]),
                            f"create view {view} (catalog only)")], queries.CATALOG_ONLY)

    def rollback(self, ctx: PlanContext) -> list[Step]:
        view = self.name
        body = block(
            if_then(S("{} AND {}").format(relation_exists(view), is_owned(ctx, "view", view)),
                    S("DROP VIEW {};").format(qualified(view)),
                    notice(ctx, f"dropped view {view}")),
            forget_owned(ctx, "view", view))
        return [Step("drop_view", view, "ACCESS EXCLUSIVE", True, do_block(body),
                     f"drop view {view} if {ctx.label} created it")]

    def rollback_preflight(self, ctx: PlanContext) -> list[sql.Composable]:
        view = self.name
        check = vc.refuse_dependants(
            ctx, f"refusing to drop view {view} (created by {ctx.label}); nothing was changed", view,
            "Drop or change the dependants first (dbdeploy never uses CASCADE), then run the rollback again.",
            skip_view=vc.owned_view(ctx))
        return [block(S("DECLARE v_dependants text;"), S("BEGIN"),
                      if_then(S("{} AND {}").format(relation_exists(view), is_owned(ctx, "view", view)), check),
                      S("END;"))]

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [expect.View(self.name, str(self.query), before=None)]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        view = self.name
        return ChecklistItems(
            prerequisites=[
                *vc.read_relations_exist(view, self.query, earlier.created_tables, "view"),
                queries.relation_missing_check(
                    view, f"No relation {view} exists yet",
                    otherwise="an existing view defined exactly as the spec says is accepted (and kept by the "
                              "rollback); anything else stops the step"),
            ],
            health_checks=[CheckQuery(f"View {view} exists", queries.query(S(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = {rel} AND relkind = 'v')"
                " AS view_exists").format(rel=regclass(view))), "true")],
            created_tables=[view],   # so a later view of this migration reading it does not list it as a prerequisite
            rollback_notes=[f"View {view} is dropped only if {ctx.label} created it; the rollback refuses before any "
                            "change while other views or objects depend on it (named), never with CASCADE."])


__all__ = ["CreateView"]
