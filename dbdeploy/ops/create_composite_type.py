"""CreateCompositeType: a composite type, created only if missing; the rollback drops it only if this
version created it.

``CREATE TYPE s.t AS (a type [COLLATE c], …)`` is a catalog change (PostgreSQL docs, CREATE TYPE): it adds
a ``pg_class`` row of kind ``c`` that no other session can see before the step commits, so its step takes
no lock on anything in use (``NONE``). ``DROP TYPE`` takes ACCESS EXCLUSIVE on that ``pg_class`` row
(the type's own relation, which nothing but the type's users lock), so the rollback step says ACCESS
EXCLUSIVE. An existing composite type of that name is accepted when a probe built from the spec in
``pg_temp`` has the same attributes (names, ``format_type``, collations, in order) and left alone by the
rollback; anything else of that name stops the forward before any change. The rollback refuses in its
preflight, naming them, while columns, functions or other objects depend on the type (never CASCADE).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import field_validator

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.components import Column
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import S, fail, forget_owned, is_owned, notice, record_owned
from dbdeploy.ops.enum_common import (
    TypeName,
    backup_columns_to_text,
    dependants,
    in_backup_schema,
    released_dependant,
    type_ident,
    type_kind,
    type_oid,
)
from dbdeploy.sql import ident, literal
from dbdeploy.sql.blocks import block, do_block, if_then

PROBE = ident("pg_temp", "dbdeploy_probe_composite")


def composite_attributes(oid) -> object:
    """One text of a composite type's attributes in order: ``name type [COLLATE c]``, as PostgreSQL spells them."""
    return S("(SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname) || ' '"
             " || pg_catalog.format_type(a.atttypid, a.atttypmod)"
             " || CASE WHEN a.attcollation <> 0 AND a.attcollation <> (SELECT y.typcollation FROM pg_catalog.pg_type y"
             " WHERE y.oid = a.atttypid) THEN ' COLLATE ' || a.attcollation::pg_catalog.regcollation::text ELSE ''"
             " END, ', ' ORDER BY a.attnum)"
             " FROM pg_catalog.pg_type t JOIN pg_catalog.pg_attribute a ON a.attrelid = t.typrelid"
             " WHERE t.oid = {} AND a.attnum > 0 AND NOT a.attisdropped)").format(oid)


@dataclass(frozen=True)
class CompositeFact:
    """A composite type the specs created (on ``SchemaState.types``): its attribute names and the version."""

    attributes: tuple[str, ...]
    version: str = ""
    kind: str = "composite"


class CreateCompositeType(Operation):
    """Create composite type ``name`` (``schema.type``) with ``attributes``: :class:`Column` objects of which
    only ``name``, ``type`` and ``collation`` apply (a composite attribute has no NOT NULL, default, identity,
    generation or comment: refused at load), at least one, names distinct."""

    kind: ClassVar[str] = "create_composite_type"
    name: TypeName
    attributes: list[Column]

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: list[Column]) -> list[Column]:
        if not value:
            raise ValueError("attributes must not be empty — fix: list the attributes as Column(name=…, type=…)")
        seen: set[str] = set()
        for i, column in enumerate(value):
            unsupported = [f for f, off in (("nullable=False", column.nullable), ("default", column.default is None),
                                            ("identity", not column.identity), ("generated", column.generated is None),
                                            ("comment", column.comment is None)) if not off]
            if unsupported:
                raise ValueError(f"attributes[{i}] ({column.name}) sets {', '.join(unsupported)}, which a composite "
                                 "type attribute cannot have — fix: give only name, type and collation")
            if column.name in seen:
                raise ValueError(f"attribute {column.name!r} is listed twice — fix: list each attribute once")
            seen.add(column.name)
        return value

    def target(self) -> str:
        return self.name

    def apply(self, state: SchemaState) -> None:
        if self.name in state.types:
            raise ValueError(f"type {self.name} is already created by an earlier operation — fix: remove this "
                             "CreateCompositeType or pick another name")
        if self.name in state.tables or self.name in state.relations:
            raise ValueError(f"{self.name} is a table or index of the specs, which has a row type of that name "
                             "— fix: pick another type name")
        state.types[self.name] = CompositeFact(tuple(c.name for c in self.attributes), state.at.version)
        state.relations[self.name] = ("a composite type", self.name)

    def _attribute_list(self) -> tuple[tuple[str, str, str | None], ...]:
        return tuple((c.name, str(c.type), c.collation) for c in self.attributes)

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [expect.CompositeType(self.name, self._attribute_list())]

    def _definition(self, target) -> object:
        attrs = []
        for column in self.attributes:
            attr = S("{} {}").format(ident(column.name), column.type.sql())
            if column.collation is not None:
                attr = S("{} COLLATE {}").format(attr, ident(*column.collation.split(".", 1)))
            attrs.append(attr)
        return S("CREATE TYPE {n} AS ({a});").format(n=target, a=S(", ").join(attrs))

    def forward(self, ctx: PlanContext) -> list[Step]:
        hint = "Nothing was changed by this step. Rename or change the existing type, or change the spec to match it."
        body = block(
            S("v_kind := {};").format(type_kind(self.name)),
            if_then(S("v_kind IS NULL"), self._definition(type_ident(self.name)),
                    record_owned(ctx, "composite_type", self.name), S("RETURN;")),
            if_then(S("v_kind <> 'c' OR {} IS NOT NULL").format(S(
                "(SELECT c.relkind FROM pg_catalog.pg_type t JOIN pg_catalog.pg_class c ON c.oid = t.typrelid"
                " WHERE t.oid = {} AND c.relkind <> 'c')").format(type_oid(self.name))),
                    fail(ctx, f"type {self.name} exists and is not a composite type of its own", hint)),
            S("DROP TYPE IF EXISTS {};").format(PROBE),
            self._definition(PROBE),
            S("v_actual := {};").format(composite_attributes(type_oid(self.name))),
            S("v_expected := {};").format(composite_attributes(S("{}::pg_catalog.regtype").format(
                literal("pg_temp.dbdeploy_probe_composite")))),
            S("DROP TYPE {};").format(PROBE),
            if_then(S("v_actual IS DISTINCT FROM v_expected"),
                    S("RAISE EXCEPTION '%', {msg} || v_actual || '), expected (' || v_expected || ')'"
                      " USING HINT = {hint};").format(
                        msg=literal(f"dbdeploy {ctx.label}: composite type {self.name} exists but differs from the "
                                    "spec: it is ("),
                        hint=literal(hint))),
            if_then(S("NOT {}").format(is_owned(ctx, "composite_type", self.name)),
                    notice(ctx, f"composite type {self.name} exists and matches the spec; left as it is")),
        )
        return scaled([Step(self.kind, self.name, "NONE", True,
                            do_block(body, declare=["v_kind \"char\"", "v_actual text", "v_expected text"]),
                            f"create composite type {self.name}")], queries.CATALOG_ONLY)

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
                    forget_owned(ctx, "composite_type", self.name), S("RETURN;")),
            if_then(S("NOT {}").format(is_owned(ctx, "composite_type", self.name)),
                    notice(ctx, f"type {self.name} was not created by {ctx.label}; left in place"), S("RETURN;")),
            backup_columns_to_text(ctx, self.name),
            self._refuse_dependants(ctx, None),
            S("DROP TYPE {};").format(type_ident(self.name)),
            forget_owned(ctx, "composite_type", self.name),
        )
        return [Step("drop_composite_type", self.name, "ACCESS EXCLUSIVE", True,
                     do_block(body, declare=["v_dependants text", "v_bk record"]),
                     f"drop composite type {self.name} if {ctx.label} created it and nothing depends on it")]

    def rollback_preflight(self, ctx: PlanContext) -> list:
        return [if_then(S("{} IS NOT NULL AND {}").format(type_oid(self.name),
                                                          is_owned(ctx, "composite_type", self.name)),
                        self._refuse_dependants(ctx, S("({} OR {})").format(released_dependant(ctx),
                                                                            in_backup_schema(ctx))))]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        attrs = queries.query(S("SELECT {} AS attributes").format(composite_attributes(type_oid(self.name))))
        return ChecklistItems(
            prerequisites=[CheckQuery(f"Composite type {self.name} now (NULL: it does not exist yet; otherwise "
                                      "its attributes must be the spec's)", attrs, "")],
            health_checks=[CheckQuery(f"Attributes of {self.name} after the deploy, in order", attrs, "")],
            rollback_notes=[f"Type {self.name} is dropped only if {ctx.label} created it; the rollback refuses "
                            "before any change, naming them, while columns, functions or other objects depend on it "
                            f"(never CASCADE). Copies the rollback made of columns of the type (in "
                            f"{ctx.backup_schema}) keep their values as text."])


__all__ = ["CompositeFact", "CreateCompositeType", "composite_attributes"]
