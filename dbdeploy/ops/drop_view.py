"""DropView: drop a view, its definition kept for a rollback that re-creates it exactly.

The forward is one short transaction (``drop_view``: ACCESS EXCLUSIVE on the view only — measured
with ``pg_locks``, tests/test_step_locks.py). Before any change it refuses (never CASCADE) while
other views, materialized views or objects depend on the view, naming them. Then it saves the view
as the catalog has it (:mod:`dbdeploy.ops.view_common`: ``pg_get_viewdef(oid, true)``, column names,
``reloptions``, comment and grants) in ``<backup schema>.saved_views``, drops it, and records the
drop as this version's. A re-run finds the view gone and its saved row there, and does nothing.

The rollback re-creates the view only if this version dropped it and it is still missing: ``CREATE
VIEW <view> (<saved columns>) WITH (<saved options>) AS <saved definition>`` — ``EXECUTE`` of the
catalog text saved at forward time — then its comment and grants; the owner is the role running
the rollback. Its preflight refuses, before any change, when this version dropped the view and the
saved row is missing.
"""

from __future__ import annotations

from typing import ClassVar

from psycopg import sql

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import TableName
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops import view_common as vc
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import S, fail, forget_owned, is_owned, notice, record_owned, relation_missing
from dbdeploy.sql import qualified, regclass
from dbdeploy.sql.blocks import block, do_block, if_then


class DropView(Operation):
    """Drop view ``name`` (``schema.name``).

    Shapes: ``DropView(name="shop.open_orders")``. Errors at load: a name the specs know as a table or
    a materialized view, or a view that another view the specs created reads (fix: drop that one first,
    earlier in the migration). At run time the step stops, changing nothing, when the view does not
    exist (and this version did not drop it), is not a view, or anything depends on it (named)."""

    kind: ClassVar[str] = "drop_view"
    name: TableName

    def target(self) -> str:
        return self.name

    def _owned_key(self, ctx: PlanContext) -> str:
        return f"{self.name}@{ctx.index}"

    def apply(self, state: SchemaState) -> None:
        if self.name in state.tables:
            raise ValueError(f"{self.name} is a table, not a view — fix: drop it with DropTable")
        known = state.views.get(self.name)
        if isinstance(known, vc.ViewFact) and known.materialized:
            raise ValueError(f"{self.name} is a materialized view — fix: drop it with RawSQL "
                             "(DROP MATERIALIZED VIEW), dbdeploy's DropView drops plain views")
        users = sorted(name for name, fact in state.views.items()
                       if isinstance(fact, vc.ViewFact) and name != self.name
                       and self.name in fact.reads)
        if users:
            raise ValueError(f"view {self.name} is read by view(s) {', '.join(users)}; dbdeploy never drops with "
                             "CASCADE — fix: drop those first with DropView, earlier in the migration")
        state.views.pop(self.name, None)
        if state.relations.get(self.name, ("", ""))[0] == "a view":
            del state.relations[self.name]
        state.dropped = (*state.dropped, (self.name, ""))

    def forward(self, ctx: PlanContext) -> list[Step]:
        view = self.name
        body = block(
            vc.ensure_saved_views(ctx),
            if_then(relation_missing(view),
                    if_then(vc.saved_exists(ctx),
                            notice(ctx, f"view {view} is already dropped (its definition is kept in "
                                        f"{ctx.backup_schema}.saved_views)"),
                            S("RETURN;")),
                    fail(ctx, f"view {view} does not exist; nothing to drop", "Check the view name.")),
            if_then(S("NOT {}").format(vc.relkind_is(view, "v")),
                    fail(ctx, f"{view} is not a view; nothing was changed",
                         "Drop a table with DropTable; a materialized view with RawSQL.")),
            vc.refuse_dependants(ctx, f"refusing to drop view {view}; nothing was changed", view,
                                 "Drop those first (DropView earlier in the same migration; dbdeploy never uses "
                                 "CASCADE), then re-run."),
            vc.save_definition(ctx, view),
            S("DROP VIEW {};").format(qualified(view)),
            record_owned(ctx, "dropped_view", self._owned_key(ctx)),
            notice(ctx, f"dropped view {view}; its definition is kept in {ctx.backup_schema}.saved_views for the "
                        "rollback"),
        )
        return scaled([Step(self.kind, view, "ACCESS EXCLUSIVE", True,
                            do_block(body, declare=["v_dependants text"]),
                            f"drop view {view} (definition kept for the rollback)")], queries.CATALOG_ONLY)

    def rollback(self, ctx: PlanContext) -> list[Step]:
        view = self.name
        body = block(
            if_then(S("NOT {}").format(vc.saved_exists(ctx)),
                    notice(ctx, f"no saved definition of view {view} (nothing to restore: rolled back already, or "
                                "the forward did not run)"),
                    forget_owned(ctx, "dropped_view", self._owned_key(ctx)),
                    S("RETURN;")),
            vc.load_saved(ctx),
            if_then(relation_missing(view),
                    vc.recreate_statement(view, replace=False),
                    vc.restore_extras(view),
                    notice(ctx, f"re-created view {view} as it was before {ctx.label}"),
                    otherwise=[notice(ctx, f"view {view} exists again; kept as it is")]),
            S("DELETE FROM {meta} AS m WHERE {w};").format(meta=vc.saved_views_table(ctx), w=vc.saved_where(ctx)),
            forget_owned(ctx, "dropped_view", self._owned_key(ctx)),
        )
        return [Step("restore_view", view, "ACCESS EXCLUSIVE", True, do_block(body, declare=vc.SAVED_DECLARE),
                     f"re-create view {view} if {ctx.label} dropped it (from its saved definition)")]

    def rollback_preflight(self, ctx: PlanContext) -> list[sql.Composable]:
        view = self.name
        return [if_then(
            S("{} AND NOT {}").format(is_owned(ctx, "dropped_view", self._owned_key(ctx)), vc.saved_exists(ctx)),
            fail(ctx, f"the definition of view {view} dropped by {ctx.label}, saved in "
                      f"{ctx.backup_schema}.saved_views, is missing, so the rollback cannot re-create it",
                 f"Re-create view {view} by hand, delete the row of {self._owned_key(ctx)} from "
                 f"{ctx.history_schema}.migration_objects, then run the rollback again."))]

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        known = ctx.state.views.get(self.name)
        before = known.query if isinstance(known, vc.ViewFact) else expect._UNKNOWN
        return [expect.View(self.name, present=False, before=before)]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        view = self.name
        return ChecklistItems(
            prerequisites=[
                CheckQuery(f"View {view} exists", queries.query(S(
                    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = {rel} AND relkind = 'v')"
                    " AS view_exists").format(rel=regclass(view))), "true",
                    otherwise="`false` after an earlier run of this version is expected"),
                CheckQuery(f"Nothing depends on view {view} (the drop refuses otherwise)", queries.query(S(
                    "SELECT DISTINCT dep AS dependant FROM ({rows}\n) AS deps\nORDER BY 1").format(
                        rows=vc.dependant_rows(view))), "no rows"),
            ],
            health_checks=[CheckQuery(f"View {view} is gone and its definition is saved for the rollback",
                                      queries.query(S("SELECT {gone} AND EXISTS (SELECT 1 FROM {meta} AS m WHERE {w})"
                                                      " AS saved").format(
                                          gone=relation_missing(view), meta=vc.saved_views_table(ctx),
                                          w=vc.saved_where(ctx))), "true")],
            rollback_notes=[f"The rollback re-creates view {view} from the definition saved at the drop "
                            f"({ctx.backup_schema}.saved_views: pg_get_viewdef text, column names, options, comment "
                            f"and grants) if {ctx.label} dropped it; the role running the rollback owns it then."])


__all__ = ["DropView"]
