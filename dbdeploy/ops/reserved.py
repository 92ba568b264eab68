"""Schemas a spec must not change: PostgreSQL's own and dbdeploy's own.

- ``pg_catalog``, ``pg_toast``, ``pg_temp`` / ``pg_temp_N`` and every other ``pg_``-prefixed name
  (PostgreSQL reserves the prefix: CREATE SCHEMA refuses it), and ``information_schema``: system
  catalogs, or (``pg_temp``) a per-session schema whose tables vanish when the deploying session
  ends — a migration "applied" there leaves nothing behind.
- dbdeploy's history schema (``migrations``, or the configured ``history_schema``) and its backup
  schema ``dbdeploy_backup`` with its ``dbdeploy_backup_*`` variants: a spec that drops or alters
  them breaks the deployment's own records and the backups rollbacks restore from.

:func:`check_operation` is called for every operation when a migration is validated (PostgreSQL's
schemas and the backup schema) and again when it is planned with the configured history schema.
For RawSQL, the objects its top-level statements create, change or drop are read with pglast
(reading a catalog, e.g. ``SELECT … FROM pg_catalog.pg_class``, stays allowed, and so does a
temporary scratch table); SQL inside DO blocks and function bodies is not looked into.
"""

from __future__ import annotations

from functools import lru_cache

from pglast import ast
from pglast.enums import ObjectType

from dbdeploy.bundle.schemas import BACKUP_SCHEMA
from dbdeploy.errors import FIX_MARK


def _temporary(schema: str) -> bool:
    return schema == "pg_temp" or (schema.startswith("pg_temp_") and schema[8:].isdigit())


def reserved_reason(schema: str, history_schema: str | None = None) -> str | None:
    """Why ``schema`` is off limits to specs, or None. ``history_schema`` None: not known here."""
    if _temporary(schema) or schema.startswith("pg_toast_temp_"):
        return ("is the session's temporary schema: what is created there disappears when the deploying "
                "session ends, yet the migration would be recorded as applied")
    if schema in ("pg_catalog", "pg_toast", "information_schema"):
        return "is a PostgreSQL system schema"
    if schema.startswith("pg_"):
        return "starts with pg_, which PostgreSQL reserves for system schemas"
    if schema == BACKUP_SCHEMA or schema.startswith(BACKUP_SCHEMA + "_"):
        return "is dbdeploy's backup schema (the copies rollbacks restore from)"
    if history_schema is not None and schema == history_schema:
        return "is dbdeploy's history schema (migration_log, migration_objects)"
    return None


def check_schema(schema: str, what: str, history_schema: str | None = None) -> None:
    """Raise ValueError (reason — fix) when ``what`` (e.g. "table pg_temp.t") is in a reserved schema."""
    reason = reserved_reason(schema, history_schema)
    if reason is not None:
        raise ValueError(f"{what} is in schema {schema}, which {reason}; dbdeploy never changes it{FIX_MARK}"
                         "put the object in an application schema (e.g. public, or one made with CreateSchema)")


def operation_objects(op) -> list[tuple[str, str]]:
    """``(schema, description)`` of every object operation ``op`` creates, changes, drops or points a
    foreign key at."""
    from dbdeploy.ops import AddForeignKey, CreateSchema, CreateTable, DropIndex, RawSQL, RequireExtension

    found: list[tuple[str, str]] = []

    def table(name: str, what: str) -> None:
        found.append((name.partition(".")[0], f"{what} {name}"))

    if isinstance(op, CreateSchema):
        found.append((op.name, f"schema {op.name}"))
    elif isinstance(op, RequireExtension):
        if op.create:
            found.append((op.install_schema, f"extension {op.name} (schema=)"))
    elif isinstance(op, DropIndex):
        table(op.name, "index")
    elif isinstance(op, RawSQL):
        for field, text in (("forward", op.forward_sql), ("rollback", op.rollback_sql)):
            # A temporary scratch table inside a RawSQL step is fine: it is meant to vanish.
            found += [(schema, f"{field}: {what}") for schema, what in raw_sql_objects(text)
                      if not _temporary(schema)]
    elif getattr(op, "table", None):
        table(op.table, "table")
    if isinstance(op, CreateTable):
        for fk in op.foreign_keys:
            table(fk.references, "foreign key reference")
    if isinstance(op, AddForeignKey):
        table(op.foreign_key.references, "foreign key reference")
    return found


def check_operation(op, history_schema: str | None = None) -> None:
    """Raise ValueError (reason — fix) when ``op`` touches a reserved schema (see the module doc)."""
    for schema, what in operation_objects(op):
        check_schema(schema, what, history_schema)


# --- RawSQL ---------------------------------------------------------------------------------------

# Objects named [schema.]table.name: a two-part name is table.name, not schema.name.
_TABLE_MEMBERS = (ObjectType.OBJECT_COLUMN, ObjectType.OBJECT_TRIGGER, ObjectType.OBJECT_RULE,
                  ObjectType.OBJECT_POLICY, ObjectType.OBJECT_TABCONSTRAINT)


def _qualified(parts, objtype=None) -> tuple[str | None, str]:
    names = [p.sval for p in parts if isinstance(p, ast.String)]
    qualified = len(names) >= (3 if objtype in _TABLE_MEMBERS else 2)
    return (names[0] if qualified else None), ".".join(names)


_DML = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt)


def _written_relations(node) -> list[tuple[str, str]]:
    """Relations a statement writes: every schema-qualified, non-temporary RangeVar outside a
    SELECT (which only reads), plus what the data-modifying WITH queries of a SELECT write
    (``WITH d AS (DELETE …) SELECT …``). A plain walk over the tree's fields in their order (pglast's
    Visitor does the same but costs more per statement than a large body can afford)."""
    found: list[tuple[str, str]] = []
    pending = [node]
    while pending:
        item = pending.pop()
        if isinstance(item, tuple | list):
            pending.extend(reversed(item))
        elif isinstance(item, ast.SelectStmt):
            for cte in getattr(item.withClause, "ctes", None) or ():
                if isinstance(cte.ctequery, _DML):
                    found += _dml_targets(cte.ctequery)
        elif isinstance(item, ast.RangeVar):
            found += _written(item)
        elif isinstance(item, ast.Node):
            pending.extend(reversed([getattr(item, name) for name in item.__slots__]))
    return found


def raw_sql_objects(text: str) -> list[tuple[str, str]]:
    """``(schema, description)`` of what RawSQL ``text`` creates, changes or drops in a named schema
    (unqualified names are resolved by the search_path at run time and are not listed). Computed
    once per text (validation and planning both ask)."""
    return list(_raw_sql_objects(text))


@lru_cache(maxsize=8)
def _raw_sql_objects(text: str) -> tuple[tuple[str, str], ...]:
    from dbdeploy.sql import SqlParseError, parse_statements

    try:
        statements = parse_statements(text)
    except SqlParseError:
        return ()   # reported by RawSQL's own validation
    found: list[tuple[str, str]] = []
    for raw in statements:
        stmt = raw.stmt
        if isinstance(stmt, ast.DoStmt | ast.ExplainStmt | ast.VariableSetStmt | ast.VariableShowStmt):
            continue
        # DML writes only its target; its FROM/USING/SELECT parts read.
        found += _dml_targets(stmt) if isinstance(stmt, _DML) else _written_relations(stmt)
        found += _named_objects(stmt)
    return tuple(found)


def _written(relation) -> list[tuple[str, str]]:
    """The one relation a DML statement writes, if schema-qualified and not temporary."""
    if relation is None or not relation.schemaname or relation.relpersistence == "t":
        return []
    return [(relation.schemaname, f"relation {relation.schemaname}.{relation.relname}")]


def _dml_targets(stmt) -> list[tuple[str, str]]:
    """What INSERT/UPDATE/DELETE ``stmt`` writes: its target, and the targets of the data-modifying
    queries of its WITH clause (``WITH d AS (DELETE FROM x …) INSERT INTO y …`` writes x too); its
    FROM/USING/SELECT parts only read. Read directly, without a visitor: a RawSQL of a million
    INSERTs is checked in linear time with a small constant."""
    found = _written(stmt.relation)
    for cte in getattr(stmt.withClause, "ctes", None) or ():
        query = cte.ctequery
        if isinstance(query, _DML):
            found += _dml_targets(query)
        elif not isinstance(query, ast.SelectStmt):
            found += _written_relations(query)
    return found


def _named_objects(stmt) -> list[tuple[str, str]]:
    """Schemas and schema-qualified objects a statement names outside RangeVars (DROP, CREATE SCHEMA,
    ALTER … SET SCHEMA, functions, types)."""
    out: list[tuple[str, str]] = []
    if isinstance(stmt, ast.CreateSchemaStmt) and stmt.schemaname:
        out.append((stmt.schemaname, f"schema {stmt.schemaname}"))
    elif isinstance(stmt, ast.DropStmt):
        for obj in stmt.objects or ():
            if stmt.removeType == ObjectType.OBJECT_SCHEMA and isinstance(obj, ast.String):
                out.append((obj.sval, f"schema {obj.sval}"))
                continue
            parts = getattr(obj, "objname", None) or getattr(obj, "names", None) or obj
            if isinstance(parts, tuple | list):
                schema, name = _qualified(parts, stmt.removeType)
                if schema:
                    out.append((schema, f"object {name}"))
    elif isinstance(stmt, ast.AlterObjectSchemaStmt) and stmt.newschema:
        out.append((stmt.newschema, f"SET SCHEMA {stmt.newschema}"))
    elif isinstance(stmt, ast.RenameStmt) and stmt.renameType == ObjectType.OBJECT_SCHEMA:
        out.append((stmt.subname, f"schema {stmt.subname}"))
    elif isinstance(stmt, ast.AlterOwnerStmt) and stmt.objectType == ObjectType.OBJECT_SCHEMA:
        name = getattr(stmt.object, "sval", None)
        if name:
            out.append((name, f"schema {name}"))
    elif isinstance(stmt, ast.GrantStmt) and (stmt.objtype == ObjectType.OBJECT_SCHEMA
                                              or getattr(stmt.targtype, "name", "") == "ACL_TARGET_ALL_IN_SCHEMA"):
        out += [(o.sval, f"schema {o.sval}") for o in stmt.objects or () if isinstance(o, ast.String)]
    elif isinstance(stmt, ast.AlterDefaultPrivilegesStmt):
        for option in stmt.options or ():
            if option.defname == "schemas":
                out += [(o.sval, f"schema {o.sval}") for o in option.arg or () if isinstance(o, ast.String)]
    elif isinstance(stmt, ast.CommentStmt | ast.SecLabelStmt):
        target = stmt.object
        if isinstance(target, ast.String):
            if stmt.objtype == ObjectType.OBJECT_SCHEMA:
                out.append((target.sval, f"schema {target.sval}"))
        else:
            parts = getattr(target, "objname", None) or getattr(target, "names", None) or target
            if isinstance(parts, tuple | list):
                schema, name = _qualified(parts, stmt.objtype)
                if schema:
                    out.append((schema, f"object {name}"))
    elif isinstance(stmt, ast.CreateFunctionStmt | ast.DefineStmt | ast.CreateEnumStmt | ast.CreateDomainStmt):
        parts = (getattr(stmt, "funcname", None) or getattr(stmt, "defnames", None)
                 or getattr(stmt, "typeName", None) or getattr(stmt, "domainname", None))
        if isinstance(parts, tuple | list):
            schema, name = _qualified(parts)
            if schema:
                out.append((schema, f"object {name}"))
    return out


__all__ = ["BACKUP_SCHEMA", "check_operation", "check_schema", "operation_objects", "raw_sql_objects",
           "reserved_reason"]
