"""CreateFunction: a SQL or PL/pgSQL function, its body kept byte for byte.

The statement is composed with :mod:`psycopg.sql` from validated pieces: the schema-qualified name
(identifiers), the argument names and types (:class:`~dbdeploy.sql.TypeName`), the return type
(:class:`~dbdeploy.sql.parse.ReturnsClause`, parsed with pglast), a language and volatility from fixed
sets, ``SET search_path`` from identifiers, and the body as a string **literal** — so ``prosrc`` holds
exactly the spec's bytes, whatever quotes or ``$$`` it contains. At load the whole statement is parsed
again with pglast, and a PL/pgSQL body with PostgreSQL's PL/pgSQL parser.

Forward (one transaction; CREATE FUNCTION locks no table — PostgreSQL docs, CREATE FUNCTION and
"Explicit Locking" — but an ``sql`` body is analysed at creation, opening the tables it reads with
ACCESS SHARE, so that step is marked ACCESS SHARE): when no function has the signature, ``CREATE FUNCTION`` and the
function is recorded as created by the version. When one exists, the step compares
``pg_get_functiondef`` of it with the definition the spec gives (a ``CREATE OR REPLACE`` inside a
subtransaction that is always rolled back): equal, nothing to do; different, the step stops, naming
the function, and changes nothing.

Rollback: ``DROP FUNCTION`` (never CASCADE) only when this version created it; the preflight refuses,
before any change, while objects depend on it (``pg_depend``, named with ``pg_describe_object``),
except triggers this same version created (their own rollback, earlier in the order, drops them).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from psycopg import sql
from pydantic import AfterValidator, field_validator, model_validator

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import FreeText, Identifier, SqlType, TableName
from dbdeploy.model.names import check_identifier, split_table
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import S, fail, forget_owned, is_owned, notice, record_owned
from dbdeploy.sql import ident, literal, qualified, render
from dbdeploy.sql.blocks import block, do_block, if_then
from dbdeploy.sql.parse import ReturnsClause, SqlParseError, check_function_definition, parse_returns


def _returns(value: str) -> ReturnsClause:
    try:
        return parse_returns(value)
    except SqlParseError as exc:
        raise ValueError(f"invalid return type {value!r:.80}: {exc}") from None


def _search_path(value: str | None) -> str | None:
    """``"pg_catalog, public"``: schema names separated by commas (each a valid identifier), or ``""``
    (an empty search_path: every name in the body must then be schema-qualified)."""
    if value is None or value.strip() == "":
        return value if value is None else ""
    for part in value.split(","):
        check_identifier(part.strip(), "search_path schema")
    return value


Returns = Annotated[str, AfterValidator(_returns)]
SearchPath = Annotated[str | None, AfterValidator(_search_path)]

_LANGUAGE = {"sql": S("sql"), "plpgsql": S("plpgsql")}
_VOLATILITY = {"IMMUTABLE": S(" IMMUTABLE"), "STABLE": S(" STABLE"), "VOLATILE": S(" VOLATILE")}
_VOLATILITY_CODE = {"IMMUTABLE": "i", "STABLE": "s", "VOLATILE": "v"}


class CreateFunction(Operation):
    """Create function ``name`` (``schema.name``) taking ``args`` (a list of ``(name, type)`` pairs) and
    returning ``returns`` (a type, ``SETOF <type>``, ``trigger`` or ``void``), in ``language`` ``sql`` or
    ``plpgsql``, with ``body`` exactly as given.

    Shapes: ``CreateFunction(name="public.touch_updated_at", args=[], returns="trigger",
    language="plpgsql", body="BEGIN NEW.updated_at := now(); RETURN NEW; END")``. ``volatility``:
    ``IMMUTABLE``/``STABLE``/``VOLATILE`` (None: PostgreSQL's default, VOLATILE). ``security_definer``
    needs a pinned ``search_path`` (schema names separated by commas; lint rule
    ``security-definer-without-search-path``). Errors (at load): a body that does not parse (PL/pgSQL by
    PostgreSQL's own parser), an unknown type, a duplicate argument name, a signature an earlier
    operation already created. At run time the forward stops, changing nothing, when the schema is
    missing or a function with the signature exists with another definition."""

    kind: ClassVar[str] = "create_function"
    name: TableName
    args: list[tuple[Identifier, SqlType]] = []
    returns: Returns
    language: Literal["sql", "plpgsql"]
    body: FreeText
    volatility: Literal["IMMUTABLE", "STABLE", "VOLATILE"] | None = None
    security_definer: bool = False
    search_path: SearchPath = None

    @field_validator("volatility", mode="before")
    @classmethod
    def _upper(cls, value):
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _whole_statement(self):
        names = [n for n, _ in self.args]
        if len(set(names)) != len(names):
            raise ValueError("args: an argument name is listed twice — fix: give each argument its own name")
        if not self.body.strip():
            raise ValueError("body is empty — fix: give the function's body")
        try:
            check_function_definition(render(self.statement()), self.language)
        except SqlParseError as exc:
            raise ValueError(f"the CREATE FUNCTION statement this spec makes does not parse: {exc}") from None
        return self

    # --- names ----------------------------------------------------------------------------------

    @property
    def signature(self) -> str:
        """``schema.name(type, …)``: the ownership record's name and the expectation's."""
        return f"{self.name}({', '.join(t for _, t in self.args)})"

    def signature_sql(self) -> sql.Composable:
        """The quoted signature as a text literal, for ``to_regprocedure``."""
        types = ", ".join(str(t) for _, t in self.args)
        return literal(f"{render(qualified(self.name))}({types})")

    def drop_target(self) -> sql.Composable:
        return S("{}({})").format(qualified(self.name), S(", ").join(t.sql() for _, t in self.args))

    @property
    def what(self) -> str:
        """``function`` or ``procedure``: in messages."""
        return "procedure" if self.returns is None else "function"

    def statement(self, or_replace: bool = False) -> sql.Composable:
        """The CREATE [OR REPLACE] FUNCTION statement (without ``;``)."""
        args = S(", ").join(S("{} {}").format(ident(n), t.sql()) for n, t in self.args)
        options = [_VOLATILITY[self.volatility] if self.volatility else S("")]
        if self.security_definer:
            options.append(S(" SECURITY DEFINER"))
        if self.search_path is not None:
            paths = [p.strip() for p in self.search_path.split(",") if p.strip()]
            options.append(S(" SET search_path TO {}").format(
                S(", ").join(ident(p) for p in paths) if paths else literal("")))
        if self.returns is None:    # CreateProcedure
            head = S("CREATE OR REPLACE PROCEDURE") if or_replace else S("CREATE PROCEDURE")
            return S("{head} {name}({args}) LANGUAGE {lang}{opts} AS {body}").format(
                head=head, name=qualified(self.name), args=args, lang=_LANGUAGE[self.language],
                opts=sql.Composed(options), body=literal(self.body))
        head = S("CREATE OR REPLACE FUNCTION") if or_replace else S("CREATE FUNCTION")
        return S("{head} {name}({args}) RETURNS {ret} LANGUAGE {lang}{opts} AS {body}").format(
            head=head, name=qualified(self.name), args=args, ret=self.returns.sql(), lang=_LANGUAGE[self.language],
            opts=sql.Composed(options), body=literal(self.body))

    def target(self) -> str:
        return self.signature

    # --- schema state ---------------------------------------------------------------------------

    def apply(self, state: SchemaState) -> None:
        if self.signature in state.functions:
            raise ValueError(f"function {self.signature} is already created by an earlier operation — fix: pick "
                             "another name, or remove one of the two")
        state.functions[self.signature] = self

    # --- forward --------------------------------------------------------------------------------

    def forward(self, ctx: PlanContext) -> list[Step]:
        schema = split_table(self.name)[0]
        sig = self.signature
        body = block(
            if_then(S("pg_catalog.to_regnamespace({}) IS NULL").format(literal(render(ident(schema)))),
                    fail(ctx, f"schema {schema} of {self.what} {sig} does not exist", "Create the schema first "
                         "(CreateSchema), earlier in the migration or in an earlier one.")),
            S("v_oid := pg_catalog.to_regprocedure({});").format(self.signature_sql()),
            if_then(S("v_oid IS NULL"),
                    S("{};").format(self.statement()),
                    record_owned(ctx, "function", sig),
                    notice(ctx, f"created {self.what} {sig}"),
                    otherwise=[
                        same_definition_probe(self.statement(or_replace=True)),
                        if_then(S("v_after IS DISTINCT FROM v_before"),
                                fail(ctx, f"{self.what} {sig} already exists with another definition; nothing was "
                                          "changed:",
                                     "Make the spec match the function (its definition is shown), or give the new "
                                     "one another name.", detail=S("v_before"))),
                        notice(ctx, f"{self.what} {sig} already exists as the spec defines it")]),
        )
        # An SQL body is parsed and analysed at creation (check_function_bodies, on by default): that opens
        # the tables it reads with ACCESS SHARE (measured in tests/test_step_locks.py); PL/pgSQL bodies are
        # only parsed, no relation is opened.
        lock = "ACCESS SHARE" if self.language == "sql" else "NONE"
        return scaled([Step(self.kind, sig, lock, True,
                            do_block(body, declare=["v_oid oid", "v_before text", "v_after text"]),
                            f"create {self.what} {sig}")], queries.CATALOG_ONLY)

    # --- rollback -------------------------------------------------------------------------------

    def rollback(self, ctx: PlanContext) -> list[Step]:
        sig = self.signature
        body = block(
            S("v_oid := pg_catalog.to_regprocedure({});").format(self.signature_sql()),
            if_then(S("v_oid IS NULL OR NOT {}").format(is_owned(ctx, "function", sig)),
                    notice(ctx, f"{self.what} {sig} was not created by {ctx.label} (or is dropped already); left as "
                                "it is"),
                    forget_owned(ctx, "function", sig),
                    S("RETURN;")),
            S("DROP PROCEDURE {};").format(self.drop_target()) if self.returns is None
            else S("DROP FUNCTION {};").format(self.drop_target()),
            forget_owned(ctx, "function", sig),
            notice(ctx, f"dropped {self.what} {sig}"),
        )
        return [Step("drop_function", sig, "NONE", True, do_block(body, declare=["v_oid oid"]),
                     f"drop {self.what} {sig} if {ctx.label} created it")]

    def rollback_preflight(self, ctx: PlanContext) -> list:
        sig = self.signature
        return [refuse_function_dependants(
            ctx, self.signature_sql(), is_owned(ctx, "function", sig),
            f"the rollback cannot drop {self.what} {sig}: other objects depend on it (dbdeploy never drops with "
            "CASCADE); nothing was changed:",
            f"Drop or change those objects first (they are not part of {ctx.label}), then run the rollback again.")]

    # --- expectations, checklist ----------------------------------------------------------------

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        return [function_expect(self)]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        sig = self.signature
        exists = queries.query(S("SELECT pg_catalog.to_regprocedure({}) IS NOT NULL AS function_exists").format(
            self.signature_sql()))
        return ChecklistItems(
            prerequisites=[CheckQuery(f"No {self.what} {sig} exists yet", exists, "false",
                                      "true: the forward accepts it only when its definition is the spec's "
                                      "(pg_get_functiondef), and stops otherwise")],
            health_checks=[CheckQuery(f"{self.what.capitalize()} {sig} exists", exists, "true")],
            rollback_notes=[f"{self.what.capitalize()} {sig} is dropped only if {ctx.label} created it (never "
                            "CASCADE); the rollback refuses before any change while other objects (triggers, views, "
                            "defaults) depend on it, naming them."])


def same_definition_probe(replace_statement: sql.Composable) -> sql.Composable:
    """PL/pgSQL (needs ``v_oid``, ``v_before``, ``v_after``): ``v_before`` := the function's
    ``pg_get_functiondef``, ``v_after`` := what it would be after ``replace_statement`` (a CREATE OR
    REPLACE run in a subtransaction that is always rolled back; on an error — e.g. PostgreSQL refusing a
    new return type — ``v_after`` holds the error message)."""
    return block(
        S("v_before := pg_catalog.pg_get_functiondef(v_oid);"),
        S("BEGIN\n"
          "    {};\n"
          "    v_after := pg_catalog.pg_get_functiondef(v_oid);\n"
          "    RAISE SQLSTATE 'DDF01';\n"
          "EXCEPTION\n"
          "    WHEN SQLSTATE 'DDF01' THEN NULL;\n"
          "    WHEN OTHERS THEN v_after := SQLERRM;\n"
          "END;").format(replace_statement))


def refuse_function_dependants(ctx: PlanContext, signature: sql.Composable, owned: sql.Composable, message: str,
                               hint: str) -> sql.Composable:
    """PL/pgSQL block: when ``owned`` holds and the function ``signature`` (a text literal for
    ``to_regprocedure``) exists, refuse while ``pg_depend`` shows objects depending on it — except
    triggers recorded as created by this version (their rollback drops them first) — naming them."""
    triggers_owned = S(
        "EXISTS (SELECT 1 FROM {objects} o JOIN pg_catalog.pg_trigger t ON t.oid = d.objid"
        " JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE o.version = {v} AND o.object_type = 'trigger'"
        " AND o.object_name = n.nspname || '.' || c.relname || '.' || t.tgname)").format(
        objects=ident(ctx.history_schema, "migration_objects"), v=literal(ctx.version))
    return S("DECLARE\n"
             "    v_fn oid := pg_catalog.to_regprocedure({sig});\n"
             "    v_dependants text;\n"
             "BEGIN\n"
             "    IF v_fn IS NOT NULL AND {owned} THEN\n"
             "        SELECT pg_catalog.string_agg(pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid),"
             " ', ' ORDER BY 1) INTO v_dependants\n"
             "        FROM pg_catalog.pg_depend d\n"
             "        WHERE d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.refobjid = v_fn\n"
             "          AND d.deptype = 'n'\n"
             "          AND NOT (d.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass AND {triggers});\n"
             "        IF v_dependants IS NOT NULL THEN\n"
             "            {fail}\n"
             "        END IF;\n"
             "    END IF;\n"
             "END;").format(sig=signature, owned=owned, triggers=triggers_owned,
                            fail=fail(ctx, message, hint, detail=S("v_dependants")))


class CreateProcedure(CreateFunction):
    """Create procedure ``name`` (``schema.name``) taking ``args``, in ``language`` ``sql`` or ``plpgsql``,
    with ``body`` exactly as given; ``security_definer`` and ``search_path`` as for CreateFunction (no
    ``returns``, no ``volatility``: PostgreSQL docs, CREATE PROCEDURE). Forward, rollback, refusals and
    checks are CreateFunction's (``DROP PROCEDURE`` in the rollback)."""

    kind: ClassVar[str] = "create_procedure"
    returns: None = None
    volatility: None = None


def function_expect(op: CreateFunction, replaced: bool = False) -> expect.Function:
    """The expectation of the function ``op`` defines: present, with its body, language, return type,
    volatility and SECURITY DEFINER."""
    return expect.Function(
        op.signature, lookup=render(qualified(op.name)) + "(" + ", ".join(str(t) for _, t in op.args) + ")",
        body=op.body, language=op.language, returns=op.returns.base if op.returns is not None else None,
        setof=op.returns.setof if op.returns is not None else False,
        volatility=_VOLATILITY_CODE[op.volatility or "VOLATILE"], security_definer=op.security_definer,
        replaced=replaced)


__all__ = ["CreateFunction", "CreateProcedure", "function_expect", "refuse_function_dependants",
           "same_definition_probe"]
