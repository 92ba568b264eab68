"""Database checks shared by every bundle's generated pytest file and ``dbdeploy verify``.

Everything below the ``EMBED`` marker line is copied verbatim into each generated test file
(:mod:`dbdeploy.render.testgen`), so it uses nothing but psycopg and the standard library, and the
generated file stays self-contained. ``dbdeploy verify`` (:mod:`dbdeploy.executor.inspect`) imports
this module, so both apply exactly the same rules:

* an expectation is checked through PostgreSQL's own spellings on both sides: the expected type
  and default are created in a rolled-back temporary table and read back with ``format_type`` /
  ``pg_get_expr``; a ``serial`` column is "a ``nextval()`` default on a sequence owned by this
  column", never a sequence name;
* an expectation of version N is *superseded* when a later version that the migration log says is
  applied (status ``completed`` or ``baseline``) has an expectation for the same object (a drop or
  a different definition), drops the table or column it is about, or drops the table a foreign key
  or verify query refers to: it is skipped (tests) or not checked (verify), naming that version;
* every sequence owned by a column (serial or identity, from ``pg_depend``) must be ahead of the
  column's current maximum, or the application's next INSERT gets a duplicate key.

Each ``check_*`` function takes a psycopg connection (autocommit, ``search_path = pg_catalog,
pg_temp``) and one manifest expectation entry, and returns ``None`` when the database matches, else
one sentence saying what is wrong.
"""

import hashlib
import json
from pathlib import Path

import psycopg
from psycopg import sql

# ---- EMBED: the generated test files carry everything below this line ----

APPLIED_STATUSES = ("completed", "baseline")


def read_migration_log(db, history_schema):
    """``{int version: (status, checksum)}`` from ``<history_schema>.migration_log``; ``{}`` if absent."""
    log = sql.Identifier(history_schema, "migration_log")
    if db.execute("SELECT pg_catalog.to_regclass(%s)", [log.as_string(db)]).fetchone()[0] is None:
        return {}
    rows = db.execute(sql.SQL("SELECT version, status, checksum FROM {}").format(log)).fetchall()
    return {int(version): (status, checksum) for version, status, checksum in rows}


def bundle_manifests(generated):
    """``{int version: manifest}`` of the bundle folders (``V<version>__<name>``) in ``generated``."""
    found = {}
    for path in sorted(Path(generated).glob("V*__*/manifest.json")):
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            found[int(manifest["version"])] = manifest
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def later_applied(log, manifests, version):
    """The versions after ``version`` that ``log`` says are applied, as ``(label, expects)`` in
    version order, and the problems that keep their expectations from being known: an applied
    version with no bundle, or whose bundle has another checksum than the one applied."""
    later, problems = [], []
    for number in sorted(v for v, (status, _checksum) in log.items() if v > int(version)):
        status, checksum = log[number]
        if status not in APPLIED_STATUSES:
            continue
        manifest = manifests.get(number)
        if manifest is None:
            problems.append(f"version {number} is applied ({status}) but generated/ has no bundle for it, so "
                            "which checks it supersedes is unknown; fix: check out the bundles that were applied")
            continue
        label = f"V{manifest['version']}"
        if checksum and manifest.get("checksum") != checksum:
            problems.append(f"{label} was applied with checksum {checksum} but its bundle in generated/ has "
                            f"{manifest.get('checksum')}; fix: check out the bundle that was applied")
            continue
        later.append((label, manifest.get("expects", [])))
    return later, problems


def earlier_undone(log, manifests, version):
    """The versions before ``version`` that ``log`` does not show applied (rolled back too, or never
    run), as ``(label, expects)``: what they created is not expected back after this version's
    rollback."""
    undone = []
    for number in sorted(v for v in manifests if v < int(version)):
        status = log.get(number, (None, None))[0]
        if status not in APPLIED_STATUSES:
            undone.append((f"V{manifests[number]['version']}", manifests[number].get("expects", [])))
    return undone


def undone_by(entry, earlier):
    """``"… V001, which creates table x, is not applied"`` when ``entry`` (a rolled-back check that
    an object is back) is about something an earlier version created and that version is not applied
    (it was rolled back too): that object is rightly gone. ``earlier`` is :func:`earlier_undone`."""
    if not entry["present"]:
        return None
    for label, expects in earlier:
        for other in expects:
            if not other["present"]:
                continue
            created_table = other["object"] == "table" and other["name"] in (entry.get("table"), entry["name"])
            if created_table or _same_object(other, entry):
                return f"not expected: {label}, which creates {_describe(other)}, is not applied"
    return None


def _describe(entry):
    if entry.get("name") is None:
        return f"{entry.get('object')} entry"
    if entry["object"] in ("rows", "backfill") and entry.get("table"):
        return f"{'seed rows' if entry['object'] == 'rows' else 'backfill'} of {entry['table']}"
    named_in_table = ("column", "constraint", "column_not_null", "column_default")
    where = f"{entry['table']}." if entry.get("table") and entry["object"] in named_in_table else ""
    return f"{entry['object']} {where}{entry['name']}"


def _columns_used(entry):
    used = set(entry.get("columns") or ()) | set(entry.get("key") or ()) | set(entry.get("set") or ())
    return used | set(entry.get("where_columns") or ()) | set(entry.get("key_columns") or ()) | _values_written(entry)


def _values_written(entry):
    """The columns whose values a seed (its rows or COPY groups) or a backfill wrote: a later
    backfill of one of them rewrites them, so the values checked here are no longer expected."""
    if entry["object"] == "rows":
        columns = {c for row in entry.get("values") or () for c in row}
        return columns | {c for group in entry.get("data") or () for c in group.get("columns", ())}
    if entry["object"] == "backfill":
        return set(entry.get("set") or ())
    return set()


def _same_object(a, b):
    if a["object"] != b["object"] or a["name"] != b["name"]:
        return False
    # index names are unique in their schema; columns and constraints are named within a table
    return a["object"] == "index" or a.get("table") == b.get("table")


def supersedes(later, entry):
    """Why the later expectation ``later`` makes ``entry`` (of an earlier version) obsolete, or None."""
    changed = _changes_column(later, entry)
    if changed:
        return changed
    if _same_object(later, entry):
        if later == entry:
            return None
        return f"drops {_describe(later)}" if not later["present"] else f"redefines {_describe(later)}"
    if later["object"] == "backfill" and entry["object"] in ("rows", "backfill") and entry["present"]:
        rewritten = sorted(set(later.get("set") or ()) & _values_written(entry))
        if later.get("table") == entry.get("table") and rewritten:
            return f"backfills {later['table']} ({', '.join(rewritten)})"
    if later["present"]:
        return None
    kind, name = later["object"], later["name"]
    if kind == "schema":
        objects = [entry["name"], entry.get("table") or ""]
        if entry["object"] == "schema":
            objects = [entry["name"] + "."]
        if any(o.startswith(name + ".") for o in objects):
            return f"drops schema {name}"
    if kind == "table":
        if name in (entry.get("table"), entry.get("references"), entry.get("requires_table")):
            return f"drops table {name}"
        if name in (entry.get("relations") or ()):
            return f"drops table {name}"
    if kind == "column":
        if entry.get("table") == later["table"] and name in _columns_used(entry):
            return f"drops column {later['table']}.{name}"
        if entry.get("references") == later["table"] and name in (entry.get("ref_columns") or ()):
            return f"drops column {later['table']}.{name}"
    return None


def superseded_by(entry, later):
    """``"superseded by V012, which drops column …"`` for the first later applied version that makes
    ``entry`` obsolete, or None. ``later`` is the first result of :func:`later_applied`."""
    for label, expects in later:
        for other in expects:
            why = supersedes(other, entry)
            if why:
                return f"superseded by {label}, which {why}"
    return None


def migration_tables(expects):
    """The tables a migration creates or changes (not those it drops): their sequences are checked."""
    dropped = {e["name"] for e in expects if e["object"] == "table" and not e["present"]}
    tables = {e["name"] for e in expects if e["object"] == "table" and e["present"]}
    tables |= {e["table"] for e in expects if e.get("table") and e["present"] and e["object"] != "backup"}
    return sorted(tables - dropped)


def _oid(db, name):
    schema, _, rel = name.partition(".")
    row = db.execute("SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
                     " ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s", [schema, rel]).fetchone()
    return row[0] if row else None


def _ident(name):
    return sql.Identifier(*name.split(".", 1))


_COLUMN = ("SELECT pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,"
           " pg_catalog.pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attnum,"
           " (SELECT pg_catalog.format('nextval(%%L::regclass)', dep.objid::pg_catalog.regclass)"
           "    FROM pg_catalog.pg_depend dep JOIN pg_catalog.pg_class s ON s.oid = dep.objid AND s.relkind = 'S'"
           "   WHERE dep.classid = 'pg_catalog.pg_class'::pg_catalog.regclass"
           "     AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND dep.refobjid = a.attrelid"
           "     AND dep.refobjsubid = a.attnum AND dep.deptype = 'a' LIMIT 1)"
           # PostgreSQL 18: a NOT NULL … NOT VALID constraint (contype 'n') sets attnotnull although rows
           # written before it may hold NULL; its name, or NULL (always NULL before 18). The same
           # condition as dbdeploy.ops.common.UNVALIDATED_NOT_NULL, spelled here because this code runs
           # embedded in the generated tests, without dbdeploy.
           ", (SELECT nn.conname FROM pg_catalog.pg_constraint nn WHERE nn.conrelid = a.attrelid"
           "    AND nn.contype = 'n' AND nn.conkey[1] = a.attnum AND NOT nn.convalidated LIMIT 1)"
           " FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_attrdef d"
           " ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
           " WHERE a.attrelid = %s AND a.attname = %s AND a.attnum > 0 AND NOT a.attisdropped")


def _probe_column(db, type_name, default):
    """``(type, default, owned-sequence default, NOT NULL)`` as the catalog spells them, from a temporary
    table that is rolled back; or the error text when PostgreSQL cannot make such a column here."""
    column = sql.SQL("v {}").format(sql.SQL(type_name))
    if default is not None:
        column = sql.SQL("{} DEFAULT {}").format(column, sql.SQL(default))
    try:
        with db.transaction(force_rollback=True):
            db.execute(sql.SQL("CREATE TEMPORARY TABLE dbdeploy_probe ({}) ON COMMIT DROP").format(column))
            probe = db.execute("SELECT 'pg_temp.dbdeploy_probe'::pg_catalog.regclass::oid").fetchone()[0]
            row = db.execute(_COLUMN, [probe, "v"]).fetchone()
            return row[0], row[2], row[5], row[1]
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]


def _generated_problem(db, c, where, actual, not_null):
    """A stored generated column: its expression as PostgreSQL spells it, rebuilt on a probe copy of
    the table (the expression reads the table's other columns)."""
    generated = db.execute("SELECT a.attgenerated FROM pg_catalog.pg_attribute a WHERE a.attrelid = %s"
                           " AND a.attname = %s", [_oid(db, c["table"]), c["name"]]).fetchone()[0]
    if generated != "s":
        return f"{where} is not a stored generated column"
    with db.transaction(force_rollback=True):
        db.execute(sql.SQL("CREATE TEMPORARY TABLE dbdeploy_probe (LIKE {}) ON COMMIT DROP").format(_ident(c["table"])))
        db.execute(sql.SQL("ALTER TABLE dbdeploy_probe ADD COLUMN dbdeploy_probe_generated {}"
                           " GENERATED ALWAYS AS ({}) STORED").format(sql.SQL(c["type"]), sql.SQL(c["generated"])))
        expected = db.execute("SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) FROM pg_catalog.pg_attrdef d"
                              " JOIN pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum"
                              " WHERE a.attrelid = 'pg_temp.dbdeploy_probe'::pg_catalog.regclass"
                              " AND a.attname = 'dbdeploy_probe_generated'").fetchone()[0]
    if actual != expected:
        return f"{where} is generated as {actual!r}, expected {expected!r}"
    if bool(not_null) != bool(c["not_null"]):
        return f"{where} is {'NOT NULL' if not_null else 'nullable'}, expected the opposite"
    return None


def check_schema(db, c):
    """Kind ``schema``: schema ``name`` exists, or not (after a rollback, a schema this version did
    not create may stay)."""
    found = db.execute("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", [c["name"]]).fetchone()
    if bool(found) == c["present"]:
        return None
    if found and c.get("history_schema") and not _created_by(db, c["history_schema"], c.get("version"), "schema",
                                                             c["name"]):
        return None   # it existed before this version (e.g. made by a DBA): the rollback rightly leaves it
    return f"schema {c['name']} is {'missing' if c['present'] else 'still present'}"


def _created_by(db, history_schema, version, kind, name):
    """Whether ``version``'s bundle recorded creating this object (and no rollback has forgotten it yet)."""
    table = sql.Identifier(history_schema, "migration_objects")
    if db.execute("SELECT pg_catalog.to_regclass(%s)", [table.as_string(db)]).fetchone()[0] is None:
        return False
    return db.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE version = %s AND object_type = %s"
                              " AND object_name = %s)").format(table), [version, kind, name]).fetchone()[0]


def check_extension(db, c):
    """Kind ``extension``: extension ``name`` is installed, or not."""
    found = db.execute("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = %s", [c["name"]]).fetchone()
    if bool(found) == c["present"]:
        return None
    return f"extension {c['name']} is {'not installed' if c['present'] else 'still installed'}"


def check_table(db, c):
    """Kind ``table``: table ``name`` exists, or not."""
    found = _oid(db, c["name"]) is not None
    if found == c["present"]:
        return None
    return f"table {c['name']} is {'missing' if c['present'] else 'still present'}"


def _column_row(db, c) -> tuple[str, tuple | None, str]:
    """``(where, row, missing)`` for the column ``c["table"].c["name"]``: how messages name it, its
    ``_COLUMN`` row (None when the column or its table is missing) and the message for a missing one."""
    where = f"column {c['table']}.{c['name']}"
    oid = _oid(db, c["table"])
    row = None if oid is None else db.execute(_COLUMN, [oid, c["name"]]).fetchone()
    return where, row, f"{where} is missing" + ("" if oid else f" (table {c['table']} does not exist)")


def check_column(db, c):
    """Kind ``column``: ``table.name`` exists, or not; with ``type``, also its type, default (a serial
    type's as a sequence the column owns), identity and NOT NULL, as PostgreSQL spells them."""
    where = f"column {c['table']}.{c['name']}"
    oid = _oid(db, c["table"])
    row = None if oid is None else db.execute(_COLUMN, [oid, c["name"]]).fetchone()
    if not c["present"]:
        return None if row is None else f"{where} is still present"
    if row is None:
        return f"{where} is missing" + ("" if oid else f" (table {c['table']} does not exist)")
    actual_type, not_null, actual_default, identity, _attnum, owned_nextval, unvalidated_not_null = row
    if "type" not in c:
        return None
    expected = _probe_column(db, c["type"], c.get("default") if not c.get("identity") else None)
    if isinstance(expected, str):
        return f"{where}: the expected type {c['type']!r} / default could not be evaluated here ({expected})"
    expected_type, expected_default, probe_serial, implied_not_null = expected
    if actual_type != expected_type:
        return f"{where} has type {actual_type}, expected {expected_type}"
    if c.get("generated") is not None:
        return _generated_problem(db, c, where, actual_default, not_null)
    if c.get("collation") is not None:
        found = db.execute("SELECT co.collname FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_collation co"
                           " ON co.oid = a.attcollation WHERE a.attrelid = %s AND a.attname = %s",
                           [oid, c["name"]]).fetchone()
        if not found or found[0] != c["collation"].rpartition(".")[2]:
            return f"{where} has collation {found and found[0]!r}, expected {c['collation']!r}"
    if c.get("identity"):
        if identity not in ("a", "d"):
            return f"{where} is not an identity column"
        if c.get("identity_always") and identity != "a":
            return f"{where} is GENERATED BY DEFAULT AS IDENTITY, expected GENERATED ALWAYS"
    elif probe_serial is not None and expected_default == probe_serial:
        # serial types: the default names a sequence that only this column owns, whatever its name
        if identity or owned_nextval is None or actual_default != owned_nextval:
            return (f"{where} has default {actual_default!r}, expected a nextval() default on a sequence owned by "
                    f"the column ({c['type']})")
    elif identity:
        return f"{where} is an identity column, expected default {expected_default!r}"
    elif (actual_default or None) != (expected_default or None):
        return f"{where} has default {actual_default!r}, expected {expected_default!r}"
    expected_not_null = bool(c["not_null"]) or bool(implied_not_null)   # serial types are NOT NULL
    if bool(not_null) != expected_not_null:
        return (f"{where} is {'NOT NULL' if not_null else 'nullable'}, "
                f"expected {'NOT NULL' if expected_not_null else 'nullable'}")
    if expected_not_null and unvalidated_not_null:
        return (f"{where} is NOT NULL only through the NOT VALID constraint {unvalidated_not_null} (rows written "
                f"before it may hold NULL), expected a validated NOT NULL; fix: ALTER TABLE {c['table']} VALIDATE "
                f"CONSTRAINT {unvalidated_not_null} (after setting the NULL rows)")
    return None


_KINDS = {"p": "primary key", "u": "unique", "c": "check", "f": "foreign key", "x": "exclusion"}
_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


def check_constraint(db, c):
    """Kind ``constraint``: ``name`` on ``table`` exists (an optional foreign key exactly while its
    table does), is validated, of ``kind``, on ``key``; a foreign key references ``references``
    (``ref_columns``) with ``on_delete``."""
    where = f"{_KINDS.get(c.get('kind'), 'constraint')} {c['name']} on {c['table']}"
    expected_present = c["present"]
    if expected_present and c.get("requires_table") and _oid(db, c["requires_table"]) is None:
        expected_present = False   # optional FK: present exactly when its referenced table exists
    oid = _oid(db, c["table"])
    row = None if oid is None else db.execute(
        "SELECT contype, convalidated, confrelid, confdeltype, confupdtype, confmatchtype, condeferrable,"
        " condeferred, conindid,"
        " ARRAY(SELECT a.attname::text FROM pg_catalog.unnest(conkey) WITH ORDINALITY k(n, i)"
        "       JOIN pg_catalog.pg_attribute a ON a.attrelid = conrelid AND a.attnum = k.n ORDER BY k.i),"
        " ARRAY(SELECT a.attname::text FROM pg_catalog.unnest(confkey) WITH ORDINALITY k(n, i)"
        "       JOIN pg_catalog.pg_attribute a ON a.attrelid = confrelid AND a.attnum = k.n ORDER BY k.i)"
        " FROM pg_catalog.pg_constraint WHERE conrelid = %s AND conname = %s", [oid, c["name"]]).fetchone()
    if not expected_present:
        if row is None:
            return None
        why = f" although {c['requires_table']} does not exist" if c.get("requires_table") else ""
        return f"{where} is present{why}"
    if row is None:
        return f"{where} is missing"
    (contype, validated, confrelid, confdeltype, confupdtype, confmatchtype, deferrable, deferred, conindid, key,
     ref_key) = row
    if c.get("kind") and contype != c["kind"]:
        return f"{where} is a {_KINDS.get(contype, contype)} constraint"
    if not validated and c.get("validated", True):
        return f"{where} is NOT VALID (its validation never finished); run apply again"
    if bool(deferrable) != bool(c.get("deferrable")) or bool(deferred) != bool(c.get("initially_deferred")):
        return (f"{where} is {'DEFERRABLE' if deferrable else 'NOT DEFERRABLE'}"
                f"{' INITIALLY DEFERRED' if deferred else ''}, expected "
                f"{'DEFERRABLE' if c.get('deferrable') else 'NOT DEFERRABLE'}"
                f"{' INITIALLY DEFERRED' if c.get('initially_deferred') else ''}")
    if c.get("nulls_not_distinct") and not db.execute(
            "SELECT indnullsnotdistinct FROM pg_catalog.pg_index WHERE indexrelid = %s", [conindid]).fetchone()[0]:
        return f"{where} is not NULLS NOT DISTINCT"
    if c.get("key") and list(key) != c["key"]:
        return f"{where} is on ({', '.join(key)}), expected ({', '.join(c['key'])})"
    if c.get("kind") == "f":
        if confrelid != _oid(db, c["references"]) or list(ref_key) != c["ref_columns"]:
            return f"{where} does not reference {c['references']} ({', '.join(c['ref_columns'])})"
        if _ACTIONS.get(confdeltype) != c["on_delete"]:
            return f"{where} has ON DELETE {_ACTIONS.get(confdeltype)}, expected {c['on_delete']}"
        if _ACTIONS.get(confupdtype) != c.get("on_update", "NO ACTION"):
            return f"{where} has ON UPDATE {_ACTIONS.get(confupdtype)}, expected {c.get('on_update', 'NO ACTION')}"
        if (confmatchtype == "f") != (c.get("match") == "FULL"):
            return (f"{where} is MATCH {'FULL' if confmatchtype == 'f' else 'SIMPLE'}, "
                    f"expected MATCH {c.get('match') or 'SIMPLE'}")
    return None


def _index_body(definition):
    return definition[definition.index(" USING "):]


def check_index(db, c):
    """Kind ``index``: ``name`` exists and is valid, or not; with ``definition``, it is defined as that
    definition built on a probe copy of the table."""
    oid = _oid(db, c["name"])
    if not c["present"]:
        return None if oid is None else f"index {c['name']} is still present"
    if oid is None:
        return f"index {c['name']} is missing"
    valid, unique, actual = db.execute(
        "SELECT indisvalid, indisunique, pg_catalog.pg_get_indexdef(indexrelid) FROM pg_catalog.pg_index"
        " WHERE indexrelid = %s", [oid]).fetchone()
    if not valid:
        return f"index {c['name']} is INVALID (a concurrent build failed); run apply again"
    d = c.get("definition")
    if not d:
        return None
    if unique != d["unique"]:
        return f"index {c['name']} is {'' if unique else 'not '}unique, expected the opposite"
    keys = sql.SQL(", ").join(sql.Identifier(k) if k.isidentifier() else sql.SQL(k) for k in d["keys"])
    statement = sql.SQL("CREATE INDEX dbdeploy_probe_idx ON dbdeploy_probe USING {} ({})").format(
        sql.SQL(d["method"]), keys)
    if d["include"]:
        statement = sql.SQL("{} INCLUDE ({})").format(statement, sql.SQL(", ").join(map(sql.Identifier, d["include"])))
    if d.get("nulls_not_distinct"):
        statement = sql.SQL("{} NULLS NOT DISTINCT").format(statement)
    if d["where"]:
        statement = sql.SQL("{} WHERE {}").format(statement, sql.SQL(d["where"]))
    with db.transaction(force_rollback=True):
        db.execute(sql.SQL("CREATE TEMPORARY TABLE dbdeploy_probe (LIKE {}) ON COMMIT DROP").format(_ident(c["table"])))
        db.execute(statement)
        expected = db.execute("SELECT pg_catalog.pg_get_indexdef('dbdeploy_probe_idx'::regclass)").fetchone()[0]
    if _index_body(actual) != _index_body(expected):
        return (f"index {c['name']} is defined as {_index_body(actual).strip()!r}, "
                f"expected {_index_body(expected).strip()!r}")
    return None


def check_backfill(db, c):
    """Kind ``backfill``: its progress table ``name`` shows the cursor at the end, and no row it wrote
    is back to its value from before (see :func:`_reset_after_backfill`)."""
    progress = _oid(db, c["name"])
    if not c["present"]:
        return None if progress is None else f"backfill progress table {c['name']} is still present"
    if progress is None:
        return f"backfill of {c['table']} never started (no progress table {c['name']})"
    cursor = db.execute(sql.SQL("SELECT * FROM {}").format(_ident(c["name"]))).fetchone()
    if cursor and any(value is not None for value in cursor[:-2]):
        return f"backfill of {c['table']} has not finished (it stopped before key {cursor[:-2]}); run apply again"
    # The finished cursor is the proof: rows matching the predicate now may have been written after
    # the backfill by the application or a later version (a NULL tier inserted later is legitimate),
    # so counting them would fail a database that is right. A row the backfill wrote whose value is
    # back to the one it had before (its backup keeps both) is undone work, and is reported.
    return _reset_after_backfill(db, c)


def _reset_after_backfill(db, c):
    """The rows the backfill changed (its backup table ``c["backup"]``: key, value before, value
    written) whose set column holds the value from before again; None without a backup table."""
    if not c.get("backup") or _oid(db, c["backup"]) is None or not c.get("written"):
        return None
    on = sql.SQL(" AND ").join(sql.SQL("t.{k} = b.{k}").format(k=sql.Identifier(k)) for k in c["key"])
    reset = sql.SQL(" OR ").join(
        sql.SQL("(t.{c}::text IS NOT DISTINCT FROM b.{c}::text AND b.{c}::text IS DISTINCT FROM b.{w}::text)").format(
            c=sql.Identifier(column), w=sql.Identifier(written)) for column, written in sorted(c["written"].items()))
    keys = sql.SQL(", ").join(sql.SQL("b.{}::text").format(sql.Identifier(k)) for k in c["key"])
    count, sample = db.execute(sql.SQL(
        "SELECT count(*), (pg_catalog.array_agg(ARRAY[{keys}]))[1:3] FROM {b} AS b JOIN {t} AS t ON {on}"
        " WHERE {reset}").format(keys=keys, b=_ident(c["backup"]), t=_ident(c["table"]), on=on,
                                 reset=reset)).fetchone()
    if not count:
        return None
    shown = ", ".join(f"({', '.join(k)})" for k in sample)
    return (f"backfill of {c['table']} undone in {count} row(s): {', '.join(sorted(c['written']))} back to the value "
            f"before the backfill (keys {shown}{', …' if count > len(sample) else ''})")


def check_rows(db, c):
    """Seed rows: every key present (applied), or gone unless the rollback left it on purpose because
    the application had changed the row (recorded as 'left' in the rollback's backup table)."""
    if _oid(db, c["table"]) is None:
        return None if not c["present"] else f"table {c['table']} of the seed rows is missing"
    if "data" in c:
        return _check_copied_rows(db, c)
    if "keys" not in c:
        return (f"the manifest lists no keys for the seed rows of {c['table']}, so they cannot be checked; "
                "fix: regenerate the bundle with this dbdeploy")
    missing, present = [], []
    condition = sql.SQL(" AND ").join(
        sql.SQL("{} = %s").format(sql.Identifier(column)) for column in c["key_columns"])
    query = sql.SQL("SELECT EXISTS (SELECT FROM {} WHERE {})").format(_ident(c["table"]), condition)
    for key in c["keys"]:
        found = db.execute(query, [key[column] for column in c["key_columns"]]).fetchone()[0]
        (present if found else missing).append(key)
    if c["present"] and missing:
        return f"seed rows missing from {c['table']}: {missing}"
    if c["present"] and c.get("values"):
        changed = _changed_small_seed(db, c)
        if changed:
            return f"seed rows of {c['table']} changed since they were inserted: {'; '.join(changed)}"
    if not c["present"] and present:
        left = _left_by_rollback(db, c)
        present = [k for k in present if tuple(str(k[col]) for col in c["key_columns"]) not in left]
        if present:
            return f"seed rows still in {c['table']} after rollback: {present}"
    return None


_SEED_STAGE = sql.Identifier("pg_temp", "dbdeploy_check_seed")


def _seed_text(value):
    """A manifest seed value as the text PostgreSQL reads into the column's type (None stays NULL)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _changed_small_seed(db, c):
    """The rows this version inserted (its seed log ``c["name"]`` lists their keys) whose seeded
    values differ from the manifest's ``values``, one text each; ``[]`` when the log is gone (a
    baselined database has none: which rows this version inserted is unknown)."""
    if _oid(db, c["name"]) is None:
        return []
    groups = {}
    for row in c["values"]:
        groups.setdefault(tuple(row), []).append(row)
    changed = []
    for columns, rows in groups.items():
        names = sql.SQL(", ").join(sql.Identifier(k) for k in columns)
        with db.transaction(force_rollback=True):
            db.execute(sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
                _SEED_STAGE, names, _ident(c["table"])))
            insert = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                _SEED_STAGE, names, sql.SQL(", ").join(sql.SQL("%s") for _ in columns))
            with db.cursor() as cursor:
                cursor.executemany(insert, [[_seed_text(row[k]) for k in columns] for row in rows])
            changed += _changed_staged(db, c, list(columns))
    return changed


def _changed_staged(db, c, columns):
    """Rows of the staged seed (``_SEED_STAGE``, columns ``columns``) whose key this version's seed log
    holds and whose row in the table now has other values in those columns: ``"(key): col is 'x',
    expected 'y'"`` (at most five)."""
    if _oid(db, c["name"]) is None:
        return []
    on_table = sql.SQL(" AND ").join(sql.SQL("t.{k} = s.{k}").format(k=sql.Identifier(k)) for k in c["key_columns"])
    on_log = sql.SQL(" AND ").join(sql.SQL("l.{k} = s.{k}").format(k=sql.Identifier(k)) for k in c["key_columns"])

    def texts(alias, names):
        return sql.SQL(", ").join(sql.SQL("{}.{}::text").format(sql.Identifier(alias), sql.Identifier(n))
                                  for n in names)
    rows = db.execute(sql.SQL(
        "SELECT ARRAY[{keys}], ARRAY[{actual}], ARRAY[{expected}] FROM {s} AS s JOIN {t} AS t ON {on_table}"
        " WHERE EXISTS (SELECT FROM {log} AS l WHERE {on_log}) AND ROW({actual}) IS DISTINCT FROM ROW({expected})"
        " ORDER BY 1 LIMIT 5").format(
        keys=texts("s", c["key_columns"]), actual=texts("t", columns), expected=texts("s", columns), s=_SEED_STAGE,
        t=_ident(c["table"]), on_table=on_table, log=_ident(c["name"]), on_log=on_log)).fetchall()
    changed = []
    for key, actual, expected in rows:
        diffs = [f"{n} is {a!r}, expected {e!r}" for n, a, e in zip(columns, actual, expected, strict=True) if a != e]
        changed.append(f"({', '.join(key)}): {', '.join(diffs)}")
    return changed


def _left_by_rollback(db, c):
    """Keys (as tuples of text) the rollback left in place because the application changed those rows
    since the forward; each is recorded with action 'left' in a backup table named ``left_in``'s prefix."""
    where = c.get("left_in")
    if not where:
        return set()
    tables = db.execute(
        "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname LIKE %s AND EXISTS (SELECT FROM"
        " pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'dbdeploy_rollback_action'"
        " AND NOT a.attisdropped)", [where["schema"], where["prefix"] + "%"]).fetchall()
    keys = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(k)) for k in c["key_columns"])
    left = set()
    for (name,) in tables:
        rows = db.execute(sql.SQL("SELECT {} FROM {} WHERE dbdeploy_rollback_action = 'left'").format(
            keys, sql.Identifier(where["schema"], name))).fetchall()
        left.update(tuple(r) for r in rows)
    return left


def _copy_data(c):
    """Each COPY block of a large seed, read from the bundle's forward file (``c["bundle_folder"]`` /
    ``c["file"]``): (group, data text); the data must still have the sha256 the generator recorded.

    Only ``\\n`` ends a line (``str.splitlines`` would also split at characters a seed value holds
    as they are, e.g. U+2028 or U+0085); the file is read as bytes, and a checkout that turned LF
    into CRLF is read with its CRLF turned back. Of the lines that are exactly the COPY statement
    (a string literal elsewhere in the file could hold such a line too), the one followed by the
    recorded data is taken."""
    if not c.get("bundle_folder"):
        raise ValueError(f"the seed rows of {c['table']} are COPY data in the bundle, but its folder is unknown")
    raw = (Path(c["bundle_folder"]) / c["file"]).read_bytes().decode("utf-8")
    texts = [raw, raw.replace("\r\n", "\n")] if "\r\n" in raw else [raw]
    blocks = []
    for group in c["data"]:
        data = next((d for d in _copy_blocks(texts, group["copy"])
                     if hashlib.sha256(d.encode("utf-8")).hexdigest() == group["sha256"]), None)
        if data is None:
            raise ValueError(f"the COPY data of {c['table']} in {c['file']} is not what the generator wrote")
        blocks.append((group, data))
    return blocks


def _copy_blocks(texts, statement):
    """The lines after each line that is exactly ``statement``, up to the next line that is exactly
    ``\\.`` (each line with its ``\\n``), in each of ``texts``."""
    for text in texts:
        lines = text.split("\n")
        for i, line in enumerate(lines):
            if line != statement:
                continue
            try:
                end = lines.index("\\.", i + 1)
            except ValueError:
                continue
            yield "".join(row + "\n" for row in lines[i + 1:end])


def _check_copied_rows(db, c):
    """Every distinct key of the bundle's COPY data is in the table (applied), or is not (rolled back,
    except rows the rollback left because the application had changed them)."""
    try:
        blocks = _copy_data(c)
    except (OSError, ValueError) as exc:
        return str(exc)
    found = expected = 0
    still, changed = [], []
    keys = sql.SQL(", ").join(sql.Identifier(k) for k in c["key_columns"])
    for group, data in blocks:
        stage = _SEED_STAGE
        columns = sql.SQL(", ").join(sql.Identifier(k) for k in group["columns"])
        with db.transaction(force_rollback=True):
            db.execute(sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
                stage, columns, _ident(c["table"])))
            with db.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(stage, columns)) as copy:
                copy.write(data)
            row = db.execute(sql.SQL(
                "SELECT count(*), count(*) FILTER (WHERE ({k}) IN (SELECT {k} FROM {t}))"
                " FROM (SELECT DISTINCT {k} FROM {s} WHERE ({k}) IS NOT NULL) AS d").format(
                k=keys, t=_ident(c["table"]), s=stage)).fetchone()
            if c["present"]:
                changed += _changed_staged(db, c, list(group["columns"]))
            if not c["present"] and row[1]:
                text_keys = sql.SQL(", ").join(sql.SQL("d.{}::text").format(sql.Identifier(k))
                                               for k in c["key_columns"])
                still += db.execute(sql.SQL(
                    "SELECT {tk} FROM (SELECT DISTINCT {k} FROM {s}) AS d WHERE ({k}) IN (SELECT {k} FROM {t})"
                ).format(tk=text_keys, k=keys, s=stage, t=_ident(c["table"]))).fetchall()
        expected, found = expected + row[0], found + row[1]
    if c["present"] and found != expected:
        return f"{expected - found} of the {expected} seed keys missing from {c['table']}"
    if changed:
        return f"seed rows of {c['table']} changed since they were inserted: {'; '.join(changed[:5])}"
    if not c["present"] and still:
        left = _left_by_rollback(db, c)
        still = [k for k in still if tuple(k) not in left]
        if still:
            return f"{len(still)} seed rows still in {c['table']} after rollback"
    return None


def check_backup(db, c):
    """Kind ``backup`` (rolled-back state only): a table ``schema.name*`` holds ``what``."""
    schema = c["schema"]
    found = db.execute("SELECT pg_catalog.string_agg(relname, ', ') FROM pg_catalog.pg_class"
                       " WHERE relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = %s)"
                       " AND relkind = 'r' AND relname LIKE %s", [schema, c["name"] + "%"]).fetchone()[0]
    return None if found else f"no backup table {schema}.{c['name']}* holding {c['what']}"


def check_sql(db, c):
    """Kind ``sql``: a RawSQL ``verify`` query runs (in a rolled-back transaction, on its declared
    search_path) and does not return false."""
    try:
        with db.transaction(force_rollback=True):
            if c.get("search_path"):   # a RawSQL's declared path, for its verify query only
                db.execute("SELECT pg_catalog.set_config('search_path', %s, true)", [c["search_path"]])
            cursor = db.execute(c["sql"])
            row = cursor.fetchone() if cursor.description else None
    except psycopg.Error as exc:
        return f"verify SQL ({c['name']}) failed: {_first_line(exc)}"
    return "verify SQL ({}) returned false".format(c["name"]) if row is not None and row[0] is False else None


def _changes_column(later, entry):
    """A later SetNotNull/DropNotNull (``column_not_null``) or SetDefault/DropDefault (``column_default``)
    changes what an earlier ``column`` check of the same column compares (nullability, default): that
    check is superseded. None otherwise."""
    if later["object"] not in ("column_not_null", "column_default") or entry["object"] != "column":
        return None
    if (entry.get("table"), entry["name"]) != (later["table"], later["name"]) or "type" not in entry:
        return None
    what = "nullability" if later["object"] == "column_not_null" else "default"
    return f"changes the {what} of column {later['table']}.{later['name']}"


def check_column_not_null(db, c):
    """Kind ``column_not_null``: ``table.name`` is NOT NULL and holds no NULL (``not_null`` true: no
    PostgreSQL 18 ``NOT NULL … NOT VALID``), or has no NOT NULL at all (false)."""
    where, row, missing = _column_row(db, c)
    if row is None:
        return missing
    not_null, unvalidated_not_null = row[1], row[6]
    if c["not_null"] and not not_null:
        return f"{where} is nullable, expected NOT NULL"
    if c["not_null"] and unvalidated_not_null:
        return (f"{where} is NOT NULL only through the NOT VALID constraint {unvalidated_not_null} (rows written "
                f"before it may hold NULL), expected a validated NOT NULL; fix: ALTER TABLE {c['table']} VALIDATE "
                f"CONSTRAINT {unvalidated_not_null} (after setting the NULL rows)")
    if not c["not_null"] and not_null:
        return f"{where} is NOT NULL, expected nullable"
    return None


def check_column_default(db, c):
    """Kind ``column_default``: ``table.name`` has the default ``default`` (as PostgreSQL spells it for
    the column's own type, read back from a rolled-back temporary table), or none (null)."""
    where, row, missing = _column_row(db, c)
    if row is None:
        return missing
    actual_type, actual_default = row[0], row[2]
    if c["default"] is None:
        return None if actual_default is None else f"{where} has default {actual_default!r}, expected none"
    expected = _probe_column(db, actual_type, c["default"])
    if isinstance(expected, str):
        return f"{where}: the expected default {c['default']!r} could not be evaluated here ({expected})"
    if actual_default != expected[1]:
        return f"{where} has default {actual_default!r}, expected {expected[1]!r}"
    return None



_VIEW_DEF = ("SELECT c.relkind::text, pg_catalog.pg_get_viewdef(c.oid, true), c.reloptions::text,"
             " ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0"
             " AND NOT a.attisdropped ORDER BY a.attnum) FROM pg_catalog.pg_class c WHERE c.oid = %s")


def check_view(db, c):
    """Kind ``view``: view ``name`` (a materialized view with ``materialized``) is absent, or present and,
    with ``query``, defined as that query: its ``pg_get_viewdef``, options and column names equal those of
    a temporary view made from the query (rolled back), both printed with ``search_path = pg_catalog``
    (its options — security_barrier, check_option — are not compared: ReplaceView keeps them)."""
    what = "materialized view" if c.get("materialized") else "view"
    oid = _oid(db, c["name"])
    if not c["present"]:
        if oid is None or (c.get("history_schema") and not _created_by(
                db, c["history_schema"], c.get("version"), "materialized_view" if c.get("materialized") else "view",
                c["name"])):
            return None   # gone, or it existed before this version (accepted as it was): the rollback leaves it
        return f"{what} {c['name']} is still present"
    if oid is None:
        return f"{what} {c['name']} is missing"
    with db.transaction(force_rollback=True):
        db.execute("SELECT pg_catalog.set_config('search_path', 'pg_catalog', true)")
        kind, definition, _options, columns = db.execute(_VIEW_DEF, [oid]).fetchone()
        if kind != ("m" if c.get("materialized") else "v"):
            return f"{c['name']} is not a {what} (relkind {kind!r})"
        if c.get("query") is None:
            return None
        db.execute(sql.SQL("CREATE TEMPORARY VIEW dbdeploy_view_probe AS {}").format(sql.SQL(c["query"])))
        probe = db.execute("SELECT 'pg_temp.dbdeploy_view_probe'::pg_catalog.regclass::oid").fetchone()[0]
        _kind, expected, _options, expected_columns = db.execute(_VIEW_DEF, [probe]).fetchone()
    if definition != expected:
        return f"{what} {c['name']} is defined as {definition.strip()!r}, expected {expected.strip()!r}"
    if columns != expected_columns:
        return f"{what} {c['name']} has columns {columns}, expected {expected_columns}"
    return None

# CommentOn (issue 13): each kind's pg_description address, ``(oid, catalog, objsubid)``, from the
# expectation's ``lookup`` (and ``member``); no row when the object is missing or of another kind.
_RELATION_ADDRESS = ("SELECT c.oid, 'pg_catalog.pg_class', 0 FROM pg_catalog.pg_class c"
                     " WHERE c.oid = pg_catalog.to_regclass(%(lookup)s) AND c.relkind = ANY (%(relkinds)s)")
_COMMENT_ADDRESS = {
    "TABLE": (_RELATION_ADDRESS, "rpf"), "INDEX": (_RELATION_ADDRESS, "iI"), "VIEW": (_RELATION_ADDRESS, "v"),
    "MATERIALIZED VIEW": (_RELATION_ADDRESS, "m"), "SEQUENCE": (_RELATION_ADDRESS, "S"),
    "COLUMN": ("SELECT a.attrelid, 'pg_catalog.pg_class', a.attnum::integer FROM pg_catalog.pg_attribute a"
               " WHERE a.attrelid = pg_catalog.to_regclass(%(lookup)s) AND a.attname = %(member)s AND a.attnum > 0"
               " AND NOT a.attisdropped", ""),
    "SCHEMA": ("SELECT n.oid, 'pg_catalog.pg_namespace', 0 FROM pg_catalog.pg_namespace n"
               " WHERE n.oid = pg_catalog.to_regnamespace(%(lookup)s)", ""),
    "TYPE": ("SELECT t.oid, 'pg_catalog.pg_type', 0 FROM pg_catalog.pg_type t"
             " WHERE t.oid = pg_catalog.to_regtype(%(lookup)s)", ""),
    "DOMAIN": ("SELECT t.oid, 'pg_catalog.pg_type', 0 FROM pg_catalog.pg_type t"
               " WHERE t.oid = pg_catalog.to_regtype(%(lookup)s) AND t.typtype = 'd'", ""),
    "FUNCTION": ("SELECT p.oid, 'pg_catalog.pg_proc', 0 FROM pg_catalog.pg_proc p"
                 " WHERE p.oid = pg_catalog.to_regprocedure(%(lookup)s)", ""),
    "CONSTRAINT": ("SELECT co.oid, 'pg_catalog.pg_constraint', 0 FROM pg_catalog.pg_constraint co"
                   " WHERE co.conrelid = pg_catalog.to_regclass(%(lookup)s) AND co.conname = %(member)s", ""),
    "TRIGGER": ("SELECT tg.oid, 'pg_catalog.pg_trigger', 0 FROM pg_catalog.pg_trigger tg"
                " WHERE tg.tgrelid = pg_catalog.to_regclass(%(lookup)s) AND tg.tgname = %(member)s", ""),
}


def check_comment(db, c):
    """Kind ``comment``: the object (``object_kind`` ``name``, found through ``lookup``) exists and its
    comment is ``comment`` byte for byte, or it has none (null)."""
    where = f"{c['object_kind'].lower()} {c['name']}"
    query, relkinds = _COMMENT_ADDRESS[c["object_kind"]]
    address = db.execute(query, {"lookup": c["lookup"], "member": c.get("member"),
                                 "relkinds": list(relkinds)}).fetchone()
    if address is None:
        return f"{where} is missing"
    actual = db.execute("SELECT description FROM pg_catalog.pg_description WHERE objoid = %s"
                        " AND classoid = %s::pg_catalog.regclass AND objsubid = %s", list(address)).fetchone()
    actual = None if actual is None else actual[0]
    if actual != c["comment"]:
        return f"{where} has the comment {actual!r}, expected {c['comment']!r}"
    return None



_SEQUENCE = ("SELECT pg_catalog.format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,"
             " s.seqcache, s.seqcycle,"
             " (SELECT n.nspname || '.' || r.relname || '.' || a.attname FROM pg_catalog.pg_depend d"
             "    JOIN pg_catalog.pg_class r ON r.oid = d.refobjid"
             "    JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace"
             "    JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"
             "   WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = s.seqrelid"
             "     AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype IN ('a', 'i'))"
             " FROM pg_catalog.pg_sequence s WHERE s.seqrelid = %s")
_SEQUENCE_FIELDS = ("as_type", "start", "increment", "min_value", "max_value", "cache", "cycle", "owned_by")


def check_sequence(db, c):
    """Kind ``sequence``: sequence ``name`` exists with the ``parameters`` given (as ``pg_sequence`` and
    ``pg_depend`` say them), or not (after a rollback, a sequence this version did not create may stay)."""
    oid = _oid(db, c["name"])
    row = None if oid is None else db.execute(_SEQUENCE, [oid]).fetchone()
    if not c["present"]:
        if row is None:
            return None
        if c.get("history_schema") and not _created_by(db, c["history_schema"], c.get("version"), "sequence",
                                                       c["name"]):
            return None   # it existed before this version: the rollback rightly leaves it
        return f"sequence {c['name']} is still present"
    if row is None:
        return f"sequence {c['name']} is missing" + (" (a relation of another kind has its name)" if oid else "")
    actual = dict(zip(_SEQUENCE_FIELDS, row, strict=True))
    wrong = [f"{field} is {actual[field]!r}, expected {want!r}" for field, want in c["parameters"].items()
             if actual[field] != want]
    return f"sequence {c['name']}: {'; '.join(wrong)}" if wrong else None


def check_sequence_value(db, c):
    """Kind ``sequence_value``: sequence ``name`` was set to ``value``: its position is that value (with
    ``is_called``) or past it in the sequence's direction (nextval ran since)."""
    oid = _oid(db, c["name"])
    if oid is None:
        return f"sequence {c['name']} is missing"
    increment = db.execute("SELECT seqincrement FROM pg_catalog.pg_sequence WHERE seqrelid = %s", [oid]).fetchone()
    if increment is None:
        return f"{c['name']} is not a sequence"
    last_value, is_called = db.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(
        _ident(c["name"]))).fetchone()
    if (last_value, is_called) == (c["value"], c["is_called"]):
        return None
    if is_called and (last_value > c["value"] if increment[0] > 0 else last_value < c["value"]):
        return None   # handed out values since
    return (f"sequence {c['name']} is at {last_value} (is_called {is_called}), expected {c['value']} "
            f"(is_called {c['is_called']}) or past it")
def check_function(db, c):
    """Kind ``function``: ``name`` exists with the body (byte for byte), language, return type, volatility and
    SECURITY DEFINER the spec gives, or not (after a rollback, one this version did not create may stay)."""
    row = db.execute(
        "SELECT p.prosrc, l.lanname::text, p.prorettype, p.proretset, p.provolatile::text, p.prosecdef,"
        " CASE WHEN %s::text IS NULL THEN NULL ELSE pg_catalog.to_regtype(%s)::oid END"
        " FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid = p.prolang"
        " WHERE p.oid = pg_catalog.to_regprocedure(%s)", [c.get("returns"), c.get("returns"), c["lookup"]]).fetchone()
    if not c["present"]:
        if row is None:
            return None
        if c.get("history_schema") and not _created_by(db, c["history_schema"], c.get("version"), "function",
                                                       c["name"]):
            return None   # it existed before this version: the rollback rightly leaves it
        return f"function {c['name']} is still present"
    if row is None:
        return f"function {c['name']} is missing"
    body, language, rettype, retset, volatility, secdef, expected_type = row
    if body != c["body"]:
        return f"function {c['name']} has another body: {body!r:.200}, expected {c['body']!r:.200}"
    if language != c["language"]:
        return f"function {c['name']} is in language {language}, expected {c['language']}"
    if c.get("returns") is not None and (rettype != expected_type or retset != c["setof"]):
        return f"function {c['name']} returns another type than {'SETOF ' if c['setof'] else ''}{c['returns']}"
    if volatility != c["volatility"]:
        return f"function {c['name']} has volatility {volatility!r}, expected {c['volatility']!r}"
    if secdef != c["security_definer"]:
        return f"function {c['name']} is {'' if secdef else 'not '}SECURITY DEFINER, expected the opposite"
    return None


def check_trigger(db, c):
    """Kind ``trigger``: ``name`` on ``table`` exists, enabled, calling ``function`` with the timing, events and
    level (``tgtype``) and WHEN condition the spec gives, or not (after a rollback, one this version did not
    create may stay)."""
    oid = _oid(db, c["table"])
    row = None if oid is None else db.execute(
        "SELECT t.tgfoid = pg_catalog.to_regprocedure(%s || '()'), t.tgtype::int, t.tgqual IS NOT NULL,"
        " t.tgenabled::text FROM pg_catalog.pg_trigger t WHERE t.tgrelid = %s AND t.tgname = %s AND NOT t.tgisinternal",
        [c.get("function") or "pg_catalog.now", oid, c["name"]]).fetchone()
    where = f"trigger {c['name']} on {c['table']}"
    if not c["present"]:
        if row is None:
            return None
        if c.get("history_schema") and not _created_by(db, c["history_schema"], c.get("version"), "trigger",
                                                       f"{c['table']}.{c['name']}"):
            return None   # it existed before this version: the rollback rightly leaves it
        return f"{where} is still present"
    if row is None:
        return f"{where} is missing"
    same_function, tgtype, has_when, enabled = row
    if not same_function:
        return f"{where} calls another function than {c['function']}()"
    if tgtype != c["tgtype"]:
        return f"{where} has tgtype {tgtype}, expected {c['tgtype']} (timing, events or FOR EACH differ)"
    if has_when != c["when"]:
        return f"{where} {'has' if has_when else 'lacks'} a WHEN condition, unlike the spec"
    if enabled == "D":
        return f"{where} is disabled"
    return None


# One check per expectation kind (dbdeploy.bundle.expectations.KINDS, a test keeps them equal).
def check_partition_key(db, c):
    """Kind ``partition_key``: table ``name`` is partitioned by ``key`` (``pg_get_partkeydef``)."""
    oid = _oid(db, c["name"])
    if oid is None:
        return f"table {c['name']} is missing"
    actual = db.execute("SELECT pg_catalog.pg_get_partkeydef(%s)", [oid]).fetchone()[0]
    if actual != c["key"]:
        return f"table {c['name']} is partitioned by {actual!r}, expected {c['key']!r}"
    return None


def check_partition_of(db, c):
    """Kind ``partition_of``: table ``name`` is a partition of ``parent`` (the DEFAULT one with ``default``)."""
    oid, parent = _oid(db, c["name"]), _oid(db, c["parent"])
    if oid is None:
        return f"partition {c['name']} is missing"
    row = db.execute("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits WHERE inhrelid = %s AND inhparent = %s),"
                     " pg_catalog.pg_get_expr(c.relpartbound, c.oid) FROM pg_catalog.pg_class c WHERE c.oid = %s",
                     [oid, parent, oid]).fetchone()
    if not row[0]:
        return f"table {c['name']} is not a partition of {c['parent']}"
    if c["default"] and row[1] != "DEFAULT":
        return f"partition {c['name']} has bound {row[1]!r}, expected DEFAULT"
    return None


CHECKS = {
    "schema": check_schema, "extension": check_extension, "table": check_table, "column": check_column,
    "constraint": check_constraint, "index": check_index, "backfill": check_backfill, "rows": check_rows,
    "backup": check_backup, "sql": check_sql,
}
CHECKS.update({"column_not_null": check_column_not_null, "column_default": check_column_default})
CHECKS.update({"view": check_view})   # issue 13: CreateView, ReplaceView, DropView
CHECKS.update({"comment": check_comment})
CHECKS.update({"sequence": check_sequence, "sequence_value": check_sequence_value})
CHECKS.update({"partition_key": check_partition_key, "partition_of": check_partition_of})
CHECKS.update({"function": check_function, "trigger": check_trigger})



def check_enum_type(db, c):
    """Kind ``enum_type``: enum ``name`` exists with exactly ``labels`` in their order (``pg_enum`` by
    ``enumsortorder``; null: any, but each of ``includes``), or does not exist (after a rollback, a type
    this version did not create may rightly stay)."""
    schema, _, name = c["name"].partition(".")
    row = db.execute(
        "SELECT t.typtype, ARRAY(SELECT e.enumlabel::text FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid"
        " ORDER BY e.enumsortorder) FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n"
        " ON n.oid = t.typnamespace WHERE n.nspname = %s AND t.typname = %s", [schema, name]).fetchone()
    if not c["present"]:
        if row is None:
            return None
        if c.get("history_schema") and not _created_by(db, c["history_schema"], c.get("version"), "enum_type",
                                                       c["name"]):
            return None   # it existed before this version: the rollback rightly leaves it
        return f"type {c['name']} is still present"
    if row is None:
        return f"type {c['name']} is missing"
    if row[0] != "e":
        return f"type {c['name']} is not an enum type (typtype {row[0]!r})"
    labels = list(row[1])
    if c.get("labels") is not None and labels != list(c["labels"]):
        return f"enum {c['name']} has labels {labels!r}, expected {list(c['labels'])!r}"
    missing = [v for v in c.get("includes") or () if v not in labels]
    if missing:
        return f"enum {c['name']} lacks label(s) {missing!r} (it has {labels!r})"
    return None


CHECKS["enum_type"] = check_enum_type   # CreateEnum, AddEnumValue, RenameEnumValue, DropEnum


_DOMAIN = ("SELECT pg_catalog.format_type(t.typbasetype, t.typtypmod), t.typnotnull,"
           " pg_catalog.pg_get_expr(t.typdefaultbin, 0), ARRAY(SELECT pg_catalog.pg_get_constraintdef(c.oid)"
           " FROM pg_catalog.pg_constraint c WHERE c.contypid = t.oid AND c.contype = 'c' ORDER BY 1), t.typtype"
           " FROM pg_catalog.pg_type t WHERE t.oid = %s")


def check_domain_type(db, c):
    """Kind ``domain_type``: domain ``name`` is what a probe domain built from the entry is (base type, NOT
    NULL, default, CHECKs, as PostgreSQL spells them), or does not exist (after a rollback, a domain this
    version did not create may rightly stay)."""
    schema, _, name = c["name"].partition(".")
    found = db.execute("SELECT t.oid FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n"
                       " ON n.oid = t.typnamespace WHERE n.nspname = %s AND t.typname = %s", [schema, name]).fetchone()
    if not c["present"]:
        if found is None:
            return None
        if c.get("history_schema") and not _created_by(db, c["history_schema"], c.get("version"), "domain",
                                                       c["name"]):
            return None
        return f"domain {c['name']} is still present"
    if found is None:
        return f"domain {c['name']} is missing"
    actual = db.execute(_DOMAIN, [found[0]]).fetchone()
    if actual[4] != "d":
        return f"type {c['name']} is not a domain (typtype {actual[4]!r})"
    parts = [sql.SQL("CREATE DOMAIN pg_temp.dbdeploy_probe_domain AS {}").format(sql.SQL(c["type"]))]
    if c.get("default") is not None:
        parts.append(sql.SQL("DEFAULT {}").format(sql.SQL(c["default"])))
    if c.get("not_null"):
        parts.append(sql.SQL("NOT NULL"))
    parts += [sql.SQL("CHECK ({})").format(sql.SQL(check)) for check in c.get("checks") or ()]
    try:
        with db.transaction(force_rollback=True):
            db.execute(sql.SQL(" ").join(parts))
            probe = db.execute("SELECT 'pg_temp.dbdeploy_probe_domain'::pg_catalog.regtype::oid").fetchone()[0]
            expected = db.execute(_DOMAIN, [probe]).fetchone()
    except psycopg.Error as exc:
        return f"domain {c['name']}: the expected definition could not be built here ({_first_line(exc)})"
    names = ("base type", "NOT NULL", "default", "checks")
    diffs = [f"{what} {a!r}, expected {e!r}" for what, a, e in zip(names, actual[:4], expected[:4], strict=True)
             if a != e]
    return f"domain {c['name']} differs: {'; '.join(diffs)}" if diffs else None


CHECKS["domain_type"] = check_domain_type   # CreateDomain


_COMPOSITE = ("SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod),"
              " CASE WHEN a.attcollation <> 0 AND a.attcollation <> y.typcollation"
              " THEN a.attcollation::pg_catalog.regcollation::text END"
              " FROM pg_catalog.pg_type t JOIN pg_catalog.pg_attribute a ON a.attrelid = t.typrelid"
              " JOIN pg_catalog.pg_type y ON y.oid = a.atttypid"
              " WHERE t.oid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum")


def check_composite_type(db, c):
    """Kind ``composite_type``: composite type ``name`` has the attributes of a probe type built from the entry
    (names, types, collations, in order, as PostgreSQL spells them), or does not exist (after a rollback, a type
    this version did not create may rightly stay)."""
    schema, _, name = c["name"].partition(".")
    found = db.execute("SELECT t.oid, t.typtype, (SELECT r.relkind FROM pg_catalog.pg_class r WHERE r.oid = t.typrelid)"
                       " FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace"
                       " WHERE n.nspname = %s AND t.typname = %s", [schema, name]).fetchone()
    if not c["present"]:
        if found is None:
            return None
        if c.get("history_schema") and not _created_by(db, c["history_schema"], c.get("version"), "composite_type",
                                                       c["name"]):
            return None
        return f"composite type {c['name']} is still present"
    if found is None:
        return f"composite type {c['name']} is missing"
    if found[1] != "c" or found[2] != "c":
        return f"type {c['name']} is not a composite type of its own"
    actual = db.execute(_COMPOSITE, [found[0]]).fetchall()
    attrs = []
    for attr in c["attributes"]:
        part = sql.SQL("{} {}").format(sql.Identifier(attr["name"]), sql.SQL(attr["type"]))
        if attr.get("collation"):
            part = sql.SQL("{} COLLATE {}").format(part, sql.Identifier(*attr["collation"].split(".", 1)))
        attrs.append(part)
    try:
        with db.transaction(force_rollback=True):
            db.execute(sql.SQL("CREATE TYPE pg_temp.dbdeploy_probe_composite AS ({})").format(
                sql.SQL(", ").join(attrs)))
            probe = db.execute("SELECT 'pg_temp.dbdeploy_probe_composite'::pg_catalog.regtype::oid").fetchone()[0]
            expected = db.execute(_COMPOSITE, [probe]).fetchall()
    except psycopg.Error as exc:
        return f"composite type {c['name']}: the expected definition could not be built here ({_first_line(exc)})"
    if actual != expected:
        return f"composite type {c['name']} has attributes {actual!r}, expected {expected!r}"
    return None


CHECKS["composite_type"] = check_composite_type   # CreateCompositeType

class UnknownExpectationKind(Exception):  # noqa: N818 (the name says what it is about)
    """An expectation whose kind (``"object"``) has no check here: a bundle from another dbdeploy,
    or an edited manifest. Raised, never passed: what it expects cannot be known to hold."""

    def __init__(self, entry):
        self.kind = entry.get("object")
        super().__init__(
            f"{_describe(entry)}: expectation kind {self.kind!r} is unknown to this check code (it knows "
            f"{', '.join(CHECKS)}), so it cannot be checked; fix: regenerate the bundles and run the dbdeploy "
            "that generated them")


def run_check(db, c):
    """Run the check for ``c``'s kind: None when the database matches, else one sentence. Raises
    :class:`UnknownExpectationKind` for a kind without a check (never a pass)."""
    function = CHECKS.get(c.get("object"))
    if function is None:
        raise UnknownExpectationKind(c)
    try:
        return function(db, c)
    except psycopg.Error as exc:
        return f"{_describe(c)} could not be checked: {_first_line(exc)}{_grant_hint(exc)}"


def _first_line(exc):
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _grant_hint(exc):
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return "; fix: GRANT the checking role SELECT on it (or run the check as the role that deploys)"
    return ""


_SEQUENCES = (
    "SELECT a.attname::text, n.nspname::text, s.relname::text, q.seqincrement,"
    "       pg_catalog.format('%%I.%%I', n.nspname, s.relname)"
    "  FROM pg_catalog.pg_depend d"
    "  JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'"
    "  JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace"
    "  JOIN pg_catalog.pg_sequence q ON q.seqrelid = s.oid"
    "  JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid"
    " WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass"
    "   AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
    "   AND d.refobjid = %s AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i') AND NOT a.attisdropped"
    " ORDER BY a.attnum")


def sequence_problems(db, table):
    """Every sequence owned by a column of ``table`` (serial or identity) whose next value is not
    past the column's current maximum (minimum for a descending sequence): the next INSERT that
    uses the default would collide. One sentence per such column, with the ``setval`` that fixes it."""
    oid = _oid(db, table)
    if oid is None:
        return [f"table {table} is missing, so its sequences cannot be checked"]
    problems = []
    for column, seq_schema, seq_name, increment, seq_text in db.execute(_SEQUENCES, [oid]).fetchall():
        sequence = sql.Identifier(seq_schema, seq_name)
        extreme = "max" if increment > 0 else "min"
        try:
            last_value, is_called = db.execute(
                sql.SQL("SELECT last_value, is_called FROM {}").format(sequence)).fetchone()
            current = db.execute(sql.SQL("SELECT {}({}) FROM {}").format(
                sql.SQL(extreme), sql.Identifier(column), _ident(table))).fetchone()[0]
        except psycopg.Error as exc:
            problems.append(f"sequence {seq_text} of column {table}.{column} could not be checked: "
                            f"{_first_line(exc)}{_grant_hint(exc)}")
            continue
        if current is None:
            continue
        upcoming = last_value + increment if is_called else last_value
        if (upcoming > current) if increment > 0 else (upcoming < current):
            continue
        fix = sql.SQL("SELECT pg_catalog.setval({}, {})").format(
            sql.Literal(seq_text), sql.Literal(current)).as_string(db)
        problems.append(
            f"sequence {seq_schema}.{seq_name} of column {table}.{column} is behind the column: last_value "
            f"{last_value}{'' if is_called else ' (not yet used)'}, {extreme}({column}) = {current}, so the default "
            f"hands out {upcoming} next and reaches {current}, which the column already holds (a duplicate key on "
            f"a unique column); fix: {fix}")
    return problems
