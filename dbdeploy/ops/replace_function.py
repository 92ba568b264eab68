"""ReplaceFunction: CREATE OR REPLACE a function, the previous definition kept for the rollback.

The forward (one transaction, no table lock for PL/pgSQL; an ``sql`` body's analysis opens the tables it
reads with ACCESS SHARE) first saves, on its first run only, the function's ``pg_get_functiondef`` —
PostgreSQL's own complete ``CREATE OR REPLACE FUNCTION`` text of it — in ``<backup
schema>.replaced_functions`` (NULL when no function had the signature: the rollback then drops the one
the forward created). PostgreSQL refuses ``CREATE OR REPLACE`` with another return type (PostgreSQL
docs, CREATE FUNCTION: "it is not possible to change the name or argument types of a function this way
… the return type … cannot be changed"): the step checks it first and stops with a clear message,
changing nothing. ``CREATE OR REPLACE`` keeps the owner, privileges and comment.

The rollback runs the saved text with ``EXECUTE`` (data PostgreSQL deparsed from its catalog at forward
time, never text from the spec), restoring the function exactly, then deletes the saved row. Its
preflight refuses, before any change, when the forward recorded saving the definition but the row is
missing; and, for a function the forward created, while objects this version did not create depend on it.
"""

from __future__ import annotations

from typing import ClassVar

from psycopg import sql

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.base import ChecklistItems, CheckQuery, PlanContext, SchemaState
from dbdeploy.ops.common import S, fail, forget_owned, is_owned, notice, record_owned
from dbdeploy.ops.create_function import CreateFunction, function_expect, refuse_function_dependants
from dbdeploy.sql import acl, ident, literal, regclass, render
from dbdeploy.sql.blocks import block, do_block, if_then


def replaced_functions_table(ctx: PlanContext) -> sql.Identifier:
    return ident(ctx.backup_schema, "replaced_functions")


class ReplaceFunction(CreateFunction):
    """Replace function ``name(args)`` with the definition given (fields as :class:`CreateFunction`); a
    function that does not exist yet is created (and dropped by the rollback).

    Errors (at load): as CreateFunction. At run time the forward stops, changing nothing, when the
    schema is missing or the existing function returns another type (PostgreSQL cannot change it in
    place: drop it and create it anew, with RawSQL)."""

    kind: ClassVar[str] = "replace_function"

    def apply(self, state: SchemaState) -> None:
        state.functions[self.signature] = self

    def _where(self, ctx: PlanContext) -> sql.Composable:
        return S("r.version = {v} AND r.signature = {s}").format(v=literal(ctx.version), s=literal(self.signature))

    def forward(self, ctx: PlanContext) -> list[Step]:
        sig, meta = self.signature, replaced_functions_table(ctx)
        returns = S("pg_catalog.to_regtype({}) IS DISTINCT FROM p.prorettype OR p.proretset <> {}").format(
            literal(self.returns.base), literal(self.returns.setof))
        body = block(
            if_then(S("pg_catalog.to_regnamespace({}) IS NULL").format(
                literal(render(ident(self.name.partition(".")[0])))),
                fail(ctx, f"schema of function {sig} does not exist", "Create the schema first (CreateSchema).")),
            S("v_oid := pg_catalog.to_regprocedure({});").format(self.signature_sql()),
            if_then(S("v_oid IS NOT NULL AND EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.oid = v_oid AND ({}))"
                      ).format(returns),
                    fail(ctx, f"function {sig} returns another type than {self.returns}; PostgreSQL cannot change a "
                              "function's return type with CREATE OR REPLACE; nothing was changed. It returns:",
                         "Drop the function and create it anew (RawSQL with a rollback that restores it), or keep "
                         "its return type.", detail=S("pg_catalog.pg_get_function_result(v_oid)"))),
            S("CREATE TABLE IF NOT EXISTS {meta} (\n"
              "    version text NOT NULL, signature text NOT NULL, definition text,\n"
              "    saved_at timestamptz NOT NULL DEFAULT pg_catalog.now(),\n"
              "    PRIMARY KEY (version, signature)\n"
              ");").format(meta=meta),
            acl.restrict_table(meta),
            if_then(S("NOT EXISTS (SELECT 1 FROM {meta} r WHERE {w})").format(meta=meta, w=self._where(ctx)),
                    S("INSERT INTO {meta} (version, signature, definition) VALUES ({v}, {s},"
                      " CASE WHEN v_oid IS NULL THEN NULL ELSE pg_catalog.pg_get_functiondef(v_oid) END);").format(
                        meta=meta, v=literal(ctx.version), s=literal(sig)),
                    record_owned(ctx, "function_definition", sig),
                    if_then(S("v_oid IS NULL"), record_owned(ctx, "function", sig)),
                    notice(ctx, f"saved the definition of {sig} before {ctx.label} in "
                                f"{ctx.backup_schema}.replaced_functions")),
            S("{};").format(self.statement(or_replace=True)),
            notice(ctx, f"replaced function {sig}"),
        )
        lock = "ACCESS SHARE" if self.language == "sql" else "NONE"
        return scaled([Step(self.kind, sig, lock, True, do_block(body, declare=["v_oid oid"]),
                            f"replace function {sig} (its previous definition is kept for the rollback)")],
                      queries.CATALOG_ONLY)

    def rollback(self, ctx: PlanContext) -> list[Step]:
        sig, meta = self.signature, replaced_functions_table(ctx)
        body = block(
            if_then(S("{} IS NULL OR NOT EXISTS (SELECT 1 FROM {meta} r WHERE {w})").format(
                        regclass(meta),
                        meta=meta, w=self._where(ctx)),
                    notice(ctx, f"no saved definition of {sig} (nothing to restore: rolled back already, or the "
                                "forward did not run)"),
                    S("RETURN;")),
            S("SELECT r.definition INTO v_definition FROM {meta} r WHERE {w};").format(meta=meta, w=self._where(ctx)),
            S("v_oid := pg_catalog.to_regprocedure({});").format(self.signature_sql()),
            if_then(S("v_definition IS NULL"),
                    if_then(S("v_oid IS NOT NULL AND {}").format(is_owned(ctx, "function", sig)),
                            S("DROP FUNCTION {};").format(self.drop_target()),
                            notice(ctx, f"dropped function {sig} (it did not exist before {ctx.label})")),
                    otherwise=[
                        # PostgreSQL's own deparse of the function at forward time (pg_get_functiondef): a
                        # CREATE OR REPLACE FUNCTION that restores it exactly; data from the catalog, not spec text
                        S("EXECUTE v_definition;"),
                        notice(ctx, f"restored the definition function {sig} had before {ctx.label}")]),
            S("DELETE FROM {meta} r WHERE {w};").format(meta=meta, w=self._where(ctx)),
            forget_owned(ctx, "function_definition", sig),
            forget_owned(ctx, "function", sig),
        )
        return [Step("restore_function", sig, "NONE", True,
                     do_block(body, declare=["v_oid oid", "v_definition text"]),
                     f"restore the definition {sig} had before {ctx.label}")]

    def rollback_preflight(self, ctx: PlanContext) -> list:
        sig, meta = self.signature, replaced_functions_table(ctx)
        saved = S("({} IS NOT NULL AND EXISTS (SELECT 1 FROM {meta} r WHERE {w}))").format(
            regclass(meta), meta=meta, w=self._where(ctx))
        return [
            if_then(S("{} AND NOT {}").format(is_owned(ctx, "function_definition", sig), saved),
                    fail(ctx, f"the definition function {sig} had before {ctx.label}, saved in "
                              f"{ctx.backup_schema}.replaced_functions, is missing, so the rollback cannot restore "
                              "it",
                         f"Restore the function by hand, delete the row 'function_definition' {sig} of "
                         f"{ctx.history_schema}.migration_objects, then run the rollback again.")),
            refuse_function_dependants(
                ctx, self.signature_sql(), is_owned(ctx, "function", sig),
                f"the rollback cannot drop function {sig} (created by {ctx.label}'s ReplaceFunction): other objects "
                "depend on it (dbdeploy never drops with CASCADE); nothing was changed:",
                f"Drop or change those objects first (they are not part of {ctx.label}), then run the rollback "
                "again."),
        ]

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        # after the rollback the function is as it was before, which only the saved definition knows
        return [function_expect(self, replaced=True)]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        sig = self.signature
        current = queries.query(S("SELECT pg_catalog.pg_get_functiondef(pg_catalog.to_regprocedure({}))"
                                  " AS definition").format(self.signature_sql()))
        saved = queries.query(S("SELECT count(*) AS saved FROM {meta} WHERE version = {v} AND signature = {s}").format(
            meta=replaced_functions_table(ctx), v=literal(ctx.version), s=literal(sig)))
        return ChecklistItems(
            prerequisites=[CheckQuery(f"The definition of {sig} now (kept for the rollback; NULL: it does not exist "
                                      "and is created)", current, "")],
            health_checks=[CheckQuery(f"The previous definition of {sig} is kept for the rollback", saved, "1")],
            rollback_notes=[f"The rollback restores function {sig} exactly as it was before {ctx.label} (its "
                            f"pg_get_functiondef, saved at forward time in {ctx.backup_schema}.replaced_functions), "
                            "or drops it when the forward created it (refused while objects not made by "
                            f"{ctx.label} depend on it); it refuses before any change when the saved definition "
                            "is missing."])


__all__ = ["ReplaceFunction", "replaced_functions_table"]
