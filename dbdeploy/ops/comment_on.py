"""CommentOn: set (or remove) the comment of an existing object; the rollback restores the previous one.

``COMMENT ON … IS …`` changes only ``pg_description`` (PostgreSQL docs, COMMENT). It takes SHARE UPDATE
EXCLUSIVE on the object it comments (PostgreSQL's ``CommentObject`` looks the object up with
``ShareUpdateExclusiveLock``; for a column, constraint or trigger that is its table): reads and writes
of the table continue, only other DDL on it waits. tests/test_step_locks.py reads it from ``pg_locks``.

Before its change the forward saves the comment the object had (or "none") in
``<backup schema>.saved_comments``, one row per version and object, inserted with ``ON CONFLICT DO
NOTHING``: a re-run, or a second CommentOn of the same object in the same version, keeps the comment
from before the version's first run. The comment is data there (a ``text`` value), never SQL: the
rollback puts it back with ``COMMENT ON … IS`` and ``quote_nullable`` of that value (``IS NULL``
removes a comment, PostgreSQL docs, COMMENT), byte for byte, then deletes the row. The preflight
refuses, before any change, when the version recorded a saved comment that is missing.

The object is looked up by oid with PostgreSQL's own name resolution (``to_regclass``,
``to_regnamespace``, ``to_regtype``, ``to_regprocedure``; a constraint or trigger by its table's oid
and its name): a missing object, or one of another kind (``TABLE`` naming a view), stops the forward
before any change with a clear message.
"""

from __future__ import annotations

from functools import cached_property
from typing import ClassVar, Literal

from psycopg import sql
from pydantic import ValidationInfo, field_validator

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import FreeText
from dbdeploy.model.names import _split_dots, check_identifier, check_table_name, spelled
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext
from dbdeploy.ops.common import S, fail, forget_owned, is_owned, notice, record_owned
from dbdeploy.sql import SqlParseError, acl, ident, literal, regclass, render
from dbdeploy.sql.blocks import block, do_block, if_then
from dbdeploy.sql.parse import FunctionSignature, parse_function_signature

ObjectKind = Literal["TABLE", "COLUMN", "INDEX", "VIEW", "MATERIALIZED VIEW", "SEQUENCE", "SCHEMA", "TYPE", "DOMAIN",
                     "FUNCTION", "CONSTRAINT", "TRIGGER"]

# The SQL keyword of each kind (fixed text, never the spec's).
_KEYWORD = {
    "TABLE": S("TABLE"), "COLUMN": S("COLUMN"), "INDEX": S("INDEX"), "VIEW": S("VIEW"),
    "MATERIALIZED VIEW": S("MATERIALIZED VIEW"), "SEQUENCE": S("SEQUENCE"), "SCHEMA": S("SCHEMA"),
    "TYPE": S("TYPE"), "DOMAIN": S("DOMAIN"), "FUNCTION": S("FUNCTION"), "CONSTRAINT": S("CONSTRAINT"),
    "TRIGGER": S("TRIGGER"),
}
# pg_class.relkind of each relation kind (PostgreSQL docs, pg_class).
_RELKINDS = {"TABLE": ("r", "p", "f"), "INDEX": ("i", "I"), "VIEW": ("v",), "MATERIALIZED VIEW": ("m",),
             "SEQUENCE": ("S",)}
# The kinds named schema.table.member, and what the member is.
_MEMBER = {"COLUMN": "column", "CONSTRAINT": "constraint", "TRIGGER": "trigger"}
_FORMS = {
    "SCHEMA": "'schema'", "FUNCTION": "'schema.function(argument types)'",
    **{k: f"'schema.table.{v}' (the schema always: 'public.t.c' for a table in public)" for k, v in _MEMBER.items()},
}


def saved_comments_table(ctx: PlanContext) -> sql.Identifier:
    """``<backup schema>.saved_comments``: one row per version and commented object, the comment it
    had before the version (NULL: none)."""
    return ident(ctx.backup_schema, "saved_comments")


def _normalized_name(kind: str, value: str) -> str:
    """The exact name ``value`` stands for as the kind needs it; ValueError (reason — fix) otherwise."""
    form = _FORMS.get(kind, "'schema.name' (or 'name' in public)")
    if kind == "SCHEMA":
        return check_identifier(value, "name")
    if kind == "FUNCTION":
        try:
            signature = parse_function_signature(value)
        except SqlParseError as exc:
            raise ValueError(f"function {value!r} {exc}") from None
        check_identifier(spelled(signature.schema), "function schema")
        check_identifier(spelled(signature.name), "function name")
        return f"{spelled(signature.schema)}.{spelled(signature.name)}({', '.join(signature.argument_types)})"
    if kind in _MEMBER:
        parts = _split_dots(value)
        if len(parts) != 3:
            raise ValueError(f"a {kind} is named {form}, got {value!r} — fix: write it as {form}")
        schema, table, member = (check_identifier(p, w) for p, w in zip(parts, ("schema", "table", _MEMBER[kind]),
                                                                           strict=True))
        return f"{schema}.{table}.{member}"
    if len(_split_dots(value)) > 2:
        raise ValueError(f"a {kind} is named {form}, got {value!r} — fix: write it as {form}")
    return check_table_name(value, "name")


class CommentOn(Operation):
    """Set the comment of an existing object (``comment=None`` removes it).

    ``object_kind`` is one of TABLE, COLUMN, INDEX, VIEW, MATERIALIZED VIEW, SEQUENCE, SCHEMA, TYPE,
    DOMAIN, FUNCTION, CONSTRAINT, TRIGGER; ``name`` is ``schema.name`` (quoted mixed-case parts as
    elsewhere), ``schema.table.column`` / ``schema.table.constraint`` / ``schema.table.trigger``, a
    schema's name, or ``schema.function(argument types)`` (parsed with PostgreSQL's parser, pglast).
    Bad input raises ValueError (reason — fix) at load. The rollback restores the previous comment
    exactly, or none."""

    kind: ClassVar[str] = "comment_on"
    object_kind: ObjectKind
    name: str
    comment: FreeText | None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("object_kind")
        if kind is None:
            return value      # object_kind itself is refused
        return _normalized_name(kind, value)

    @field_validator("comment")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        """PostgreSQL stores no empty comment: ``COMMENT … IS ''`` removes it (PostgreSQL docs, COMMENT)."""
        return None if value == "" else value

    # --- names ----------------------------------------------------------------------------------

    @cached_property
    def _parts(self) -> tuple[str, ...]:
        if self.object_kind == "FUNCTION":
            return ()
        if self.object_kind == "SCHEMA":
            return (self.name,)
        return tuple(_split_dots(self.name))

    @cached_property
    def _signature(self) -> FunctionSignature:
        return parse_function_signature(self.name)

    @property
    def table(self) -> str | None:
        """``schema.table`` of a column, constraint or trigger (None for the other kinds)."""
        return f"{self._parts[0]}.{self._parts[1]}" if self.object_kind in _MEMBER else None

    def target(self) -> str:
        return f"{self.object_kind} {self.name}"

    @property
    def _step_target(self) -> str:
        """The step marker's target: the table of a column, constraint or trigger, else the object's name
        (a function's without its argument list)."""
        if self.object_kind == "FUNCTION":
            return f"{self._signature.schema}.{self._signature.name}"
        return self.table or self.name

    def _object_sql(self) -> sql.Composable:
        """What follows ``COMMENT ON``: the kind and the quoted name."""
        keyword, kind = _KEYWORD[self.object_kind], self.object_kind
        if kind == "FUNCTION":
            return S("{} {}").format(keyword, self._signature.sql())
        if kind == "COLUMN":
            return S("{} {}").format(keyword, ident(*self._parts))
        if kind in _MEMBER:
            return S("{} {} ON {}").format(keyword, ident(self._parts[2]), ident(*self._parts[:2]))
        return S("{} {}").format(keyword, ident(*self._parts))

    def _address(self) -> tuple[sql.Composable, str, sql.Composable]:
        """``(oid, catalog, objsubid)``: SQL expressions giving the object's ``pg_description`` address,
        the oid NULL when the object is missing or of another kind."""
        kind = self.object_kind
        zero = S("0")
        if kind in _RELKINDS:
            return (S("(SELECT c.oid FROM pg_catalog.pg_class c WHERE c.oid = {rel}"
                      " AND c.relkind IN ({kinds}))").format(
                rel=regclass(ident(*self._parts)), kinds=S(", ").join(literal(k) for k in _RELKINDS[kind])),
                "pg_class", zero)
        if kind == "COLUMN":
            rel = regclass(ident(*self._parts[:2]))
            return (S("(SELECT c.oid FROM pg_catalog.pg_class c WHERE c.oid = {rel}"
                      " AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'c'))").format(rel=rel), "pg_class",
                    S("(SELECT a.attnum::integer FROM pg_catalog.pg_attribute a WHERE a.attrelid = {rel}"
                      " AND a.attname = {col} AND a.attnum > 0 AND NOT a.attisdropped)").format(
                        rel=rel, col=literal(self._parts[2])))
        if kind == "SCHEMA":
            return (S("pg_catalog.to_regnamespace({})::pg_catalog.oid").format(
                literal(render(ident(self.name)))), "pg_namespace", zero)
        if kind in ("TYPE", "DOMAIN"):
            domain = S(" AND t.typtype = 'd'") if kind == "DOMAIN" else S("")
            return (S("(SELECT t.oid FROM pg_catalog.pg_type t WHERE t.oid = pg_catalog.to_regtype({name}){domain})")
                    .format(name=literal(render(ident(*self._parts))), domain=domain), "pg_type", zero)
        if kind == "FUNCTION":
            return (S("(SELECT p.oid FROM pg_catalog.pg_proc p WHERE p.oid = pg_catalog.to_regprocedure({sig})"
                      " AND p.prokind IN ('f', 'w'))").format(sig=literal(self._signature.regprocedure_text())),
                    "pg_proc", zero)
        rel = regclass(ident(*self._parts[:2]))
        if kind == "CONSTRAINT":
            return (S("(SELECT co.oid FROM pg_catalog.pg_constraint co WHERE co.conrelid = {rel}"
                      " AND co.conname = {name})").format(rel=rel, name=literal(self._parts[2])),
                    "pg_constraint", zero)
        return (S("(SELECT tg.oid FROM pg_catalog.pg_trigger tg WHERE tg.tgrelid = {rel}"
                  " AND tg.tgname = {name} AND NOT tg.tgisinternal)").format(rel=rel, name=literal(self._parts[2])),
                "pg_trigger", zero)

    def _locate(self) -> sql.Composable:
        """PL/pgSQL: the object's address into ``v_oid`` and ``v_sub``."""
        oid, _catalog, sub = self._address()
        if self.object_kind == "FUNCTION":
            # to_regprocedure raises (instead of giving NULL) when an argument type does not exist (PostgreSQL
            # 15): that is a missing function too
            return block(S("BEGIN\n    v_oid := {};\nEXCEPTION WHEN undefined_object THEN\n    v_oid := NULL;\nEND;")
                         .format(oid), S("v_sub := {};").format(sub))
        return block(S("v_oid := {};").format(oid), S("v_sub := {};").format(sub))

    def _description(self) -> sql.Composable:
        """The object's comment now (NULL: none), at ``v_oid``/``v_sub``."""
        catalog = self._address()[1]
        return S("(SELECT d.description FROM pg_catalog.pg_description d WHERE d.objoid = v_oid"
                 " AND d.classoid = {cls}::pg_catalog.regclass AND d.objsubid = v_sub)").format(
            cls=literal(f"pg_catalog.{catalog}"))

    def _owned_key(self) -> str:
        return f"{self.object_kind} {self.name}"

    def _saved_where(self, ctx: PlanContext) -> sql.Composable:
        return S("version = {v} AND object_kind = {k} AND object_name = {n}").format(
            v=literal(ctx.version), k=literal(self.object_kind), n=literal(self.name))

    def _new_comment(self) -> sql.Composable:
        return S("NULL") if self.comment is None else literal(self.comment)

    def _what(self) -> str:
        return f"{self.object_kind.lower()} {self.name}"

    # --- the operation --------------------------------------------------------------------------

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        if any(isinstance(op, CommentOn) and (op.object_kind, op.name) == (self.object_kind, self.name)
               for op in ctx.later_ops):
            return []     # a later CommentOn of the same object in this migration says what holds after it
        table = self.name if self.object_kind == "TABLE" else self.table   # a dropped table supersedes it
        return [expect.Comment(self.object_kind, self.name, self.comment, lookup=self._lookup(), table=table,
                               member=self._parts[2] if self.object_kind in _MEMBER else None)]

    def _lookup(self) -> str:
        """The name as the catalog lookup functions take it (quoted), for the expectation's check."""
        if self.object_kind == "FUNCTION":
            return self._signature.regprocedure_text()
        parts = self._parts[:2] if self.object_kind in _MEMBER else self._parts
        return render(ident(*parts))

    def forward(self, ctx: PlanContext) -> list[Step]:
        saved = saved_comments_table(ctx)
        what, key = self._what(), self._owned_key()
        body = block(
            self._locate(),
            if_then(S("v_oid IS NULL OR v_sub IS NULL"),
                    fail(ctx, f"{what} does not exist (or is not a {self.object_kind.lower()})",
                         "Nothing was changed. Check the object kind and name in the spec, or create the object "
                         "in an earlier operation.")),
            S("v_old := {};").format(self._description()),
            S("CREATE TABLE IF NOT EXISTS {saved} (\n"
              "    version text NOT NULL, object_kind text NOT NULL, object_name text NOT NULL,\n"
              "    comment text, saved_at timestamptz NOT NULL DEFAULT pg_catalog.now(),\n"
              "    PRIMARY KEY (version, object_kind, object_name)\n"
              ");").format(saved=saved),
            acl.restrict_table(saved),
            # The first run keeps the comment from before the version; a re-run keeps that row.
            S("INSERT INTO {saved} (version, object_kind, object_name, comment) VALUES ({v}, {k}, {n}, v_old)\n"
              "ON CONFLICT DO NOTHING;").format(saved=saved, v=literal(ctx.version), k=literal(self.object_kind),
                                                n=literal(self.name)),
            record_owned(ctx, "comment", key),
            if_then(S("v_old IS DISTINCT FROM {}").format(self._new_comment()),
                    S("COMMENT ON {obj} IS {c};").format(obj=self._object_sql(), c=self._new_comment()),
                    notice(ctx, f"{'set' if self.comment is not None else 'removed'} the comment of {what} "
                                f"(the previous one is kept in {ctx.backup_schema}.saved_comments)")),
        )
        action = "set the comment of" if self.comment is not None else "remove the comment of"
        return scaled([Step(self.kind, self._step_target, "SHARE UPDATE EXCLUSIVE", True,
                            do_block(body, declare=["v_oid oid", "v_sub integer", "v_old text"]),
                            f"{action} {what} (catalog only; the previous comment is kept for the rollback)")],
                      queries.CATALOG_ONLY)

    def rollback(self, ctx: PlanContext) -> list[Step]:
        saved, what, key = saved_comments_table(ctx), self._what(), self._owned_key()
        where = self._saved_where(ctx)
        nothing = [notice(ctx, f"no saved comment of {what} (nothing to restore: rolled back already, or the "
                               "forward did not run)"),
                   forget_owned(ctx, "comment", key), S("RETURN;")]
        body = block(
            if_then(S("{} IS NULL").format(regclass(saved)), *nothing),
            if_then(S("NOT EXISTS (SELECT 1 FROM {saved} WHERE {where})").format(saved=saved, where=where), *nothing),
            S("SELECT s.comment INTO v_old FROM {saved} s WHERE {where};").format(saved=saved, where=where),
            self._locate(),
            if_then(S("v_oid IS NOT NULL AND v_sub IS NOT NULL"),
                    S("EXECUTE {stmt} || pg_catalog.quote_nullable(v_old);").format(
                        stmt=literal(render(S("COMMENT ON {} IS ").format(self._object_sql())))),
                    notice(ctx, f"restored the comment {what} had before {ctx.label}"),
                    otherwise=[notice(ctx, f"{what} is gone; its saved comment is dropped")]),
            S("DELETE FROM {saved} WHERE {where};").format(saved=saved, where=where),
            forget_owned(ctx, "comment", key),
        )
        return [Step("restore_comment", self._step_target, "SHARE UPDATE EXCLUSIVE", True,
                     do_block(body, declare=["v_oid oid", "v_sub integer", "v_old text"]),
                     f"restore the comment {what} had before {ctx.label}")]

    def rollback_preflight(self, ctx: PlanContext) -> list[sql.Composable]:
        saved, what = saved_comments_table(ctx), self._what()
        refuse = fail(ctx, f"the comment {what} had before {ctx.label}, saved in {ctx.backup_schema}.saved_comments, "
                           "is missing, so the rollback cannot restore it",
                      f"Set the comment of {what} by hand to what it was, delete the row of {self._owned_key()} "
                      f"(object_type comment, version {ctx.version}) from {ctx.history_schema}.migration_objects, "
                      "then run the rollback again.")
        return [if_then(is_owned(ctx, "comment", self._owned_key()),
                        if_then(S("{} IS NULL").format(regclass(saved)), refuse),
                        if_then(S("NOT EXISTS (SELECT 1 FROM {saved} WHERE {where})").format(
                            saved=saved, where=self._saved_where(ctx)), refuse))]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        oid, catalog, sub = self._address()
        current = queries.query(S(
            "SELECT {oid} IS NOT NULL AND {sub} IS NOT NULL AS object_exists,\n"
            "    (SELECT d.description FROM pg_catalog.pg_description d WHERE d.objoid = {oid}"
            " AND d.classoid = {cls}::pg_catalog.regclass AND d.objsubid = {sub}) AS comment").format(
            oid=oid, sub=sub, cls=literal(f"pg_catalog.{catalog}")))
        after = queries.query(S(
            "SELECT (SELECT d.description FROM pg_catalog.pg_description d WHERE d.objoid = {oid}"
            " AND d.classoid = {cls}::pg_catalog.regclass AND d.objsubid = {sub}) IS NOT DISTINCT FROM {new}"
            " AS comment_as_expected").format(oid=oid, sub=sub, cls=literal(f"pg_catalog.{catalog}"),
                                              new=self._new_comment()))
        what = self._what()
        locked = self.table or (self.name if self.object_kind in _RELKINDS else f"the {self.object_kind.lower()}")
        return ChecklistItems(
            prerequisites=[CheckQuery(f"The {what} exists (its comment now is kept for the rollback; NULL: none)",
                                      current, "true")],
            health_checks=[CheckQuery(f"The comment of {what} is the one the spec gives"
                                      f"{' (none)' if self.comment is None else ''}", after, "true")],
            notes=[f"Commenting on {what} is a catalog change: SHARE UPDATE EXCLUSIVE on {locked} for a moment "
                   "(reads and writes continue; other DDL on it waits)."],
            rollback_notes=[f"The rollback sets the comment of {what} back to the one it had before {ctx.label} "
                            f"(saved at forward time in {ctx.backup_schema}.saved_comments; none if it had none); it "
                            "refuses before any change when that saved comment is missing."])
