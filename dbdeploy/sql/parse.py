"""Parse SQL fragments from specs with pglast (PostgreSQL's own parser) before they are used.

An expression is accepted only if it parses as exactly one expression, and what the bundle
contains is pglast's re-rendering of the parse tree — never the user's text — so a value such
as ``now()); DROP TABLE x; --`` can neither pass nor survive as a hidden comment.
"""

from __future__ import annotations

from dataclasses import dataclass

from pglast import ast, parse_sql
from pglast.parser import ParseError
from pglast.stream import RawStream
from pglast.visitors import Visitor
from psycopg import sql


class SqlParseError(ValueError):
    """The text is not one valid SQL expression / type / statement list."""


@dataclass(frozen=True)
class Expression:
    """A parsed SQL expression; ``text`` is the canonical rendering from the parse tree."""

    text: str
    columns: frozenset[str]
    volatile: bool

    def sql(self) -> sql.SQL:
        """Trusted because it is pglast's rendering of a single parsed expression."""
        return sql.SQL(self.text)


@dataclass(frozen=True)
class TypeName:
    """A parsed PostgreSQL type name, canonically rendered."""

    text: str

    def sql(self) -> sql.SQL:
        return sql.SQL(self.text)


def _parse(text: str, prefix: str = "", suffix: str = ""):
    """Parse ``prefix + text + suffix``; error positions are reported relative to ``text``."""
    if "\x00" in text:
        raise SqlParseError("contains a NUL byte")
    try:
        return parse_sql(prefix + text + suffix)
    except ParseError as exc:
        message, *rest = exc.args
        if rest and isinstance(rest[0], int):
            position = max(rest[0] - len(prefix), 0)
            raise SqlParseError(f"{message} (at character {position + 1})") from None
        raise SqlParseError(str(exc)) from None


_SELECT_CLAUSES = (
    "distinctClause", "intoClause", "fromClause", "whereClause", "groupClause", "havingClause",
    "windowClause", "valuesLists", "sortClause", "limitOffset", "limitCount", "lockingClause",
    "withClause", "larg", "rarg",
)


def parse_expression(text: str) -> Expression:
    """Parse ``text`` as exactly one scalar SQL expression."""
    if not isinstance(text, str) or not text.strip():
        raise SqlParseError("is empty; give one SQL expression")
    statements = _parse(text, "SELECT ")
    if len(statements) != 1:
        raise SqlParseError("contains more than one statement; give exactly one SQL expression")
    stmt = statements[0].stmt
    if not isinstance(stmt, ast.SelectStmt) or any(getattr(stmt, c, None) for c in _SELECT_CLAUSES):
        raise SqlParseError("is not a single expression (it adds clauses such as FROM or UNION)")
    if stmt.op not in (None, 0) and str(stmt.op) not in ("SETOP_NONE", "SetOperation.SETOP_NONE"):
        raise SqlParseError("is not a single expression (set operation)")
    targets = stmt.targetList or ()
    if len(targets) != 1:
        raise SqlParseError("is a list of expressions; give exactly one SQL expression")
    target = targets[0]
    if target.name is not None:
        raise SqlParseError("has an alias (AS ...); give only the expression")
    node = target.val
    if isinstance(node, ast.ColumnRef) and any(isinstance(f, ast.A_Star) for f in node.fields):
        raise SqlParseError("is '*', not an expression")
    return Expression(text=RawStream()(node), columns=frozenset(_column_refs(node)),
                      volatile=is_probably_volatile(node))


def parse_type(text: str) -> TypeName:
    """Parse ``text`` as one PostgreSQL type name (``numeric(10,2)``, ``text[]``, ``timestamptz``)."""
    if not isinstance(text, str) or not text.strip():
        raise SqlParseError("is empty; give a PostgreSQL type such as text or bigint")
    statements = _parse(text, "SELECT CAST(NULL AS ", ")")
    if len(statements) != 1:
        raise SqlParseError("contains more than one statement; give only a type name")
    stmt = statements[0].stmt
    if any(getattr(stmt, c, None) for c in _SELECT_CLAUSES) or len(stmt.targetList or ()) != 1:
        raise SqlParseError("is not a type name")
    target = stmt.targetList[0]
    if target.name is not None or not isinstance(target.val, ast.TypeCast):
        raise SqlParseError("is not a type name")
    cast = target.val
    if not isinstance(cast.arg, ast.A_Const) or not getattr(cast.arg, "isnull", False):
        raise SqlParseError("is not a type name")
    if cast.typeName.setof:
        raise SqlParseError("is a SETOF type, which a column cannot have")
    return TypeName(RawStream()(cast.typeName))


def parse_statements(text: str) -> list:
    """Parse a RawSQL body: any number of complete statements. Returns pglast RawStmt nodes."""
    if not isinstance(text, str) or not text.strip():
        raise SqlParseError("is empty")
    return list(_parse(text))


class _ColumnCollector(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def visit_ColumnRef(self, ancestors, node):  # noqa: N802 (pglast visitor naming)
        fields = [f for f in node.fields if isinstance(f, ast.String)]
        if len(fields) == 1 and len(node.fields) == 1:
            self.names.add(fields[0].sval)


def _column_refs(node) -> set[str]:
    collector = _ColumnCollector()
    collector(node)
    return collector.names


# Functions known not to be volatile. Anything else is treated as volatile: a default that
# calls it would rewrite the table under ACCESS EXCLUSIVE if added the naive way.
_NON_VOLATILE_FUNCTIONS = frozenset({
    "now", "transaction_timestamp", "statement_timestamp", "current_date", "localtimestamp",
    "lower", "upper", "btrim", "trim", "length", "char_length", "abs", "round", "floor", "ceil",
    "coalesce", "nullif", "greatest", "least", "concat", "concat_ws", "substr", "substring",
    "replace", "md5", "to_char", "date_trunc", "make_interval", "jsonb_build_object",
    "json_build_object", "array_length", "cardinality", "left", "right", "split_part",
})


class _VolatilityProbe(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.volatile = False

    def visit_FuncCall(self, ancestors, node):  # noqa: N802
        name = node.funcname[-1].sval.lower()
        if name not in _NON_VOLATILE_FUNCTIONS:
            self.volatile = True

    def visit_SubLink(self, ancestors, node):  # noqa: N802
        self.volatile = True


def is_probably_volatile(node) -> bool:
    """Conservative volatility guess for a parsed expression (unknown functions count as volatile)."""
    probe = _VolatilityProbe()
    probe(node)
    return probe.volatile


@dataclass(frozen=True)
class IndexElement:
    """One parsed index key: a column (with ordering/opclass) or an expression."""

    text: str
    columns: frozenset[str]

    def sql(self) -> sql.SQL:
        return sql.SQL(self.text)


def parse_index_element(text: str) -> IndexElement:
    """Parse one index key such as ``email``, ``created_at DESC`` or ``lower(email)``."""
    if not isinstance(text, str) or not text.strip():
        raise SqlParseError("is empty; give a column name or an expression")
    statements = _parse(text, "CREATE INDEX dbdeploy_probe ON dbdeploy_probe (", ")")
    if len(statements) != 1 or not isinstance(statements[0].stmt, ast.IndexStmt):
        raise SqlParseError("is not one index key")
    stmt = statements[0].stmt
    if len(stmt.indexParams or ()) != 1 or stmt.whereClause is not None:
        raise SqlParseError("is not one index key (use one list entry per key)")
    element = stmt.indexParams[0]
    columns = {element.name} if element.name else _column_refs(element.expr)
    return IndexElement(text=RawStream()(element), columns=frozenset(columns))


def statement_needs_autocommit(raw_stmt) -> bool:
    """True for statements PostgreSQL refuses inside a transaction block."""
    node = raw_stmt.stmt
    if isinstance(node, ast.IndexStmt | ast.DropStmt | ast.ReindexStmt):
        if isinstance(node, ast.ReindexStmt):
            return any(getattr(opt, "defname", "") == "concurrently" for opt in (node.params or ()))
        return bool(getattr(node, "concurrent", False))
    return isinstance(node, ast.VacuumStmt | ast.CreatedbStmt | ast.DropdbStmt | ast.AlterSystemStmt)


def is_transaction_control(raw_stmt) -> bool:
    return isinstance(raw_stmt.stmt, ast.TransactionStmt)
