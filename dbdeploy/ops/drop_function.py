"""DropFunction: drop a function, its definition, comment and privileges kept for the rollback.

Forward (one transaction; DROP FUNCTION locks no table): refuses, changing nothing, while objects depend
on the function (``pg_depend``, named with ``pg_describe_object``: triggers, views, defaults, other
functions' ``RETURNS`` types …) — never CASCADE; drop those first (a DropTrigger earlier in the same
migration). On its first run it saves ``pg_get_functiondef`` (PostgreSQL's complete ``CREATE OR REPLACE
FUNCTION`` text), the ACL (``proacl``) and the comment in ``<backup schema>.dropped_functions``, then
``DROP FUNCTION``. A re-run finds the function gone and the saved row there, and does nothing.

Rollback: ``EXECUTE`` of the saved text (the catalog's deparse at forward time, never spec text), the
comment set back (``COMMENT ON FUNCTION`` through ``format(%L)``), and, when the function had an ACL,
``REVOKE ALL … FROM PUBLIC`` (unless PUBLIC had EXECUTE) then one ``GRANT`` per ``aclexplode`` entry
(privilege and grantee from the catalog, quoted with ``quote_ident``); then the saved row is removed. An
``sql`` body is analysed at creation (ACCESS SHARE on the tables it reads), so the step is marked ACCESS
SHARE. The preflight refuses,
before any change, when the forward recorded the drop but the saved row is missing.
"""

from __future__ import annotations

from typing import ClassVar

from psycopg import sql

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import Identifier, SqlType, TableName
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import S, fail, forget_owned, is_owned, notice, record_owned
from dbdeploy.sql import acl, ident, literal, qualified, regclass, render
from dbdeploy.sql.blocks import block, do_block, if_then


def dropped_functions_table(ctx: PlanContext) -> sql.Identifier:
    return ident(ctx.backup_schema, "dropped_functions")


class DropFunction(Operation):
    """Drop function ``name`` (``schema.name``) taking ``args`` (``(name, type)`` pairs, as CreateFunction;
    only the types identify it). Errors (at load): a function the specs created that triggers the specs
    created still call (fix: DropTrigger first). At run time the forward refuses, changing nothing, when
    the function does not exist (and this version did not drop it) or objects depend on it (named)."""

    kind: ClassVar[str] = "drop_function"
    name: TableName
    args: list[tuple[Identifier, SqlType]] = []

    @property
    def signature(self) -> str:
        return f"{self.name}({', '.join(t for _, t in self.args)})"

    def signature_sql(self) -> sql.Composable:
        return literal(f"{render(qualified(self.name))}({', '.join(str(t) for _, t in self.args)})")

    def target(self) -> str:
        return self.signature

    def apply(self, state: SchemaState) -> None:
        if not self.args:
            users = sorted(key.removeprefix("trigger ") for key, op in state.functions.items()
                           if key.startswith("trigger ") and getattr(op, "function", None) == self.name)
            if users:
                raise ValueError(f"function {self.signature} is called by trigger(s) {', '.join(users)}; dbdeploy "
                                 "never drops with CASCADE — fix: drop them first with DropTrigger, earlier in the "
                                 "same migration")
        state.functions.pop(self.signature, None)

    def _where(self, ctx: PlanContext) -> sql.Composable:
        return S("d.version = {v} AND d.signature = {s}").format(v=literal(ctx.version), s=literal(self.signature))

    def _saved(self, ctx: PlanContext) -> sql.Composable:
        meta = dropped_functions_table(ctx)
        return S("({} IS NOT NULL AND EXISTS (SELECT 1 FROM {meta} d WHERE {w}))").format(
            regclass(meta), meta=meta, w=self._where(ctx))

    def forward(self, ctx: PlanContext) -> list[Step]:
        sig, meta = self.signature, dropped_functions_table(ctx)
        drop = S("{}({})").format(qualified(self.name), S(", ").join(t.sql() for _, t in self.args))
        body = block(
            S("v_oid := pg_catalog.to_regprocedure({});").format(self.signature_sql()),
            if_then(S("v_oid IS NULL"),
                    if_then(self._saved(ctx),
                            notice(ctx, f"function {sig} is already dropped (its definition is kept in "
                                        f"{ctx.backup_schema}.dropped_functions)"),
                            S("RETURN;")),
                    fail(ctx, f"function {sig} does not exist; nothing to drop",
                         "Check the name and the argument types.")),
            S("SELECT pg_catalog.string_agg(pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid), ', '"
              " ORDER BY 1) INTO v_dependants FROM pg_catalog.pg_depend d\n"
              "WHERE d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.refobjid = v_oid"
              " AND d.deptype = 'n';"),
            if_then(S("v_dependants IS NOT NULL"),
                    fail(ctx, f"refusing to drop function {sig}; nothing was changed; these objects depend on it "
                              "(dbdeploy never drops with CASCADE):",
                         "Drop those first (DropTrigger for a trigger), earlier in the same migration.",
                         detail=S("v_dependants"))),
            S("CREATE TABLE IF NOT EXISTS {meta} (\n"
              "    version text NOT NULL, signature text NOT NULL, definition text NOT NULL,\n"
              "    acl text, comment text,\n"
              "    dropped_at timestamptz NOT NULL DEFAULT pg_catalog.now(),\n"
              "    PRIMARY KEY (version, signature)\n"
              ");").format(meta=meta),
            acl.restrict_table(meta),
            S("INSERT INTO {meta} (version, signature, definition, acl, comment)\n"
              "SELECT {v}, {s}, pg_catalog.pg_get_functiondef(v_oid), p.proacl::text,"
              " pg_catalog.obj_description(v_oid, 'pg_proc')"
              " FROM pg_catalog.pg_proc p WHERE p.oid = v_oid ON CONFLICT DO NOTHING;").format(
                meta=meta, v=literal(ctx.version), s=literal(sig)),
            record_owned(ctx, "dropped_function", sig),
            S("DROP FUNCTION {};").format(drop),
            notice(ctx, f"dropped function {sig} (its definition is kept for the rollback)"),
        )
        return scaled([Step(self.kind, sig, "NONE", True,
                            do_block(body, declare=["v_oid oid", "v_dependants text"]),
                            f"drop function {sig} (definition kept)")], queries.CATALOG_ONLY)

    def rollback(self, ctx: PlanContext) -> list[Step]:
        sig, meta = self.signature, dropped_functions_table(ctx)
        body = block(
            if_then(S("NOT {}").format(self._saved(ctx)),
                    notice(ctx, f"no saved definition of function {sig} (nothing to restore: rolled back already, "
                                "or the forward did not run)"),
                    forget_owned(ctx, "dropped_function", sig),
                    S("RETURN;")),
            S("SELECT d.definition, d.acl, d.comment INTO v_definition, v_acl, v_comment"
              " FROM {meta} d WHERE {w};").format(meta=meta, w=self._where(ctx)),
            # PostgreSQL's own deparse of the function at forward time: data from the catalog, not spec text
            S("EXECUTE v_definition;"),
            S("v_oid := pg_catalog.to_regprocedure({});").format(self.signature_sql()),
            if_then(S("v_comment IS NOT NULL"),
                    S("EXECUTE pg_catalog.format('COMMENT ON FUNCTION %s IS %L', v_oid::pg_catalog.regprocedure,"
                      " v_comment);")),
            if_then(S("v_acl IS NOT NULL"),
                    # a new function grants EXECUTE to PUBLIC; revoked only when the saved ACL had no PUBLIC
                    # entry, so the entries come back in their original order
                    if_then(S("NOT EXISTS (SELECT 1 FROM pg_catalog.aclexplode(v_acl::pg_catalog.aclitem[]) a"
                              " WHERE a.grantee = 0)"),
                            S("EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', "
                              "v_oid::pg_catalog.regprocedure);")),
                    S("FOR v_grant IN SELECT a.privilege_type, a.grantee, a.is_grantable"
                      " FROM pg_catalog.aclexplode(v_acl::pg_catalog.aclitem[]) a"
                      " WHERE a.grantee <> 0"
                      " AND a.grantee <> (SELECT p.proowner FROM pg_catalog.pg_proc p WHERE p.oid = v_oid) LOOP\n"
                      "    EXECUTE pg_catalog.format('GRANT %s ON FUNCTION %s TO %s%s',"
                      " CASE v_grant.privilege_type WHEN 'EXECUTE' THEN 'EXECUTE' END, v_oid::pg_catalog.regprocedure,"
                      " pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(v_grant.grantee)),"
                      " CASE WHEN v_grant.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);\n"
                      "END LOOP;")),
            S("DELETE FROM {meta} d WHERE {w};").format(meta=meta, w=self._where(ctx)),
            forget_owned(ctx, "dropped_function", sig),
            notice(ctx, f"re-created function {sig} as it was before {ctx.label}"),
        )
        return [Step("restore_function", sig, "ACCESS SHARE", True,
                     do_block(body, declare=["v_oid oid", "v_definition text", "v_acl text", "v_comment text",
                                             "v_grant record"]),
                     f"re-create function {sig} from its saved definition")]

    def rollback_preflight(self, ctx: PlanContext) -> list:
        sig = self.signature
        return [
            if_then(S("{} AND NOT {}").format(is_owned(ctx, "dropped_function", sig), self._saved(ctx)),
                    fail(ctx, f"the definition of function {sig}, saved in {ctx.backup_schema}.dropped_functions "
                              f"when {ctx.label} dropped it, is missing, so the rollback cannot re-create it",
                         f"Re-create the function by hand, delete the row 'dropped_function' {sig} of "
                         f"{ctx.history_schema}.migration_objects, then run the rollback again.")),
            if_then(S("{} AND pg_catalog.to_regprocedure({}) IS NOT NULL AND NOT {}").format(
                        self._saved(ctx), self.signature_sql(), is_owned(ctx, "function", sig)),
                    fail(ctx, f"a function {sig} exists again, so the rollback cannot re-create the one {ctx.label} "
                              "dropped",
                         "Drop or rename the new function, then run the rollback again.")),
        ]

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        lookup = render(qualified(self.name)) + "(" + ", ".join(str(t) for _, t in self.args) + ")"
        return [expect.Function(self.signature, lookup, present=False)]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        sig = self.signature
        dependants = queries.query(S(
            "SELECT count(*) AS dependants FROM pg_catalog.pg_depend d"
            " WHERE d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass"
            " AND d.refobjid = pg_catalog.to_regprocedure({}) AND d.deptype = 'n'").format(self.signature_sql()))
        return ChecklistItems(
            prerequisites=[CheckQuery(f"Nothing depends on function {sig} (the forward refuses otherwise)",
                                      dependants, "0")],
            rollback_notes=[f"The rollback re-creates function {sig} from its pg_get_functiondef saved at forward "
                            f"time in {ctx.backup_schema}.dropped_functions, with its comment and privileges; it "
                            "refuses before any change when the saved definition is missing or a function with "
                            "that signature exists again."])


__all__ = ["DropFunction", "dropped_functions_table"]
