"""Comparable snapshots of a database's schema, straight from the system catalogs.

Round-trip tests (apply -> rollback, or "migrated database == database built from the spec")
need to compare *what PostgreSQL actually has*, not what dbdeploy believes it generated.
:func:`snapshot` reads the catalogs and returns plain dicts/lists/strings, so two snapshots
can be compared with ``==`` and :func:`diff` can explain a mismatch.

Design choices, each for a reason:

* Columns are keyed by **name**, not position: a rollback that re-adds a dropped column puts
  it at the end (and leaves an ``attisdropped`` hole), which is semantically the same table.
* Constraint and index **validity** is included: ``NOT VALID`` constraints and indexes left
  invalid by a failed ``CREATE INDEX CONCURRENTLY`` are exactly the states a migration tool
  can get wrong while the DDL text still looks right.
* Expressions are rendered with ``search_path = pg_catalog`` so user objects always come out
  schema-qualified, making the output independent of the caller's search_path.
* Owners, OIDs, tablespaces, statistics and sequence positions are left out: they differ
  between equivalent databases (and between servers) without meaning anything.
* Objects belonging to extensions are skipped; the extension itself is listed by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

DEFAULT_EXCLUDED_SCHEMAS = ("migrations", "dbdeploy_backup")

# Shared filter: user schemas only.  "pg_" is a reserved prefix, so this drops pg_catalog,
# pg_toast, pg_temp_N and pg_toast_temp_N in one go.
_USER_NS = sql.SQL("""
    n.nspname NOT LIKE 'pg\\_%%'
    AND n.nspname <> 'information_schema'
    AND n.nspname <> ALL(%(excluded)s::text[])
""")
# Skip objects created by CREATE EXTENSION (e.g. postgis' spatial_ref_sys).
# Indexes are not recorded as extension members themselves, so they are filtered by table.
_EXTENSION_MEMBER_TEST = sql.SQL("""
    NOT EXISTS (
        SELECT 1 FROM pg_depend d
        WHERE d.classid = 'pg_class'::regclass AND d.objid = {oid} AND d.deptype = 'e'
    )
""")
_NOT_EXTENSION_MEMBER = _EXTENSION_MEMBER_TEST.format(oid=sql.SQL("c.oid"))
_TABLE_NOT_EXTENSION_MEMBER = _EXTENSION_MEMBER_TEST.format(oid=sql.SQL("i.indrelid"))


def _q(template: str) -> sql.Composed:
    """Compose a catalog query with the shared filters (sql.SQL, never string formatting)."""
    return sql.SQL(template).format(
        user_ns=_USER_NS,
        not_ext=_NOT_EXTENSION_MEMBER,
        table_not_ext=_TABLE_NOT_EXTENSION_MEMBER,
    )


_RELKIND_TABLE = {"r": "table", "p": "partitioned table", "f": "foreign table"}
_RELKIND_VIEW = {"v": "view", "m": "materialized view"}
_CONTYPE = {
    "c": "CHECK",
    "f": "FOREIGN KEY",
    "p": "PRIMARY KEY",
    "u": "UNIQUE",
    "x": "EXCLUDE",
    "t": "TRIGGER",
    "n": "NOT NULL",
}
_IDENTITY = {"a": "ALWAYS", "d": "BY DEFAULT"}
_GENERATED = {"s": "STORED", "v": "VIRTUAL"}


def _fetch(conn: psycopg.Connection, query: str | sql.Composable, params: dict[str, Any]) -> list[tuple]:
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def snapshot(
    conn: psycopg.Connection, exclude_schemas: Iterable[str] = DEFAULT_EXCLUDED_SCHEMAS
) -> dict[str, Any]:
    """Describe the user objects of the connected database as comparable plain data.

    Returns ``{"schemas", "tables", "indexes", "views", "sequences", "extensions"}``; tables
    carry their ``columns`` (by name) and ``constraints`` (by name).  Schemas listed in
    ``exclude_schemas`` (dbdeploy's own bookkeeping by default) are ignored entirely.
    """
    params = {"excluded": list(exclude_schemas)}
    with conn.transaction():
        old_path = _fetch(conn, "SELECT current_setting('search_path')", {})[0][0]
        _fetch(conn, "SELECT set_config('search_path', 'pg_catalog', true)", {})
        try:
            result = _snapshot(conn, params)
        finally:
            _fetch(conn, "SELECT set_config('search_path', %(p)s, true)", {"p": old_path})
    return result


def _snapshot(conn: psycopg.Connection, params: dict[str, Any]) -> dict[str, Any]:
    schemas = {
        name: {"comment": comment}
        for name, comment in _fetch(
            conn,
            _q("""
            SELECT n.nspname, obj_description(n.oid, 'pg_namespace')
            FROM pg_namespace n
            WHERE {user_ns}
            ORDER BY 1
            """),
            params,
        )
    }

    tables: dict[str, Any] = {}
    for qname, relkind, persistence, comment, partition_key, partition_of, bound in _fetch(
        conn,
        _q("""
        SELECT c.oid::regclass::text, c.relkind, c.relpersistence, obj_description(c.oid, 'pg_class'),
               pg_get_partkeydef(c.oid),
               (SELECT i.inhparent::regclass::text FROM pg_inherits i WHERE i.inhrelid = c.oid AND c.relispartition),
               pg_get_expr(c.relpartbound, c.oid)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'f') AND {user_ns} AND {not_ext}
        ORDER BY 1
        """),
        params,
    ):
        tables[qname] = {
            "kind": _RELKIND_TABLE[relkind],
            "unlogged": persistence == "u",
            "comment": comment,
            "columns": {},
            "constraints": {},
            "partitioning": (partition_key, partition_of, bound),
        }

    for qname, col, typ, notnull, default, identity, generated, collation, comment in _fetch(
        conn,
        _q("""
        SELECT c.oid::regclass::text, a.attname,
               format_type(a.atttypid, a.atttypmod),
               a.attnotnull,
               pg_get_expr(ad.adbin, ad.adrelid),
               a.attidentity, a.attgenerated,
               CASE WHEN a.attcollation <> t.typcollation THEN a.attcollation::regcollation::text END,
               col_description(c.oid, a.attnum)
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
        WHERE c.relkind IN ('r', 'p', 'f') AND a.attnum > 0 AND NOT a.attisdropped
          AND {user_ns} AND {not_ext}
        ORDER BY 1, 2
        """),
        params,
    ):
        tables[qname]["columns"][col] = {
            "type": typ,
            "not_null": notnull,
            "default": default,
            "identity": _IDENTITY.get(identity),
            "generated": _GENERATED.get(generated),
            "collation": collation,
            "comment": comment,
        }

    for qname, conname, contype, definition, validated, comment in _fetch(
        conn,
        _q("""
        SELECT c.oid::regclass::text, co.conname, co.contype,
               pg_get_constraintdef(co.oid), co.convalidated,
               obj_description(co.oid, 'pg_constraint')
        FROM pg_constraint co
        JOIN pg_class c ON c.oid = co.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'f') AND {user_ns} AND {not_ext}
        ORDER BY 1, 2
        """),
        params,
    ):
        tables[qname]["constraints"][conname] = {
            "type": _CONTYPE.get(contype, contype),
            "definition": definition,
            "validated": validated,
            "comment": comment,
        }

    indexes = {
        qname: {
            "table": table,
            "definition": definition,
            "valid": valid,
            "unique": unique,
            "primary": primary,
            "comment": comment,
        }
        for qname, table, definition, valid, unique, primary, comment in _fetch(
            conn,
            _q("""
            SELECT i.indexrelid::regclass::text, i.indrelid::regclass::text,
                   pg_get_indexdef(i.indexrelid), i.indisvalid, i.indisunique, i.indisprimary,
                   obj_description(i.indexrelid, 'pg_class')
            FROM pg_index i
            JOIN pg_class c ON c.oid = i.indexrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE {user_ns} AND {table_not_ext}
            ORDER BY 1
            """),
            params,
        )
    }

    views = {
        qname: {"kind": _RELKIND_VIEW[relkind], "definition": definition, "comment": comment,
                "options": options, "columns": columns, "acl": acl, "populated": populated}
        for qname, relkind, definition, comment, options, columns, acl, populated in _fetch(
            conn,
            _q("""
            SELECT c.oid::regclass::text, c.relkind, pg_get_viewdef(c.oid, true),
                   obj_description(c.oid, 'pg_class'), c.reloptions::text[],
                   ARRAY(SELECT a.attname || ' ' || format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
                         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
                   c.relacl::text[], c.relispopulated
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('v', 'm') AND {user_ns} AND {not_ext}
            ORDER BY 1
            """),
            params,
        )
    }

    sequences = {
        qname: {
            "type": typ,
            "start": start,
            "increment": increment,
            "min": minv,
            "max": maxv,
            "cache": cache,
            "cycle": cycle,
            "owned_by": owned_by,
            "identity": identity,
        }
        for qname, typ, start, increment, minv, maxv, cache, cycle, owned_by, identity in _fetch(
            conn,
            _q("""
            SELECT c.oid::regclass::text, format_type(s.seqtypid, NULL),
                   s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
                   dep.refobjid::regclass::text || '.' || quote_ident(a.attname),
                   COALESCE(dep.deptype = 'i', false)
            FROM pg_sequence s
            JOIN pg_class c ON c.oid = s.seqrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN pg_depend dep
                   ON dep.classid = 'pg_class'::regclass AND dep.objid = c.oid
                  AND dep.refclassid = 'pg_class'::regclass AND dep.deptype IN ('a', 'i')
            LEFT JOIN pg_attribute a ON a.attrelid = dep.refobjid AND a.attnum = dep.refobjsubid
            WHERE {user_ns} AND {not_ext}
            ORDER BY 1
            """),
            params,
        )
    }

    extensions = [row[0] for row in _fetch(conn, "SELECT extname FROM pg_extension ORDER BY 1", params)]

    # Functions and procedures (issue 13): the whole definition as PostgreSQL prints it, owner and ACL.
    functions = {
        signature: {"definition": definition, "acl": acl, "comment": comment}
        for signature, definition, acl, comment in _fetch(
            conn,
            _q("""
            SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid), p.proacl::text,
                   obj_description(p.oid, 'pg_proc')
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE p.prokind IN ('f', 'p') AND {user_ns}
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                              AND d.objid = p.oid AND d.deptype = 'e')
            ORDER BY 1
            """),
            params,
        )
    }

    triggers = {
        f"{table}.{name}": {"definition": definition, "enabled": enabled}
        for table, name, definition, enabled in _fetch(
            conn,
            _q("""
            SELECT c.oid::regclass::text, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled::text
            FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE NOT t.tgisinternal AND {user_ns} AND {not_ext}
            ORDER BY 1, 2
            """),
            params,
        )
    }

    # Every comment on an object of a user schema (and on the user schemas themselves), whatever its
    # kind: functions, types, domains, triggers, sequences … too, by pg_describe_object (issue 13, CommentOn).
    comments = {
        what: text
        for what, text in _fetch(
            conn,
            _q("""
            SELECT pg_describe_object(d.classoid, d.objoid, d.objsubid), d.description
            FROM pg_description d
            CROSS JOIN LATERAL pg_identify_object(d.classoid, d.objoid, d.objsubid) o
            JOIN pg_namespace n
              ON n.nspname = COALESCE(o.schema, CASE WHEN o.type = 'schema' THEN o.name END)
            WHERE {user_ns}
              AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = d.classoid AND e.objid = d.objoid
                              AND e.deptype = 'e')
            ORDER BY 1
            """),
            params,
        )
    }

    # enum types (issue 13): labels in their order, comment and owner-independent facts only
    enum_types = {
        qname: {"labels": list(labels), "comment": comment}
        for qname, labels, comment in _fetch(
            conn,
            _q("""
            SELECT t.oid::regtype::text,
                   ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
                   obj_description(t.oid, 'pg_type')
            FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
            WHERE t.typtype = 'e' AND {user_ns}
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                              AND d.objid = t.oid AND d.deptype = 'e')
            ORDER BY 1
            """),
            params,
        )
    }

    return {
        "schemas": schemas,
        "tables": tables,
        "indexes": indexes,
        "views": views,
        "sequences": sequences,
        "extensions": extensions,
        "functions": functions,
        "triggers": triggers,
        "comments": comments,
        "enum_types": enum_types,
        "domains": _domains(conn, params),
        "composite_types": _composite_types(conn, params),
    }


def _composite_types(conn: psycopg.Connection, params: dict[str, Any]) -> dict[str, Any]:
    """Free-standing composite types (issue 13): attributes with types and collations, in order."""
    found: dict[str, Any] = {}
    for qname, attname, typ, collation in _fetch(
        conn,
        _q("""
        SELECT t.oid::regtype::text, a.attname, format_type(a.atttypid, a.atttypmod),
               CASE WHEN a.attcollation <> y.typcollation THEN a.attcollation::regcollation::text END
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        JOIN pg_class c ON c.oid = t.typrelid AND c.relkind = 'c'
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        JOIN pg_type y ON y.oid = a.atttypid
        WHERE {user_ns} AND {not_ext}
        ORDER BY 1, a.attnum
        """),
        params,
    ):
        found.setdefault(qname, []).append({"name": attname, "type": typ, "collation": collation})
    return found


def _domains(conn: psycopg.Connection, params: dict[str, Any]) -> dict[str, Any]:
    """Domains (issue 13): base type, NOT NULL, default and CHECKs as PostgreSQL spells them."""
    return {
        qname: {"type": base, "not_null": not_null, "default": default, "checks": list(checks), "comment": comment}
        for qname, base, not_null, default, checks, comment in _fetch(
            conn,
            _q("""
            SELECT t.oid::regtype::text, format_type(t.typbasetype, t.typtypmod), t.typnotnull,
                   pg_get_expr(t.typdefaultbin, 0),
                   ARRAY(SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
                         WHERE c.contypid = t.oid AND c.contype = 'c' ORDER BY 1),
                   obj_description(t.oid, 'pg_type')
            FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
            WHERE t.typtype = 'd' AND {user_ns}
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                              AND d.objid = t.oid AND d.deptype = 'e')
            ORDER BY 1
            """),
            params,
        )
    }


def _table_ident(table: str | Sequence[str]) -> sql.Identifier:
    if isinstance(table, str):
        parts = table.split(".", 1) if "." in table else [table]
        return sql.Identifier(*parts)
    return sql.Identifier(*table)


def rows(conn: psycopg.Connection, table: str | Sequence[str], order_by: str | Sequence[str]) -> list[tuple]:
    """Every row of ``table`` ordered by ``order_by`` column(s), as plain tuples.

    ``table`` is ``"name"``, ``"schema.name"`` or a ``(schema, name)`` tuple (use the tuple
    when a name itself contains a dot).  An explicit order is required because data
    comparisons across a rollback are meaningless if row order is left to the planner.
    """
    columns = [order_by] if isinstance(order_by, str) else list(order_by)
    if not columns:
        raise ValueError("order_by needs at least one column")
    query = sql.SQL("SELECT * FROM {} ORDER BY {}").format(
        _table_ident(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(query)
        return cur.fetchall()


def diff(a: Any, b: Any, *, path: str = "") -> str:
    """Human-readable differences between two snapshots ("" if equal).

    Meant for assertion messages: ``assert s1 == s2, diff(s1, s2)``.  Lines start with
    ``-`` (only in a), ``+`` (only in b) or ``~`` (changed), followed by a dotted path such as
    ``tables.public.t.columns.id.default``.
    """
    return "\n".join(_diff(a, b, path))


def _diff(a: Any, b: Any, path: str) -> list[str]:
    if a == b:
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in b:
                out.append(f"- {sub}: {a[key]!r}")
            elif key not in a:
                out.append(f"+ {sub}: {b[key]!r}")
            else:
                out.extend(_diff(a[key], b[key], sub))
        return out
    if isinstance(a, list) and isinstance(b, list):
        try:
            only_a = [x for x in a if x not in b]
            only_b = [x for x in b if x not in a]
        except TypeError:
            only_a, only_b = a, b
        if not only_a and not only_b:
            return [f"~ {path or '<root>'}: same items, different order: {a!r} != {b!r}"]
        return [f"- {path}[]: {x!r}" for x in only_a] + [f"+ {path}[]: {x!r}" for x in only_b]
    return [f"~ {path or '<root>'}: {a!r} != {b!r}"]


def sequence_values(conn: psycopg.Connection,
                    exclude_schemas: Iterable[str] = DEFAULT_EXCLUDED_SCHEMAS) -> dict[str, tuple]:
    """``{sequence: (last_value, is_called)}`` of every sequence of a user schema (identity and serial
    ones too): where each one is, read from the sequence relation itself (issue 13: SetSequenceValue,
    AlterSequence … RESTART must be undone exactly by their rollbacks).

    Not part of :func:`snapshot`: an application's inserts move sequences (round trips that insert
    rows after the forward would differ); the sequence round trips compare it on its own
    (tests/test_comment_sequence_ops.py)."""
    params = {"excluded": list(exclude_schemas)}
    names = _fetch(conn, _q("""
        SELECT n.nspname || '.' || c.relname, n.nspname, c.relname FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'S' AND {user_ns} AND {not_ext} ORDER BY 1
        """), params)
    values = {}
    for qname, schema, name in names:
        with conn.cursor(row_factory=tuple_row) as cur:
            cur.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(schema, name)))
            values[qname] = cur.fetchone()
    return values
