"""char(n) / varchar(n) instead of text."""

from __future__ import annotations

from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule

ID = "prefer-text"
SEVERITY = "warning"
PROBLEM = ("char(n) pads values with spaces (and comparisons ignore them); varchar(n) is no faster than text, and "
           "changing its limit later is an ALTER COLUMN TYPE under an ACCESS EXCLUSIVE lock (with a full scan when "
           "it shrinks). A length limit is a business rule that belongs in a CHECK constraint.")
FIX = "Use text, with Check(expression=\"char_length(col) <= n\") when the limit matters."


def check(ctx: OpContext):
    for use in ctx.columns:
        if use.type.name == "bpchar" or (use.type.name == "varchar" and use.type.typmods):
            yield use.label()


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
