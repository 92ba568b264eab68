"""A Backfill with no key on a table whose primary key the specs do not know."""

from __future__ import annotations

from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule
from dbdeploy.ops import Backfill

ID = "backfill-without-key"
SEVERITY = "error"
PROBLEM = ("A Backfill works in batches ordered by a unique key (and resumes from it after a failure). Without "
           "key=[…] it uses the table's primary key, which the specs know only for tables they created with one: "
           "here there is none to use, so the batches cannot be formed.")
FIX = ("Set key=[…] to the table's primary key or another unique, NOT NULL, indexed column list, e.g. "
       "Backfill(table=…, set={…}, key=[\"id\"]).")


def check(ctx: OpContext):
    op = ctx.op
    if isinstance(op, Backfill) and not op.key and ctx.before.primary_key(op.table) is None:
        known = "has no primary key in the specs" if op.table in ctx.before.schema.tables else \
            "was not created by the specs, so its primary key is unknown"
        yield f"backfill of {op.table} without key=[…]: {op.table} {known}"


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check, allowable=False)
