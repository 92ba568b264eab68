"""RawSQL that moves a sequence: ``setval(…)`` or ``ALTER SEQUENCE … RESTART``, in the forward."""

from __future__ import annotations

from pglast import ast
from pglast.visitors import Visitor

from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule
from dbdeploy.lint.sqlwalk import table_name

ID = "raw-sequence-position"
SEVERITY = "error"
PROBLEM = ("setval and ALTER SEQUENCE … RESTART are not undone by a transaction rollback and run again on every "
           "re-run of the forward: a retried deploy moves the sequence back behind values already handed out "
           "(the next insert fails with a duplicate key), and a RawSQL rollback cannot know the position to restore.")
FIX = ("Use SetSequenceValue(name, value) or AlterSequence(name, restart=…): the first run saves the position, a "
       "re-run leaves it, and the rollback restores it (refusing while rows hold the values it would hand out "
       "again).")


class _Setval(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found = False

    def visit_FuncCall(self, ancestors, node):  # noqa: N802 (pglast visitor naming)
        if node.funcname[-1].sval.lower() == "setval":
            self.found = True


def _moves(node) -> str | None:
    if isinstance(node, ast.AlterSeqStmt) and any(o.defname == "restart" for o in node.options or ()):
        return f"ALTER SEQUENCE {table_name(node.sequence)} RESTART"
    probe = _Setval()
    probe(node)
    return "setval(…)" if probe.found else None


def check(ctx: OpContext):
    for stmt in ctx.forward:
        what = _moves(stmt.node)
        if what:
            yield f"{stmt.label()} ({what})"


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
