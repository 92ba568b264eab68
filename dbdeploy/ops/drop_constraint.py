"""DropConstraint: drop a constraint of any kind, its definition kept for a rollback that re-adds it online.

The forward is one short transaction (``drop_constraint``, ACCESS EXCLUSIVE on the table; dropping a
foreign key takes a lock on the referenced table too — PostgreSQL docs, ALTER TABLE "DROP
CONSTRAINT"). Before any change it refuses (never CASCADE) a unique, primary key or exclusion
constraint that foreign keys use as their referenced key, naming them; a ``NOT NULL`` constraint
(PostgreSQL 18, contype ``n``) or a constraint trigger is refused too. Then it keeps the definition:

- a row in ``<backup schema>.dropped_constraints`` (version, table, name, kind, whether it was
  validated, ``pg_get_constraintdef`` and, for an index-backed constraint, ``pg_get_indexdef`` and
  its tablespace — both for the operator's eyes only) and, for a foreign key, the key as data
  (columns, referenced table and columns, MATCH, ON UPDATE/DELETE, DEFERRABLE: the same JSON as
  DropColumn's ``foreign_keys``);
- for a CHECK, unique, primary key or exclusion constraint, a zero-row **definition keeper** in the
  backup schema, ``CREATE TABLE … (LIKE <table>)`` with the constraint re-created on it from
  PostgreSQL's deparse of the original (as DropColumn's keeper does), owned by the deploying role,
  privileges restricted (``sql/acl.py``).

Nothing the rollback runs is SQL text read from a table: a CHECK, exclusion or unknown unique/primary
key is re-added from ``pg_get_constraintdef`` of the keeper's constraint (a catalog entry of a
dbdeploy-owned table), a foreign key from the saved JSON used only as data (identifiers through
``quote_ident``, keywords chosen by ``CASE`` from fixed lists), a unique or primary key the specs
created from the bundle (its columns).

The rollback, newest change first:

1. preflight (before any change): refuses when the saved definition is missing, and when rows
   written since the drop violate it — CHECK: rows where the expression is false; foreign key: rows
   without a referenced row; unique/primary key: the number of duplicated keys (and NULL keys for a
   primary key) — with the count;
2. ``restore_constraint`` (ACCESS EXCLUSIVE, catalog only): a CHECK or foreign key ``NOT VALID``
   (a foreign key takes SHARE ROW EXCLUSIVE on the referenced table); an exclusion constraint, or a
   unique/primary key the specs do not know, is added whole from the keeper — it builds its index
   inside this transaction (writes wait; the checklist and a NOTICE say so), because ``CREATE INDEX
   CONCURRENTLY`` needs the definition in the bundle;
3. for a unique/primary key the specs created: an INVALID leftover dropped concurrently, ``CREATE
   UNIQUE INDEX CONCURRENTLY`` (SHARE UPDATE EXCLUSIVE; duplicates counted first), then ``ADD
   CONSTRAINT … USING INDEX`` (short ACCESS EXCLUSIVE, with DEFERRABLE as it was);
4. ``validate_constraint`` (SHARE UPDATE EXCLUSIVE, its own transaction): ``VALIDATE`` what was
   validated before the drop; then the keeper and the saved row are removed.

A foreign key referencing the dropped key must be dropped first, in the same migration, with its own
DropConstraint: its rollback then runs after this one's and re-adds it once the key is back.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from psycopg import sql

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.base import Identifier, TableName
from dbdeploy.model.components import Index
from dbdeploy.model.names import derived_name, spelled, split_table
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops import constraint_steps as cs
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import (
    S,
    backup_name,
    constraint_exists,
    fail,
    notice,
    relation_exists,
    relation_missing,
)
from dbdeploy.ops.ddl import index_identifier
from dbdeploy.ops.rename_constraint import known_constraint
from dbdeploy.sql import acl, ident, literal, qualified, regclass, render
from dbdeploy.sql.blocks import block, do_block, if_then, indented

_KIND_WORD = {"p": "primary key", "u": "unique constraint", "f": "foreign key", "c": "CHECK constraint"}


def dropped_constraints_table(ctx: PlanContext) -> sql.Identifier:
    return ident(ctx.backup_schema, "dropped_constraints")


class DropConstraint(Operation):
    """Drop constraint ``name`` of ``table`` — CHECK, foreign key, unique, primary key or exclusion.

    Shapes: ``DropConstraint(table="shop.orders", name="orders_total_check")``. Errors (at load): on a
    table the specs created, a name it has no constraint of; a unique or primary key that foreign keys
    the specs added reference (fix: drop those first, with DropConstraint earlier in the migration).
    At run time the forward refuses, changing nothing, when the constraint does not exist (and this
    version did not drop it), when foreign keys use it as their referenced key (named), or for a
    ``NOT NULL`` constraint or constraint trigger."""

    kind: ClassVar[str] = "drop_constraint"
    # No data is lost (like DropIndex): --allow-destructive guards drops of tables and columns.
    destructive: ClassVar[bool] = False
    table: TableName
    name: Identifier

    # --- schema state -------------------------------------------------------------------------

    def apply(self, state: SchemaState) -> None:
        known = state.tables.get(self.table)
        if known is not None and self.name not in known.constraints:
            raise ValueError(f"{self.table} has no constraint {self.name!r} (its constraints: "
                             f"{', '.join(sorted(known.constraints)) or 'none'}) — fix: check the name")
        what = known_constraint(state, self.table, self.name)
        if what is not None and what[0] in ("p", "u"):
            users = sorted(f"{fk.table} (foreign key {fk.name})" for fk in state.foreign_keys.values()
                           if fk.references == self.table and set(fk.ref_columns) == set(what[1])
                           and fk.name != self.name)
            if users:
                raise ValueError(f"{_KIND_WORD[what[0]]} {self.name} of {self.table} is referenced by "
                                 f"{', '.join(users)}; dbdeploy never drops with CASCADE — fix: drop those foreign "
                                 "keys first with DropConstraint, earlier in the same migration")
        schema = split_table(self.table)[0]
        if known is not None:   # copy-on-write, see SchemaState.copy
            state.tables[self.table] = replace(
                known, constraints=known.constraints - {self.name},
                uniques={n: c for n, c in known.uniques.items() if n != self.name},
                primary_key=[] if what is not None and what[0] == "p" else known.primary_key)
        if state.relations.get(f"{schema}.{self.name}", ("", ""))[1] == self.table:
            del state.relations[f"{schema}.{self.name}"]
        state.foreign_keys.pop((self.table, self.name), None)
        state.checks.pop((self.table, self.name), None)

    def _known(self, ctx: PlanContext) -> tuple[str, tuple[str, ...]] | None:
        return known_constraint(ctx.state, self.table, self.name)

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        known = self._known(ctx)
        return [expect.Constraint(self.table, self.name, present=False,
                                  columns=tuple(sorted(known[1])) if known else (),
                                  constraint_kind=known[0] if known else None)]

    # --- names --------------------------------------------------------------------------------

    def _keeper_name(self, ctx: PlanContext) -> str:
        return backup_name(ctx, f"op{ctx.index}", "con", self.name)

    def _keeper(self, ctx: PlanContext) -> sql.Identifier:
        return ident(ctx.backup_schema, self._keeper_name(ctx))

    def _where(self, ctx: PlanContext) -> sql.Composable:
        return S("m.version = {v} AND m.table_name = {t} AND m.constraint_name = {n}").format(
            v=literal(ctx.version), t=literal(self.table), n=literal(self.name))

    def _load_saved(self, ctx: PlanContext) -> sql.Composable:
        """PL/pgSQL (needs ``v_saved boolean`` and ``v_absent boolean``): whether this version's drop saved
        the definition (``v_saved``), or recorded that a spec-known optional foreign key was absent and nothing
        was dropped (``v_absent``: a row of type ``-``). The meta table may not exist (no drop ran yet): the
        queries are only planned once it does."""
        meta = dropped_constraints_table(ctx)
        return block(
            S("v_saved := false;"),
            S("v_absent := false;"),
            if_then(S("{} IS NOT NULL").format(regclass(meta)),
                    S("v_saved := EXISTS (SELECT 1 FROM {meta} AS m WHERE {w} AND m.constraint_type <> '-');").format(
                        meta=meta, w=self._where(ctx)),
                    S("v_absent := EXISTS (SELECT 1 FROM {meta} AS m WHERE {w} AND m.constraint_type = '-');").format(
                        meta=meta, w=self._where(ctx))))

    def _saved(self, ctx: PlanContext) -> sql.Composable:
        return S("v_saved")

    def _keeper_con_name(self, ctx: PlanContext) -> str:
        """The name of the keeper's copy of the constraint (and of its index): unique in the backup schema,
        as the constraint's own name need not be (two tables, or two versions, may drop an ``x_key``)."""
        return derived_name(self._keeper_name(ctx), suffix="c")

    def _keeper_constraint(self, ctx: PlanContext) -> sql.Composable:
        """The keeper's copy of the constraint: ``SELECT … FROM pg_constraint k`` (one row or none)."""
        return S("pg_catalog.pg_constraint k WHERE k.conrelid = {k} AND k.conname = {n}").format(
            k=regclass(self._keeper(ctx)), n=literal(self._keeper_con_name(ctx)))

    # --- forward ------------------------------------------------------------------------------

    def forward(self, ctx: PlanContext) -> list[Step]:
        rel, t = regclass(self.table), qualified(self.table)
        meta, keeper = dropped_constraints_table(ctx), self._keeper(ctx)
        keeper_text = literal(render(keeper))
        name = literal(self.name)
        fk_json = S(
            "SELECT pg_catalog.jsonb_build_object(\n"
            "    'columns', (SELECT pg_catalog.jsonb_agg(a.attname::text ORDER BY k.o)"
            " FROM pg_catalog.unnest(c.conkey) WITH ORDINALITY AS k(n, o)"
            " JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n),\n"
            "    'ref_schema', rn.nspname::text, 'ref_table', r.relname::text,\n"
            "    'ref_columns', (SELECT pg_catalog.jsonb_agg(a.attname::text ORDER BY k.o)"
            " FROM pg_catalog.unnest(c.confkey) WITH ORDINALITY AS k(n, o)"
            " JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n),\n"
            "    'match', c.confmatchtype::text, 'on_update', c.confupdtype::text, 'on_delete', c.confdeltype::text,\n"
            "    'deferrable', c.condeferrable, 'deferred', c.condeferred) INTO v_fk\n"
            "FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_class r ON r.oid = c.confrelid\n"
            "JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace WHERE c.oid = v_oid;")
        known = self._known(ctx)
        if known is not None and known[0] == "f":
            # A foreign key the specs added may be an optional one, skipped while its table is missing: nothing to
            # drop, and the rollback has nothing to re-add (a row of type '-' says so).
            absent = block(
                S("INSERT INTO {meta} (version, table_name, constraint_name, constraint_type, validated, definition)"
                  " VALUES ({v}, {t}, {n}, '-', false, '');").format(
                    meta=meta, v=literal(ctx.version), t=literal(self.table), n=name),
                notice(ctx, f"foreign key {self.name} of {self.table} does not exist (an optional foreign key whose "
                            "table is missing); nothing to drop"),
                S("RETURN;"))
        else:
            absent = fail(ctx, f"constraint {self.name} of {self.table} does not exist; nothing to drop",
                          "Check the table and constraint names.")
        body = block(
            if_then(relation_missing(self.table),
                    fail(ctx, f"table {self.table} does not exist", "Check the table name.")),
            S("CREATE TABLE IF NOT EXISTS {meta} (\n"
              "    version text NOT NULL, table_name text NOT NULL, constraint_name text NOT NULL,\n"
              "    constraint_type text NOT NULL, validated boolean NOT NULL, definition text NOT NULL,\n"
              "    index_definition text, index_tablespace text, foreign_key jsonb, keeper text,\n"
              "    dropped_at timestamptz NOT NULL DEFAULT pg_catalog.now(),\n"
              "    PRIMARY KEY (version, table_name, constraint_name)\n"
              ");").format(meta=meta),
            acl.restrict_table(meta),
            self._load_saved(ctx),
            if_then(S("NOT {}").format(constraint_exists(self.table, self.name)),
                    if_then(S("v_saved OR v_absent"),
                            notice(ctx, f"constraint {self.name} of {self.table} is already dropped (its definition is "
                                        f"kept in {ctx.backup_schema}.dropped_constraints)"),
                            S("RETURN;")),
                    absent),
            S("SELECT c.oid, c.contype::text, c.conindid, c.convalidated INTO v_oid, v_type, v_index, v_validated\n"
              "FROM pg_catalog.pg_constraint c WHERE c.conrelid = {rel} AND c.conname = {n};").format(rel=rel, n=name),
            if_then(S("v_type NOT IN ('c', 'f', 'u', 'p', 'x')"),
                    fail(ctx, f"constraint {self.name} of {self.table} is of a kind DropConstraint does not drop "
                              "(NOT NULL or constraint trigger):",
                         "Drop a NOT NULL with DropNotNull; a constraint trigger with RawSQL.", detail=S("v_type"))),
            if_then(S("v_type IN ('u', 'p', 'x')"),
                    S("SELECT pg_catalog.string_agg(c.conrelid::pg_catalog.regclass::text || ' (foreign key '"
                      " || c.conname || ')', ', ' ORDER BY 1) INTO v_dependants FROM pg_catalog.pg_constraint c"
                      " WHERE c.contype = 'f' AND c.conindid = v_index;"),
                    if_then(S("v_dependants IS NOT NULL"),
                            fail(ctx, f"refusing to drop constraint {self.name} of {self.table}; nothing was changed; "
                                      "these foreign keys use it as their referenced key:",
                                 "Drop those foreign keys first with DropConstraint, earlier in the same migration "
                                 "(dbdeploy never uses CASCADE), then re-run.", detail=S("v_dependants")))),
            if_then(S("v_saved"),
                    fail(ctx, f"an earlier drop of constraint {self.name} of {self.table} by {ctx.label} was never "
                              "rolled back, and the constraint exists again",
                         f"Delete its row from {ctx.backup_schema}.dropped_constraints (and drop "
                         f"{ctx.backup_schema}.{self._keeper_name(ctx)}) once it is not needed, then re-run.")),
            # an optional foreign key recorded absent by an earlier run exists now: drop it for real
            S("DELETE FROM {meta} AS m WHERE {w} AND m.constraint_type = '-';").format(meta=meta, w=self._where(ctx)),
            if_then(S("v_type = 'f'"), fk_json,
                    otherwise=[
                        S("DROP TABLE IF EXISTS {};").format(keeper),
                        S("CREATE TABLE {k} (LIKE {t});").format(k=keeper, t=t),
                        acl.restrict_table(keeper),
                        S("EXECUTE 'ALTER TABLE ' || {kt} || ' ADD CONSTRAINT ' || pg_catalog.quote_ident({n}) || ' '"
                          " || pg_catalog.pg_get_constraintdef(v_oid);").format(
                            kt=keeper_text, n=literal(self._keeper_con_name(ctx)))]),
            S("INSERT INTO {meta} (version, table_name, constraint_name, constraint_type, validated, definition,"
              " index_definition, index_tablespace, foreign_key, keeper)\n"
              "SELECT {v}, {t}, {n}, v_type, v_validated, pg_catalog.pg_get_constraintdef(v_oid),\n"
              "    CASE WHEN v_index <> 0 THEN pg_catalog.pg_get_indexdef(v_index) END,\n"
              "    (SELECT ts.spcname::text FROM pg_catalog.pg_class i JOIN pg_catalog.pg_tablespace ts"
              " ON ts.oid = i.reltablespace WHERE i.oid = v_index),\n"
              "    v_fk, CASE WHEN v_type <> 'f' THEN {k} END;").format(
                meta=meta, v=literal(ctx.version), t=literal(self.table), n=name, k=keeper_text),
            S("ALTER TABLE {t} DROP CONSTRAINT {n};").format(t=t, n=ident(self.name)),
            notice(ctx, f"dropped constraint {self.name} of {self.table}; its definition is kept in "
                        f"{ctx.backup_schema}.dropped_constraints for the rollback"),
        )
        declare = ["v_oid oid", "v_type text", "v_index oid", "v_validated boolean", "v_dependants text",
                   "v_fk jsonb", "v_saved boolean", "v_absent boolean"]
        return scaled([Step(self.kind, self.table, "ACCESS EXCLUSIVE", True, do_block(body, declare=declare),
                            f"drop constraint {self.name} of {self.table} (definition kept for rollback)")],
                      "constant (catalog only; dropping a unique or primary key drops its index)")

    # --- rollback -----------------------------------------------------------------------------

    def _restoring(self, ctx: PlanContext) -> sql.Composable:
        """True when this version dropped the constraint and it is not back yet."""
        return S("{} AND {} AND NOT {}").format(relation_exists(self.table), self._saved(ctx),
                                               constraint_exists(self.table, self.name))

    def _fk_statement(self, ctx: PlanContext) -> sql.Composable:
        """``ALTER TABLE … ADD CONSTRAINT … FOREIGN KEY … NOT VALID`` from the saved JSON ``v_fk``, as data."""
        return cs.add_foreign_key_from_json(literal(render(qualified(self.table))), literal(self.name))

    def _concurrent_unique(self, ctx: PlanContext) -> tuple[str, tuple[str, ...]] | None:
        known = self._known(ctx)
        return known if known is not None and known[0] in ("p", "u") and known[1] else None

    def _restore_step(self, ctx: PlanContext) -> Step:
        meta = dropped_constraints_table(ctx)
        qt = literal(render(qualified(self.table)))
        concurrent = self._concurrent_unique(ctx) is not None
        whole = S("v_type IN ('x', 'u', 'p')") if not concurrent else S("v_type = 'x'")
        body = block(
            self._load_saved(ctx),
            if_then(S("NOT ({})").format(self._restoring(ctx)), S("RETURN;")),
            S("SELECT m.constraint_type, m.foreign_key INTO v_type, v_fk FROM {meta} AS m WHERE {w};").format(
                meta=meta, w=self._where(ctx)),
            if_then(S("v_type = 'f'"), self._fk_statement(ctx)),
            if_then(S("v_type = 'c'"),
                    S("SELECT pg_catalog.pg_get_constraintdef(k.oid) INTO v_def FROM {kc};").format(
                        kc=self._keeper_constraint(ctx)),
                    if_then(S("pg_catalog.right(v_def, 10) <> ' NOT VALID'"), S("v_def := v_def || ' NOT VALID';")),
                    S("EXECUTE 'ALTER TABLE ' || {qt} || ' ADD CONSTRAINT ' || pg_catalog.quote_ident({n}) || ' '"
                      " || v_def;").format(qt=qt, n=literal(self.name))),
            if_then(whole,
                    S("SELECT pg_catalog.pg_get_constraintdef(k.oid) INTO v_def FROM {kc};").format(
                        kc=self._keeper_constraint(ctx)),
                    notice(ctx, f"re-adding constraint {self.name} of {self.table} with its index built in this "
                                "transaction (writes to the table wait until it is built)"),
                    S("EXECUTE 'ALTER TABLE ' || {qt} || ' ADD CONSTRAINT ' || pg_catalog.quote_ident({n}) || ' '"
                      " || v_def;").format(qt=qt, n=literal(self.name))),
        )
        return Step("restore_constraint", self.table, "ACCESS EXCLUSIVE", True,
                    do_block(body, declare=["v_type text", "v_fk jsonb", "v_def text", "v_saved boolean",
                                            "v_absent boolean"]),
                    f"re-add constraint {self.name} of {self.table} (CHECK and foreign key NOT VALID) if {ctx.label} "
                    "dropped it")

    def _unique_steps(self, ctx: PlanContext) -> list[Step]:
        """A unique or primary key the specs created: built concurrently, then attached."""
        known = self._concurrent_unique(ctx)
        if known is None:
            return []
        kind, columns = known
        index = Index(columns=[spelled(c) for c in columns], unique=True, name=spelled(self.name))
        qualified_index = render(index_identifier(self.table, index))
        hint = (f"Rows written since {ctx.label} dropped {self.name} break it. Change or delete the rows with "
                "duplicated keys, then run the rollback again: it continues at this step.")
        check = do_block(cs.duplicate_precheck(ctx, self.table, index, qualified_index, hint=hint),
                         declare=["v_duplicated bigint"])
        build = Step("create_unique_index", self.table, "SHARE UPDATE EXCLUSIVE", False,
                     check + "\n" + render(S("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {n} ON {t} ({c});").format(
                         n=ident(self.name), t=qualified(self.table), c=S(", ").join(ident(c) for c in columns))),
                     f"rebuild the index of {self.name} on {self.table} concurrently (refused if the keys are "
                     "duplicated)")
        word = S("PRIMARY KEY") if kind == "p" else S("UNIQUE")
        attach = block(
            self._load_saved(ctx),
            if_then(S("{} AND {} IS NOT NULL").format(self._restoring(ctx),
                                                      regclass(index_identifier(self.table, index))),
                    S("SELECT k.condeferrable, k.condeferred INTO v_deferrable, v_deferred FROM {kc};").format(
                        kc=self._keeper_constraint(ctx)),
                    S("EXECUTE 'ALTER TABLE ' || {qt} || ' ADD CONSTRAINT ' || pg_catalog.quote_ident({n})"
                      " || ' ' || {w} || ' USING INDEX ' || pg_catalog.quote_ident({n})\n"
                      "    || CASE WHEN v_deferrable THEN ' DEFERRABLE' ELSE '' END\n"
                      "    || CASE WHEN v_deferred THEN ' INITIALLY DEFERRED' ELSE '' END;").format(
                        qt=literal(render(qualified(self.table))), n=literal(self.name), w=literal(render(word)))))
        return [
            cs.drop_invalid_index(ctx, self.table, index),
            build,
            Step("add_unique" if kind == "u" else "add_primary_key", self.table, "ACCESS EXCLUSIVE", True,
                 do_block(attach, declare=["v_deferrable boolean", "v_deferred boolean", "v_saved boolean",
                                                    "v_absent boolean"]),
                 f"attach index {self.name} to {self.table} as its constraint again"),
        ]

    def _validate_step(self, ctx: PlanContext) -> Step:
        meta = dropped_constraints_table(ctx)
        body = block(
            self._load_saved(ctx),
            if_then(S("NOT v_saved AND NOT v_absent"), S("RETURN;")),
            if_then(S("v_saved AND {} AND NOT {}").format(relation_exists(self.table),
                                                          constraint_exists(self.table, self.name)),
                    fail(ctx, f"constraint {self.name} of {self.table} was not re-added", "Re-run the rollback.")),
            if_then(S("EXISTS (SELECT 1 FROM {meta} AS m WHERE {w} AND m.validated) AND EXISTS (SELECT 1 FROM"
                      " pg_catalog.pg_constraint WHERE conrelid = {rel} AND conname = {n} AND NOT convalidated)"
                      ).format(meta=meta, w=self._where(ctx), rel=regclass(self.table), n=literal(self.name)),
                    S("ALTER TABLE {t} VALIDATE CONSTRAINT {n};").format(t=qualified(self.table), n=ident(self.name))),
            S("DROP TABLE IF EXISTS {};").format(self._keeper(ctx)),
            S("DELETE FROM {meta} AS m WHERE {w};").format(meta=meta, w=self._where(ctx)),
        )
        return Step("validate_constraint", self.table, "SHARE UPDATE EXCLUSIVE", True,
                    do_block(body, declare=["v_saved boolean", "v_absent boolean"]),
                    f"validate the re-added {self.name} of {self.table} as it was, then forget its saved definition")

    def rollback(self, ctx: PlanContext) -> list[Step]:
        return [self._restore_step(ctx), *self._unique_steps(ctx), self._validate_step(ctx)]

    def rollback_preflight(self, ctx: PlanContext) -> list[sql.Composable]:
        meta = dropped_constraints_table(ctx)
        t_text = literal(render(qualified(self.table)))
        keeper_index_keys = S(
            "SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY x.o),"
            " pg_catalog.string_agg(pg_catalog.quote_ident(a.attname) || ' IS NOT NULL', ' AND ' ORDER BY x.o)\n"
            "    INTO v_keys, v_not_null\n"
            "    FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_index i ON i.indexrelid = k.conindid\n"
            "    CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS x(n, o)\n"
            "    JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.n\n"
            "    WHERE k.conrelid = {k} AND k.conname = {n} AND x.o <= i.indnkeyatts;").format(
            k=regclass(self._keeper(ctx)), n=literal(self._keeper_con_name(ctx)))
        fk_missing = S(
            "EXECUTE 'SELECT pg_catalog.count(*) FROM ' || {qt} || ' AS t WHERE '\n"
            "    || (SELECT pg_catalog.string_agg('t.' || pg_catalog.quote_ident(x) || ' IS NOT NULL', ' AND ')"
            " FROM pg_catalog.jsonb_array_elements_text(v_fk->'columns') AS x)\n"
            "    || ' AND NOT EXISTS (SELECT 1 FROM ' || pg_catalog.quote_ident(v_fk->>'ref_schema') || '.'"
            " || pg_catalog.quote_ident(v_fk->>'ref_table') || ' AS r WHERE '\n"
            "    || (SELECT pg_catalog.string_agg('r.' || pg_catalog.quote_ident(r.x) || ' = t.'"
            " || pg_catalog.quote_ident(c.x), ' AND ' ORDER BY c.o)"
            " FROM pg_catalog.jsonb_array_elements_text(v_fk->'columns') WITH ORDINALITY AS c(x, o)"
            " JOIN pg_catalog.jsonb_array_elements_text(v_fk->'ref_columns') WITH ORDINALITY AS r(x, o) ON r.o = c.o)\n"
            "    || ')' INTO v_count;").format(qt=t_text)
        label = f"constraint {self.name} of {self.table}"
        referenced = S("pg_catalog.to_regclass(pg_catalog.quote_ident(v_fk->>'ref_schema') || '.'"
                       " || pg_catalog.quote_ident(v_fk->>'ref_table'))")
        body = block(
            S("SELECT m.constraint_type, m.validated, m.foreign_key INTO v_type, v_validated, v_fk"
              " FROM {meta} AS m WHERE {w};").format(meta=meta, w=self._where(ctx)),
            if_then(S("v_type <> 'f' AND NOT EXISTS (SELECT 1 FROM {kc})").format(kc=self._keeper_constraint(ctx)),
                    fail(ctx, f"the saved definition of {label} is missing ({ctx.backup_schema}."
                              f"{self._keeper_name(ctx)}); cannot re-add it",
                         "Restore the backup schema's tables from a database backup, or re-add the constraint by "
                         "hand.")),
            if_then(S("v_type = 'c' AND v_validated"),
                    S("EXECUTE 'SELECT pg_catalog.count(*) FROM ' || {qt} || ' WHERE ('"
                      " || (SELECT pg_catalog.pg_get_expr(k.conbin, k.conrelid) FROM {kc}) || ') IS FALSE'"
                      " INTO v_count;").format(qt=t_text, kc=self._keeper_constraint(ctx)),
                    if_then(S("v_count > 0"),
                            fail(ctx, f"cannot re-add {label}: rows written since the drop violate it; rows:",
                                 "Fix or delete the violating rows, then re-run the rollback.",
                                 detail=S("v_count")))),
            if_then(S("v_type = 'f' AND {} IS NULL").format(referenced),
                    fail(ctx, f"cannot re-add {label}: the table it references is gone:",
                         "Restore the referenced table first (roll back the migration that dropped it), then re-run.",
                         detail=S("(v_fk->>'ref_schema') || '.' || (v_fk->>'ref_table')"))),
            if_then(S("v_type = 'f' AND v_validated AND {} IS NOT NULL").format(referenced), fk_missing,
                    if_then(S("v_count > 0"),
                            fail(ctx, f"cannot re-add {label}: rows written since the drop have no referenced row; "
                                      "rows:", "Fix or delete those rows, then re-run the rollback.",
                                 detail=S("v_count")))),
            if_then(S("v_type IN ('u', 'p')"), keeper_index_keys,
                    if_then(S("v_type = 'p'"),
                            S("EXECUTE 'SELECT pg_catalog.count(*) FROM ' || {qt} || ' WHERE NOT (' || v_not_null"
                              " || ')' INTO v_count;").format(qt=t_text),
                            if_then(S("v_count > 0"),
                                    fail(ctx, f"cannot re-add {label}: rows written since the drop have a NULL key; "
                                              "rows:", "Fill or delete those rows, then re-run the rollback.",
                                         detail=S("v_count")))),
                    S("EXECUTE 'SELECT pg_catalog.count(*) FROM (SELECT 1 FROM ' || {qt} || ' WHERE ' || v_not_null"
                      " || ' GROUP BY ' || v_keys || ' HAVING pg_catalog.count(*) > 1) AS d' INTO v_count;").format(
                        qt=t_text),
                    if_then(S("v_count > 0"),
                            fail(ctx, f"cannot re-add {label}: keys written since the drop are duplicated; "
                                      "duplicated keys:",
                                 "Remove the duplicates, then re-run the rollback.", detail=S("v_count")))),
        )
        missing = if_then(
            S("{} AND NOT {} AND NOT v_absent AND NOT {}").format(relation_exists(self.table), self._saved(ctx),
                                                                  constraint_exists(self.table, self.name)),
            fail(ctx, f"no saved definition of {label} in {ctx.backup_schema}.dropped_constraints; cannot re-add it",
                 "The constraint was dropped outside this migration; re-add it by hand, then re-run the rollback."))
        nested = block(S("DECLARE"), S("    v_saved boolean; v_absent boolean; v_type text; v_validated boolean;"
                                        " v_fk jsonb; v_keys text; v_not_null text;"),
                       S("BEGIN"), indented(block(self._load_saved(ctx), missing, if_then(self._restoring(ctx), body))),
                       S("END;"))
        return [nested]

    # --- checklist ----------------------------------------------------------------------------

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        rel = regclass(self.table)
        exists = CheckQuery(f"Constraint {self.name} of {self.table} exists", queries.query(S(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = {rel} AND conname = {n})"
            " AS constraint_exists").format(rel=rel, n=literal(self.name))), "true",
            otherwise="`false` after an earlier run of this version is expected")
        users = CheckQuery(f"No foreign key uses {self.name} as its referenced key (the drop refuses otherwise)",
                           queries.query(S(
                               "SELECT f.conrelid::pg_catalog.regclass AS referencing_table, f.conname AS foreign_key\n"
                               "FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_constraint f\n"
                               "    ON f.contype = 'f' AND f.conindid = c.conindid AND c.conindid <> 0\n"
                               "WHERE c.conrelid = {rel} AND c.conname = {n}"
                               " AND c.contype IN ('u', 'p', 'x')").format(rel=rel, n=literal(self.name))),
                           "no rows")
        saved = CheckQuery(f"Constraint {self.name} of {self.table} is gone and its definition is saved for the "
                           "rollback", queries.query(S(
                               "SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = {rel}"
                               " AND conname = {n})\n    AND EXISTS (SELECT 1 FROM {meta} AS m WHERE {w}) AS saved"
                           ).format(rel=rel, n=literal(self.name), meta=dropped_constraints_table(ctx),
                                    w=self._where(ctx))), "true")
        known = self._known(ctx)
        kind = known[0] if known else None
        saved_in = f"{ctx.backup_schema}.dropped_constraints"
        if kind != "f":
            saved_in += f" and the keeper {ctx.backup_schema}.{self._keeper_name(ctx)}"
        how = {
            "c": "NOT VALID, then VALIDATE in its own transaction (reads and writes continue)",
            "f": "NOT VALID, then VALIDATE in its own transaction (reads and writes continue)",
            "u": "with CREATE UNIQUE INDEX CONCURRENTLY (duplicates counted first), then ADD CONSTRAINT … UNIQUE USING "
                 "INDEX (a short ACCESS EXCLUSIVE step)",
            "p": "with CREATE UNIQUE INDEX CONCURRENTLY (duplicates counted first), then ADD CONSTRAINT … PRIMARY KEY "
                 "USING INDEX (a short ACCESS EXCLUSIVE step)",
        }.get(kind or "", "by its kind, known only when the rollback runs: a CHECK or foreign key NOT VALID, then "
                          "VALIDATE in its own transaction; a unique, primary key or exclusion constraint with its "
                          "index built inside a short ACCESS EXCLUSIVE transaction (writes wait while it builds: the "
                          "specs do not know its columns, and CREATE INDEX CONCURRENTLY needs them in the bundle)")
        return ChecklistItems(
            prerequisites=[queries.table_exists(self.table), exists, users],
            health_checks=[saved],
            rollback_notes=[
                f"The rollback re-adds {self.name} on {self.table} from the definition saved at the drop ({saved_in}), "
                f"{how}; it refuses before any change when the saved definition is missing or rows written since the "
                "drop violate it (with their count)."])


__all__ = ["DropConstraint", "dropped_constraints_table"]
