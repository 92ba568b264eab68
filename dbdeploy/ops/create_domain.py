"""CreateDomain: a domain type, created only if missing; the rollback drops it only if this version created it.

``CREATE DOMAIN s.d AS type [DEFAULT …] [NOT NULL] [CHECK (…)]…`` is a catalog change that locks no table
(PostgreSQL docs, CREATE DOMAIN), so the step's lock is ``NONE``. The CHECK expressions are SQL over
``VALUE`` (the value being checked), parsed with pglast like every spec expression; the default too.
An existing domain of that name is accepted when it is what the spec says — compared with a probe domain
built from the spec in ``pg_temp`` inside the step (base type and modifier by ``format_type``, NOT NULL,
default by ``pg_get_expr``, CHECKs by ``pg_get_constraintdef``: PostgreSQL's own spellings on both sides)
— and left alone by the rollback; anything else of that name stops the forward before any change. The
rollback drops the domain (never CASCADE), refusing in its preflight, naming them, while columns or other
objects outside what the same rollback removes depend on it; copies its rollbacks made of such columns
(in the backup schema) keep their values in the base type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import field_validator

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import SqlExpression, SqlType
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
from dbdeploy.sql.expression_rules import check_constraint_expression, check_default

PROBE = ident("pg_temp", "dbdeploy_probe_domain")


def domain_facts(oid) -> object:
    """One text of what a domain is, as PostgreSQL spells it: base type, NOT NULL, default, CHECKs (sorted)."""
    return S("(SELECT pg_catalog.concat_ws(' | ', pg_catalog.format_type(t.typbasetype, t.typtypmod),"
             " CASE WHEN t.typnotnull THEN 'NOT NULL' ELSE 'NULL' END,"
             " COALESCE('DEFAULT ' || pg_catalog.pg_get_expr(t.typdefaultbin, 0), 'no default'),"
             " pg_catalog.array_to_string(ARRAY(SELECT pg_catalog.pg_get_constraintdef(c.oid)"
             " FROM pg_catalog.pg_constraint c WHERE c.contypid = t.oid AND c.contype = 'c' ORDER BY 1), ', '))"
             " FROM pg_catalog.pg_type t WHERE t.oid = {})").format(oid)


@dataclass(frozen=True)
class DomainFact:
    """A domain the specs created (on ``SchemaState.types``): its base type and the creating version."""

    base: str
    version: str = ""
    kind: str = "domain"


class CreateDomain(Operation):
    """Create domain ``name`` (``schema.domain``) over ``type``, with ``checks`` (SQL over ``VALUE``, each a
    CHECK constraint), ``default`` (SQL) and ``not_null``. Refused at load: a CHECK that reads anything but
    ``VALUE`` (a domain CHECK cannot see columns), what PostgreSQL refuses in a CHECK or DEFAULT, a type the
    specs already created, a name a table of the specs uses."""

    kind: ClassVar[str] = "create_domain"
    name: TypeName
    type: SqlType
    checks: list[SqlExpression] = []
    default: SqlExpression | None = None
    not_null: bool = False

    @field_validator("checks")
    @classmethod
    def _checks(cls, value: list) -> list:
        for i, check in enumerate(value):
            check_constraint_expression(check)
            other = sorted(check.columns - {"value"})
            if other:
                raise ValueError(f"checks[{i}] reads {', '.join(other)}; a domain CHECK sees only VALUE (the value "
                                 "being checked) — fix: write the condition over VALUE, e.g. 'VALUE > 0'")
        return value

    @field_validator("default")
    @classmethod
    def _default(cls, value):
        """What PostgreSQL refuses in a DEFAULT (column references, VALUE included; subqueries; …)."""
        if value is not None:
            check_default(value)
        return value

    def target(self) -> str:
        return self.name

    def apply(self, state: SchemaState) -> None:
        if self.name in state.types:
            raise ValueError(f"type {self.name} is already created by an earlier operation — fix: remove this "
                             "CreateDomain or pick another name")
        if self.name in state.tables or self.name in state.relations:
            raise ValueError(f"{self.name} is a table or index of the specs, and a table's row type has its name "
                             "— fix: pick another type name")
        state.types[self.name] = DomainFact(str(self.type), state.at.version)

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [expect.DomainType(self.name, str(self.type), self.not_null,
                                  str(self.default) if self.default is not None else None,
                                  tuple(str(c) for c in self.checks))]

    def _definition(self, target) -> object:
        parts = [S("CREATE DOMAIN {n} AS {t}").format(n=target, t=self.type.sql())]
        if self.default is not None:
            parts.append(S("DEFAULT {}").format(self.default.sql()))
        if self.not_null:
            parts.append(S("NOT NULL"))
        parts += [S("CHECK ({})").format(c.sql()) for c in self.checks]
        return S("{};").format(S(" ").join(parts))

    def forward(self, ctx: PlanContext) -> list[Step]:
        hint = "Nothing was changed by this step. Rename or change the existing type, or change the spec to match it."
        body = block(
            S("v_kind := {};").format(type_kind(self.name)),
            if_then(S("v_kind IS NULL"), self._definition(type_ident(self.name)),
                    record_owned(ctx, "domain", self.name), S("RETURN;")),
            if_then(S("v_kind <> 'd'"), fail(ctx, f"type {self.name} exists and is not a domain", hint)),
            S("DROP DOMAIN IF EXISTS {};").format(PROBE),
            self._definition(PROBE),
            S("v_actual := {};").format(domain_facts(type_oid(self.name))),
            S("v_expected := {};").format(domain_facts(S("{}::pg_catalog.regtype").format(
                literal("pg_temp.dbdeploy_probe_domain")))),
            S("DROP DOMAIN {};").format(PROBE),
            if_then(S("v_actual IS DISTINCT FROM v_expected"),
                    S("RAISE EXCEPTION '%', {msg} || v_actual || ', expected ' || v_expected"
                      " USING HINT = {hint};").format(
                        msg=literal(f"dbdeploy {ctx.label}: domain {self.name} exists but differs from the spec: "
                                    "it is "),
                        hint=literal(hint))),
            if_then(S("NOT {}").format(is_owned(ctx, "domain", self.name)),
                    notice(ctx, f"domain {self.name} exists and matches the spec; left as it is")),
        )
        return scaled([Step(self.kind, self.name, "NONE", True,
                            do_block(body, declare=["v_kind \"char\"", "v_actual text", "v_expected text"]),
                            f"create domain {self.name}")], queries.CATALOG_ONLY)

    def _refuse_dependants(self, ctx: PlanContext, skip) -> object:
        return block(
            S("v_dependants := {};").format(dependants(self.name, skip)),
            if_then(S("v_dependants IS NOT NULL"),
                    fail(ctx, f"refusing to drop domain {self.name}; these depend on it:",
                         "Drop or change the dependants first (dbdeploy never uses CASCADE), then re-run the "
                         "rollback.", detail=S("v_dependants"))))

    def rollback(self, ctx: PlanContext) -> list[Step]:
        body = block(
            if_then(S("{} IS NULL").format(type_oid(self.name)),
                    notice(ctx, f"domain {self.name} is already gone"),
                    forget_owned(ctx, "domain", self.name), S("RETURN;")),
            if_then(S("NOT {}").format(is_owned(ctx, "domain", self.name)),
                    notice(ctx, f"domain {self.name} was not created by {ctx.label}; left in place"), S("RETURN;")),
            backup_columns_to_text(ctx, self.name, to_base=True),
            self._refuse_dependants(ctx, None),
            S("DROP DOMAIN {};").format(type_ident(self.name)),
            forget_owned(ctx, "domain", self.name),
        )
        return [Step("drop_domain", self.name, "NONE", True,
                     do_block(body, declare=["v_dependants text", "v_bk record"]),
                     f"drop domain {self.name} if {ctx.label} created it and nothing depends on it")]

    def rollback_preflight(self, ctx: PlanContext) -> list:
        return [if_then(S("{} IS NOT NULL AND {}").format(type_oid(self.name), is_owned(ctx, "domain", self.name)),
                        self._refuse_dependants(ctx, S("({} OR {})").format(released_dependant(ctx),
                                                                            in_backup_schema(ctx))))]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        facts = queries.query(S("SELECT {} AS domain_definition").format(domain_facts(type_oid(self.name))))
        return ChecklistItems(
            prerequisites=[CheckQuery(f"Domain {self.name} now (NULL: it does not exist yet; otherwise it must be "
                                      "what the spec says)", facts, "")],
            health_checks=[CheckQuery(f"Domain {self.name} after the deploy (base type | NOT NULL | default | "
                                      "checks)", facts, "")],
            rollback_notes=[f"Domain {self.name} is dropped only if {ctx.label} created it; the rollback refuses "
                            "before any change, naming them, while columns or other objects depend on it (never "
                            f"CASCADE). Copies the rollback made of columns of the domain (in {ctx.backup_schema}) "
                            "keep their values in its base type."])


__all__ = ["CreateDomain", "DomainFact", "domain_facts"]
