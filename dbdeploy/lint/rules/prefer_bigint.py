"""integer / smallint for ids and keys."""

from __future__ import annotations

from dbdeploy.lint import types
from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule

ID = "prefer-bigint"
SEVERITY = "warning"
PROBLEM = ("An id or key column (primary key, identity, foreign key, or named id / *_id) is integer or smallint. "
           "integer ids run out at 2,147,483,647, and widening the column later rewrites the table and every "
           "table that references it.")
FIX = ("Use bigint (8 bytes instead of 4; the difference rarely matters). Allow it with the reason when the column "
       "must match an existing integer key, e.g. an id issued by another system.")


def check(ctx: OpContext):
    for use in ctx.columns:
        if use.type.name in types.SMALL_INTEGERS and use.is_key:
            yield use.label()


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
