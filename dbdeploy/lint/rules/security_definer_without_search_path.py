"""SECURITY DEFINER functions without a pinned search_path: CreateFunction, ReplaceFunction (a subclass) and
RawSQL."""

from __future__ import annotations

from pglast import ast

from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule
from dbdeploy.ops import CreateFunction

ID = "security-definer-without-search-path"
SEVERITY = "error"
PROBLEM = ("A SECURITY DEFINER function runs with its owner's privileges but resolves unqualified names through "
           "the caller's search_path: any role that can create objects in a schema on that path (pg_temp always "
           "is) can plant a function or operator the body then calls as the owner (PostgreSQL docs, CREATE "
           "FUNCTION, \"Writing SECURITY DEFINER Functions Safely\").")
FIX = ("Pin the search path: CreateFunction(..., security_definer=True, search_path=\"pg_catalog, <schema>\"), or "
       "SET search_path = pg_catalog, <schema> in the RawSQL CREATE FUNCTION; schema-qualify everything else.")


def _options(node: ast.CreateFunctionStmt) -> dict[str, object]:
    return {o.defname: o.arg for o in node.options or () if isinstance(o, ast.DefElem)}


def check(ctx: OpContext):
    op = ctx.op
    if isinstance(op, CreateFunction):
        if op.security_definer and op.search_path is None:
            yield f"function {op.signature} is SECURITY DEFINER without search_path"
        return
    for stmt in ctx.statements:
        node = stmt.node
        if not isinstance(node, ast.CreateFunctionStmt):
            continue
        options = _options(node)
        security, setting = options.get("security"), options.get("set")
        pinned = isinstance(setting, ast.VariableSetStmt) and setting.name == "search_path"
        if isinstance(security, ast.Boolean) and security.boolval and not pinned:
            name = ".".join(n.sval for n in node.funcname)
            yield f"{stmt.label()} (function {name} is SECURITY DEFINER without SET search_path)"


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
