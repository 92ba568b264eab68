"""RawSQL that adds an enum label (``ALTER TYPE … ADD VALUE``) and uses it in the same transaction."""

from __future__ import annotations

from pglast import ast
from pglast.visitors import Visitor

from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule

ID = "enum-value-used-in-transaction"
SEVERITY = "error"
PROBLEM = ("A label added with ALTER TYPE … ADD VALUE cannot be used until the transaction that added it has "
           "committed (PostgreSQL docs, ALTER TYPE; it fails with 'unsafe use of new value'), and before "
           "PostgreSQL 12 ADD VALUE cannot run inside a transaction block at all; the RawSQL runs both in one.")
FIX = ("Add the label with AddEnumValue(type=…, value=…, before=/after=…), which runs ADD VALUE in its own step "
       "outside a transaction block (with a rollback), and use the label in a later operation.")


class _Labels(Visitor):
    """The string constants of a statement."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def visit_A_Const(self, ancestors, node):  # noqa: N802 (pglast visitor naming)
        if isinstance(node.val, ast.String):
            self.found.append(node.val.sval)


def _constants(node) -> list[str]:
    probe = _Labels()
    probe(node)
    return probe.found


def check(ctx: OpContext):
    added: dict[tuple, dict[str, str]] = {}        # (body, transaction group) → label → where it was added
    for stmt in ctx.statements:
        node, key = stmt.node, (stmt.body, stmt.group)
        if isinstance(node, ast.AlterEnumStmt) and node.newVal and not node.oldVal:
            added.setdefault(key, {})[node.newVal] = stmt.where
            continue
        labels = added.get(key)
        if not labels or stmt.in_function:
            continue
        used = [c for c in _constants(node) if c in labels]
        for label in dict.fromkeys(used):
            yield f"{stmt.label()} (uses label '{label}' added by {labels[label]} in the same transaction)"


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
