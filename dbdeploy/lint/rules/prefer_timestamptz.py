"""timestamp without time zone."""

from __future__ import annotations

from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule

ID = "prefer-timestamptz"
SEVERITY = "warning"
PROBLEM = ("timestamp (without time zone) stores a wall-clock reading with no zone: the same instant reads "
           "differently from sessions with different TimeZone settings, and comparisons around DST changes are wrong.")
FIX = "Use timestamptz; it stores an absolute instant and takes the same 8 bytes."


def check(ctx: OpContext):
    for use in ctx.columns:
        if use.type.name == "timestamp":
            yield use.label()


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
