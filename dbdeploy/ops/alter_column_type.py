"""AlterColumnType: change a column's type without a long ACCESS EXCLUSIVE rewrite.

**In place** (this module, built): when PostgreSQL needs no table rewrite and no index rebuild
(:mod:`dbdeploy.ops.column_types`: a longer ``varchar``, ``varchar`` → ``text``, more ``numeric``
precision with the same scale, an unconstrained ``numeric``, binary-coercible pairs). The prediction
is made at plan time from the types the specs know; the step decides again at run time from the
catalog, so a wrong prediction refuses instead of rewriting:

``alter_column_type`` (one short transaction, ACCESS EXCLUSIVE, catalog only):

- the new type's OID, modifier and collation are read from a zero-row probe table in ``pg_temp``
  (``CREATE TEMP TABLE … (v <type>)``: PostgreSQL resolves the spelling), the column's from
  ``pg_attribute``; the same type and modifier → nothing to do (idempotent);
- in place only when (PostgreSQL docs, ALTER TABLE "Notes", and ``pg_cast``): the same type with a
  modifier the type's support function proves a no-op (``varchar``/``varbit`` length not shorter,
  ``numeric`` precision not lower with the same scale, ``time``/``timestamp`` precision not lower,
  or no modifier at all), or a different type with ``pg_cast.castmethod = 'b'`` and no modifier;
  the column keeps its collation (ALTER … TYPE without COLLATE would take the new type's default
  and rebuild indexes); every index on the column is a plain key whose operator family is the new
  type's default one (no rebuild: "indexes must always be rebuilt unless the system can verify that
  the new index would be logically equivalent"); no expression or partial index uses it;
- otherwise it refuses, naming the old and new types, before any change; a view or rule using the
  column is refused with its name (PostgreSQL cannot alter such a column);
- the old type (``format_type``, PostgreSQL's own spelling) is saved in
  ``<backup schema>.altered_column_types`` (access restricted), then ``ALTER TABLE … ALTER COLUMN …
  TYPE``.

**Rollback**: the preflight refuses, with a count, when rows hold values that do not fit the old
type (a ``varchar`` longer than the old length, a ``numeric`` beyond the old precision), or when the
column's type is no longer the one this version set; then ``restore_column_type`` (ACCESS
EXCLUSIVE) alters the column back to the saved type. Narrowing a type is not free in PostgreSQL: this
ALTER rewrites the table while it holds the lock (the checklist says so). Without a saved row the
forward found the type already set and changed nothing, so the rollback changes nothing either.

**Online** (:mod:`dbdeploy.ops.alter_column_online`): when the change needs a rewrite (predicted from
the specs' types, or ``using`` given) on a table the specs created — a shadow column kept in sync by a
trigger, a batched backfill, the indexes and keys built concurrently, one short swap transaction;
referencing foreign-key columns of the same old type are widened in the same swap (``integer`` →
``bigint`` of a referenced primary key). A table the specs do not know takes the in-place step, which
refuses at run time a change that would rewrite.

**Expand/contract** (``online=True, new_name=…``; :mod:`dbdeploy.ops.alter_column_expand`): the old
column keeps its name and type for the application version still running, a new column ``new_name``
with the new type serves the new one, a trigger converts writes of either into the other (``using``
old → new, ``back`` new → old, casts by default), and a later ``Contract(version=…)`` drops the old
column. Use it when the running code cannot read or write the new type; the default online form keeps
the column's name and swaps in one short transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from psycopg import sql
from pydantic import Field, PrivateAttr

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import ColumnList, Identifier, SqlExpression, SqlType, TableName
from dbdeploy.model.components import Index
from dbdeploy.model.names import spelled as spelled_name
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.add_column import column_expect
from dbdeploy.ops.alter_column_expand import TypeExpansion
from dbdeploy.ops.alter_column_online import (
    MovedIndex,
    OnlinePlan,
    Target,
    create_saved_types_table,
    saved_types_table,
    shadow_name,
    swap_index,
)
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.column_types import SERIAL_BASE, in_place, shape
from dbdeploy.ops.common import S, attnum, column_exists, fail, notice, regclass, relation_exists, relation_missing
from dbdeploy.ops.expansion import Expands
from dbdeploy.ops.rename_constraint import default_primary_key_name, primary_key_name
from dbdeploy.sql import ident, literal, parse_type, qualified
from dbdeploy.sql.blocks import block, do_block, if_then

# Type OIDs of pg_catalog (fixed: src/include/catalog/pg_type.dat) whose modifier rules the run-time
# check knows: the support functions of their length-coercion functions make these no-ops.
_VARCHAR, _VARBIT, _NUMERIC = 1043, 1562, 1700
_TIME_TYPES = (1083, 1114, 1184, 1266)          # time, timestamp, timestamptz, timetz


@dataclass(frozen=True)
class ColumnTypeChange(expect.Column):
    """A ``column`` expectation (same kind and check) whose rollback form is the column with its type
    before the change (``before``, a :class:`~dbdeploy.bundle.expectations.Column`), not its absence."""

    before: expect.Column | None = None

    def after_rollback(self, rollback: expect.Rollback) -> tuple[expect.Expectation, ...]:
        if self.table in rollback.created_tables:
            return ()
        return (self.before or expect.Column(self.table, self.name),)


class AlterColumnType(Expands, Operation):
    """Change ``table.column`` to ``type`` (see the module docstring for what runs).

    ``using`` is an expression over the column alone (e.g. ``"code::integer"``); with it, or when the specs'
    types say the change rewrites, the online form runs (:mod:`dbdeploy.ops.alter_column_online`; the table
    must be one the specs created, with a one-column primary key). ``batch_size`` bounds its backfill batches.
    ``online=True`` with ``new_name`` expands instead (:mod:`dbdeploy.ops.alter_column_expand`): ``back`` is
    the conversion new → old over ``new_name`` alone (default: a cast to the old type the specs know),
    ``key`` the unique, indexed column(s) its fill batches by (default: the primary key the specs know).
    Errors: ValueError (reason — fix) for an unknown column, a ``using``/``back`` that reads other columns,
    ``new_name``/``back``/``key`` without ``online=True``, ``online=True`` without ``new_name`` or on a key or
    identity column, and what the online form cannot do (no one-column key, an identity column, an index using
    the column in an expression or predicate, a table the specs do not know). Run-time refusals (before any
    change): views or rules on the column, generated columns, partitioned tables, indexes the specs do not
    know, and — in place — a change that would rewrite.
    """

    kind: ClassVar[str] = "alter_column_type"
    table: TableName
    column: Identifier
    type: SqlType
    using: SqlExpression | None = None
    online: bool = False
    new_name: Identifier | None = None
    back: SqlExpression | None = None
    key: ColumnList | None = None
    batch_size: int = Field(default=1000, ge=1, le=1_000_000)
    # online=True: the expansion (RenameColumn's online form with conversions), built by apply.
    _expansion: TypeExpansion | None = PrivateAttr(default=None)

    # --- the schema ------------------------------------------------------------------------------

    def _known_column(self, state: SchemaState):
        table = state.tables.get(self.table)
        return None if table is None else table.columns.get(self.column)

    def predicted_in_place(self, state: SchemaState) -> bool | None:
        """True/False when the specs know the column's type and the change needs no rewrite / one;
        None when the type is not known (a table the specs did not create): decided at run time."""
        if self.using is not None:
            return False
        known = self._known_column(state)
        return None if known is None else in_place(shape(known.type), shape(self.type))

    def apply(self, state: SchemaState) -> None:
        table = state.tables.get(self.table)
        if table is not None and self.column not in table.columns:
            known = ", ".join(sorted(table.columns)) or "none"
            raise ValueError(f"{self.table} has no column {self.column!r} to change (its columns: {known}) — fix: "
                             "check the column name, or add the column first (AddColumn)")
        if self.using is not None and set(self.using.columns) - {self.column}:
            others = ", ".join(sorted(set(self.using.columns) - {self.column}))
            raise ValueError(f"using reads {others}, not only {self.column!r} — fix: write the conversion over "
                             f"{self.column} alone (e.g. \"{self.column}::integer\"); fill other columns with Backfill")
        if self.online:
            self._expand(state, table)
            return
        for field in ("new_name", "back", "key"):
            if getattr(self, field) is not None:
                raise ValueError(f"{field} is only used by the expand/contract form — fix: remove {field}, or set "
                                 "online=True (the new code then uses new_name until a later Contract)")
        if table is None and self.using is not None and state.complete:
            self.targets(state, version=state.at.version)    # raises: the online form needs a table the specs created
        online = table is not None and self.predicted_in_place(state) is False
        targets = self.targets(state, version=state.at.version) if online else []
        for target in targets or [None]:
            name, column = (self.table, self.column) if target is None else (target.table, target.column)
            known = state.tables.get(name)
            if known is None:
                continue
            changed = known.columns[column].model_copy(update={"type": self.type})
            columns = {k: (v if k != column else changed) for k, v in known.columns.items()}
            if target is not None:
                # the old column stays under the shadow's name (nullable, no default): a later DropColumn drops it
                columns[target.shadow] = known.columns[column].model_copy(update={
                    "name": target.shadow, "nullable": True, "default": None, "identity": False})
            state.tables[name] = replace(known, columns=columns)   # copy-on-write (SchemaState.copy)

    def _expand(self, state: SchemaState, table) -> None:
        """``online=True``: validate, then let the :class:`TypeExpansion` record itself in ``state``."""
        where = f"{self.table}.{self.column}"
        if self.new_name is None:
            raise ValueError("online=True keeps the old column for the running application and adds the new type "
                             "under another name — fix: give new_name=\"…\" (the name the new code uses until a "
                             "later Contract), or drop online=True to change the column under its own name")
        if self.back is not None and set(self.back.columns) - {self.new_name}:
            others = ", ".join(sorted(set(self.back.columns) - {self.new_name}))
            raise ValueError(f"back reads {others}, not only {self.new_name!r} — fix: write the conversion new → old "
                             f"over {self.new_name} alone (e.g. \"{self.new_name}::text\")")
        known = None if table is None else table.columns.get(self.column)
        if known is not None and (known.identity or self.column in table.primary_key):
            raise ValueError(f"{where} is {'an identity column' if known.identity else 'part of the primary key'}, "
                             "which the expand/contract form cannot mirror — fix: drop online=True (the default "
                             "online form changes it under its own name, with one short swap)")
        if known is None and self.back is None and (table is not None or state.complete):
            raise ValueError(f"the specs do not know the type of {where}, so the trigger cannot convert new values "
                             f"back — fix: give back=\"…\" (the conversion over {self.new_name}, e.g. "
                             f"\"{self.new_name}::text\"), or declare the table in the specs")
        self._expansion = TypeExpansion(
            table=self.table, column=self.column, new_name=self.new_name, online=True, key=self.key,
            batch_size=self.batch_size, type=self.type, using=self.using, back=self.back,
            old_type=None if known is None else known.type)
        self._expansion.apply(state)

    def describe_expansion(self) -> str:
        return self._expansion.describe_expansion() if self._expansion else f"{self.table}.{self.column}"

    def targets(self, state: SchemaState, version: str) -> list[Target]:
        """The columns the online form changes (this one first, then the referencing columns of the same old
        type) with what their swap moves, from what the specs know; ValueError (reason — fix) for what the
        online form cannot do."""
        where = f"{self.table}.{self.column}"
        if self.table not in state.tables:
            raise ValueError(f"changing {where} with using needs the online form, which needs a table the specs "
                             "created (its indexes and keys are rebuilt concurrently from the specs) — fix: declare "
                             "the table in the specs, or use RawSQL")
        old = self._known_column(state).type
        old_shape = shape(old)
        ctx = PlanContext(version=version, migration_name="", index=0, state=state)
        targets = [self._target(ctx, state, self.table, self.column, old, self.using, old_shape)]
        for fact in state.foreign_keys.values():
            if fact.references != self.table or fact.ref_columns != (self.column,) or fact.table == self.table:
                continue
            known = state.tables.get(fact.table)
            column = fact.columns[0]
            if known is None or column not in known.columns or shape(known.columns[column].type) != old_shape:
                continue
            if any(t.table == fact.table and t.column == column for t in targets):
                continue
            targets.append(self._target(ctx, state, fact.table, column, known.columns[column].type, None, old_shape))
        return targets

    def _target(self, ctx: PlanContext, state: SchemaState, table: str, column: str, old: str, using,
                old_shape) -> Target:
        where = f"{table}.{column}"
        known = state.tables[table]
        if len(known.primary_key) != 1:
            raise ValueError(f"changing {where} online needs a one-column primary key on {table} to backfill by — "
                             "fix: add one, or change the column with RawSQL in a maintenance window")
        if known.columns[column].identity:
            raise ValueError(f"{where} is an identity column; the online form cannot move an identity — fix: "
                             "change it with RawSQL in a maintenance window")
        shadow = shadow_name(ctx, column)
        moved: list[MovedIndex] = []
        for owner, index in state.indexes.values():
            if owner != table or column not in index.referenced_columns:
                continue
            if (column not in index.columns and column not in index.include) or (
                    index.where is not None and column in index.where.columns):
                raise ValueError(f"index {index.resolved_name(table)} uses {where} in an expression or predicate; "
                                 "the online form rebuilds only plain column keys — fix: drop the index first "
                                 "(DropIndex) and re-create it after the change")
            moved.append(MovedIndex(index, swap_index(ctx, table, index, column, shadow)))
        if column in known.primary_key:
            pkey = Index(columns=[spelled_name(c) for c in known.primary_key], unique=True,
                         name=spelled_name(primary_key_name(state, table) or default_primary_key_name(table)))
            moved.append(MovedIndex(pkey, swap_index(ctx, table, pkey, column, shadow), "p"))
        for name, columns in known.uniques.items():
            if column in columns:
                unique = Index(columns=[spelled_name(c) for c in columns], unique=True, name=spelled_name(name))
                moved.append(MovedIndex(unique, swap_index(ctx, table, unique, column, shadow), "u"))
        spelled = old.strip().lower()
        cast_type = parse_type(SERIAL_BASE.get(spelled, old))   # a serial column casts as its integer type
        return Target(table, column, cast_type, self.type, using, known.primary_key[0], tuple(moved),
                      old_shape.name if old_shape else "", shadow)

    def _online(self, ctx: PlanContext) -> OnlinePlan | None:
        if self.predicted_in_place(ctx.state) is not False:
            return None
        return OnlinePlan(ctx, self.kind, self.targets(ctx.state, ctx.version), self.batch_size)

    # --- expectations ----------------------------------------------------------------------------

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        if self._expansion is not None:
            return self._expansion.expects(ctx)
        if self._known_column(ctx.state) is None:
            # Unknown to the specs (an existing table): present after the rollback too, type unchecked.
            return [ColumnTypeChange(self.table, self.column)]
        online = self._online(ctx)
        columns = [(t.table, t.column) for t in online.targets] if online else [(self.table, self.column)]
        out: list[expect.Expectation] = []
        for name, column in columns:
            table = ctx.state.tables[name]
            known = table.columns[column]
            not_null = not known.nullable or column in table.primary_key
            before = column_expect(name, known, not_null=not_null)
            new_type = self.type
            if known.type.strip().lower() in SERIAL_BASE:   # the sequence default stays: a serial of the new width
                new_type = {"int2": "smallserial", "int4": "serial", "int8": "bigserial"}.get(
                    getattr(shape(self.type), "name", ""), self.type)
            after = column_expect(name, known.model_copy(update={"type": new_type}), not_null=not_null)
            out.append(ColumnTypeChange(after.table, after.name, not_null=after.not_null, type_name=after.type_name,
                                        default=after.default, identity=after.identity, before=before))
        return out

    # --- forward ---------------------------------------------------------------------------------

    def _where(self, ctx: PlanContext) -> sql.Composable:
        return S("version = {v} AND table_name = {t} AND column_name = {c}").format(
            v=literal(ctx.version), t=literal(self.table), c=literal(self.column))

    def _probe(self) -> sql.Composable:
        """Read the new type's OID, modifier and collation into ``v_new`` from a zero-row temporary table
        (PostgreSQL resolves the spelling exactly as ALTER … TYPE will)."""
        return block(
            S("CREATE TEMP TABLE dbdeploy_type_probe (v {type});").format(type=self.type.sql()),
            S("SELECT a.atttypid, a.atttypmod, a.attcollation INTO v_new FROM pg_catalog.pg_attribute a\n"
              "WHERE a.attrelid = 'pg_temp.dbdeploy_type_probe'::pg_catalog.regclass AND a.attname = 'v';"),
            S("DROP TABLE pg_temp.dbdeploy_type_probe;"),
        )

    def _read_old(self) -> sql.Composable:
        return S("SELECT a.atttypid, a.atttypmod, a.attcollation, a.attgenerated,"
                 " pg_catalog.format_type(a.atttypid, a.atttypmod) AS type_text INTO v_old\n"
                 "FROM pg_catalog.pg_attribute a WHERE a.attrelid = {rel} AND a.attname = {col};").format(
            rel=regclass(self.table), col=literal(self.column))

    def _free_change(self) -> sql.Composable:
        """Condition on ``v_old``/``v_new``: PostgreSQL changes the type without rewriting the table."""
        return S(
            "(v_old.atttypid = v_new.atttypid AND (\n"
            "    v_new.atttypmod = v_old.atttypmod\n"
            "    OR (v_old.atttypid IN ({varchar}, {varbit}) AND v_old.atttypmod >= 0\n"
            "        AND (v_new.atttypmod < 0 OR v_new.atttypmod >= v_old.atttypmod))\n"
            "    OR (v_old.atttypid = {numeric} AND v_old.atttypmod >= 0 AND (v_new.atttypmod < 0\n"
            "        OR ((v_new.atttypmod - 4) & 65535 = (v_old.atttypmod - 4) & 65535\n"
            "            AND (v_new.atttypmod - 4) >> 16 >= (v_old.atttypmod - 4) >> 16)))\n"
            "    OR (v_old.atttypid IN ({times}) AND v_old.atttypmod >= 0\n"
            "        AND (v_new.atttypmod < 0 OR v_new.atttypmod >= v_old.atttypmod))))\n"
            "OR (v_old.atttypid <> v_new.atttypid AND v_new.atttypmod < 0 AND EXISTS (\n"
            "    SELECT 1 FROM pg_catalog.pg_cast c WHERE c.castsource = v_old.atttypid\n"
            "    AND c.casttarget = v_new.atttypid AND c.castmethod = 'b'))").format(
            varchar=literal(_VARCHAR), varbit=literal(_VARBIT), numeric=literal(_NUMERIC),
            times=S(", ").join(literal(t) for t in _TIME_TYPES))

    def _index_rebuilds(self) -> sql.Composable:
        """Names of the indexes on the column that the change would rebuild (NULL when none): an
        expression or a predicate uses the column, or a key's operator family is not the new type's
        default one for the index's access method."""
        rel, num = regclass(self.table), attnum(self.table, self.column)
        return S(
            "(SELECT pg_catalog.string_agg(i.indexrelid::pg_catalog.regclass::pg_catalog.text, ', ')\n"
            " FROM pg_catalog.pg_index i WHERE i.indrelid = {rel} AND (\n"
            "    ((i.indexprs IS NOT NULL OR i.indpred IS NOT NULL) AND EXISTS (SELECT 1 FROM pg_catalog.pg_depend d\n"
            "        WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = i.indexrelid\n"
            "        AND d.refobjid = {rel} AND d.refobjsubid = {num}))\n"
            "    OR EXISTS (SELECT 1 FROM pg_catalog.unnest(i.indkey::pg_catalog.int2[]) WITH ORDINALITY AS"
             " k(attnum, ord)\n"
            "        JOIN pg_catalog.pg_opclass o ON o.oid = i.indclass[k.ord - 1]\n"
            "        WHERE k.attnum = {num} AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_opclass d\n"
            "            WHERE d.opcmethod = o.opcmethod AND d.opcdefault AND d.opcfamily = o.opcfamily\n"
            "            AND (d.opcintype = v_new.atttypid OR EXISTS (SELECT 1 FROM pg_catalog.pg_cast c\n"
            "                WHERE c.castsource = v_new.atttypid AND c.casttarget = d.opcintype"
            " AND c.castmethod = 'b'))))))").format(rel=rel, num=num)

    def _views(self) -> sql.Composable:
        rel, num = regclass(self.table), attnum(self.table, self.column)
        return S("(SELECT pg_catalog.string_agg(DISTINCT r.ev_class::pg_catalog.regclass::pg_catalog.text, ', ')\n"
                 " FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid\n"
                 " WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.refobjid = {rel}\n"
                 " AND d.refobjsubid = {num} AND r.ev_class <> {rel})").format(rel=rel, num=num)

    def _in_place_step(self, ctx: PlanContext) -> Step:
        where = f"{self.table}.{self.column}"
        saved = saved_types_table(ctx)
        refuse_rewrite = fail(
            ctx, f"changing {where} in place is not possible: PostgreSQL would rewrite the table (or rebuild its "
                 "indexes) under an ACCESS EXCLUSIVE lock; from/to:",
            "The column's type in the database is not the one the specs know. Change the spec's type to one "
            "PostgreSQL converts in place, or change the column with RawSQL in a maintenance window.",
            detail=S("v_old.type_text || ' -> ' || pg_catalog.format_type(v_new.atttypid, v_new.atttypmod)"))
        body = block(
            if_then(S("{} OR NOT {}").format(relation_missing(self.table), column_exists(self.table, self.column)),
                    fail(ctx, f"cannot change the type of {where}: the table or column does not exist",
                         "Create it first, or remove this AlterColumnType.")),
            self._probe(),
            self._read_old(),
            if_then(S("v_old.atttypid = v_new.atttypid AND v_old.atttypmod = v_new.atttypmod"),
                    notice(ctx, f"{where} already has type {self.type}"), S("RETURN;")),
            S("v_dependants := {};").format(self._views()),
            if_then(S("v_dependants IS NOT NULL"),
                    fail(ctx, f"cannot change the type of {where}: these views or rules use it:",
                         "Drop the views first (RawSQL, with a rollback that re-creates them), then re-run.",
                         detail=S("v_dependants"))),
            if_then(S("v_old.attgenerated <> ''"),
                    fail(ctx, f"cannot change the type of {where}: it is a generated column",
                         "Change the generated column with RawSQL.")),
            if_then(S("NOT ({})").format(self._free_change()), refuse_rewrite),
            if_then(S("v_old.attcollation <> v_new.attcollation"),
                    fail(ctx, f"cannot change the type of {where} in place: its collation differs from the new "
                              "type's default, and the change would rebuild its indexes",
                         "Change the column with RawSQL (ALTER … TYPE … COLLATE) in a maintenance window.")),
            S("v_dependants := {};").format(self._index_rebuilds()),
            if_then(S("v_dependants IS NOT NULL"),
                    fail(ctx, f"changing {where} in place would rebuild these indexes under an ACCESS EXCLUSIVE "
                              "lock:",
                         "Drop and re-create them concurrently around the change, or use RawSQL.",
                         detail=S("v_dependants"))),
            create_saved_types_table(saved),
            S("INSERT INTO {saved} (version, table_name, column_name, old_type, old_typid, old_typmod, new_type)\n"
              "VALUES ({v}, {t}, {c}, v_old.type_text, v_old.atttypid, v_old.atttypmod,"
              " pg_catalog.format_type(v_new.atttypid, v_new.atttypmod))\n"
              "ON CONFLICT (version, table_name, column_name) DO NOTHING;").format(
                saved=saved, v=literal(ctx.version), t=literal(self.table), c=literal(self.column)),
            S("ALTER TABLE {t} ALTER COLUMN {c} TYPE {type};").format(
                t=qualified(self.table), c=ident(self.column), type=self.type.sql()),
            notice(ctx, f"changed the type of {where} to {self.type} in place (no rewrite)"),
        )
        sql_text = do_block(body, declare=["v_old record", "v_new record", "v_dependants text"])
        return Step("alter_column_type", self.table, "ACCESS EXCLUSIVE", True, sql_text,
                    f"change {where} to {self.type} in place (catalog only; refused if it would rewrite)")

    def forward(self, ctx: PlanContext) -> list[Step]:
        if self._expansion is not None:
            return self._expansion.forward(ctx)
        online = self._online(ctx)
        if online is not None:
            return _scaled_online(online.forward())
        return scaled([self._in_place_step(ctx)], queries.CATALOG_ONLY)

    # --- rollback --------------------------------------------------------------------------------

    def _saved_row(self, ctx: PlanContext) -> sql.Composable:
        return S("{rel} IS NOT NULL AND EXISTS (SELECT 1 FROM {saved} WHERE {w})").format(
            rel=regclass(f"{ctx.backup_schema}.altered_column_types"), saved=saved_types_table(ctx),
            w=self._where(ctx))

    def _saved(self, ctx: PlanContext, field: str) -> sql.Composable:
        return S("(SELECT s.{f} FROM {saved} s WHERE {w})").format(
            f=sql.Identifier(field), saved=saved_types_table(ctx), w=self._where(ctx))

    def _misfits(self, ctx: PlanContext) -> sql.Composable:
        """PL/pgSQL: count into ``v_count`` the rows whose value does not fit the saved old type (a longer
        ``varchar``, a ``numeric`` beyond the old precision); 0 for the other types."""
        t, c = qualified(self.table), ident(self.column)
        typid, typmod = self._saved(ctx, "old_typid"), self._saved(ctx, "old_typmod")
        return block(
            S("v_count := 0;"),
            if_then(S("{typid} IN ({varchar}, {varbit}) AND {typmod} >= 0").format(
                typid=typid, typmod=typmod, varchar=literal(_VARCHAR), varbit=literal(_VARBIT)),
                S("SELECT pg_catalog.count(*) INTO v_count FROM {t}\n"
                  "WHERE pg_catalog.length({c}::pg_catalog.text) > {typmod} - 4;").format(
                    t=t, c=c, typmod=typmod)),
            if_then(S("{typid} = {numeric} AND {typmod} >= 0").format(
                typid=typid, typmod=typmod, numeric=literal(_NUMERIC)),
                S("SELECT pg_catalog.count(*) INTO v_count FROM {t}\n"
                  "WHERE pg_catalog.abs(pg_catalog.round({c}::pg_catalog.numeric, ({typmod} - 4) & 65535))\n"
                  "    >= 10::pg_catalog.numeric ^ ((({typmod} - 4) >> 16) - (({typmod} - 4) & 65535));").format(
                    t=t, c=c, typmod=typmod)),
        )

    def rollback_preflight(self, ctx: PlanContext) -> list[sql.Composable]:
        if self._expansion is not None:
            return self._expansion.rollback_preflight(ctx)
        online = self._online(ctx)
        if online is not None:
            return online.rollback_preflight()
        where = f"{self.table}.{self.column}"
        current = S("(SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a"
                    " WHERE a.attrelid = {rel} AND a.attname = {col})").format(
            rel=regclass(self.table), col=literal(self.column))
        return [if_then(
            S("{} AND {} AND {}").format(self._saved_row(ctx), relation_exists(self.table),
                                         column_exists(self.table, self.column)),
            if_then(S("{current} IS DISTINCT FROM {new}").format(current=current, new=self._saved(ctx, "new_type")),
                    fail(ctx, f"{where} no longer has the type {ctx.label} gave it; it now has:",
                         "Something changed the column after the deploy; change it back by hand, or restore it "
                         "by hand and delete its row from the altered_column_types table of the backup schema.",
                         detail=current)),
            self._misfits(ctx),
            if_then(S("v_count > 0"),
                    fail(ctx, f"rows of {where} hold values the old type cannot hold; rows:",
                         "Shorten or change those values (they were written after the deploy), then run the "
                         "rollback again.", detail=S("v_count || ' (old type ' || {} || ')'").format(
                            self._saved(ctx, "old_type")))),
        )]

    def rollback(self, ctx: PlanContext) -> list[Step]:
        if self._expansion is not None:
            return self._expansion.rollback(ctx)
        online = self._online(ctx)
        if online is not None:
            return _scaled_online(online.rollback())
        where = f"{self.table}.{self.column}"
        saved = saved_types_table(ctx)
        body = block(
            if_then(S("NOT ({})").format(self._saved_row(ctx)),
                    notice(ctx, f"nothing to restore for {where}: {ctx.label} did not change its type"),
                    S("RETURN;")),
            if_then(S("{} OR NOT {}").format(relation_missing(self.table), column_exists(self.table, self.column)),
                    fail(ctx, f"cannot restore the type of {where}: the table or column does not exist",
                         "Restore the table or column first.")),
            S("SELECT s.old_type INTO v_old_type FROM {saved} s WHERE {w};").format(saved=saved, w=self._where(ctx)),
            # The old type as PostgreSQL spelled it (format_type of the catalog), never spec or user text.
            S("EXECUTE 'ALTER TABLE ' || {rel}::pg_catalog.text || ' ALTER COLUMN '"
              " || pg_catalog.quote_ident({col}) || ' TYPE ' || v_old_type;").format(
                rel=regclass(self.table), col=literal(self.column)),
            S("DELETE FROM {saved} WHERE {w};").format(saved=saved, w=self._where(ctx)),
            S("RAISE NOTICE '%', {msg} || v_old_type;").format(
                msg=literal(f"dbdeploy {ctx.label}: restored the type of {where}: ")),
        )
        return scaled([Step("restore_column_type", self.table, "ACCESS EXCLUSIVE", True,
                            do_block(body, declare=["v_old_type text"]),
                            f"change {where} back to its type before {ctx.label}")],
                      "proportional to rows (narrowing the type back rewrites the table under the lock)")

    # --- checklist -------------------------------------------------------------------------------

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        if self._expansion is not None:
            return self._expansion.checklist(ctx, earlier)
        where = f"{self.table}.{self.column}"
        type_query = CheckQuery(
            f"Column {where} has its new type",
            queries.query(S("SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) AS column_type\n"
                            "FROM pg_catalog.pg_attribute a WHERE a.attrelid = {rel} AND a.attname = {col}").format(
                rel=regclass(self.table), col=literal(self.column))),
            f"{self.type} (as PostgreSQL spells it, e.g. character varying(40) for varchar(40))",
            key=f"column-type:{where}")
        prerequisites = [] if self.table in earlier.created_tables else [queries.table_exists(self.table)]
        online = self._online(ctx) if self._known_column(ctx.state) is not None else None
        if online is None:
            return ChecklistItems(
                prerequisites=prerequisites, health_checks=[queries.column_state(self.table, self.column, None),
                                                            type_query],
                rollback_notes=[f"{where} goes back to its type before {ctx.label} (saved in "
                                f"{ctx.backup_schema}.altered_column_types). Narrowing a type rewrites the table "
                                "under an ACCESS EXCLUSIVE lock: reads and writes wait for it; the rollback refuses "
                                "first, with a count, when values written since do not fit the old type."])
        tables = list(dict.fromkeys(t.table for t in online.targets))
        columns = ", ".join(f"{t.table}.{t.column}" for t in online.targets)
        return ChecklistItems(
            backups=tables, prerequisites=prerequisites,
            health_checks=[queries.column_state(self.table, self.column, None), type_query],
            watch=[queries.index_build_progress(t) for t in tables],
            notes=[f"{columns} change type online: each gets a shadow column (<column>_v{ctx.version}_swap) filled "
                   "in batches and kept in sync by a trigger; one short transaction then swaps the names. The old "
                   "column stays under the shadow's name (nullable, no longer written) until a later migration "
                   "drops it: `SELECT *` shows it, and an `INSERT … VALUES` without a column list sees the new "
                   "column order. Views on the column are refused."],
            rollback_notes=[f"{columns} go back to their old type: a trigger converts new writes back into the "
                            "kept old column, a batched pass converts the rows changed since the swap, and the "
                            "same short swap puts the old column back (the new one is dropped). The rollback "
                            "refuses first, with a count, when values written since do not fit the old type "
                            "(e.g. a bigint above 2147483647)."])

_SCALES = {
    "alter_type_prepare": queries.CATALOG_ONLY, "alter_type_rollback_prepare": queries.CATALOG_ONLY,
    "alter_type_backfill": "proportional to rows (batches; reads and writes continue)",
    "alter_type_restore": "proportional to rows changed since the deploy (batches; reads and writes continue)",
    "alter_type_not_null": queries.NOT_VALID, "alter_type_validate_not_null": queries.VALIDATE,
    "drop_invalid_index": queries.DROP_INVALID_INDEX, "create_index": queries.CONCURRENT_INDEX,
    "alter_type_swap": "constant (catalog only: renames, constraints attached NOT VALID or USING INDEX)",
    "alter_type_swap_back": "constant (catalog only: renames, constraints attached NOT VALID or USING INDEX)",
    "alter_type_validate": queries.VALIDATE,
}


def _scaled_online(steps: list[Step]) -> list[Step]:
    return [replace(step, scales=_SCALES.get(step.kind, queries.CATALOG_ONLY)) for step in steps]


__all__ = ["AlterColumnType", "ColumnTypeChange", "saved_types_table"]
