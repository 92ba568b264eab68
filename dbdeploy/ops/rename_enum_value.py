"""RenameEnumValue: rename one label of an enum type (``ALTER TYPE … RENAME VALUE``, PostgreSQL 10+).

A catalog change: rows holding the label keep it under its new name (an enum value is stored as the
label's oid, PostgreSQL docs, "Enumerated Types"), no table is locked or rewritten, so the step's lock is
``NONE``. Idempotent: a type that already has ``new_value`` and not ``value`` was renamed by an earlier
run (NOTICE). The rollback renames it back only if this version renamed it, and refuses in its
preflight when both labels exist (one was added since).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import model_validator

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import S, fail, forget_owned, is_owned, literal, notice, record_owned
from dbdeploy.ops.enum_common import (
    Label,
    TypeName,
    enum_key,
    enum_labels,
    has_label,
    known_enum,
    later_touches,
    type_ident,
    type_kind,
    type_oid,
)
from dbdeploy.sql.blocks import block, do_block, if_then


class RenameEnumValue(Operation):
    """Rename label ``value`` of enum ``type`` (``schema.type``) to ``new_value``. Refused at load: an empty
    label or one over 63 bytes, the same label twice; on a type the specs created, a label it lacks or a new
    label it already has."""

    kind: ClassVar[str] = "rename_enum_value"
    type: TypeName
    value: Label
    new_value: Label

    @model_validator(mode="after")
    def _different(self) -> RenameEnumValue:
        if self.value == self.new_value:
            raise ValueError(f"new_value is the same label {self.value!r} — fix: give another label, or remove this "
                             "RenameEnumValue")
        return self

    @property
    def enum_type_name(self) -> str:
        return self.type

    def target(self) -> str:
        return self.type

    @property
    def key(self) -> str:
        return enum_key(self.type, self.value)

    def apply(self, state: SchemaState) -> None:
        fact = known_enum(state, self.type, "RenameEnumValue")
        if fact is None:
            return
        if self.value not in fact.labels:
            raise ValueError(f"enum {self.type} has no label {self.value!r} (its labels: {', '.join(fact.labels)}) "
                             "— fix: name one of its labels")
        if self.new_value in fact.labels:
            raise ValueError(f"enum {self.type} already has label {self.new_value!r} — fix: pick another new_value")
        labels = tuple(self.new_value if v == self.value else v for v in fact.labels)
        state.types = {**state.types, self.type: type(fact)(labels, fact.version)}

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        fact = ctx.state.types.get(self.type)
        if fact is None:
            return [expect.EnumType(self.type, None, includes=(self.new_value,))]
        labels = tuple(self.new_value if v == self.value else v for v in fact.labels)
        before = tuple(fact.labels) if fact.version != ctx.version else expect._UNKNOWN
        return [expect.EnumType(self.type, None if later_touches(ctx, self.type) else labels,
                                includes=(self.new_value,), before=before)]

    def forward(self, ctx: PlanContext) -> list[Step]:
        hint = "Nothing was changed by this step. Check the type and label names in the spec."
        old, new = has_label(self.type, self.value), has_label(self.type, self.new_value)
        body = block(
            S("v_kind := {};").format(type_kind(self.type)),
            if_then(S("v_kind IS NULL"), fail(ctx, f"type {self.type} does not exist", hint)),
            if_then(S("v_kind <> 'e'"), fail(ctx, f"type {self.type} is not an enum type", hint)),
            if_then(S("{} AND {}").format(old, new),
                    fail(ctx, f"enum {self.type} has both labels {self.value!r} and {self.new_value!r}", hint)),
            if_then(new,
                    if_then(S("NOT {}").format(is_owned(ctx, "enum_value_rename", self.key)),
                            notice(ctx, f"enum {self.type} already has label {self.new_value!r} instead of "
                                        f"{self.value!r}; left as it is")),
                    S("RETURN;")),
            if_then(S("NOT {}").format(old), fail(ctx, f"enum {self.type} has no label {self.value!r}", hint)),
            S("ALTER TYPE {t} RENAME VALUE {v} TO {n};").format(t=type_ident(self.type), v=literal(self.value),
                                                               n=literal(self.new_value)),
            record_owned(ctx, "enum_value_rename", self.key),
        )
        return scaled([Step(self.kind, self.type, "NONE", True, do_block(body, declare=["v_kind \"char\""]),
                            f"rename label {self.value!r} of enum {self.type} to {self.new_value!r}")],
                      queries.CATALOG_ONLY)

    def rollback(self, ctx: PlanContext) -> list[Step]:
        old, new = has_label(self.type, self.value), has_label(self.type, self.new_value)
        forget = forget_owned(ctx, "enum_value_rename", self.key)
        body = block(
            if_then(S("NOT {}").format(is_owned(ctx, "enum_value_rename", self.key)),
                    notice(ctx, f"label {self.value!r} of enum {self.type} was not renamed by {ctx.label}; left as "
                                "it is"), S("RETURN;")),
            if_then(S("{} IS NULL").format(type_oid(self.type)),
                    notice(ctx, f"type {self.type} is gone; nothing to rename back"), forget, S("RETURN;")),
            if_then(S("{} AND {}").format(old, new),
                    fail(ctx, f"cannot rename label {self.new_value!r} of enum {self.type} back to {self.value!r}: "
                              "both labels exist", "Rename or remove one of them by hand, then re-run the rollback.")),
            if_then(new,
                    S("ALTER TYPE {t} RENAME VALUE {n} TO {v};").format(t=type_ident(self.type), v=literal(self.value),
                                                                       n=literal(self.new_value)),
                    notice(ctx, f"renamed label {self.new_value!r} of enum {self.type} back to {self.value!r}"),
                    otherwise=[notice(ctx, f"enum {self.type} has no label {self.new_value!r}; nothing to rename "
                                           "back")]),
            forget,
        )
        return [Step("rename_enum_value_back", self.type, "NONE", True, do_block(body),
                     f"rename label {self.new_value!r} of enum {self.type} back to {self.value!r} if {ctx.label} "
                     "renamed it")]

    def rollback_preflight(self, ctx: PlanContext) -> list:
        return [if_then(S("{} AND {} AND {}").format(is_owned(ctx, "enum_value_rename", self.key),
                                                     has_label(self.type, self.value),
                                                     has_label(self.type, self.new_value)),
                        fail(ctx, f"cannot rename label {self.new_value!r} of enum {self.type} back to "
                                  f"{self.value!r}: both labels exist",
                             "Rename or remove one of them by hand, then re-run the rollback."))]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        return ChecklistItems(
            prerequisites=[CheckQuery(f"Enum {self.type} has label {self.value!r} and not {self.new_value!r}",
                                      queries.query(S("SELECT {} AND NOT {} AS can_rename").format(
                                          has_label(self.type, self.value), has_label(self.type, self.new_value))),
                                      "true", otherwise="`false` after an earlier run of this version is expected")],
            health_checks=[CheckQuery(f"Labels of enum {self.type} after the deploy, in order", queries.query(
                S("SELECT {} AS labels").format(enum_labels(self.type))), "")],
            notes=[f"Renaming a label of {self.type} is a catalog change (no table is locked or rewritten); rows "
                   f"holding {self.value!r} read {self.new_value!r} at once, so application code comparing with the "
                   "old label must change with it."],
            rollback_notes=[f"The rollback renames {self.new_value!r} back to {self.value!r} only if {ctx.label} "
                            "renamed it; it refuses before any change when both labels exist."])


__all__ = ["RenameEnumValue"]
