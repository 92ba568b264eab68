"""CreateSequence: ``CREATE SEQUENCE IF NOT EXISTS``; the rollback drops it only if this version created it.

The forward creates the sequence with the parameters the spec gives (the others PostgreSQL's defaults,
PostgreSQL docs, CREATE SEQUENCE) and records it as the version's own. A sequence of that name that
already exists is accepted only when every parameter the spec gives (and ``cycle``, and ``owned_by``)
matches ``pg_sequence`` and ``pg_depend``: it is then left as it is and not recorded (the rollback
keeps it); with other parameters, or a relation of another kind under the name, the step stops before
any change, naming the difference. ``OWNED BY t.c`` takes ACCESS SHARE on ``t``; the new sequence is
invisible to other sessions until the step commits.

The rollback drops the sequence (never CASCADE) only if this version created it. Its preflight
refuses while anything but its owning column depends on it — a column default ``nextval(…)`` of it,
a view — naming each (``pg_describe_object``): change those first.
"""

from __future__ import annotations

from typing import ClassVar

from psycopg import sql
from pydantic import field_validator, model_validator

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import TableName
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import S, fail, forget_owned, is_owned, notice, record_owned
from dbdeploy.ops.sequence_common import (
    SequenceFact,
    SequenceType,
    check_owned_by,
    check_parameters,
    is_sequence,
    owner_column,
    parameter_sql,
)
from dbdeploy.sql import ident, literal, qualified, regclass
from dbdeploy.sql.blocks import block, do_block, if_then


def sequence_dependants(name: str, dropped_tables: frozenset[str] = frozenset()) -> sql.Composable:
    """A text listing what depends on sequence ``name`` other than its owning column (a column
    default using it, a view …), as ``pg_describe_object`` says them; NULL when nothing. Defaults of
    ``dropped_tables`` (the tables the same rollback drops before) are left out."""
    skip = S("")
    if dropped_tables:
        skip = S("\n      AND NOT (d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND (SELECT ad.adrelid"
                 " FROM pg_catalog.pg_attrdef ad WHERE ad.oid = d.objid) IN ({tables}))").format(
            tables=S(", ").join(regclass(t) for t in sorted(dropped_tables)))
    return S("(SELECT pg_catalog.string_agg(pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid), ', ')\n"
             "    FROM pg_catalog.pg_depend d WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass\n"
             "      AND d.refobjid = {rel} AND d.deptype = 'n'{skip})").format(rel=regclass(name), skip=skip)


class CreateSequence(Operation):
    """Create sequence ``name`` (``schema.name``) with ``as_type`` (smallint, integer, bigint),
    ``start``, ``increment``, ``min_value``, ``max_value``, ``cache``, ``cycle`` and ``owned_by``
    (``schema.table.column``); None leaves PostgreSQL's default. Bad values raise ValueError (reason —
    fix) at load; a name the specs already use, or an owning column a spec-created table lacks, at
    generate."""

    kind: ClassVar[str] = "create_sequence"
    name: TableName
    as_type: SequenceType | None = None
    start: int | None = None
    increment: int | None = None
    min_value: int | None = None
    max_value: int | None = None
    cache: int | None = None
    cycle: bool = False
    owned_by: str | None = None

    @field_validator("owned_by")
    @classmethod
    def _owned_by(cls, value: str | None) -> str | None:
        return check_owned_by(value)

    @model_validator(mode="after")
    def _parameters(self) -> CreateSequence:
        check_parameters(self.as_type, self.start, self.increment, self.min_value, self.max_value, self.cache)
        return self

    def target(self) -> str:
        return self.name

    @property
    def _owner_table(self) -> str | None:
        return self.owned_by.rpartition(".")[0] if self.owned_by else None

    def apply(self, state: SchemaState) -> None:
        if self.owned_by:
            table, _, column = self.owned_by.rpartition(".")
            state.require_columns(table, [column], "owned_by")
        if self.name in state.sequences:
            raise ValueError(f"sequence {self.name} is already created by an earlier operation — fix: remove this "
                             "CreateSequence, or use AlterSequence")
        state.claim(self.name, "a sequence", self.name)
        state.sequences[self.name] = SequenceFact(self.as_type, self.start, self.increment, self.min_value,
                                                  self.max_value, self.cache, self.cycle, self.owned_by)

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        params = {"as_type": self.as_type, "start": self.start, "increment": self.increment,
                  "min_value": self.min_value, "max_value": self.max_value, "cache": self.cache, "cycle": self.cycle}
        for op in ctx.later_ops:   # AlterSequence later in this migration: what holds after the migration
            if type(op).__name__ == "AlterSequence" and op.name == self.name:
                params.update({k: getattr(op, k) for k in params if getattr(op, k) is not None})
        return [expect.Sequence(self.name, owned_by=self.owned_by, **params)]

    def _differences(self) -> sql.Composable:
        """A text listing the parameters of the existing sequence that differ from the spec (NULL: none)."""
        checks = [("as_type", self.as_type, S("pg_catalog.format_type(s.seqtypid, NULL)")),
                  ("start", self.start, S("s.seqstart")), ("increment", self.increment, S("s.seqincrement")),
                  ("min_value", self.min_value, S("s.seqmin")), ("max_value", self.max_value, S("s.seqmax")),
                  ("cache", self.cache, S("s.seqcache")), ("cycle", self.cycle, S("s.seqcycle"))]
        parts = [S("CASE WHEN {col} IS DISTINCT FROM {want} THEN {field} || ' is ' || {col}::text END").format(
            col=column, want=literal(want), field=literal(field)) for field, want, column in checks if want is not None]
        parts.append(S("CASE WHEN {owner} IS DISTINCT FROM {want} THEN 'owned_by is ' || COALESCE({owner}, 'none')"
                       " END").format(owner=owner_column(self.name), want=literal(self.owned_by)))
        return S("(SELECT pg_catalog.concat_ws(', ', {parts}) FROM pg_catalog.pg_sequence s"
                 " WHERE s.seqrelid = {rel})").format(parts=S(", ").join(parts), rel=regclass(self.name))

    def forward(self, ctx: PlanContext) -> list[Step]:
        clauses = parameter_sql(self.as_type, self.start, self.increment, self.min_value, self.max_value,
                                self.cache, self.cycle)
        if self.owned_by:
            clauses.append(S("OWNED BY {}").format(ident(*self.owned_by.split(".", 2))))
        create = S("CREATE SEQUENCE IF NOT EXISTS {name} {clauses};").format(
            name=qualified(self.name), clauses=S(" ").join(clauses))
        body = block(
            if_then(S("{rel} IS NOT NULL AND NOT {seq}").format(rel=regclass(self.name), seq=is_sequence(self.name)),
                    fail(ctx, f"{self.name} exists and is not a sequence",
                         "Nothing was changed. Pick another name for the sequence.")),
            if_then(is_sequence(self.name),
                    S("v_diff := {};").format(self._differences()),
                    if_then(S("v_diff <> ''"),
                            fail(ctx, f"sequence {self.name} exists with other parameters than the spec gives:",
                                 "Nothing was changed. Give the spec the existing sequence's parameters, or change "
                                 "the sequence with AlterSequence (or by hand) first.", detail=S("v_diff"))),
                    notice(ctx, f"sequence {self.name} exists already with these parameters; left as it is"),
                    otherwise=[create, record_owned(ctx, "sequence", self.name),
                               notice(ctx, f"created sequence {self.name}")]),
        )
        lock = "ACCESS SHARE" if self.owned_by else "NONE"
        return scaled([Step(self.kind, self._owner_table or self.name, lock, True,
                            do_block(body, declare=["v_diff text"]), f"create sequence {self.name}")],
                      queries.CATALOG_ONLY)

    def rollback(self, ctx: PlanContext) -> list[Step]:
        body = block(
            if_then(S("{} AND {}").format(is_sequence(self.name), is_owned(ctx, "sequence", self.name)),
                    S("DROP SEQUENCE {};").format(qualified(self.name)),
                    notice(ctx, f"dropped sequence {self.name}"),
                    otherwise=[notice(ctx, f"sequence {self.name} was not created by {ctx.label} (or is gone); "
                                           "left as it is")]),
            forget_owned(ctx, "sequence", self.name),
        )
        return [Step("drop_sequence", self.name, "ACCESS EXCLUSIVE", True, do_block(body),
                     f"drop sequence {self.name} if {ctx.label} created it")]

    def rollback_preflight(self, ctx: PlanContext) -> list[sql.Composable]:
        return [if_then(
            S("{} AND {}").format(is_sequence(self.name), is_owned(ctx, "sequence", self.name)),
            S("v_dependants := {};").format(sequence_dependants(self.name, ctx.rollback_drops)),
            if_then(S("v_dependants IS NOT NULL"),
                    fail(ctx, f"refusing to drop sequence {self.name}; these use it:",
                         "Drop or change them first (e.g. ALTER TABLE … ALTER COLUMN … DROP DEFAULT, or SetDefault "
                         "in a later version rolled back first); dbdeploy never uses CASCADE. Then run the rollback "
                         "again.", detail=S("v_dependants"))))]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        state = queries.query(S(
            "SELECT pg_catalog.format_type(s.seqtypid, NULL) AS type, s.seqstart, s.seqincrement, s.seqmin,"
            " s.seqmax, s.seqcache, s.seqcycle\nFROM pg_catalog.pg_sequence s WHERE s.seqrelid = {rel}").format(
            rel=regclass(self.name)))
        prerequisites = [CheckQuery(f"No relation named {self.name} exists yet (an existing sequence must have the "
                                    "spec's parameters)", queries.query(S("SELECT {} IS NULL AS free").format(
                                        regclass(self.name))), "true",
                                    otherwise="false: it must be a sequence with the spec's parameters, or the step "
                                              "stops")]
        if self._owner_table and self._owner_table not in earlier.created_tables:
            prerequisites.append(queries.table_exists(self._owner_table, f"owned_by {self.owned_by}"))
        return ChecklistItems(
            prerequisites=prerequisites,
            health_checks=[CheckQuery(f"Sequence {self.name}: its parameters (type, start, increment, min, max, "
                                      "cache, cycle)", state, "one row")],
            rollback_notes=[f"Sequence {self.name} is dropped only if {ctx.label} created it; the preflight refuses "
                            "while a column default or a view uses it (dbdeploy never uses CASCADE). Values it "
                            "handed out stay in the rows that hold them."])
