"""Issue 11, item 3: a plain ``str`` never becomes SQL, except a literal constant.

psycopg's ``sql.SQL(text)`` trusts ``text`` completely, so every call of it in ``dbdeploy/`` (spelt
``sql.SQL``, ``SQL`` or the modules' alias ``S``) must get a string written in the source: a string
literal, a concatenation of literals, or a module-level constant name bound to one. Everything else
enters SQL as a Composable: identifiers (``sql.Identifier``), literals (``sql.Literal``), a spec's
parsed expression or type (``Expression.sql()``, ``TypeName.sql()``, ``IndexElement.sql()``), or SQL
composed from those with ``S("… {} …").format(…)`` — the template is a literal, and psycopg makes any
non-Composable argument a Literal, so ``.format()`` is fine.

Refused: f-strings (``S(f"… {x} …")`` puts ``x``'s text into SQL unquoted: compose with ``.format``),
``%``-formatting, ``str.format`` on a plain string, ``render(...)`` output wrapped again, names of
variables and parameters, attribute reads. The test walks the source with :mod:`ast` and names
every offending ``file:line``.

The allow-list below names the only functions that may pass a non-literal to ``sql.SQL``; each takes
SQL that is already trusted (a Composable, or a spec fragment that pglast parsed and re-rendered),
with the reason in one line. No database is needed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dbdeploy"

# (file relative to dbdeploy/, qualified function name) → why the text it wraps is trusted.
ALLOWED: dict[tuple[str, str], str] = {
    ("sql/parse.py", "TrustedText.sql"):
        "the text is pglast's rendering of one parsed expression/type/index key, never the spec's own text",
    ("sql/parse.py", "Expression.default_sql"):
        "the same rendering, parenthesized by column_default() where DEFAULT's grammar needs it",
    ("sql/blocks.py", "indented"):
        "re-indents render(c) of a Composable c (checked at run time) between tokens only",
    ("sql/blocks.py", "do_block_sql"):
        "wraps do_block() of a Composable body (checked at run time) in a DO $…$ block",
    ("sql/quote.py", "dollar_quoted"):
        "render(c) of a Composable c (checked at run time) inside a dollar quote whose tag does not occur in it",
    ("sql/quote.py", "line_comment"):
        "'-- ' + text with every line break (\\n, \\r) replaced: nothing can leave the comment",
    # catalog_checks.py runs inside the generated tests with psycopg only (its source is embedded, so an
    # edit changes every golden test file): the text it wraps is the bundle's own expectations (dbdeploy's
    # rendering of parsed spec SQL, or a constant), trusted as the bundle's SQL is.
    ("bundle/catalog_checks.py", "_probe_column"): "type and default text from the bundle's expectations",
    ("bundle/catalog_checks.py", "check_index"): "index keys, method and predicate from the bundle's expectations",
    ("bundle/catalog_checks.py", "_generated_problem"): "column type and generation expression from the bundle's "
                                                        "expectations",
    ("bundle/catalog_checks.py", "sequence_problems"): "\"max\" or \"min\", chosen by a comparison",
    ("bundle/catalog_checks.py", "check_view"): "a view's query from the bundle's expectations (pglast's rendering)",
    ("bundle/catalog_checks.py", "check_domain_type"): "base type, default and CHECK texts from the bundle's "
                                                       "expectations (issue 13)",
    ("bundle/catalog_checks.py", "check_composite_type"): "attribute types from the bundle's expectations (issue 13)",
}

# Names the modules bind to psycopg.sql.SQL.
CONSTRUCTORS = frozenset({"S", "SQL"})


def _is_constructor(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in CONSTRUCTORS
    return isinstance(func, ast.Attribute) and func.attr == "SQL" and isinstance(func.value, ast.Name) \
        and func.value.id == "sql"


def _literal(node: ast.expr, constants: frozenset[str]) -> bool:
    """A string written in the source: a literal, literals joined with ``+``, or a constant's name."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _literal(node.left, constants) and _literal(node.right, constants)
    return isinstance(node, ast.Name) and node.id in constants


def _module_constants(tree: ast.Module) -> frozenset[str]:
    """Module-level names bound once, to a literal string (``NAME = "…"``)."""
    found: dict[str, int] = {}
    literal: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) and node.value is not None else []
        for target in targets:
            if isinstance(target, ast.Name):
                found[target.id] = found.get(target.id, 0) + 1
                if _literal(node.value, frozenset(literal)):
                    literal.add(target.id)
    return frozenset(name for name in literal if found[name] == 1)


def _why(node: ast.expr) -> str:
    if isinstance(node, ast.JoinedStr):
        return "an f-string (compose with S(\"… {} …\").format(...) instead)"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return "%-formatting"
    if isinstance(node, ast.Call):
        return "a computed string (a call's result)"
    return "not a string literal"


class _Finder(ast.NodeVisitor):
    def __init__(self, path: str, constants: frozenset[str]) -> None:
        self.path = path
        self.constants = constants
        self.scope: list[str] = []
        self.found: list[tuple[str, int, str, str]] = []   # (path, line, function, message)
        self.allowed_seen: set[tuple[str, str]] = set()

    def _scoped(self, node) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped  # noqa: N815

    def visit_Call(self, node: ast.Call) -> None:  # noqa: N802
        for keyword in node.keywords:
            # do_block(..., declare=[...]): a declaration is text in the block; a computed one is composed
            if keyword.arg == "declare":
                for item in ast.walk(keyword.value):
                    if isinstance(item, ast.JoinedStr):
                        self.found.append((self.path, item.lineno, ".".join(self.scope) or "<module>",
                                           f"declare=[{ast.unparse(item)[:80]}]: an f-string (compose it with "
                                           "S(\"… {}\").format(...))"))
        if _is_constructor(node.func):
            args = list(node.args) + [k.value for k in node.keywords]
            bad = [a for a in args if not _literal(a, self.constants)]
            if bad:
                where = ".".join(self.scope) or "<module>"
                if (self.path, where) in ALLOWED:
                    self.allowed_seen.add((self.path, where))
                else:
                    for arg in bad:
                        self.found.append((self.path, node.lineno, where,
                                           f"{ast.unparse(node)[:100]}: argument is {_why(arg)}"))
        self.generic_visit(node)


def _imported_constants(tree: ast.Module, constants: dict[str, frozenset[str]]) -> frozenset[str]:
    """Names a module imports (``from dbdeploy.x import NAME``) that are literal constants there."""
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module in constants:
            found |= {alias.asname or alias.name for alias in node.names if alias.name in constants[node.module]}
    return frozenset(found)


def _scan() -> tuple[list[tuple[str, int, str, str]], set[tuple[str, str]]]:
    found: list[tuple[str, int, str, str]] = []
    seen: set[tuple[str, str]] = set()
    trees = {file: ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
             for file in sorted(PACKAGE.rglob("*.py"))}
    module = {file: ".".join(("dbdeploy", *file.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
              for file in trees}
    constants = {module[file]: _module_constants(tree) for file, tree in trees.items()}
    for file, tree in trees.items():
        names = constants[module[file]] | _imported_constants(tree, constants)
        finder = _Finder(file.relative_to(PACKAGE).as_posix(), names)
        finder.visit(tree)
        found += finder.found
        seen |= finder.allowed_seen
    return found, seen


def test_no_str_becomes_sql_except_literals() -> None:
    found, _seen = _scan()
    assert not found, ("sql.SQL()/S() with a non-literal argument (a plain str must not become SQL; compose "
                       "identifiers, literals and parsed expressions instead):\n"
                       + "\n".join(f"dbdeploy/{p}:{line} in {fn}: {msg}" for p, line, fn, msg in found))


def test_allow_list_is_current() -> None:
    """Every allow-listed function exists and still needs its exemption (no stale entries)."""
    _found, seen = _scan()
    assert set(ALLOWED) == seen, f"stale allow-list entries: {sorted(set(ALLOWED) - seen)}"


@pytest.mark.parametrize(("source", "refused"), [
    ('S("SELECT 1")', False),
    ('S("SELECT " + "1")', False),
    ('S(CONST)', False),
    ('S("a {}").format(x)', False),
    ('S(f"SELECT {x}")', True),
    ('S("SELECT %s" % x)', True),
    ('S("SELECT {}".format(x))', True),
    ('sql.SQL(x)', True),
    ('S(render(c))', True),
    ('S(obj.text)', True),
    ('S(sql="x")', False),
    ('S(sql=x)', True),
    ('do_block(c, declare=["v_n bigint"])', False),
    ('do_block(c, declare=[f"v_n bigint := {x}"])', True),
])
def test_the_rule(source: str, refused: bool) -> None:
    """The checker itself: what counts as a literal and what is refused."""
    tree = ast.parse(f'CONST = "x"\ndef f(x, c, obj):\n    return {source}\n')
    finder = _Finder("example.py", _module_constants(tree))
    finder.visit(tree)
    assert bool(finder.found) is refused, finder.found
