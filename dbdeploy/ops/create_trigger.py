"""CreateTrigger: a trigger on a table calling a function the specs (or the database) hold.

``CREATE TRIGGER`` takes SHARE ROW EXCLUSIVE on the table (PostgreSQL docs, CREATE TRIGGER: "creating a
trigger … acquires a SHARE ROW EXCLUSIVE lock"): reads continue, writes wait for the short catalog
change. The statement is composed from identifiers, fixed keywords and the WHEN condition parsed with
pglast (:class:`~dbdeploy.sql.Expression`), and parsed again whole at load.

Forward (one transaction): when the table has no trigger of that name, ``CREATE TRIGGER`` and it is
recorded as created by the version. When one exists, its ``pg_get_triggerdef`` (after the name) is
compared with that of a scratch trigger the spec's statement creates in a subtransaction that is always
rolled back: equal, nothing to do; different, the step stops and changes nothing.

Rollback: ``DROP TRIGGER`` (ACCESS EXCLUSIVE on the table, catalog only — PostgreSQL docs, "Explicit
Locking") only when this version created it. Nothing depends on a trigger, so no preflight condition.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from psycopg import sql
from pydantic import field_validator, model_validator

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import Identifier, SqlExpression, TableName
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import S, fail, forget_owned, is_owned, notice, record_owned, relation_missing
from dbdeploy.sql import ident, literal, qualified, regclass, render
from dbdeploy.sql.blocks import block, do_block, if_then
from dbdeploy.sql.parse import SqlParseError, _parse

Event = Literal["INSERT", "UPDATE", "DELETE", "TRUNCATE"]
_TIMING = {"BEFORE": S("BEFORE"), "AFTER": S("AFTER"), "INSTEAD OF": S("INSTEAD OF")}
_EVENT = {"INSERT": S("INSERT"), "UPDATE": S("UPDATE"), "DELETE": S("DELETE"), "TRUNCATE": S("TRUNCATE")}
_LEVEL = {"ROW": S("ROW"), "STATEMENT": S("STATEMENT")}
# pg_trigger.tgtype bits (src/include/catalog/pg_trigger.h: TRIGGER_TYPE_*)
_BITS = {"ROW": 1, "BEFORE": 2, "INSERT": 4, "DELETE": 8, "UPDATE": 16, "TRUNCATE": 32, "INSTEAD OF": 64}
_SCRATCH = "dbdeploy_trigger_probe"


class CreateTrigger(Operation):
    """Create trigger ``name`` on ``table``: ``timing`` (BEFORE, AFTER, INSTEAD OF) ``events`` (a list of
    INSERT, UPDATE, DELETE, TRUNCATE) ``FOR EACH`` ``for_each`` (ROW or STATEMENT), optionally ``WHEN
    (when)`` (an SQL expression, parsed; it may read NEW and OLD), executing ``function`` (``schema.name``,
    a function taking no arguments and returning ``trigger``).

    Errors (at load): an event listed twice, TRUNCATE with FOR EACH ROW, INSTEAD OF on a table the specs
    created (only views take INSTEAD OF triggers), a function the specs created that does not return
    ``trigger``, a trigger name the table already has. At run time the forward stops, changing nothing,
    when the table is missing or a trigger of that name exists with another definition."""

    kind: ClassVar[str] = "create_trigger"
    table: TableName
    name: Identifier
    function: TableName
    timing: Literal["BEFORE", "AFTER", "INSTEAD OF"]
    events: list[Event]
    for_each: Literal["ROW", "STATEMENT"] = "ROW"
    when: SqlExpression | None = None

    @field_validator("timing", "for_each", mode="before")
    @classmethod
    def _upper(cls, value):
        return " ".join(value.upper().split()) if isinstance(value, str) else value

    @field_validator("events", mode="before")
    @classmethod
    def _upper_events(cls, value):
        return [v.upper() if isinstance(v, str) else v for v in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _rules(self):
        if not self.events:
            raise ValueError("events is empty — fix: list at least one of INSERT, UPDATE, DELETE, TRUNCATE")
        if len(set(self.events)) != len(self.events):
            raise ValueError("events lists an event twice — fix: list each event once")
        if "TRUNCATE" in self.events and self.for_each == "ROW":
            raise ValueError("TRUNCATE triggers fire per statement only (PostgreSQL docs, CREATE TRIGGER) — fix: "
                             "set for_each=\"STATEMENT\" or remove TRUNCATE")
        if self.when is not None and self.timing == "INSTEAD OF":
            raise ValueError("INSTEAD OF triggers cannot have a WHEN condition (PostgreSQL docs, CREATE TRIGGER) — "
                             "fix: remove when")
        try:
            statements = _parse(render(self.statement(ident(self.name))))
        except SqlParseError as exc:
            raise ValueError(f"the CREATE TRIGGER statement this spec makes does not parse: {exc}") from None
        if len(statements) != 1:
            raise ValueError("the CREATE TRIGGER statement this spec makes is not one statement — fix: check when")
        return self

    @property
    def key(self) -> str:
        """``schema.table.name``: the ownership record's name."""
        return f"{self.table}.{self.name}"

    def statement(self, name: sql.Composable) -> sql.Composable:
        events = S(" OR ").join(_EVENT[e] for e in self.events)
        when = S(" WHEN ({})").format(self.when.sql()) if self.when is not None else S("")
        return S("CREATE TRIGGER {name} {timing} {events} ON {table} FOR EACH {level}{when}"
                 " EXECUTE FUNCTION {function}()").format(
            name=name, timing=_TIMING[self.timing], events=events, table=qualified(self.table),
            level=_LEVEL[self.for_each], when=when, function=qualified(self.function))

    @property
    def tgtype(self) -> int:
        bits = sum(_BITS[e] for e in self.events) + _BITS.get(self.timing, 0)
        return bits + (_BITS["ROW"] if self.for_each == "ROW" else 0)

    # --- schema state ---------------------------------------------------------------------------

    def apply(self, state: SchemaState) -> None:
        if self.timing == "INSTEAD OF" and self.table in state.tables:
            raise ValueError(f"INSTEAD OF triggers are for views; {self.table} is a table — fix: use BEFORE or AFTER")
        fn = state.functions.get(f"{self.function}()")
        if fn is not None and getattr(fn, "returns", None) is not None and fn.returns.base != "trigger":
            raise ValueError(f"function {self.function}() returns {fn.returns}, not trigger — fix: give a function "
                             "declared RETURNS trigger")
        key = f"trigger {self.key}"    # triggers share the functions slot of SchemaState, prefixed
        if key in state.functions:
            raise ValueError(f"{self.table} already has a trigger {self.name!r} (created by an earlier operation) "
                             "— fix: pick another name")
        state.functions[key] = self

    # --- forward --------------------------------------------------------------------------------

    def forward(self, ctx: PlanContext) -> list[Step]:
        rel, name = regclass(self.table), literal(self.name)
        suffix = S("pg_catalog.substr({def_}, pg_catalog.length('CREATE TRIGGER ')"
                   " + pg_catalog.length(pg_catalog.quote_ident({n})) + 1)")
        body = block(
            if_then(relation_missing(self.table),
                    fail(ctx, f"table {self.table} does not exist", "Check the table name; nothing was changed.")),
            S("SELECT t.oid INTO v_oid FROM pg_catalog.pg_trigger t"
              " WHERE t.tgrelid = {rel} AND t.tgname = {n} AND NOT t.tgisinternal;").format(rel=rel, n=name),
            if_then(S("v_oid IS NULL"),
                    S("{};").format(self.statement(ident(self.name))),
                    record_owned(ctx, "trigger", self.key),
                    notice(ctx, f"created trigger {self.name} on {self.table}"),
                    otherwise=[
                        S("v_before := {};").format(suffix.format(
                            def_=S("pg_catalog.pg_get_triggerdef(v_oid)"), n=name)),
                        S("BEGIN\n"
                          "    {create};\n"
                          "    SELECT {after} INTO v_after FROM pg_catalog.pg_trigger t"
                          " WHERE t.tgrelid = {rel} AND t.tgname = {scratch};\n"
                          "    RAISE SQLSTATE 'DDT01';\n"
                          "EXCEPTION\n"
                          "    WHEN SQLSTATE 'DDT01' THEN NULL;\n"
                          "END;").format(create=self.statement(ident(_SCRATCH)), rel=rel, scratch=literal(_SCRATCH),
                                         after=suffix.format(def_=S("pg_catalog.pg_get_triggerdef(t.oid)"),
                                                             n=literal(_SCRATCH))),
                        if_then(S("v_after IS DISTINCT FROM v_before"),
                                fail(ctx, f"trigger {self.name} on {self.table} already exists with another "
                                          "definition; nothing was changed:",
                                     "Make the spec match it (its definition is shown), or give the new trigger "
                                     "another name.",
                                     detail=S("v_before"))),
                        notice(ctx, f"trigger {self.name} on {self.table} already exists as the spec defines it")]),
        )
        return scaled([Step(self.kind, self.table, "SHARE ROW EXCLUSIVE", True,
                            do_block(body, declare=["v_oid oid", "v_before text", "v_after text"]),
                            f"create trigger {self.name} on {self.table}")], queries.CATALOG_ONLY)

    # --- rollback -------------------------------------------------------------------------------

    def rollback(self, ctx: PlanContext) -> list[Step]:
        exists = S("EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = {rel} AND t.tgname = {n}"
                   " AND NOT t.tgisinternal)").format(rel=regclass(self.table), n=literal(self.name))
        body = block(
            if_then(S("NOT {} OR NOT {}").format(exists, is_owned(ctx, "trigger", self.key)),
                    notice(ctx, f"trigger {self.name} on {self.table} was not created by {ctx.label} (or is dropped "
                                "already); left as it is"),
                    forget_owned(ctx, "trigger", self.key),
                    S("RETURN;")),
            S("DROP TRIGGER {n} ON {t};").format(n=ident(self.name), t=qualified(self.table)),
            forget_owned(ctx, "trigger", self.key),
            notice(ctx, f"dropped trigger {self.name} on {self.table}"),
        )
        return [Step("drop_trigger", self.table, "ACCESS EXCLUSIVE", True, do_block(body),
                     f"drop trigger {self.name} on {self.table} if {ctx.label} created it")]

    # --- expectations, checklist ----------------------------------------------------------------

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [expect.Trigger(self.name, self.table, function=render(qualified(self.function)), tgtype=self.tgtype,
                               when=self.when is not None)]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        exists = queries.query(S(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = {rel} AND tgname = {n}"
            " AND NOT tgisinternal) AS trigger_exists").format(rel=regclass(self.table), n=literal(self.name)))
        function = queries.query(S("SELECT pg_catalog.to_regprocedure({}) IS NOT NULL AS function_exists").format(
            literal(render(qualified(self.function)) + "()")))
        prerequisites = [queries.table_exists(self.table)] if self.table not in earlier.created_tables else []
        return ChecklistItems(
            prerequisites=[*prerequisites,
                           CheckQuery(f"Function {self.function}() exists (or an earlier operation creates it)",
                                      function, "true")],
            health_checks=[CheckQuery(f"Trigger {self.name} on {self.table} exists", exists, "true")],
            notes=[f"CREATE TRIGGER takes SHARE ROW EXCLUSIVE on {self.table} for a catalog change: reads continue, "
                   "writes wait for it (and it waits for running writes)."],
            rollback_notes=[f"Trigger {self.name} on {self.table} is dropped only if {ctx.label} created it "
                            "(DROP TRIGGER: a brief ACCESS EXCLUSIVE lock)."])


__all__ = ["CreateTrigger"]
