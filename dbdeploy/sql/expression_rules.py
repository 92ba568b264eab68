"""Static rules for the SQL expressions a spec puts into a column default, a CHECK or an index.

PostgreSQL refuses some expressions only when the bundle runs (leaving a ``failed`` version), and
accepts others that do harm on every write to the table. Both are refused at ``generate`` here,
from pglast's parse tree and :mod:`dbdeploy.sql.builtin_catalog` (the built-in functions' volatility,
kind and set-returning flag, read from ``pg_proc`` — no database is needed):

================================  =======  =====  ===================================
rule                              DEFAULT  CHECK  index key / partial-index ``where``
================================  =======  =====  ===================================
subquery                          refused  refused  refused                (PostgreSQL)
column reference                  refused  —        —                      (PostgreSQL)
aggregate / window function       refused  refused  refused                (PostgreSQL)
set-returning function            refused  refused  refused                (PostgreSQL)
``$1`` parameter                  refused  refused  refused                (PostgreSQL)
built-in function not IMMUTABLE   —        —        refused                (PostgreSQL)
function with side effects        refused  refused  refused                (dbdeploy)
================================  =======  =====  ===================================

"PostgreSQL" rows are errors PostgreSQL raises when it creates the object; "dbdeploy" is a policy:
``pg_sleep``, advisory locks, ``set_config``, ``pg_terminate_backend``, large-object and file
functions, ``nextval`` in a CHECK and the like run on every insert or update (and during
``VALIDATE``), where they hang writers or change server state. ``nextval`` stays allowed in a
default. Functions outside ``pg_catalog`` (schema-qualified user or extension functions) have an
unknown volatility here: they are allowed, and PostgreSQL checks them when the bundle runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from pglast import parse_sql
from pglast.parser import ParseError
from pglast.visitors import Visitor

from dbdeploy.errors import FIX_MARK
from dbdeploy.sql.builtin_catalog import FUNCTIONS


@dataclass(frozen=True)
class _Place:
    """Where an expression goes: its name in messages, PostgreSQL's name for it, and what to do instead."""

    what: str
    pg_name: str
    runs: str
    subquery_fix: str


DEFAULT = _Place("column default", "DEFAULT expressions", "on every insert that does not set the column",
                 "use a constant or a function call such as now(); to fill the column from other rows or "
                 "tables use a Backfill")
CHECK = _Place("CHECK expression", "check constraints",
               "on every insert and update of the table, and for every row while the constraint is validated",
               "check only the row's own columns; to require a matching row in another table use a foreign "
               "key (AddForeignKey)")
INDEX = _Place("index expression", "index expressions",
               "on every insert and update of the table, and for every row while the index is built",
               "index only the table's own columns and IMMUTABLE functions of them")
PREDICATE = _Place("partial-index predicate (where)", "index predicates",
                   "on every insert and update of the table, and for every row while the index is built",
                   "use only the table's own columns and IMMUTABLE functions of them")
GENERATED = _Place("generation expression (generated)", "generation expressions",
                   "on every insert and update of the row", "compute the value from the row's own columns with "
                   "IMMUTABLE functions; to fill it from other rows or tables use a plain column and a Backfill")

# Functions whose call has an effect beyond computing a value. Matched on the function's own name,
# whatever its schema (dblink and adminpack are extensions), before any other rule.
_SIDE_EFFECTS = {
    "pg_sleep": "sleeps, holding the row's locks",
    "pg_sleep_for": "sleeps, holding the row's locks",
    "pg_sleep_until": "sleeps, holding the row's locks",
    "set_config": "changes a setting of the session",
    "setval": "moves a sequence",
    "pg_terminate_backend": "ends another session",
    "pg_cancel_backend": "cancels another session's query",
    "pg_reload_conf": "reloads the server configuration",
    "pg_rotate_logfile": "rotates the server log",
    "pg_notify": "sends a notification",
    "pg_current_xact_id": "assigns a transaction id",
    "txid_current": "assigns a transaction id",
    "pg_create_restore_point": "writes to the WAL",
    "pg_switch_wal": "switches the WAL file",
    "pg_backup_start": "starts a backup", "pg_backup_stop": "stops a backup",
    "pg_start_backup": "starts a backup", "pg_stop_backup": "stops a backup",
    "pg_promote": "promotes a standby",
    "pg_drop_replication_slot": "drops a replication slot",
    "pg_logical_emit_message": "writes to the WAL",
    "pg_export_snapshot": "exports a snapshot",
    "pg_log_backend_memory_contexts": "writes to the server log",
    "pg_import_system_collations": "creates collations",
    "pg_read_file": "reads a server file", "pg_read_binary_file": "reads a server file",
    "pg_stat_file": "reads a server file's status",
    "pg_file_write": "writes a server file", "pg_file_rename": "renames a server file",
    "pg_file_unlink": "deletes a server file", "pg_file_sync": "syncs a server file",
    "loread": "reads a large object", "lowrite": "writes a large object",
    "pg_stat_clear_snapshot": "discards the statistics snapshot",
}
_SIDE_EFFECT_PREFIXES = {
    "pg_advisory_": "takes an advisory lock", "pg_try_advisory_": "takes an advisory lock",
    "lo_": "works on large objects", "dblink": "runs SQL on another connection",
    "query_to_xml": "runs the SQL text it is given", "table_to_xml": "reads a whole table",
    "cursor_to_xml": "reads a cursor", "schema_to_xml": "reads a whole schema",
    "database_to_xml": "reads the whole database", "pg_stat_reset": "resets statistics",
    "pg_create_": "creates a replication slot", "pg_replication_origin_": "changes replication state",
    "pg_wal_replay_": "pauses or resumes WAL replay", "pg_ls_": "lists server directories",
}
# Harmless in a default (each insert takes the next value), a side effect anywhere else.
_SEQUENCE_ADVANCE = {"nextval": "advances a sequence"}

_SQL_VALUE_FUNCTIONS = {
    # SQLValueFunctionOp, in pglast's order: none of them is IMMUTABLE.
    "SVFOP_CURRENT_DATE": "CURRENT_DATE", "SVFOP_CURRENT_TIME": "CURRENT_TIME",
    "SVFOP_CURRENT_TIME_N": "CURRENT_TIME", "SVFOP_CURRENT_TIMESTAMP": "CURRENT_TIMESTAMP",
    "SVFOP_CURRENT_TIMESTAMP_N": "CURRENT_TIMESTAMP", "SVFOP_LOCALTIME": "LOCALTIME",
    "SVFOP_LOCALTIME_N": "LOCALTIME", "SVFOP_LOCALTIMESTAMP": "LOCALTIMESTAMP",
    "SVFOP_LOCALTIMESTAMP_N": "LOCALTIMESTAMP", "SVFOP_CURRENT_ROLE": "CURRENT_ROLE",
    "SVFOP_CURRENT_USER": "CURRENT_USER", "SVFOP_USER": "USER", "SVFOP_SESSION_USER": "SESSION_USER",
    "SVFOP_CURRENT_CATALOG": "CURRENT_CATALOG", "SVFOP_CURRENT_SCHEMA": "CURRENT_SCHEMA",
}


def side_effect(name: str, place: _Place) -> str | None:
    """What calling function ``name`` (unqualified, lowercase) does besides returning a value, or None."""
    if name in _SIDE_EFFECTS:
        return _SIDE_EFFECTS[name]
    if place is not DEFAULT and name in _SEQUENCE_ADVANCE:
        return _SEQUENCE_ADVANCE[name]
    return next((why for prefix, why in _SIDE_EFFECT_PREFIXES.items() if name.startswith(prefix)), None)


def builtin_facts(names: list[str]) -> tuple[str, str, str] | None:
    """``(volatilities, returns-set flags, kinds)`` of a built-in function over all its overloads, or
    None when the call is not to a ``pg_catalog`` function (schema-qualified elsewhere, or unknown)."""
    if len(names) > 2 or (len(names) == 2 and names[0] != "pg_catalog"):
        return None
    return FUNCTIONS.get(names[-1])


class _Walker(Visitor):
    """Collects the first violation of ``place``'s rules in an expression tree."""

    def __init__(self, place: _Place) -> None:
        super().__init__()
        self.place = place
        self.problem: str | None = None

    def _refuse(self, message: str) -> None:
        if self.problem is None:
            self.problem = message

    def visit_SubLink(self, ancestors, node):  # noqa: N802 (pglast visitor naming)
        self._refuse(f"contains a subquery, which PostgreSQL does not allow in {self.place.pg_name}"
                     f"{FIX_MARK}{self.place.subquery_fix}")

    def visit_ColumnRef(self, ancestors, node):  # noqa: N802
        if self.place is DEFAULT:
            name = ".".join(getattr(f, "sval", "*") for f in node.fields)
            self._refuse(f"refers to the column {name!r}; PostgreSQL does not allow column references in DEFAULT "
                         f"expressions{FIX_MARK}if you meant the text {name!r}, quote it: \"'{name}'\"; to derive "
                         "the value from other columns, fill it with a Backfill")

    def visit_ParamRef(self, ancestors, node):  # noqa: N802
        self._refuse(f"uses the parameter ${node.number}, which has no value in DDL{FIX_MARK}"
                     "write the value itself")

    def visit_GroupingFunc(self, ancestors, node):  # noqa: N802
        self._refuse(f"calls GROUPING(), which PostgreSQL does not allow in {self.place.pg_name}"
                     f"{FIX_MARK}remove it")

    def visit_SQLValueFunction(self, ancestors, node):  # noqa: N802
        if self.place in (INDEX, PREDICATE, GENERATED):
            op = getattr(node.op, "name", str(node.op))
            shown = _SQL_VALUE_FUNCTIONS.get(op, op)
            self._refuse(f"uses {shown}, which is not IMMUTABLE (its value depends on the time or session); "
                         f"PostgreSQL allows only IMMUTABLE functions in {self.place.pg_name}{FIX_MARK}"
                         "store the value in a column (AddColumn with a default, or a Backfill) and index that")

    def visit_FuncCall(self, ancestors, node):  # noqa: N802
        names = [n.sval.lower() for n in node.funcname]
        name = names[-1]
        call = f"{'.'.join(names)}()"
        where = f"in a {self.place.what}"
        effect = side_effect(name, self.place)
        if effect is not None:
            self._refuse(f"calls {call}, which {effect}: {where} it would run {self.place.runs}, holding up "
                         f"writers or changing server state{FIX_MARK}remove the call from the {self.place.what}")
            return
        facts = builtin_facts(names)
        volatilities, returns_set, kinds = facts if facts else ("", "", "")
        if node.over is not None or kinds == "w":
            self._refuse(f"calls the window function {call}, which PostgreSQL does not allow in "
                         f"{self.place.pg_name}{FIX_MARK}compute it in a Backfill or a view instead")
        elif node.agg_star or node.agg_distinct or node.agg_order or node.agg_filter or kinds == "a":
            self._refuse(f"calls the aggregate function {call}, which PostgreSQL does not allow in "
                         f"{self.place.pg_name}{FIX_MARK}an expression here sees one row; compute totals in a "
                         "Backfill or a view instead")
        elif returns_set == "t":
            self._refuse(f"calls {call}, which returns a set of rows; PostgreSQL does not allow set-returning "
                         f"functions in {self.place.pg_name}{FIX_MARK}use one value; for several values use an "
                         "array, e.g. ARRAY[1, 2, 3]")
        elif self.place in (INDEX, PREDICATE, GENERATED) and facts and "i" not in volatilities:
            kind = "VOLATILE" if "v" in volatilities else "STABLE"
            self._refuse(f"calls {call}, which is {kind}, not IMMUTABLE; PostgreSQL allows only IMMUTABLE functions "
                         f"in {self.place.pg_name}{FIX_MARK}store the value in a column (AddColumn, Backfill) and "
                         "index that column")


def _check(node, place: _Place, text: str) -> None:
    walker = _Walker(place)
    walker(node)
    if walker.problem is not None:
        raise ValueError(f"{place.what} {text!r} {walker.problem}")


def _expression_node(text: str):
    """The parse tree of one expression (already validated by parse_expression), or None if it does not parse."""
    try:
        return parse_sql(f"SELECT {text}")[0].stmt.targetList[0].val
    except (ParseError, IndexError, AttributeError):
        return None


def check_default(text: str) -> None:
    """Raise ValueError (reason — fix) when ``text`` cannot be a column default (rules in the module doc)."""
    node = _expression_node(text)
    if node is not None:
        _check(node, DEFAULT, text)


def check_constraint_expression(text: str) -> None:
    """Raise ValueError (reason — fix) when ``text`` cannot be a CHECK expression."""
    node = _expression_node(text)
    if node is not None:
        _check(node, CHECK, text)


def check_generation_expression(text: str) -> None:
    """Raise ValueError (reason — fix) when ``text`` cannot be a stored generated column's expression
    (PostgreSQL: only IMMUTABLE functions, no subquery, no aggregate or window function)."""
    node = _expression_node(text)
    if node is not None:
        _check(node, GENERATED, text)


def check_index_predicate(text: str) -> None:
    """Raise ValueError (reason — fix) when ``text`` cannot be a partial index's WHERE."""
    node = _expression_node(text)
    if node is not None:
        _check(node, PREDICATE, text)


def check_index_key(text: str) -> None:
    """Raise ValueError (reason — fix) when the index key ``text`` (a column or an expression) cannot be indexed."""
    try:
        element = parse_sql(f"CREATE INDEX dbdeploy_probe ON dbdeploy_probe ({text})")[0].stmt.indexParams[0]
    except (ParseError, IndexError, AttributeError, TypeError):
        return
    if element.expr is not None:
        _check(element.expr, INDEX, text)


def index_key_is_ordered(text: str) -> bool:
    """Whether the index key ``text`` has ASC/DESC or NULLS FIRST/LAST (only btree supports them)."""
    try:
        element = parse_sql(f"CREATE INDEX dbdeploy_probe ON dbdeploy_probe ({text})")[0].stmt.indexParams[0]
    except (ParseError, IndexError, AttributeError, TypeError):
        return False
    return element.ordering.name != "SORTBY_DEFAULT" or element.nulls_ordering.name != "SORTBY_NULLS_DEFAULT"


__all__ = ["builtin_facts", "check_constraint_expression", "check_default", "check_index_key",
           "check_index_predicate", "index_key_is_ordered", "side_effect"]
