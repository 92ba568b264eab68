"""json instead of jsonb."""

from __future__ import annotations

from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule

ID = "prefer-jsonb"
SEVERITY = "warning"
PROBLEM = ("json stores the text as given and re-parses it on every access; it has no equality operator, so it "
           "cannot be indexed, compared, grouped or used in DISTINCT.")
FIX = "Use jsonb (unless the exact original text, key order and duplicate keys must be kept)."


def check(ctx: OpContext):
    for use in ctx.columns:
        if use.type.name == "json":
            yield use.label()


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
