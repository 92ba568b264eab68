"""DropEnum: drop an enum type nothing depends on, its labels saved for the rollback.

``DROP TYPE`` (never CASCADE) is a catalog change that locks no table (a type in use by a column cannot be
dropped at all), so the step's lock is ``NONE``. Before any change the forward refuses, naming them,
while columns, domains, functions or other objects depend on the type (``pg_depend``); then it saves the
labels in their order (``pg_enum`` by ``enumsortorder``) and the type's comment in
``<backup schema>.dropped_enum_types`` (access restricted), drops the type and records that this version
dropped it. A re-run finds the type gone and its labels saved: nothing to do. The rollback re-creates the
type with exactly those labels in that order (and its comment) only if this version dropped it; its
preflight refuses when the saved labels are missing, or a type of that name exists with other labels.
"""

from __future__ import annotations

from typing import ClassVar

from psycopg import sql

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import S, fail, forget_owned, ident, is_owned, literal, notice, record_owned
from dbdeploy.ops.enum_common import (
    EnumFact,
    TypeName,
    backup_columns_to_text,
    dependants,
    enum_labels,
    known_enum,
    type_ident,
    type_kind,
    type_oid,
)
from dbdeploy.sql import acl, render
from dbdeploy.sql.blocks import block, do_block, if_then


def dropped_enums_table(ctx: PlanContext) -> sql.Identifier:
    """``<backup schema>.dropped_enum_types``: one row per enum a version dropped (its labels in order)."""
    return ident(ctx.backup_schema, "dropped_enum_types")


def _column_type_names(type_text: str) -> str:
    """A column's type as the specs spell it, without array brackets and quotes (to compare with a type name)."""
    text = type_text.strip()
    while text.endswith("[]"):
        text = text[:-2].rstrip()
    return text.replace('"', "")


class DropEnum(Operation):
    """Drop enum type ``name`` (``schema.type``). Refused at load when a column the specs know uses it (drop or
    change the column first); at apply, before any change, when anything depends on it."""

    kind: ClassVar[str] = "drop_enum"
    destructive: ClassVar[bool] = False     # the labels are saved; no row is lost (a used type cannot be dropped)
    name: TypeName

    @property
    def enum_type_name(self) -> str:
        return self.name

    def target(self) -> str:
        return self.name

    def apply(self, state: SchemaState) -> None:
        fact = known_enum(state, self.name, "DropEnum")
        plain = self.name.replace('"', "")
        for table, known in state.tables.items():
            for column in known.columns.values():
                if _column_type_names(column.type) == plain:
                    raise ValueError(f"column {column.name} of {table} uses type {self.name} — fix: drop the column "
                                     "or change its type first (DropColumn, AlterColumnType)")
        if fact is not None:
            state.types = {k: v for k, v in state.types.items() if k != self.name}

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        fact = ctx.state.types.get(self.name)
        before = tuple(fact.labels) if isinstance(fact, EnumFact) and fact.version != ctx.version else expect._UNKNOWN
        return [expect.EnumType(self.name, present=False, before=before)]

    def _where(self, ctx: PlanContext) -> sql.Composable:
        return S("m.version = {v} AND m.type_name = {n}").format(v=literal(ctx.version), n=literal(self.name))

    def _saved(self, ctx: PlanContext) -> sql.Composable:
        return S("(SELECT m.labels FROM {t} AS m WHERE {w})").format(t=dropped_enums_table(ctx), w=self._where(ctx))

    def forward(self, ctx: PlanContext) -> list[Step]:
        table = dropped_enums_table(ctx)
        body = block(
            if_then(S("{} IS NULL").format(type_oid(self.name)),
                    notice(ctx, f"type {self.name} does not exist; nothing to drop"), S("RETURN;")),
            if_then(S("{} <> 'e'").format(type_kind(self.name)),
                    fail(ctx, f"type {self.name} is not an enum type", "Nothing was changed. Check the type name.")),
            backup_columns_to_text(ctx, self.name),
            S("v_dependants := {};").format(dependants(self.name)),
            if_then(S("v_dependants IS NOT NULL"),
                    fail(ctx, f"refusing to drop type {self.name}; these depend on it:",
                         "Nothing was changed. Drop or change the dependants first (dbdeploy never uses CASCADE), "
                         "then re-run.", detail=S("v_dependants"))),
            if_then(S("{} IS NULL").format(S("pg_catalog.to_regclass({})").format(literal(render(table)))),
                    S("CREATE TABLE {t} (version text NOT NULL, type_name text NOT NULL, labels text[] NOT NULL,"
                      " comment text, PRIMARY KEY (version, type_name));").format(t=table),
                    acl.restrict_table(table)),
            S("INSERT INTO {t} (version, type_name, labels, comment) SELECT {v}, {n}, COALESCE({labels}, '{{}}'),"
              " pg_catalog.obj_description({oid}, 'pg_type') ON CONFLICT (version, type_name) DO UPDATE"
              " SET labels = EXCLUDED.labels, comment = EXCLUDED.comment;").format(
                t=table, v=literal(ctx.version), n=literal(self.name), labels=enum_labels(self.name),
                oid=type_oid(self.name)),
            S("DROP TYPE {};").format(type_ident(self.name)),
            record_owned(ctx, "dropped_enum_type", self.name),
        )
        return scaled([Step(self.kind, self.name, "NONE", True,
                            do_block(body, declare=["v_dependants text", "v_bk record"]),
                            f"drop enum type {self.name} (its labels saved for the rollback)")], queries.CATALOG_ONLY)

    def rollback(self, ctx: PlanContext) -> list[Step]:
        table = dropped_enums_table(ctx)
        recreate = S(
            "EXECUTE 'CREATE TYPE ' || {t} || ' AS ENUM (' || COALESCE((SELECT pg_catalog.string_agg("
            "pg_catalog.quote_literal(l.label), ', ' ORDER BY l.o) FROM pg_catalog.unnest(v_labels)"
            " WITH ORDINALITY AS l(label, o)), '') || ')';").format(t=literal(render(type_ident(self.name))))
        body = block(
            if_then(S("NOT {}").format(is_owned(ctx, "dropped_enum_type", self.name)),
                    notice(ctx, f"type {self.name} was not dropped by {ctx.label}; nothing to re-create"),
                    S("RETURN;")),
            S("SELECT m.labels, m.comment INTO v_labels, v_comment FROM {t} AS m WHERE {w};").format(
                t=table, w=self._where(ctx)),
            if_then(S("NOT FOUND"),
                    fail(ctx, f"the labels of {self.name} saved at the drop are missing; cannot re-create it",
                         "Re-create the type by hand, then delete its row from migration_objects and re-run.")),
            if_then(S("{} IS NOT NULL").format(type_oid(self.name)),
                    if_then(S("{} IS DISTINCT FROM v_labels").format(enum_labels(self.name)),
                            fail(ctx, f"type {self.name} exists again with other labels", "Drop or rename it, then "
                                 "re-run the rollback.")),
                    notice(ctx, f"enum {self.name} exists with its saved labels; left as it is"),
                    otherwise=[recreate,
                               if_then(S("v_comment IS NOT NULL"),
                                       S("EXECUTE 'COMMENT ON TYPE ' || {t} || ' IS ' || pg_catalog.quote_literal("
                                         "v_comment);").format(t=literal(render(type_ident(self.name))))),
                               notice(ctx, f"re-created enum {self.name} with its saved labels")]),
            S("DELETE FROM {t} AS m WHERE {w};").format(t=table, w=self._where(ctx)),
            forget_owned(ctx, "dropped_enum_type", self.name),
        )
        return [Step("restore_enum", self.name, "NONE", True,
                     do_block(body, declare=["v_labels text[]", "v_comment text"]),
                     f"re-create enum type {self.name} with its saved labels if {ctx.label} dropped it")]

    def rollback_preflight(self, ctx: PlanContext) -> list:
        table = dropped_enums_table(ctx)
        missing = fail(ctx, f"the labels of {self.name} saved at the drop ({ctx.backup_schema}.dropped_enum_types) "
                            "are missing; cannot re-create it",
                       "Re-create the type by hand, then delete its row from migration_objects and re-run.")
        # nested: PL/pgSQL prepares each condition when it first runs it, so the table is read only once it exists
        return [if_then(is_owned(ctx, "dropped_enum_type", self.name),
                        if_then(S("pg_catalog.to_regclass({}) IS NULL").format(literal(render(table))), missing,
                                otherwise=[if_then(S("NOT EXISTS (SELECT 1 FROM {t} AS m WHERE {w})").format(
                                    t=table, w=self._where(ctx)), missing, otherwise=[if_then(
                                        S("{oid} IS NOT NULL AND {now} IS DISTINCT FROM {labels}").format(
                                            oid=type_oid(self.name), now=enum_labels(self.name),
                                            labels=self._saved(ctx)),
                                        fail(ctx, f"type {self.name} exists again with other labels than the saved "
                                                  "ones", "Drop or rename it, then re-run the rollback."))])]))]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        deps = CheckQuery(f"Nothing depends on type {self.name} (the drop refuses otherwise)", queries.query(
            S("SELECT {} AS dependants").format(dependants(self.name))), "NULL")
        return ChecklistItems(
            prerequisites=[CheckQuery(f"Labels of enum {self.name} now (saved for the rollback)", queries.query(
                S("SELECT {} AS labels").format(enum_labels(self.name))), ""), deps],
            health_checks=[CheckQuery(f"Type {self.name} is gone", queries.query(
                S("SELECT {} IS NULL AS dropped").format(type_oid(self.name))), "true")],
            rollback_notes=[f"The rollback re-creates {self.name} with the labels saved at the drop, in their order "
                            f"({ctx.backup_schema}.dropped_enum_types), only if {ctx.label} dropped it; it refuses "
                            "before any change when the saved labels are missing or a type of that name exists "
                            "with other labels."])


__all__ = ["DropEnum", "dropped_enums_table"]
