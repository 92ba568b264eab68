"""Parse SQL fragments from specs with pglast (PostgreSQL's own parser) before they are used.

An expression is accepted only if it parses as exactly one expression, and what the bundle
contains is pglast's re-rendering of the parse tree — never the user's text — so a value such
as ``now()); DROP TABLE x; --`` can neither pass nor survive as a hidden comment.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import lru_cache

from pglast import ast, parse_sql
from pglast.enums import NullTestType
from pglast.keywords import UNRESERVED_KEYWORDS
from pglast.parser import ParseError, scan
from pglast.stream import RawStream
from pglast.visitors import Visitor
from psycopg import sql

from dbdeploy.errors import FIX_MARK


class SqlParseError(ValueError):
    """The text is not one valid SQL expression / type / statement list."""


class TrustedText(str):
    """SQL text that dbdeploy itself produced from a parse tree (pglast's rendering), never the
    user's text: the base of :class:`Expression`, :class:`TypeName` and :class:`IndexElement`.

    It is a ``str`` (the canonical text) so that it compares, hashes, prints and serializes as the
    text it holds — the manifest, the checklist and ``model_dump`` see the same bytes as before —
    and it keeps what the parse found (``columns``, ``volatile``) so no caller parses the text again.
    It enters SQL only through :meth:`sql`; ``sql.SQL(x)`` of any other non-literal str is refused by
    tests/test_trusted_sql.py. Instances are immutable (setting an attribute raises AttributeError).
    """

    _fields: tuple[str, ...] = ()

    def __new__(cls, text: str, *values):
        if len(values) != len(cls._fields):
            raise TypeError(f"{cls.__name__} takes text and {', '.join(cls._fields) or 'nothing else'}")
        self = super().__new__(cls, text)
        for name, value in zip(cls._fields, values, strict=True):
            object.__setattr__(self, name, value)
        return self

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __reduce__(self):
        return type(self), (str(self), *(getattr(self, f) for f in self._fields))

    def __repr__(self) -> str:
        return str.__repr__(self)

    @property
    def text(self) -> str:
        """The canonical text as a plain ``str``."""
        return str(self)

    def sql(self) -> sql.SQL:
        """The text as SQL: trusted because it is pglast's rendering of one parsed tree."""
        return sql.SQL(str(self))


class Expression(TrustedText):
    """A parsed SQL expression (:func:`parse_expression`): ``columns`` are the unqualified column
    names it reads, ``volatile`` whether it may call a volatile function (a conservative guess)."""

    _fields = ("columns", "volatile")
    columns: frozenset[str]
    volatile: bool

    def default_sql(self) -> sql.SQL:
        """The expression as it can follow ``DEFAULT`` in a column definition
        (:func:`column_default`: parenthesized where PostgreSQL's restricted grammar needs it)."""
        return sql.SQL(column_default(str(self)))


class TypeName(TrustedText):
    """A parsed PostgreSQL type name (:func:`parse_type`), canonically rendered."""


# What to do about a fragment that does not parse, by what the fragment should be.
FIX_EXPRESSION = ("give exactly one SQL expression (a value, column, operator or function call) with "
                  "balanced quotes and parentheses, no ';' and no unterminated comment")
FIX_TYPE = "give one PostgreSQL type such as text, bigint, numeric(10,2), timestamptz or text[]"
FIX_INDEX_KEY = "give one column name or expression per list entry, e.g. 'email', 'lower(email)' or 'created_at DESC'"
FIX_STATEMENTS = "correct the SQL so that PostgreSQL (psql) accepts it"
_FIX_NUL = "remove the NUL byte (\\x00); PostgreSQL text cannot hold it"


# --- limits (issue 10 item 10) ------------------------------------------------------------------
# PostgreSQL's parser (in pglast), pglast's conversion of its tree to Python objects and every
# recursive walk over that tree (pglast's printer, the lint rules) recurse once or more per level of
# the tree. Unchecked, 200 chained terms (`1+1+…`) ran out of Python's default recursion limit and
# about 22,000 overflowed the C stack (a segfault, exit 139, no message). So every SQL text is
# measured with the lexer alone (linear, not recursive) before it is parsed, and refused above these
# limits; within them everything works (tests/test_limits.py: every shape at the limit, through
# `generate`), with Python's recursion limit raised to RECURSION_LIMIT, well inside what an 8 MB
# stack holds (measured: 8,000 chained terms ran, 16,000 crashed).
MAX_EXPRESSION_DEPTH = 1000
"""Nesting units per statement or expression: each open ``(``, ``[`` or ``CASE``, plus each operator
(``+``, ``=``, ``::``, ``NOT``, ``IS``, ``LIKE`` …) chained with the one before it without a
``,``, ``AND``, ``OR``, ``WHEN``, ``THEN``, ``ELSE`` or ``;`` between them (``AND``/``OR`` chains
and lists are flat in PostgreSQL's tree, so they do not nest)."""
MAX_EXPRESSION_CHARS = 100_000
"""Characters of one SQL expression in a spec (defaults, checks, predicates, backfill values, index keys)."""
MAX_SQL_CHARS = 16 * 1024 * 1024
"""Characters of one RawSQL body (forward, rollback or verify): 16 MiB."""
RECURSION_LIMIT = 20_000

if sys.getrecursionlimit() < RECURSION_LIMIT:
    sys.setrecursionlimit(RECURSION_LIMIT)

_OPEN = frozenset({"ASCII_40", "ASCII_91"})          # ( [
_CLOSE = frozenset({"ASCII_41", "ASCII_93"})         # ) ]
_FLAT = frozenset({"ASCII_44", "ASCII_59", "AND", "OR", "WHEN", "THEN", "ELSE"})   # , ; and list-like keywords
_OPERATORS = frozenset({
    "ASCII_37", "ASCII_42", "ASCII_43", "ASCII_45", "ASCII_47", "ASCII_60", "ASCII_61", "ASCII_62", "ASCII_94",
    "ASCII_46", "Op", "TYPECAST", "LESS_EQUALS", "GREATER_EQUALS", "NOT_EQUALS", "EQUALS_GREATER", "COLON_EQUALS",
    "NOT", "NOT_LA", "IS", "ISNULL", "NOTNULL", "LIKE", "ILIKE", "SIMILAR", "BETWEEN", "IN_P", "COLLATE", "AT",
    "OPERATOR", "ESCAPE", "OVERLAPS", "DISTINCT", "ANY", "ALL", "SOME", "EXISTS", "ARRAY", "ROW",
})


def _fix_depth(statements: bool) -> str:
    what = "statement" if statements else "expression"
    return (f"split the {what} (e.g. a long chain of + or || into a sum() over a VALUES list or several "
            "columns; nested CASE into one CASE with more WHEN arms; a long OR chain of comparisons into "
            "IN (…)) so that it nests less deeply")


def check_limits(text: str, *, statements: bool = False) -> None:
    """Refuse SQL too large or too deeply nested to parse safely, before pglast sees it.

    ``text`` is a spec expression (``statements=False``: at most :data:`MAX_EXPRESSION_CHARS`
    characters) or a RawSQL body (at most :data:`MAX_SQL_CHARS`). Its nesting is measured with
    PostgreSQL's lexer only (:func:`pglast.parser.scan`, linear time, no recursion), counting the
    units :data:`MAX_EXPRESSION_DEPTH` describes; the contents of string constants long enough to
    exceed the limit (function bodies, dynamic SQL) are measured the same way, since they are
    parsed later too. Raises :class:`SqlParseError` naming the limit and the fix; text that the
    lexer itself rejects is left to the parser's own error.
    """
    text = str.__str__(text)     # the lexer (pglast.parser.scan) takes an exact str
    limit = MAX_SQL_CHARS if statements else MAX_EXPRESSION_CHARS
    if len(text) > limit:
        what = "RawSQL body" if statements else "SQL expression"
        fix = ("split the SQL into several RawSQL operations or migrations, or load bulk data with COPY from a "
               "file outside the migration" if statements else
               "move large literal data into a table (SeedRows or RawSQL) and refer to it")
        raise SqlParseError(f"is {len(text):,} characters long, more than the {limit:,} a {what} may have "
                            f"(dbdeploy's documented limit){FIX_MARK}{fix}")
    if statements:
        _check_statement_depth(text)
    elif len(text) > MAX_EXPRESSION_DEPTH:
        _check_depth([(text, None)], statements=False)


@lru_cache(maxsize=8)
def _check_statement_depth(text: str) -> None:
    """The depth check of a RawSQL body, done once per text (parse_statements and _parse both ask)."""
    # Only a text longer than the limit can nest deeper than it (every level is at least one
    # character), so the lexer runs only over such statements of a body (split once, cached).
    pending: list[tuple[str, int | None]] = []
    if len(text) > MAX_EXPRESSION_DEPTH:
        from dbdeploy.sql.psql import PsqlScriptError, Statement, split_script

        try:
            pending = [(item.text, text.count("\n", 0, item.start) + 1) for item in split_script(text)
                       if isinstance(item, Statement) and len(item.text) > MAX_EXPRESSION_DEPTH]
        except PsqlScriptError:
            pending = [(text, 1)]
    _check_depth(pending, statements=True)


def _check_depth(pending: list[tuple[str, int | None]], *, statements: bool) -> None:
    """Measure each (text, its first line or None) of ``pending`` with the lexer; see check_limits."""
    while pending:
        chunk, first_line = pending.pop()
        try:
            tokens = scan(chunk)
        except ParseError:
            continue
        stack: list[tuple[bool, int]] = []      # per open bracket/CASE: (is CASE, operators chained in it)
        chained = total = deepest = 0
        for token in tokens:
            name = token.name
            if name in _OPERATORS:
                chained += 1
                total += 1
            elif name in _FLAT:
                total -= chained
                chained = 0
            elif name in _OPEN or name == "CASE":
                stack.append((name == "CASE", chained))
                chained = 0
            elif (name in _CLOSE and stack and not stack[-1][0]) or (name == "END_P" and stack and stack[-1][0]):
                total -= chained
                chained = stack.pop()[1]
            elif name == "SCONST" and token.end - token.start > MAX_EXPRESSION_DEPTH:
                pending.append((_string_body(chunk[token.start:token.end + 1]), None))
            depth = len(stack) + total
            if depth > deepest:
                deepest = depth
                if deepest > MAX_EXPRESSION_DEPTH:
                    line = None if first_line is None else first_line + chunk.count("\n", 0, token.start)
                    where = f" (at line {line} of the SQL)" if line is not None else ""
                    raise SqlParseError(
                        f"nests more than {MAX_EXPRESSION_DEPTH:,} levels deep{where} — dbdeploy's documented limit "
                        "(each open parenthesis, bracket or CASE and each operator chained to the previous one "
                        f"counts one level){FIX_MARK}{_fix_depth(statements)}")


def _string_body(quoted: str) -> str:
    """The text inside a string constant token (``$tag$…$tag$``, ``'…'``, ``E'…'``): only measured,
    so escapes need not be undone."""
    if quoted.startswith("$"):
        tag = quoted[:quoted.index("$", 1) + 1]
        return quoted[len(tag):-len(tag)]
    return quoted[quoted.index("'") + 1:-1]


def _parse(text: str, prefix: str = "", suffix: str = "", fix: str = FIX_STATEMENTS):
    """Parse ``prefix + text + suffix``; error positions are reported relative to ``text``."""
    text = str.__str__(text)     # pglast's C functions take an exact str, not a TrustedText
    if "\x00" in text:
        raise SqlParseError(f"contains a NUL byte{FIX_MARK}{_FIX_NUL}")
    check_limits(text, statements=fix == FIX_STATEMENTS)
    try:
        return parse_sql(prefix + text + suffix)
    except ParseError as exc:
        message, *rest = exc.args
        if suffix and ("--" in text or "/*" in text):
            fix = f"remove the comment (-- or /*), which hides what follows it; {fix}"
        near = re.search(r'at or near "([A-Za-z_]+)"', message)
        if near and _is_keyword(near.group(1)):
            word = near.group(1).lower()
            fix = f'if {word} is a column, double-quote it ("{word}"), because it is an SQL keyword; {fix}'
        if rest and isinstance(rest[0], int):
            position = max(rest[0] - len(prefix), 0)
            if position >= len(text):  # at dbdeploy's own wrapper: the text ended too early
                message = message.split(" at or near ")[0]
                raise SqlParseError(f"{message} at its end (it is incomplete){FIX_MARK}{fix}") from None
            raise SqlParseError(f"{message} (at character {position + 1}){FIX_MARK}{fix}") from None
        raise SqlParseError(f"{exc}{FIX_MARK}{fix}") from None


def _is_keyword(word: str) -> bool:
    tokens = scan(word)
    return len(tokens) == 1 and tokens[0].kind != "NO_KEYWORD"


_SELECT_CLAUSES = (
    "distinctClause", "intoClause", "fromClause", "whereClause", "groupClause", "havingClause",
    "windowClause", "valuesLists", "sortClause", "limitOffset", "limitCount", "lockingClause",
    "withClause", "larg", "rarg",
)


def parse_expression(text: str) -> Expression:
    """Parse ``text`` as exactly one scalar SQL expression."""
    if not isinstance(text, str) or not text.strip():
        raise SqlParseError(f"is empty{FIX_MARK}give one SQL expression, e.g. now() or 'text'")
    statements = _parse(text, "SELECT ", fix=FIX_EXPRESSION)
    if len(statements) != 1:
        raise SqlParseError(f"contains more than one statement{FIX_MARK}give exactly one SQL expression, "
                            "with no ';' (use RawSQL for statements)")
    stmt = statements[0].stmt
    if not isinstance(stmt, ast.SelectStmt) or any(getattr(stmt, c, None) for c in _SELECT_CLAUSES):
        raise SqlParseError(f"is not a single expression (it adds clauses such as FROM or UNION){FIX_MARK}"
                            "give only the expression; to read another table use a scalar subquery "
                            "in parentheses, (SELECT ...)")
    if stmt.op not in (None, 0) and str(stmt.op) not in ("SETOP_NONE", "SetOperation.SETOP_NONE"):
        raise SqlParseError(f"is not a single expression (set operation){FIX_MARK}give only the expression")
    targets = stmt.targetList or ()
    if len(targets) != 1:
        raise SqlParseError(f"is a list of expressions{FIX_MARK}give exactly one SQL expression")
    target = targets[0]
    if target.name is not None:
        raise SqlParseError(f"has an alias (AS ...){FIX_MARK}give only the expression, without AS ...")
    node = target.val
    if isinstance(node, ast.ColumnRef) and any(isinstance(f, ast.A_Star) for f in node.fields):
        raise SqlParseError(f"is '*', not an expression{FIX_MARK}name the column or give an expression")
    return Expression(RawStream()(node), frozenset(_column_refs(node)), is_probably_volatile(node))


@lru_cache(maxsize=1024)
def column_default(text: str) -> str:
    """An expression's text as it can follow DEFAULT in a column definition.

    There PostgreSQL accepts only a restricted expression grammar (``b_expr``): ``DEFAULT x IS NOT
    NULL``, ``DEFAULT now() AT TIME ZONE 'utc'`` or ``DEFAULT NOT true`` are syntax errors, and in
    ``DEFAULT 'a' COLLATE "C"`` the COLLATE would belong to the column. The text is kept as it is
    when it parses there to the same expression, and parenthesized otherwise.
    """
    try:
        column = parse_sql(f"CREATE TABLE dbdeploy_probe (c text DEFAULT {text})")[0].stmt.tableElts[0]
        constraints = column.constraints or ()
        if (len(constraints) == 1 and column.collClause is None
                and RawStream()(constraints[0].raw_expr) == RawStream()(parse_sql(f"SELECT {text}")[0].stmt
                                                                          .targetList[0].val)):
            return text
    except ParseError:
        pass
    return f"({text})"


def parse_type(text: str) -> TypeName:
    """Parse ``text`` as one PostgreSQL type name (``numeric(10,2)``, ``text[]``, ``timestamptz``)."""
    if not isinstance(text, str) or not text.strip():
        raise SqlParseError(f"is empty{FIX_MARK}{FIX_TYPE}")
    statements = _parse(text, "SELECT CAST(NULL AS ", ")", fix=FIX_TYPE)
    if len(statements) != 1:
        raise SqlParseError(f"contains more than one statement{FIX_MARK}{FIX_TYPE}, and nothing else")
    stmt = statements[0].stmt
    if any(getattr(stmt, c, None) for c in _SELECT_CLAUSES) or len(stmt.targetList or ()) != 1:
        raise SqlParseError(f"is not a type name{FIX_MARK}{FIX_TYPE}")
    target = stmt.targetList[0]
    if target.name is not None or not isinstance(target.val, ast.TypeCast):
        raise SqlParseError(f"is not a type name{FIX_MARK}{FIX_TYPE}")
    cast = target.val
    if not isinstance(cast.arg, ast.A_Const) or not getattr(cast.arg, "isnull", False):
        raise SqlParseError(f"is not a type name{FIX_MARK}{FIX_TYPE}")
    type_name = cast.typeName
    if type_name.setof:
        raise SqlParseError(f"is a SETOF type, which only a function can return{FIX_MARK}drop SETOF; "
                            "for several values per row use an array type such as integer[]")
    if type_name.pct_type:
        raise SqlParseError(f"is a %TYPE reference{FIX_MARK}{FIX_TYPE}")
    _check_type_exists([n.sval for n in type_name.names])
    return TypeName(RawStream()(type_name))


# The data types in pg_catalog (PostgreSQL 15-17: base, range and multirange types) and the serial
# pseudo-types CREATE TABLE accepts. Bundles run with search_path = pg_catalog, so any other type
# must be schema-qualified to be found at all; checking here turns a typo into a spec error
# instead of a failure halfway through a deployment.
BUILTIN_TYPES = frozenset((
    "aclitem", "bit", "bool", "box", "bpchar", "bytea", "char", "cid", "cidr", "circle", "date",
    "datemultirange", "daterange", "float4", "float8", "gtsvector", "inet", "int2", "int2vector", "int4",
    "int4multirange", "int4range", "int8", "int8multirange", "int8range", "interval", "json", "jsonb",
    "jsonpath", "line", "lseg", "macaddr", "macaddr8", "money", "name", "numeric", "nummultirange",
    "numrange", "oid", "oidvector", "path", "pg_lsn", "pg_snapshot", "point", "polygon", "refcursor",
    "regclass", "regcollation", "regconfig", "regdictionary", "regnamespace", "regoper", "regoperator",
    "regproc", "regprocedure", "regrole", "regtype", "text", "tid", "time", "timestamp", "timestamptz",
    "timetz", "tsmultirange", "tsquery", "tsrange", "tstzmultirange", "tstzrange", "tsvector",
    "txid_snapshot", "uuid", "varbit", "varchar", "xid", "xid8", "xml", "smallserial", "serial", "bigserial",
    "serial2", "serial4", "serial8",
))
PSEUDO_TYPES = frozenset((
    "any", "anyarray", "anycompatible", "anycompatiblearray", "anycompatiblemultirange",
    "anycompatiblenonarray", "anycompatiblerange", "anyelement", "anyenum", "anymultirange", "anynonarray",
    "anyrange", "cstring", "event_trigger", "fdw_handler", "index_am_handler", "internal", "language_handler",
    "pg_ddl_command", "record", "table_am_handler", "trigger", "tsm_handler", "unknown", "void",
))


def _check_type_exists(names: list[str]) -> None:
    """Refuse unqualified (or pg_catalog) type names that PostgreSQL does not have."""
    if len(names) == 2 and names[0] != "pg_catalog":
        return  # a user-defined or extension type in its schema: the database knows it
    name = names[-1]
    if name in PSEUDO_TYPES:
        raise SqlParseError(f"is the pseudo-type {name!r}, which a column cannot have{FIX_MARK}{FIX_TYPE}")
    if name not in BUILTIN_TYPES or len(names) > 2:
        raise SqlParseError(
            f"names the type {'.'.join(names)!r}, which is not a built-in PostgreSQL type{FIX_MARK}{FIX_TYPE}; "
            "schema-qualify a user-defined or extension type (e.g. public.citext), because bundles run with "
            "search_path = pg_catalog")


def parse_statements(text: str) -> list[RawStatement]:
    """Parse a RawSQL body: any number of complete statements, as :class:`RawStatement`.

    The body must run the same under psql and dbdeploy (:mod:`dbdeploy.sql.psql`): a psql
    meta-command or variable raises :class:`SqlParseError`; ``COPY … FROM STDIN`` data (up to its
    ``\\.`` line) is allowed and is not parsed as SQL.
    """
    from dbdeploy.sql.psql import PsqlScriptError, sql_only

    if not isinstance(text, str) or not text.strip():
        raise SqlParseError(f"is empty{FIX_MARK}give the SQL to run")
    if "\x00" in text:
        raise SqlParseError(f"contains a NUL byte{FIX_MARK}{_FIX_NUL}")
    check_limits(text, statements=True)
    try:
        sql_text = sql_only(text)
    except PsqlScriptError as exc:
        raise SqlParseError(f"{exc}{FIX_MARK}{exc.fix}") from None
    return list(_parse_statements_cached(sql_text))


@lru_cache(maxsize=8)
def _parse_statements_cached(sql_text: str) -> tuple:
    """The parse of a RawSQL body, computed once per text: generation and lint read the same body
    many times (the nodes are shared and must not be changed by callers)."""
    if len(sql_text) >= _SHARE_TREES_ABOVE:
        check_limits(sql_text, statements=True)
        shared = _parse_sharing_trees(sql_text)
        if shared is not None:
            return shared
    return tuple(RawStatement(raw.stmt, raw.stmt_location, raw.stmt_len) for raw in _parse(sql_text))


@dataclass(frozen=True, slots=True)
class RawStatement:
    """One top-level statement of a RawSQL body: ``stmt`` is pglast's tree of it (an ``ast.Node``;
    shared, never to be changed), ``stmt_location`` and ``stmt_len`` where it is in the body."""

    stmt: object
    stmt_location: int
    stmt_len: int


# Building pglast's Python tree is most of the cost of a large body (~0.7 s per MB of INSERTs here;
# PostgreSQL's parser itself, in C, takes about 0.04 s per MB). A data load repeats one INSERT
# shape thousands of times, so above this size such statements share one tree.
_SHARE_TREES_ABOVE = 256 * 1024
_PLACEHOLDER = re.compile(r"\$\d+")


def _parse_sharing_trees(text: str) -> tuple | None:
    """The statements of ``text`` as :class:`RawStatement`, where every ``INSERT … VALUES`` whose
    normalized text (PostgreSQL's, :func:`pglast.parser.normalize`: each constant replaced by a
    placeholder) is the same as an earlier one's shares that statement's tree.

    Two such statements differ only in their constants, so the shared tree is exact except for
    the values in the VALUES lists and the node locations: callers must not read an INSERT's
    values from the tree (none does: checks and lint read relations, columns, functions and
    statement kinds, and the bundle carries the statement's own text). A statement with a ``$``
    (a parameter or dollar quote) is always parsed on its own. Returns None if the parser refuses
    the text (the caller parses it whole, to report the error).
    """
    from pglast.parser import normalize, split

    from dbdeploy.sql.psql import ascii_for_lexer

    mapped = ascii_for_lexer(text)
    try:
        pieces = split(mapped, with_parser=True, only_slices=True)
    except ParseError:
        return None
    out = []
    shapes: dict[str, object] = {}
    for piece in pieces:
        statement = text[piece]
        key = None
        tree = None
        if "$" not in statement and statement[:6].lower() == "insert":
            key = _PLACEHOLDER.sub("$", normalize(mapped[piece]))
            tree = shapes.get(key)
        if tree is None:
            parsed = parse_sql(statement)
            if len(parsed) != 1:
                return None
            tree = parsed[0].stmt
            if key is not None and _is_values_insert(tree):
                shapes[key] = tree
        out.append(RawStatement(tree, piece.start, piece.stop - piece.start))
    return tuple(out)


def _is_values_insert(tree) -> bool:
    """INSERT … VALUES (…) with no WITH, ON CONFLICT or RETURNING."""
    select = getattr(tree, "selectStmt", None)
    return (isinstance(tree, ast.InsertStmt) and isinstance(select, ast.SelectStmt)
            and bool(select.valuesLists) and tree.withClause is None and tree.onConflictClause is None
            and tree.returningClause is None)


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


class IndexElement(TrustedText):
    """One parsed index key (:func:`parse_index_element`): an expression, or a column with ordering
    or operator class; ``columns`` are the column names it reads."""

    _fields = ("columns",)
    columns: frozenset[str]


def parse_index_element(text: str) -> IndexElement:
    """Parse one index key such as ``email``, ``created_at DESC`` or ``lower(email)``."""
    if not isinstance(text, str) or not text.strip():
        raise SqlParseError(f"is empty{FIX_MARK}{FIX_INDEX_KEY}")
    statements = _parse(text, "CREATE INDEX dbdeploy_probe ON dbdeploy_probe (", ")", fix=FIX_INDEX_KEY)
    if len(statements) != 1 or not isinstance(statements[0].stmt, ast.IndexStmt):
        raise SqlParseError(f"is not one index key{FIX_MARK}{FIX_INDEX_KEY}")
    stmt = statements[0].stmt
    if len(stmt.indexParams or ()) != 1 or stmt.whereClause is not None:
        raise SqlParseError(f"is not one index key (use one list entry per key){FIX_MARK}{FIX_INDEX_KEY}")
    element = stmt.indexParams[0]
    columns = {element.name} if element.name else _column_refs(element.expr)
    return IndexElement(RawStream()(element), frozenset(columns))


class PartitionKey(TrustedText):
    """A parsed partition key (:func:`parse_partition_key`): ``strategy`` (``RANGE``, ``LIST`` or
    ``HASH``) and the key ``columns`` (their exact names), text as ``pg_get_partkeydef`` prints it
    (``RANGE (created_at)``, identifiers quoted only where PostgreSQL quotes them)."""

    _fields = ("strategy", "columns")
    strategy: str
    columns: tuple[str, ...]


class PartitionBound(TrustedText):
    """A parsed partition bound (:func:`parse_partition_bound`): ``FOR VALUES …`` or ``DEFAULT`` as
    pglast renders it; ``is_default`` tells which."""

    _fields = ("is_default",)
    is_default: bool


FIX_PARTITION_KEY = ('give RANGE, LIST or HASH and the key columns in parentheses, e.g. "RANGE (created_at)" '
                     "(expression keys: use RawSQL)")
FIX_PARTITION_BOUND = ("give PostgreSQL's bound, e.g. \"FOR VALUES FROM ('2026-01-01') TO ('2026-02-01')\", "
                       "\"FOR VALUES IN ('eu', 'us')\", \"FOR VALUES WITH (MODULUS 4, REMAINDER 0)\" or \"DEFAULT\"")
_STRATEGIES = {"r": "RANGE", "l": "LIST", "h": "HASH"}


def parse_partition_key(text: str) -> PartitionKey:
    """Parse ``RANGE (a, b)`` / ``LIST (a)`` / ``HASH (a)`` (PostgreSQL docs, CREATE TABLE ``PARTITION BY``):
    plain columns only. Raises SqlParseError (reason — fix) otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise SqlParseError(f"is empty{FIX_MARK}{FIX_PARTITION_KEY}")
    statements = _parse(text, "CREATE TABLE dbdeploy_probe (dbdeploy_probe integer) PARTITION BY ",
                        fix=FIX_PARTITION_KEY)
    if len(statements) != 1 or not isinstance(statements[0].stmt, ast.CreateStmt) or not statements[0].stmt.partspec:
        raise SqlParseError(f"is not one partition key{FIX_MARK}{FIX_PARTITION_KEY}")
    spec = statements[0].stmt.partspec
    strategy = _STRATEGIES.get(str(getattr(spec.strategy, "value", spec.strategy)))
    if strategy is None:
        raise SqlParseError(f"has an unknown partitioning strategy{FIX_MARK}{FIX_PARTITION_KEY}")
    columns = []
    for element in spec.partParams or ():
        if element.name is None or element.collation or element.opclass:
            raise SqlParseError(f"uses an expression, collation or operator class in the key{FIX_MARK}"
                                f"{FIX_PARTITION_KEY}")
        columns.append(element.name)
    if not columns:
        raise SqlParseError(f"names no key column{FIX_MARK}{FIX_PARTITION_KEY}")
    if strategy == "LIST" and len(columns) != 1:
        raise SqlParseError(f"LIST partitioning takes exactly one column (PostgreSQL refuses more){FIX_MARK}"
                            f"{FIX_PARTITION_KEY}")
    quoted = ", ".join(_quote_identifier(c) for c in columns)
    return PartitionKey(f"{strategy} ({quoted})", strategy, tuple(columns))


def _quote_identifier(name: str) -> str:
    """An identifier as PostgreSQL's quote_ident spells it: quoted unless it is lowercase letters, digits and
    underscores and not a keyword other than an unreserved one (ruleutils.c ``quote_identifier``)."""
    if re.fullmatch(r"[a-z_][a-z0-9_]*", name) and (not _is_keyword(name) or name in UNRESERVED_KEYWORDS):
        return name
    return '"' + name.replace('"', '""') + '"'


def parse_partition_bound(text: str) -> PartitionBound:
    """Parse a partition's bound: ``FOR VALUES FROM (…) TO (…)``, ``FOR VALUES IN (…)``, ``FOR VALUES WITH
    (MODULUS m, REMAINDER r)`` or ``DEFAULT`` (PostgreSQL docs, CREATE TABLE ``PARTITION OF``). Raises
    SqlParseError (reason — fix) otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise SqlParseError(f"is empty{FIX_MARK}{FIX_PARTITION_BOUND}")
    statements = _parse(text, "CREATE TABLE dbdeploy_probe PARTITION OF dbdeploy_parent ", fix=FIX_PARTITION_BOUND)
    if len(statements) != 1 or not isinstance(statements[0].stmt, ast.CreateStmt) or (
            statements[0].stmt.partbound is None or statements[0].stmt.partspec is not None
            or statements[0].stmt.tableElts or statements[0].stmt.options or statements[0].stmt.accessMethod
            or statements[0].stmt.tablespacename):
        raise SqlParseError(f"is not one partition bound{FIX_MARK}{FIX_PARTITION_BOUND}")
    bound = statements[0].stmt.partbound
    return PartitionBound(RawStream()(bound), bool(bound.is_default))


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


def not_null_column(node) -> str | None:
    """``c`` when the parse tree ``node`` is the expression ``c IS NOT NULL`` (an unqualified column)."""
    if (isinstance(node, ast.NullTest) and node.nulltesttype == NullTestType.IS_NOT_NULL
            and isinstance(node.arg, ast.ColumnRef) and len(node.arg.fields) == 1
            and isinstance(node.arg.fields[0], ast.String)):
        return node.arg.fields[0].sval
    return None


@lru_cache(maxsize=4096)
def not_null_test_column(text: str) -> str | None:
    """``c`` when the SQL expression ``text`` is ``c IS NOT NULL`` (what a CHECK that proves a column has no
    NULL says), else None; text that does not parse as an expression is None too, never an error."""
    try:
        return not_null_column(parse_sql(f"SELECT {text}")[0].stmt.targetList[0].val)
    except (ParseError, AttributeError, IndexError, TypeError):
        return None


# --- view queries (issue 13: CreateView, ReplaceView, CreateMaterializedView) ---------------------

FIX_VIEW_QUERY = ("give exactly one SELECT statement (or VALUES, or WITH … SELECT), with no ';' inside, "
                  "no INTO and no data-modifying WITH; schema-qualify every table (bundles run with "
                  "search_path = pg_catalog)")


class ViewQuery(TrustedText):
    """A parsed view query (:func:`parse_view_query`): pglast's canonical text of one SELECT-like
    statement. ``relations`` are the schema-qualified relations it reads (``schema.name``, the exact
    catalog names), ``references`` the ``(relation, column)`` pairs it names as ``alias.column`` where
    the alias (or the relation's own name) stands for one of those relations."""

    _fields = ("relations", "references")
    relations: frozenset[str]
    references: frozenset[tuple[str, str]]


class _RelationCollector(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.ranges: list = []
        self.ctes: set[str] = set()
        self.modifying = False
        self.columns: list[tuple[str, str]] = []

    def visit_RangeVar(self, ancestors, node):  # noqa: N802 (pglast visitor naming)
        self.ranges.append(node)

    def visit_CommonTableExpr(self, ancestors, node):  # noqa: N802
        self.ctes.add(node.ctename)
        if not isinstance(node.ctequery, ast.SelectStmt):
            self.modifying = True

    def visit_ColumnRef(self, ancestors, node):  # noqa: N802
        fields = node.fields or ()
        if len(fields) == 2 and all(isinstance(f, ast.String) for f in fields):
            self.columns.append((fields[0].sval, fields[1].sval))


def parse_view_query(text: str) -> ViewQuery:
    """Parse ``text`` as exactly one SELECT-like statement (SELECT, VALUES, WITH … SELECT, set
    operations) that CREATE VIEW can take. Raises :class:`SqlParseError` (reason and fix) for
    anything else: several statements, another kind of statement, ``SELECT … INTO``, a
    data-modifying ``WITH`` (PostgreSQL docs, CREATE VIEW: "views must not contain data-modifying
    statements in WITH"), or a table named without its schema (bundles run with ``search_path =
    pg_catalog``, where it would not be found)."""
    if not isinstance(text, str) or not text.strip():
        raise SqlParseError(f"is empty{FIX_MARK}{FIX_VIEW_QUERY}")
    statements = _parse(text, fix=FIX_VIEW_QUERY)
    if len(statements) != 1:
        raise SqlParseError(f"contains {len(statements)} statements{FIX_MARK}{FIX_VIEW_QUERY}")
    stmt = statements[0].stmt
    if not isinstance(stmt, ast.SelectStmt):
        raise SqlParseError(f"is not a query (it is a {type(stmt).__name__.removesuffix('Stmt')} statement)"
                            f"{FIX_MARK}{FIX_VIEW_QUERY}")
    if stmt.intoClause is not None:
        raise SqlParseError(f"is SELECT … INTO, which creates a table{FIX_MARK}remove the INTO clause")
    collector = _RelationCollector()
    collector(stmt)
    if collector.modifying:
        raise SqlParseError(f"has a data-modifying statement in WITH, which a view cannot hold{FIX_MARK}"
                            f"{FIX_VIEW_QUERY}")
    relations: set[str] = set()
    aliases: dict[str, str] = {}
    for node in collector.ranges:
        if node.schemaname is None:
            if node.relname in collector.ctes:
                continue
            raise SqlParseError(f"reads {node.relname!r} without its schema{FIX_MARK}write it as "
                                f"schema.{node.relname} (bundles run with search_path = pg_catalog)")
        if node.catalogname is not None:
            raise SqlParseError(f"names a relation with a database name{FIX_MARK}write it as schema.name")
        name = f"{node.schemaname}.{node.relname}"
        relations.add(name)
        alias = node.alias.aliasname if node.alias is not None else node.relname
        aliases[alias] = name if aliases.get(alias, name) == name else ""
    references = frozenset((aliases[a], c) for a, c in collector.columns if aliases.get(a))
    return ViewQuery(RawStream()(stmt), frozenset(relations), references)
# --- function signatures (CommentOn "FUNCTION", issue 13) ---------------------------------------

FIX_SIGNATURE = ("give the function as schema.name(argument types), e.g. public.total(integer, text) or "
                 "public.now_utc() for none")


@dataclass(frozen=True)
class FunctionSignature:
    """A function named by its schema, name and argument types, parsed by :func:`parse_function_signature`.

    ``argument_types`` are :class:`TypeName` (pglast's rendering, e.g. ``integer``, ``varchar(3)[]``).
    :meth:`sql` is the signature as SQL (``"s"."f"(integer, text)``) and :meth:`regprocedure_text` the
    same text as data, for ``pg_catalog.to_regprocedure`` (PostgreSQL docs, "Object Identifier Types":
    regprocedure input is ``name(argument types)``)."""

    schema: str
    name: str
    argument_types: tuple[TypeName, ...]

    def sql(self) -> sql.Composed:
        args = sql.SQL(", ").join(t.sql() for t in self.argument_types)
        return sql.SQL("{}({})").format(sql.Identifier(self.schema, self.name), args)

    def regprocedure_text(self) -> str:
        return self.sql().as_string(None)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}({', '.join(self.argument_types)})"


def parse_function_signature(text: str) -> FunctionSignature:
    """Parse ``schema.name(type, …)`` with PostgreSQL's parser (as ``COMMENT ON FUNCTION <text> IS ''``).

    Argument names and modes (``IN a integer``) are accepted and dropped, as PostgreSQL does for
    COMMENT ON FUNCTION. Raises :class:`SqlParseError` (reason — fix) for anything else: no argument
    list, a name without schema, more than one statement, ``VARIADIC``-free text that is not a
    signature."""
    if not isinstance(text, str) or not text.strip():
        raise SqlParseError(f"is empty{FIX_MARK}{FIX_SIGNATURE}")
    statements = _parse(text, "COMMENT ON FUNCTION ", " IS ''", fix=FIX_SIGNATURE)
    if len(statements) != 1:
        raise SqlParseError(f"contains more than one statement{FIX_MARK}{FIX_SIGNATURE}")
    stmt = statements[0].stmt
    target = getattr(stmt, "object", None)
    if not isinstance(stmt, ast.CommentStmt) or not isinstance(target, ast.ObjectWithArgs) or stmt.comment != "":
        raise SqlParseError(f"is not a function signature{FIX_MARK}{FIX_SIGNATURE}")
    if target.args_unspecified:
        raise SqlParseError(f"has no argument list{FIX_MARK}{FIX_SIGNATURE} (the types pick one function of "
                            "an overloaded name)")
    names = [n.sval for n in target.objname]
    if len(names) != 2:
        raise SqlParseError(f"is not schema-qualified (schema.name){FIX_MARK}{FIX_SIGNATURE}")
    types = []
    for arg in target.objargs or ():
        if arg.pct_type or arg.setof:
            raise SqlParseError(f"has an argument type that is not a type name{FIX_MARK}{FIX_SIGNATURE}")
        arg_names = [n.sval for n in arg.names]
        if arg_names[-1] not in PSEUDO_TYPES:
            _check_type_exists(arg_names)
        types.append(TypeName(RawStream()(arg)))
    return FunctionSignature(names[0], names[1], tuple(types))
class ReturnsClause(TrustedText):
    """A parsed ``RETURNS`` clause of a function (:func:`parse_returns`): pglast's rendering of the
    return type (``integer``, ``SETOF public.t``, ``trigger``, ``void``). ``base`` is the type name
    without SETOF, ``setof`` whether it returns a set. ``TABLE (…)`` is not supported yet."""

    _fields = ("base", "setof")
    base: str | None
    setof: bool


FIX_RETURNS = "give one return type (integer, text, public.t), SETOF <type>, trigger or void"


def parse_returns(text: str) -> ReturnsClause:
    """Parse ``text`` as what follows ``RETURNS`` in CREATE FUNCTION, by parsing a whole probe
    ``CREATE FUNCTION … RETURNS <text> LANGUAGE sql AS ''`` with pglast. Raises SqlParseError."""
    if not isinstance(text, str) or not text.strip():
        raise SqlParseError(f"is empty{FIX_MARK}{FIX_RETURNS}")
    statements = _parse(text, "CREATE FUNCTION dbdeploy_probe() RETURNS ", " LANGUAGE sql AS ''", fix=FIX_RETURNS)
    if len(statements) != 1 or not isinstance(statements[0].stmt, ast.CreateFunctionStmt):
        raise SqlParseError(f"is not one return type{FIX_MARK}{FIX_RETURNS}")
    stmt = statements[0].stmt
    if stmt.options is None or len(stmt.options) != 2 or stmt.parameters:
        raise SqlParseError(f"adds clauses after the return type{FIX_MARK}{FIX_RETURNS}")
    type_name = stmt.returnType
    names = [n.sval for n in type_name.names]
    if type_name.pct_type:
        raise SqlParseError(f"is a %TYPE reference{FIX_MARK}{FIX_RETURNS}")
    if names[-1] not in ("trigger", "void", "record") or len(names) > 2:
        inner = TypeName(RawStream()(ast.TypeName(names=type_name.names, typmods=type_name.typmods,
                                                  arrayBounds=type_name.arrayBounds)))
        if not (len(names) == 2 and names[0] == "pg_catalog" and names[1] in PSEUDO_TYPES):
            _check_type_exists(names)
    else:
        inner = names[-1]
    return ReturnsClause(RawStream()(type_name), str(inner), bool(type_name.setof))


def check_function_definition(statement: str, language: str) -> None:
    """Parse a whole ``CREATE FUNCTION``/``CREATE PROCEDURE`` statement (dbdeploy's own rendering of a
    spec) with pglast, and its body too: a ``plpgsql`` body with PostgreSQL's PL/pgSQL parser
    (``pglast.parse_plpgsql``), an ``sql`` body as SQL statements. Raises SqlParseError naming the
    error and the fix."""
    from pglast import parse_plpgsql

    statements = _parse(statement)
    if len(statements) != 1 or not isinstance(statements[0].stmt, ast.CreateFunctionStmt):
        raise SqlParseError(f"is not one CREATE FUNCTION/PROCEDURE statement{FIX_MARK}check the name, args and returns")
    if language == "sql":
        bodies = [o.arg for o in statements[0].stmt.options or () if o.defname == "as"]
        for item in bodies[0] if bodies else ():
            try:
                parse_sql(item.sval)
            except ParseError as exc:
                raise SqlParseError(f"the SQL body does not parse: {exc.args[0]}{FIX_MARK}correct the body so "
                                    "that PostgreSQL accepts it") from None
    if language == "plpgsql":
        try:
            parse_plpgsql(statement)
        except ParseError as exc:
            raise SqlParseError(f"the PL/pgSQL body does not parse: {exc.args[0]}{FIX_MARK}correct the body so "
                                "that PostgreSQL accepts it") from None
        except Exception as exc:  # pglast raises plain errors for some PL/pgSQL problems
            raise SqlParseError(f"the PL/pgSQL body does not parse: {exc}{FIX_MARK}correct the body so "
                                "that PostgreSQL accepts it") from None
