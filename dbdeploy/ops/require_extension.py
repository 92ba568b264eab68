"""RequireExtension: abort with a clear message when an extension is missing, or create it."""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import ConfigDict, Field, field_validator

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import Identifier
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.base import ChecklistItems, Operation, PlanContext
from dbdeploy.ops.common import S, fail, forget_owned, ident, is_owned, literal, notice, record_owned, warning
from dbdeploy.sql.blocks import block, do_block, if_then

_EXTENSION_NAME = re.compile(r"[a-z0-9_][a-z0-9_-]{0,62}\Z")


def _extension_dependants(ctx: PlanContext, name: str, *, backups: bool, released: bool):
    """Objects outside the extension that use it or one of its members (a column of its type, a
    default or view calling its functions), as text, or NULL. ``backups``: only those in the backup
    schemas (else only those outside them). ``released``: leave out what the rollback removes before
    it (the tables it drops, the columns this version added)."""
    in_backup = S("(n.nspname = {b} OR n.nspname LIKE {p})").format(
        b=literal(ctx.backup_schema), p=literal(ctx.backup_schema.replace("_", "\\_") + "\\_%"))
    where = in_backup if backups else S("(n.nspname IS NULL OR NOT {})").format(in_backup)
    if released:
        owned = S("EXISTS (SELECT 1 FROM {objects} o WHERE o.version = {v} AND ({drops}"
                  "(o.object_type = 'column' AND dep.objsubid > 0 AND o.object_name = n.nspname || '.' || r.relname"
                  " || '.' || (SELECT a.attname FROM pg_catalog.pg_attribute a WHERE a.attrelid = r.oid"
                  " AND a.attnum = dep.objsubid))))").format(
            objects=ident(ctx.history_schema, "migration_objects"), v=literal(ctx.version),
            drops=S("(o.object_type = 'table' AND o.object_name IN ({}) AND o.object_name = n.nspname || '.'"
                    " || r.relname) OR ").format(S(", ").join(literal(t) for t in sorted(ctx.rollback_drops)))
            if ctx.rollback_drops else S(""))
        where = S("{} AND NOT {}").format(where, owned)
    return S(
        "(SELECT pg_catalog.string_agg(DISTINCT pg_catalog.pg_describe_object(dep.classid, dep.objid, dep.objsubid),"
        " ', ')\n"
        "     FROM (SELECT d.classid, d.objid, d.objsubid,\n"
        "                  CASE d.classid\n"
        "                      WHEN 'pg_catalog.pg_class'::pg_catalog.regclass THEN COALESCE(\n"
        "                          (SELECT i.indrelid FROM pg_catalog.pg_index i WHERE i.indexrelid = d.objid),"
        " d.objid)\n"
        "                      WHEN 'pg_catalog.pg_attrdef'::pg_catalog.regclass THEN\n"
        "                          (SELECT ad.adrelid FROM pg_catalog.pg_attrdef ad WHERE ad.oid = d.objid)\n"
        "                      WHEN 'pg_catalog.pg_constraint'::pg_catalog.regclass THEN\n"
        "                          (SELECT co.conrelid FROM pg_catalog.pg_constraint co WHERE co.oid = d.objid)\n"
        "                      WHEN 'pg_catalog.pg_rewrite'::pg_catalog.regclass THEN\n"
        "                          (SELECT rw.ev_class FROM pg_catalog.pg_rewrite rw WHERE rw.oid = d.objid)\n"
        "                  END AS relid\n"
        "           FROM pg_catalog.pg_extension x\n"
        "           JOIN pg_catalog.pg_depend m ON m.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass\n"
        "                AND m.refobjid = x.oid AND m.deptype = 'e'\n"
        "           JOIN pg_catalog.pg_depend d ON (d.refclassid = m.classid AND d.refobjid = m.objid\n"
        "                OR d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.refobjid = x.oid)\n"
        "           WHERE x.extname = {name} AND d.deptype IN ('n', 'a')\n"
        "             AND d.classid NOT IN ('pg_catalog.pg_amop'::pg_catalog.regclass,"
        " 'pg_catalog.pg_amproc'::pg_catalog.regclass)\n"
        # The implicit array type of one of its types is the extension's too (pgvector records it so).
        "             AND NOT (d.classid = 'pg_catalog.pg_type'::pg_catalog.regclass AND EXISTS (SELECT 1\n"
        "                  FROM pg_catalog.pg_type t JOIN pg_catalog.pg_type el ON el.oid = t.typelem\n"
        "                  WHERE t.oid = d.objid AND el.typarray = t.oid))\n"
        "             AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid = d.classid"
        " AND e.objid = d.objid AND e.deptype = 'e')) dep\n"
        "     LEFT JOIN pg_catalog.pg_class r ON r.oid = dep.relid\n"
        "     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace\n"
        "     WHERE {where})").format(name=literal(name), where=where)


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

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [expect.Extension(self.name)]

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
        return scaled([Step(self.kind, self.name, "NONE", True, do_block(body), summary)], queries.CATALOG_ONLY)

    def rollback(self, ctx: PlanContext) -> list[Step]:
        if not self.create:
            return []
        what = f"extension {self.name}"
        body = block(
            if_then(S("NOT {}").format(is_owned(ctx, "extension", self.name)),
                    notice(ctx, f"extension {self.name} was not created by {ctx.label}; left in place"),
                    S("RETURN;")),
            S("v_dependants := {};").format(_extension_dependants(ctx, self.name, backups=False, released=False)),
            if_then(S("v_dependants IS NOT NULL"),
                    fail(ctx, f"refusing to drop {what}; these depend on it:",
                         "Drop or change the dependants first (dbdeploy never uses CASCADE), then re-run.",
                         detail=S("v_dependants"))),
            # Copies the rollback (or an earlier one) kept in the backup schema may use the extension's
            # types: they are never dropped, so the extension stays.
            S("v_dependants := {};").format(_extension_dependants(ctx, self.name, backups=True, released=False)),
            if_then(S("v_dependants IS NOT NULL"),
                    warning(ctx, f"{what} left in place: backup copies use it (drop it by hand once they are no "
                                 "longer needed)"),
                    S("RETURN;")),
            S("DROP EXTENSION IF EXISTS {};").format(ident(self.name)),
            forget_owned(ctx, "extension", self.name),
        )
        return [Step(self.kind, self.name, "NONE", True, do_block(body, declare=["v_dependants text"]),
                     f"drop extension {self.name}")]

    def rollback_preflight(self, ctx: PlanContext) -> list:
        if not self.create:
            return []
        return [if_then(
            S("{} AND {}").format(is_owned(ctx, "extension", self.name), _installed(self.name)),
            S("v_dependants := {};").format(_extension_dependants(ctx, self.name, backups=False, released=True)),
            if_then(S("v_dependants IS NOT NULL"),
                    fail(ctx, f"refusing to drop extension {self.name}; these depend on it:",
                         "Drop or change the dependants first (dbdeploy never uses CASCADE), then re-run.",
                         detail=S("v_dependants"))))]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        if self.create:
            prerequisites = [queries.extension_available(self.name)]
            notes = [f"The migration runs CREATE EXTENSION IF NOT EXISTS \"{self.name}\": the deploying role needs "
                     "the privilege (superuser, or a trusted extension and CREATE on the database)."]
            rollback = [f"Extension {self.name} is dropped only if {ctx.label} created it."]
        else:
            prerequisites = [queries.extension_installed(
                self.name, f"Required extension {self.name} is installed (the migration stops otherwise)")]
            notes = [f"If extension {self.name} is missing, have a superuser run CREATE EXTENSION \"{self.name}\"; "
                     "in this database before deploying."]
            rollback = []
        return ChecklistItems(prerequisites=prerequisites, notes=notes, rollback_notes=rollback,
                              health_checks=[queries.extension_installed(self.name)])
