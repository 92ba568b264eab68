"""CreateEnum: an enum type, created only if missing; the rollback drops it only if this version created it.

``CREATE TYPE s.t AS ENUM (…)`` is a catalog change: it takes no lock on any table (PostgreSQL docs,
CREATE TYPE; the new type is invisible to other sessions until the step commits), so the step's lock
is ``NONE``. An existing type of that name is accepted when it is an enum with exactly these labels in
this order (``pg_enum`` ordered by ``enumsortorder``), and left alone by the rollback; any other type
of that name stops the forward before any change. The rollback drops the type (``DROP TYPE``, never
CASCADE) and refuses in its preflight, naming them, while columns, domains, functions or other objects
depend on it — except the columns and tables the same rollback removes first.
"""

from __future__ import annotations

from typing import ClassVar

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import S, fail, forget_owned, is_owned, literal, notice, record_owned
from dbdeploy.ops.enum_common import (
    EnumFact,
    Labels,
    TypeName,
    backup_columns_to_text,
    dependants,
    enum_labels,
    in_backup_schema,
    labels_array,
    later_touches,
    released_dependant,
    type_ident,
    type_kind,
    type_oid,
)
from dbdeploy.sql.blocks import block, do_block, if_then


class CreateEnum(Operation):
    """Create enum type ``name`` (``schema.type``) with ``values`` (distinct labels, in order).

    Refused at load: an empty list, an empty or repeated label, a label over 63 bytes (PostgreSQL docs,
    "Enumerated Types"), a type the specs already created, a name a table of the specs uses (a table's row
    type shares the type namespace)."""

    kind: ClassVar[str] = "create_enum"
    name: TypeName
    values: Labels

    @property
    def enum_type_name(self) -> str:
        return self.name

    def target(self) -> str:
        return self.name

    def apply(self, state: SchemaState) -> None:
        if self.name in state.types:
            raise ValueError(f"type {self.name} is already created by an earlier operation — fix: remove this "
                             "CreateEnum, or add labels with AddEnumValue")
        if self.name in state.tables or self.name in state.relations:
            raise ValueError(f"{self.name} is a table or index of the specs, and a table's row type has its name "
                             "— fix: pick another type name")
        state.types[self.name] = EnumFact(tuple(self.values), state.at.version)

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        labels = None if later_touches(ctx, self.name) else tuple(self.values)
        return [expect.EnumType(self.name, labels, before=None)]

    def forward(self, ctx: PlanContext) -> list[Step]:
        hint = "Nothing was changed by this step. Rename or change the existing type, or change the spec to match it."
        body = block(
            S("v_kind := {};").format(type_kind(self.name)),
            if_then(S("v_kind IS NULL"),
                    S("CREATE TYPE {t} AS ENUM ({labels});").format(
                        t=type_ident(self.name), labels=S(", ").join(literal(v) for v in self.values)),
                    record_owned(ctx, "enum_type", self.name),
                    S("RETURN;")),
            if_then(S("v_kind <> 'e'"),
                    fail(ctx, f"type {self.name} exists and is not an enum type", hint)),
            # created by an earlier run of this version (later versions may have changed its labels since)
            if_then(is_owned(ctx, "enum_type", self.name), S("RETURN;")),
            S("v_labels := {};").format(enum_labels(self.name)),
            if_then(S("v_labels IS DISTINCT FROM {}").format(labels_array(self.values)),
                    fail(ctx, f"enum {self.name} exists with other labels than the spec's; it has:", hint,
                         detail=S("pg_catalog.array_to_string(v_labels, ', ')"))),
            notice(ctx, f"enum {self.name} exists with these labels; left as it is"),
        )
        return scaled([Step(self.kind, self.name, "NONE", True,
                            do_block(body, declare=["v_kind \"char\"", "v_labels text[]"]),
                            f"create enum type {self.name}")], queries.CATALOG_ONLY)

    def _refuse_dependants(self, ctx: PlanContext, skip) -> object:
        return block(
            S("v_dependants := {};").format(dependants(self.name, skip)),
            if_then(S("v_dependants IS NOT NULL"),
                    fail(ctx, f"refusing to drop type {self.name}; these depend on it:",
                         "Drop or change the dependants first (dbdeploy never uses CASCADE), then re-run the "
                         "rollback.", detail=S("v_dependants"))))

    def rollback(self, ctx: PlanContext) -> list[Step]:
        body = block(
            if_then(S("{} IS NULL").format(type_oid(self.name)),
                    notice(ctx, f"type {self.name} is already gone"),
                    forget_owned(ctx, "enum_type", self.name), S("RETURN;")),
            if_then(S("NOT {}").format(is_owned(ctx, "enum_type", self.name)),
                    notice(ctx, f"type {self.name} was not created by {ctx.label}; left in place"), S("RETURN;")),
            backup_columns_to_text(ctx, self.name),
            self._refuse_dependants(ctx, None),
            S("DROP TYPE {};").format(type_ident(self.name)),
            forget_owned(ctx, "enum_type", self.name),
        )
        return [Step("drop_enum", self.name, "NONE", True, do_block(body, declare=["v_dependants text", "v_bk record"]),
                     f"drop enum type {self.name} if {ctx.label} created it and nothing depends on it")]

    def rollback_preflight(self, ctx: PlanContext) -> list:
        return [if_then(S("{} IS NOT NULL AND {}").format(type_oid(self.name), is_owned(ctx, "enum_type", self.name)),
                        self._refuse_dependants(ctx, S("({} OR {})").format(released_dependant(ctx),
                                                                            in_backup_schema(ctx))))]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        labels = CheckQuery(f"Labels of enum {self.name}, in order (expected after the deploy: "
                            f"{', '.join(self.values)}; before it: no row, or exactly these)",
                            queries.query(S("SELECT {} AS labels").format(enum_labels(self.name))), "")
        return ChecklistItems(
            prerequisites=[labels],
            health_checks=[CheckQuery(f"Enum {self.name} has the spec's labels in order", queries.query(
                S("SELECT {} IS NOT DISTINCT FROM {} AS enum_matches").format(
                    enum_labels(self.name), labels_array(self.values))), "true")],
            rollback_notes=[f"Type {self.name} is dropped only if {ctx.label} created it; the rollback refuses "
                            "before any change, naming them, while columns, domains or other objects depend on it "
                            "(never CASCADE). Copies the rollback made of columns of the type (in "
                            f"{ctx.backup_schema}) keep their labels as text."])


__all__ = ["CreateEnum"]
