"""CreateMaterializedView: ``CREATE MATERIALIZED VIEW … WITH DATA`` and its indexes, in one transaction.

``CREATE MATERIALIZED VIEW … WITH DATA`` runs the query to fill the new view: the step lasts as long
as the query does. Measured with ``pg_locks`` (tests/test_step_locks.py): it takes ACCESS SHARE on the
relations the query reads — reads and writes of those tables continue; the view's rows are the
query's snapshot — and ACCESS EXCLUSIVE on the new materialized view only.

Its indexes are built with plain ``CREATE INDEX`` inside the same transaction, not ``CONCURRENTLY``
afterwards: the view was created by this transaction, so no other session can see it, let alone
wait for it, until the commit; a concurrent build would need the view committed first (a window in
which it has no index — nothing to refresh concurrently with) and two more scans. One transaction
also makes the view and its indexes appear together, or not at all.

When a relation of that name exists, the step accepts it only if it is a materialized view whose
``pg_get_viewdef`` equals that of a temporary view made from the spec's query and that has every
index of the spec by name; anything else stops the step, changing nothing. A view it creates is
recorded as owned by the version; the rollback drops it (``DROP MATERIALIZED VIEW``, its indexes
with it) only then, and its preflight refuses, before any change, while other views or objects
depend on it (named) — never CASCADE.
"""

from __future__ import annotations

from typing import ClassVar

from psycopg import sql
from pydantic import field_validator

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import SqlQuery, TableName
from dbdeploy.model.components import Index
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops import view_common as vc
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import S, fail, forget_owned, is_owned, notice, record_owned, relation_exists
from dbdeploy.ops.create_index import index_expect
from dbdeploy.ops.ddl import create_index, index_identifier
from dbdeploy.sql import IndexElement, qualified, regclass
from dbdeploy.sql.blocks import block, do_block, if_then


def unique_keys(indexes: list[Index]) -> tuple[tuple[str, ...], ...]:
    """The key columns of every unique index that ``REFRESH MATERIALIZED VIEW CONCURRENTLY`` can use:
    plain column names only, no WHERE (PostgreSQL docs, REFRESH MATERIALIZED VIEW: "at least one
    UNIQUE index on the materialized view which uses only column names and includes all rows")."""
    return tuple(tuple(index.columns) for index in indexes
                 if index.unique and index.where is None and not any(isinstance(k, IndexElement)
                                                                     for k in index.columns))


class CreateMaterializedView(Operation):
    """Create materialized view ``name`` (``schema.name``) as ``query``, filled, with ``indexes``.

    Shapes: ``CreateMaterializedView(name="shop.daily_totals", query="SELECT o.customer_id, sum(o.total) AS
    total FROM shop.orders AS o GROUP BY o.customer_id", indexes=[Index(columns=["customer_id"],
    unique=True)])``. Errors at load: a query CreateView would refuse; a name another relation of the
    specs uses; two indexes with one name. At run time the step stops, changing nothing, when a relation
    of that name exists and is not this materialized view with these indexes."""

    kind: ClassVar[str] = "create_materialized_view"
    name: TableName
    query: SqlQuery
    indexes: list[Index] = []

    @field_validator("indexes")
    @classmethod
    def _distinct_names(cls, value: list[Index]) -> list[Index]:
        names = [i.name for i in value if i.name]
        if len(names) != len(set(names)):
            raise ValueError("two indexes have the same name — fix: give each index its own name")
        return value

    def target(self) -> str:
        return self.name

    def apply(self, state: SchemaState) -> None:
        vc.check_reads(state, self.query)
        if self.name in state.views:
            raise ValueError(f"view {self.name} is already created by an earlier operation — fix: pick another name")
        state.claim(self.name, "a materialized view", self.name)
        for index in self.indexes:
            name = index.qualified_name(self.name)
            state.claim(name, "an index", self.name)
            state.indexes[name] = (self.name, index)
        state.views[self.name] = vc.ViewFact(str(self.query), self.query.relations, materialized=True,
                                             unique_keys=unique_keys(self.indexes))

    def forward(self, ctx: PlanContext) -> list[Step]:
        view = self.name
        differs = fail(ctx, f"{view} exists and is not defined as this CreateMaterializedView says; nothing was "
                            "changed", "Drop it first (RawSQL DROP MATERIALIZED VIEW), or pick another name.",
                       detail=S("'it is: ' || COALESCE(v_actual, '?') || ' — the spec gives: ' || v_expected"))
        missing_indexes = [
            if_then(S("{} IS NULL").format(regclass(index_identifier(view, index))),
                    fail(ctx, f"materialized view {view} exists without its index "
                              f"{index.qualified_name(view)}; nothing was changed",
                         "Create the index (CreateIndex), or drop the materialized view and run this again."))
            for index in self.indexes]
        body = block(
            if_then(relation_exists(view),
                    if_then(S("NOT {}").format(vc.relkind_is(view, "m")),
                            fail(ctx, f"{view} exists and is not a materialized view; nothing was changed",
                                 "Pick another name.")),
                    vc.same_definition(view, self.query.sql()),
                    if_then(S("v_actual IS DISTINCT FROM v_expected"), differs),
                    *missing_indexes,
                    notice(ctx, f"materialized view {view} exists with this definition and its indexes; kept as it "
                                "is (not refreshed)"),
                    S("RETURN;")),
            S("CREATE MATERIALIZED VIEW {v} AS {q} WITH DATA;").format(v=qualified(view), q=self.query.sql()),
            *[S("{};").format(create_index(view, index, concurrently=False)) for index in self.indexes],
            record_owned(ctx, "materialized_view", view),
            notice(ctx, f"created materialized view {view}"
                        + (f" and its {len(self.indexes)} index(es)" if self.indexes else "")),
        )
        return scaled([Step(self.kind, view, "ACCESS EXCLUSIVE", True,
                            do_block(body, declare=["v_actual text", "v_expected text"]),
                            f"create materialized view {view} with its data"
                            + (" and indexes" if self.indexes else "") + " (runs the query)")],
                      "proportional to the query's cost (it runs the query and writes every row of the result; "
                      "the tables it reads stay readable and writable: ACCESS SHARE)")

    def rollback(self, ctx: PlanContext) -> list[Step]:
        view = self.name
        body = block(
            if_then(S("{} AND {}").format(relation_exists(view), is_owned(ctx, "materialized_view", view)),
                    S("DROP MATERIALIZED VIEW {};").format(qualified(view)),
                    notice(ctx, f"dropped materialized view {view}")),
            forget_owned(ctx, "materialized_view", view))
        return [Step("drop_materialized_view", view, "ACCESS EXCLUSIVE", True, do_block(body),
                     f"drop materialized view {view} if {ctx.label} created it")]

    def rollback_preflight(self, ctx: PlanContext) -> list[sql.Composable]:
        view = self.name
        check = vc.refuse_dependants(
            ctx, f"refusing to drop materialized view {view} (created by {ctx.label}); nothing was changed", view,
            "Drop or change the dependants first (dbdeploy never uses CASCADE), then run the rollback again.",
            skip_view=vc.owned_view(ctx))
        return [block(S("DECLARE v_dependants text;"), S("BEGIN"),
                      if_then(S("{} AND {}").format(relation_exists(view),
                                                    is_owned(ctx, "materialized_view", view)), check),
                      S("END;"))]

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [expect.View(self.name, str(self.query), materialized=True, before=None),
                *[index_expect(self.name, index) for index in self.indexes]]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        view = self.name
        return ChecklistItems(
            prerequisites=[
                *vc.read_relations_exist(view, self.query, earlier.created_tables, "materialized view"),
                queries.relation_missing_check(
                    view, f"No relation {view} exists yet",
                    otherwise="an existing materialized view defined exactly as the spec says, with its indexes, is "
                              "accepted (and kept by the rollback); anything else stops the step"),
            ],
            notes=[f"CreateMaterializedView runs the query of {view} once, inside its step: the step lasts as long as "
                   "the query (time it on a copy of production first). The tables it reads take only ACCESS SHARE "
                   "(reads and writes continue); the new view is invisible to others until the commit."],
            health_checks=[CheckQuery(f"Materialized view {view} exists and is populated", queries.query(S(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = {rel} AND relkind = 'm'"
                " AND relispopulated) AS populated").format(rel=regclass(view))), "true")],
            created_tables=[view],   # so a later view of this migration reading it does not list it as a prerequisite
            rollback_notes=[f"Materialized view {view} (with its indexes) is dropped only if {ctx.label} created it; "
                            "the rollback refuses before any change while other views or objects depend on it "
                            "(named), never with CASCADE."])


__all__ = ["CreateMaterializedView", "unique_keys"]
