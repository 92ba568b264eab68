"""RefreshMaterializedView: ``REFRESH MATERIALIZED VIEW [CONCURRENTLY]``.

``concurrently=True`` (the default) refreshes without blocking readers: PostgreSQL docs, REFRESH
MATERIALIZED VIEW — "Refresh the materialized view without locking out concurrent selects on the
materialized view"; it takes EXCLUSIVE on the view (measured with ``pg_locks``, tests/test_step_locks.py;
a second refresh waits, reads continue) and ACCESS SHARE on what its query reads. It needs "at least
one UNIQUE index on the materialized view which uses only column names and includes all rows" and a
populated view: refused at generate when the specs know the view's indexes, and checked by the step
at run time before the refresh (stopping with the fix). The step is not transactional: a check in
its own short transaction, then the refresh in autocommit, so nothing else is held while it runs.

``concurrently=False`` runs plain ``REFRESH MATERIALIZED VIEW`` in a transaction: ACCESS EXCLUSIVE on
the view, which blocks its readers for the whole refresh (for a view nobody reads yet, or one that
has never been populated).

A refresh changes no definition, so the rollback has nothing to undo: it does nothing (the view keeps
the refreshed rows) and its rollback note says so.
"""

from __future__ import annotations

from typing import ClassVar

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import TableName
from dbdeploy.ops import view_common as vc
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.checklist_queries import query
from dbdeploy.ops.common import S, fail, notice, relation_missing
from dbdeploy.sql import qualified, regclass, render
from dbdeploy.sql.blocks import block, do_block, if_then

USABLE_UNIQUE_INDEX = S(
    "EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = {rel} AND i.indisunique AND i.indisvalid"
    " AND i.indpred IS NULL AND i.indexprs IS NULL)")


class RefreshMaterializedView(Operation):
    """Refresh materialized view ``name`` (``schema.name``), ``concurrently`` (default) or not.

    Shapes: ``RefreshMaterializedView(name="shop.daily_totals")``. Errors at load: a name the specs know
    as a table or a plain view; ``concurrently=True`` on a materialized view the specs created without a
    unique index on plain columns and without WHERE (fix: add one, or concurrently=False). At run time the
    step stops before the refresh when the view is missing, not populated (concurrently) or has no such
    index."""

    kind: ClassVar[str] = "refresh_materialized_view"
    name: TableName
    concurrently: bool = True

    def target(self) -> str:
        return self.name

    def apply(self, state: SchemaState) -> None:
        if self.name in state.tables:
            raise ValueError(f"{self.name} is a table, not a materialized view — fix: name the materialized view")
        known = state.views.get(self.name)
        if known is not None and not (isinstance(known, vc.ViewFact) and known.materialized):
            raise ValueError(f"{self.name} is a plain view, which has nothing to refresh — fix: remove this "
                             "RefreshMaterializedView")
        if isinstance(known, vc.ViewFact) and self.concurrently and not known.unique_keys:
            raise ValueError(f"REFRESH MATERIALIZED VIEW CONCURRENTLY needs a unique index on plain columns, without "
                             f"WHERE, on {self.name}, and its spec gives none — fix: add one (Index(columns=[…], "
                             "unique=True) in its indexes), or set concurrently=False (readers are blocked while it "
                             "refreshes)")

    def _rel(self):
        return regclass(self.name)

    def forward(self, ctx: PlanContext) -> list[Step]:
        view = self.name
        checks = [
            if_then(relation_missing(view),
                    fail(ctx, f"materialized view {view} does not exist; nothing was refreshed", "Check the name.")),
            if_then(S("NOT {}").format(vc.relkind_is(view, "m")),
                    fail(ctx, f"{view} is not a materialized view; nothing was refreshed", "Check the name.")),
        ]
        if not self.concurrently:
            body = block(*checks, S("REFRESH MATERIALIZED VIEW {};").format(qualified(view)),
                         notice(ctx, f"refreshed materialized view {view}"))
            return scaled([Step(self.kind, view, "ACCESS EXCLUSIVE", True, do_block(body),
                                f"refresh materialized view {view} (readers wait until it is done)")],
                          "proportional to the query's cost (readers of the view wait for the whole refresh)")
        check = block(
            *checks,
            if_then(S("NOT (SELECT c.relispopulated FROM pg_catalog.pg_class c WHERE c.oid = {})").format(self._rel()),
                    fail(ctx, f"materialized view {view} has never been populated, which REFRESH … CONCURRENTLY "
                              "refuses; nothing was refreshed",
                         "Refresh it once with RefreshMaterializedView(concurrently=False).")),
            if_then(S("NOT {}").format(USABLE_UNIQUE_INDEX.format(rel=self._rel())),
                    fail(ctx, f"materialized view {view} has no valid unique index on plain columns without WHERE, "
                              "which REFRESH … CONCURRENTLY needs; nothing was refreshed",
                         "Add one (CreateIndex with unique=True), or use concurrently=False.")))
        statements = do_block(check) + "\n" + render(S("REFRESH MATERIALIZED VIEW CONCURRENTLY {};").format(
            qualified(view)))
        return scaled([Step(self.kind, view, "EXCLUSIVE", False, statements,
                            f"refresh materialized view {view} concurrently (reads continue; another refresh waits)")],
                      "proportional to the query's cost plus the rows of the view (it compares the new result with "
                      "the old; reads continue)")

    def rollback(self, ctx: PlanContext) -> list[Step]:
        return []

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        known = ctx.state.views.get(self.name)
        q = known.query if isinstance(known, vc.ViewFact) and known.materialized else None
        return [expect.View(self.name, q, materialized=True)]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        view, rel = self.name, self._rel()
        prerequisites = [CheckQuery(f"Materialized view {view} exists", query(S(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = {rel} AND relkind = 'm')"
            " AS materialized_view_exists").format(rel=rel)), "true")]
        if self.concurrently:
            prerequisites.append(CheckQuery(
                f"Materialized view {view} is populated and has a unique index REFRESH … CONCURRENTLY can use",
                query(S("SELECT (SELECT relispopulated FROM pg_catalog.pg_class WHERE oid = {rel}) AND {idx}"
                        " AS can_refresh_concurrently").format(rel=rel, idx=USABLE_UNIQUE_INDEX.format(rel=rel))),
                "true"))
        return ChecklistItems(
            prerequisites=prerequisites,
            notes=[f"The refresh of {view} runs its query in full; "
                   + ("reads of the view continue (CONCURRENTLY), a second refresh waits." if self.concurrently else
                      "readers of the view wait until it is done (not CONCURRENTLY).")],
            rollback_notes=[f"Nothing to undo for the refresh of {view}: a refresh changes no definition. The view "
                            "keeps the refreshed rows after the rollback (refresh it again to recompute them)."])


__all__ = ["RefreshMaterializedView"]
