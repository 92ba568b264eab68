"""AddColumn with a volatile default on a table that already holds rows."""

from __future__ import annotations

from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule
from dbdeploy.ops import AddColumn

ID = "volatile-default"
SEVERITY = "warning"
PROBLEM = ("A volatile default (gen_random_uuid(), clock_timestamp(), nextval(), …) needs a value per existing row. "
           "dbdeploy fills them in batches instead of rewriting the table under a lock, but it is still a write of "
           "every row: WAL volume, replication lag, dead tuples and time proportional to the table.")
FIX = ("Make sure that is intended and size it first (the checklist has the row estimate); prefer a constant "
       "default, or leave old rows NULL and set the default only for new ones if that is acceptable.")


def check(ctx: OpContext):
    op = ctx.op
    if isinstance(op, AddColumn) and op.column.default_is_volatile and not ctx.is_new(op.table):
        yield (f"column {op.table}.{op.column.name} DEFAULT {op.column.default}: every existing row of {op.table} "
               "is written by the batched fill")


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
