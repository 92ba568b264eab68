"""CreateSchema: a schema, created only if missing; rollback removes it only if it is empty."""

from __future__ import annotations

from typing import ClassVar

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import Identifier
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.base import ChecklistItems, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import S, forget_owned, ident, is_owned, literal, notice, record_owned, warning
from dbdeploy.sql.blocks import block, do_block, if_then


def _schema_exists(name: str):
    return S("EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = {})").format(literal(name))


class CreateSchema(Operation):
    kind: ClassVar[str] = "create_schema"
    name: Identifier

    def target(self) -> str:
        return self.name

    def apply(self, state: SchemaState) -> None:
        pass

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [expect.Schema(self.name)]

    def forward(self, ctx: PlanContext) -> list[Step]:
        body = if_then(
            _schema_exists(self.name),
            notice(ctx, f"schema {self.name} exists; left as it is"),
            otherwise=[
                S("CREATE SCHEMA {};").format(ident(self.name)),
                record_owned(ctx, "schema", self.name),
            ],
        )
        return scaled([Step(self.kind, self.name, "NONE", True, do_block(body), f"create schema {self.name}")],
                      queries.CATALOG_ONLY)

    def rollback(self, ctx: PlanContext) -> list[Step]:
        has_objects = S(
            "EXISTS (SELECT 1 FROM pg_catalog.pg_depend WHERE refclassid = 'pg_catalog.pg_namespace'::"
            "pg_catalog.regclass AND refobjid = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = {}))"
        ).format(literal(self.name))
        body = block(
            if_then(S("NOT {}").format(_schema_exists(self.name)),
                    notice(ctx, f"schema {self.name} is already gone"), S("RETURN;")),
            if_then(S("NOT {}").format(is_owned(ctx, "schema", self.name)),
                    notice(ctx, f"schema {self.name} was not created by {ctx.label}; left in place"),
                    S("RETURN;")),
            if_then(has_objects,
                    warning(ctx, f"schema {self.name} still contains objects dbdeploy did not create; "
                                 "left in place (drop it by hand once it is empty)"),
                    S("RETURN;")),
            S("DROP SCHEMA {};").format(ident(self.name)),
            forget_owned(ctx, "schema", self.name),
        )
        return [Step(self.kind, self.name, "NONE", True, do_block(body), f"drop schema {self.name} if empty")]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        return ChecklistItems(
            health_checks=[queries.schema_exists(self.name)],
            rollback_notes=[f"Schema {self.name} is dropped only if {ctx.label} created it and it is empty "
                            "(otherwise it is left in place with a WARNING)."],
            created_schemas=[self.name])
