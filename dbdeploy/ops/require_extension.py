"""RequireExtension: abort with a clear message when an extension is missing, or create it."""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import ConfigDict, Field, field_validator

from dbdeploy.ops import checks
from dbdeploy.ops.base import ChecklistItems, Operation, PlanContext, Step
from dbdeploy.ops.common import (
    S,
    block,
    do_block,
    fail,
    forget_owned,
    ident,
    if_then,
    is_owned,
    literal,
    notice,
    record_owned,
)
from dbdeploy.spec.base import Identifier

_EXTENSION_NAME = re.compile(r"[a-z0-9_][a-z0-9_-]{0,62}\Z")


def _installed(name: str):
    return S("EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = {})").format(literal(name))


class RequireExtension(Operation):
    kind: ClassVar[str] = "require_extension"
    name: str
    create: bool = False
    # Where create=True installs it. Explicit, because bundles run with search_path = pg_catalog,
    # which would otherwise be the extension's schema.
    model_config = ConfigDict(populate_by_name=True)
    install_schema: Identifier = Field(default="public", alias="schema")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _EXTENSION_NAME.match(value):
            raise ValueError(f"extension name {value!r} is not an extension name — fix: use lowercase letters, "
                             "digits, '_' or '-' only, e.g. pgcrypto")
        return value

    def target(self) -> str:
        return self.name

    def expects(self, ctx: PlanContext) -> list[dict]:
        return [{"object": "extension", "name": self.name, "present": True}]

    def forward(self, ctx: PlanContext) -> list[Step]:
        if self.create:
            missing = [S("CREATE EXTENSION IF NOT EXISTS {} SCHEMA {};").format(
                           ident(self.name), ident(self.install_schema)),
                       record_owned(ctx, "extension", self.name)]
        else:
            missing = [fail(ctx, f"required extension {self.name} is not installed",
                            f'Have a superuser run CREATE EXTENSION "{self.name}"; in this database, '
                            "or set create=True in the spec.")]
        body = if_then(S("NOT {}").format(_installed(self.name)), *missing)
        summary = ("create" if self.create else "require") + f" extension {self.name}"
        return [Step(self.kind, self.name, "NONE", True, do_block(body), summary)]

    def rollback(self, ctx: PlanContext) -> list[Step]:
        if not self.create:
            return []
        body = block(
            if_then(S("NOT {}").format(is_owned(ctx, "extension", self.name)),
                    notice(ctx, f"extension {self.name} was not created by {ctx.label}; left in place"),
                    S("RETURN;")),
            S("DROP EXTENSION IF EXISTS {};").format(ident(self.name)),
            forget_owned(ctx, "extension", self.name),
        )
        return [Step(self.kind, self.name, "NONE", True, do_block(body), f"drop extension {self.name}")]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        if self.create:
            prerequisites = [checks.extension_available(self.name)]
            notes = [f"The migration runs CREATE EXTENSION IF NOT EXISTS \"{self.name}\": the deploying role needs "
                     "the privilege (superuser, or a trusted extension and CREATE on the database)."]
            rollback = [f"Extension {self.name} is dropped only if {ctx.label} created it."]
        else:
            prerequisites = [checks.extension_installed(
                self.name, f"Required extension {self.name} is installed (the migration stops otherwise)")]
            notes = [f"If extension {self.name} is missing, have a superuser run CREATE EXTENSION \"{self.name}\"; "
                     "in this database before deploying."]
            rollback = []
        return ChecklistItems(prerequisites=prerequisites, notes=notes, rollback_notes=rollback,
                              health_checks=[checks.extension_installed(self.name)],
                              durations=checks.durations(self.forward(ctx), checks.CATALOG_ONLY))
