"""AddEnumValue: one more label of an enum type, added in its own step outside a transaction block.

PostgreSQL docs, ALTER TYPE: before PostgreSQL 12 ``ADD VALUE`` cannot run inside a transaction block,
and a value added inside one cannot be used until that transaction committed. So the forward is two
steps: a transactional check (the type is an enum, the BEFORE/AFTER label exists) that records, when
the label is missing, that this version adds it (ownership); then ``ALTER TYPE … ADD VALUE IF NOT EXISTS
… [BEFORE|AFTER …]`` alone in a ``tx=none`` step (autocommit: committed when the statement ends, so later
steps can use the value). Neither step locks a table (``ADD VALUE`` locks only the type).

PostgreSQL cannot remove an enum label. The rollback (only of a label this version added) therefore
rebuilds the type without it, in one transaction: a new enum under a temporary name with the remaining
labels in order, every table column of the type (or an array of it) altered to it with ``USING
col::text::new`` — this rewrites those tables under ACCESS EXCLUSIVE — their defaults dropped before and
set again after, the old type dropped and the new one renamed to the old name (owner and comment kept).
Its preflight refuses before any change, with the count, while any row of such a column holds the label,
and refuses shapes the rebuild does not handle (named in the message): anything else depending on the
type (a domain, a function, a view, an index expression or predicate, a CHECK naming a label, a
composite type), a column of a partition, partitioned or inheriting table, or grants on the type.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import model_validator

from dbdeploy.bundle import expectations as expect
from dbdeploy.bundle.step import Step, scaled
from dbdeploy.model.names import derived_name
from dbdeploy.ops import checklist_queries as queries
from dbdeploy.ops.base import ChecklistItems, CheckQuery, Operation, PlanContext, SchemaState
from dbdeploy.ops.common import S, fail, forget_owned, is_owned, literal, notice, record_owned
from dbdeploy.ops.enum_common import (
    Label,
    TypeName,
    backup_columns_to_text,
    dependant_rows,
    enum_key,
    enum_labels,
    has_label,
    in_backup_schema,
    known_enum,
    later_touches,
    type_ident,
    type_kind,
    type_oid,
    type_parts,
)
from dbdeploy.sql import ident, render
from dbdeploy.sql.blocks import block, do_block, if_then, indented

REBUILD_SCALES = ("proportional to the rows of every table with a column of the type (each is rewritten under "
                  "ACCESS EXCLUSIVE: reads and writes wait)")


class AddEnumValue(Operation):
    """Add label ``value`` to enum ``type`` (``schema.type``), at the end or ``before``/``after`` an existing
    label (not both). Refused at load: an empty label or one over 63 bytes, both ``before`` and ``after``;
    on a type the specs created, a label it already has or a neighbour it lacks."""

    kind: ClassVar[str] = "add_enum_value"
    type: TypeName
    value: Label
    before: Label | None = None
    after: Label | None = None

    @model_validator(mode="after")
    def _one_neighbour(self) -> AddEnumValue:
        if self.before is not None and self.after is not None:
            raise ValueError("give before or after, not both — fix: remove one of them")
        if self.value in (self.before, self.after):
            raise ValueError(f"the new label {self.value!r} cannot be placed next to itself — fix: name an existing "
                             "label in before/after")
        return self

    @property
    def enum_type_name(self) -> str:
        return self.type

    @property
    def neighbour(self) -> str | None:
        return self.before if self.before is not None else self.after

    def target(self) -> str:
        return self.type

    def _new_labels(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        if self.before is not None:
            i = labels.index(self.before)
            return (*labels[:i], self.value, *labels[i:])
        if self.after is not None:
            i = labels.index(self.after) + 1
            return (*labels[:i], self.value, *labels[i:])
        return (*labels, self.value)

    def apply(self, state: SchemaState) -> None:
        fact = known_enum(state, self.type, "AddEnumValue")
        if fact is None:
            return
        if self.value in fact.labels:
            raise ValueError(f"enum {self.type} already has label {self.value!r} — fix: remove this AddEnumValue")
        if self.neighbour is not None and self.neighbour not in fact.labels:
            raise ValueError(f"enum {self.type} has no label {self.neighbour!r} to put {self.value!r} "
                             f"{'before' if self.before is not None else 'after'} (its labels: "
                             f"{', '.join(fact.labels)}) — fix: name one of its labels")
        state.types = {**state.types, self.type: type(fact)(self._new_labels(fact.labels), fact.version)}

    @property
    def key(self) -> str:
        return enum_key(self.type, self.value)

    def expects(self, ctx: PlanContext) -> list[expect.Expectation]:
        fact = ctx.state.types.get(self.type)
        if fact is None:
            return [expect.EnumType(self.type, None, includes=(self.value,))]
        before = tuple(fact.labels) if fact.version != ctx.version else expect._UNKNOWN
        labels = None if later_touches(ctx, self.type) else self._new_labels(fact.labels)
        return [expect.EnumType(self.type, labels, includes=(self.value,), before=before)]

    # --- forward --------------------------------------------------------------------------

    def _add_statement(self):
        statement = S("ALTER TYPE {t} ADD VALUE IF NOT EXISTS {v}").format(t=type_ident(self.type),
                                                                          v=literal(self.value))
        if self.before is not None:
            statement = S("{} BEFORE {}").format(statement, literal(self.before))
        elif self.after is not None:
            statement = S("{} AFTER {}").format(statement, literal(self.after))
        return S("{};").format(statement)

    def forward(self, ctx: PlanContext) -> list[Step]:
        hint = "Nothing was changed by this step. Check the type and label names in the spec."
        where = "before" if self.before is not None else "after"
        body = block(
            S("v_kind := {};").format(type_kind(self.type)),
            if_then(S("v_kind IS NULL"), fail(ctx, f"type {self.type} does not exist", hint)),
            if_then(S("v_kind <> 'e'"), fail(ctx, f"type {self.type} is not an enum type", hint)),
            if_then(has_label(self.type, self.value),
                    if_then(S("NOT {}").format(is_owned(ctx, "enum_value", self.key)),
                            notice(ctx, f"enum {self.type} already has label {self.value!r}; left as it is")),
                    S("RETURN;")),
            if_then(S("NOT {}").format(has_label(self.type, self.neighbour)),
                    fail(ctx, f"enum {self.type} has no label {self.neighbour!r} to add {self.value!r} {where}",
                         hint)) if self.neighbour is not None else None,
            # Recorded before the label is added (the next step, outside a transaction block): a forward
            # that stops in between leaves a record without the label, which the rollback forgets.
            record_owned(ctx, "enum_value", self.key),
        )
        return scaled([
            Step("check_enum_value", self.type, "NONE", True, do_block(body, declare=["v_kind \"char\""]),
                 f"check enum {self.type} and record that {ctx.label} adds label {self.value!r}"),
            Step(self.kind, self.type, "NONE", False, render(self._add_statement()),
                 f"add label {self.value!r} to enum {self.type} (ALTER TYPE … ADD VALUE, outside a transaction "
                 "block: usable once it committed)"),
        ], queries.CATALOG_ONLY)

    # --- rollback -------------------------------------------------------------------------

    def _tmp_name(self) -> str:
        return derived_name(type_parts(self.type)[1], suffix="dbdeploy_rebuild")

    def _checks(self, ctx: PlanContext) -> list:
        """Refusals (before any change) of the rebuild: rows using the label, shapes it does not handle.
        Needs ``v_oid``, ``v_count``, ``v_total``, ``v_col``, ``v_unsupported``."""
        label = f"label {self.value!r} of enum {self.type}"
        rel_of = S("CASE WHEN x.classid = 'pg_catalog.pg_class'::pg_catalog.regclass THEN x.objid"
                   " WHEN x.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass THEN (SELECT ad.adrelid"
                   " FROM pg_catalog.pg_attrdef ad WHERE ad.oid = x.objid) END")
        unsupported = S(
            "SELECT pg_catalog.string_agg(DISTINCT x.dep, ', ') FROM ({rows}) x\n"
            "    LEFT JOIN pg_catalog.pg_class c ON c.oid = {rel}\n"
            "    WHERE (c.oid IS NULL OR c.relkind <> 'r' OR c.relispartition\n"
            "       OR EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i\n"
            "                  WHERE i.inhrelid = c.oid OR i.inhparent = c.oid))\n"
            "      AND NOT {backup}").format(rows=dependant_rows(self.type), rel=rel_of, backup=in_backup_schema(ctx))
        grants = S("(SELECT t.typacl IS NOT NULL FROM pg_catalog.pg_type t WHERE t.oid = v_oid)")
        tmp_schema, _ = type_parts(self.type)
        backup_nsp = S("(SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = {})").format(
            literal(ctx.backup_schema))
        return [
            S("{} INTO v_unsupported;").format(unsupported),
            if_then(S("v_unsupported IS NOT NULL"),
                    fail(ctx, f"cannot remove {label} by rebuilding the type: these depend on it in ways the "
                              "rebuild does not handle:",
                         "Drop or change them (or remove the label by hand), then re-run the rollback; nothing "
                         "was changed.", detail=S("v_unsupported"))),
            if_then(grants, fail(ctx, f"cannot remove {label}: the type has grants, which a rebuild would lose",
                                 "Revoke them (and grant them again after the rollback), then re-run the rollback; "
                                 "nothing was changed.")),
            if_then(S("{} IS NOT NULL").format(type_oid(f"{tmp_schema}.{self._tmp_name()}")),
                    fail(ctx, f"cannot rebuild enum {self.type}: type {tmp_schema}.{self._tmp_name()} exists",
                         "Drop or rename that type (dbdeploy uses the name for the rebuild), then re-run the "
                         "rollback; nothing was changed.")),
            S("v_total := 0;"),
            S("FOR v_col IN SELECT a.attrelid::pg_catalog.regclass::text AS tbl, a.attname::text AS col,"
              " a.atttypid = v_oid AS scalar\n"
              "    FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid\n"
              "    WHERE a.atttypid IN (v_oid, (SELECT t.typarray FROM pg_catalog.pg_type t WHERE t.oid = v_oid))\n"
              "      AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind = 'r'\n"
              "      AND c.relnamespace IS DISTINCT FROM {b}\n"
              # the same rollback drops the tables this version created and the columns it added first
              "      AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n JOIN {objects} o ON o.version = {ver}\n"
              "          AND ((o.object_type = 'table' AND o.object_name = n.nspname || '.' || c.relname)\n"
              "            OR (o.object_type = 'column' AND o.object_name = n.nspname || '.' || c.relname || '.'"
              " || a.attname))\n"
              "          WHERE n.oid = c.relnamespace)\n"
              "LOOP\n"
              "    IF v_col.scalar THEN\n"
              "        EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s WHERE %I::text = %L',"
              " v_col.tbl, v_col.col, {v}) INTO v_count;\n"
              "    ELSE\n"
              "        EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s WHERE %L = ANY (%I::text[])',"
              " v_col.tbl, {v}, v_col.col) INTO v_count;\n"
              "    END IF;\n"
              "    v_total := v_total + v_count;\n"
              "END LOOP;").format(v=literal(self.value), b=backup_nsp, ver=literal(ctx.version),
                                  objects=ident(ctx.history_schema, "migration_objects")),
            if_then(S("v_total > 0"),
                    fail(ctx, f"cannot remove {label} (PostgreSQL cannot drop an enum label, and the rebuild "
                              "would lose it): rows using it:",
                         "Change those rows to another label (or delete them), then re-run the rollback; nothing "
                         "was changed.", detail=S("v_total"))),
        ]

    def _skip(self, ctx: PlanContext) -> list:
        """Leave the rollback step, forgetting the record, when there is nothing to remove."""
        forget = forget_owned(ctx, "enum_value", self.key)
        return [
            if_then(S("NOT {}").format(is_owned(ctx, "enum_value", self.key)),
                    notice(ctx, f"label {self.value!r} of enum {self.type} was not added by {ctx.label}; left in "
                                "place"), S("RETURN;")),
            if_then(is_owned(ctx, "enum_type", self.type),
                    notice(ctx, f"enum {self.type} was created by {ctx.label}: the rollback drops it whole"),
                    forget, S("RETURN;")),
            S("v_oid := {};").format(type_oid(self.type)),
            if_then(S("v_oid IS NULL OR NOT {}").format(has_label(self.type, self.value)),
                    notice(ctx, f"label {self.value!r} of enum {self.type} is already gone"), forget, S("RETURN;")),
        ]

    _DECLARE = ["v_oid oid", "v_count bigint", "v_total bigint", "v_col record", "v_unsupported text"]

    def rollback(self, ctx: PlanContext) -> list[Step]:
        schema, name = type_parts(self.type)
        tmp = ident(schema, self._tmp_name())
        tmp_text = literal(render(tmp))
        body = block(
            *self._skip(ctx),
            *self._checks(ctx),
            backup_columns_to_text(ctx, self.type),
            S("SELECT t.typowner, pg_catalog.obj_description(t.oid, 'pg_type') INTO v_owner, v_comment"
              " FROM pg_catalog.pg_type t WHERE t.oid = v_oid;"),
            S("SELECT pg_catalog.string_agg(pg_catalog.quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)"
              " INTO v_labels FROM pg_catalog.pg_enum e WHERE e.enumtypid = v_oid AND e.enumlabel <> {v};").format(
                v=literal(self.value)),
            S("EXECUTE 'CREATE TYPE ' || {tmp} || ' AS ENUM (' || COALESCE(v_labels, '') || ')';").format(tmp=tmp_text),
            # every column of the type (or an array of it): default dropped, type changed, default kept aside
            S("SELECT pg_catalog.array_agg(a.attrelid::pg_catalog.regclass::text ORDER BY a.attrelid, a.attnum),"
              " pg_catalog.array_agg(pg_catalog.quote_ident(a.attname) ORDER BY a.attrelid, a.attnum),"
              " pg_catalog.array_agg(a.atttypid = v_oid ORDER BY a.attrelid, a.attnum),"
              " pg_catalog.array_agg(pg_catalog.pg_get_expr(d.adbin, d.adrelid) ORDER BY a.attrelid, a.attnum)\n"
              "    INTO v_tables, v_columns, v_scalar, v_defaults\n"
              "    FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid\n"
              "    LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum\n"
              "    WHERE a.atttypid IN (v_oid, (SELECT t.typarray FROM pg_catalog.pg_type t WHERE t.oid = v_oid))\n"
              "      AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind = 'r';"),
            S("FOR v_i IN 1 .. COALESCE(pg_catalog.cardinality(v_tables), 0) LOOP\n"
              "    IF v_defaults[v_i] IS NOT NULL THEN\n"
              "        EXECUTE 'ALTER TABLE ' || v_tables[v_i] || ' ALTER COLUMN ' || v_columns[v_i]"
              " || ' DROP DEFAULT';\n"
              "    END IF;\n"
              "    EXECUTE 'ALTER TABLE ' || v_tables[v_i] || ' ALTER COLUMN ' || v_columns[v_i] || ' TYPE ' || {tmp}\n"
              "        || CASE WHEN v_scalar[v_i] THEN '' ELSE '[]' END || ' USING ' || v_columns[v_i] || '::text'\n"
              "        || CASE WHEN v_scalar[v_i] THEN '' ELSE '[]' END || '::' || {tmp}\n"
              "        || CASE WHEN v_scalar[v_i] THEN '' ELSE '[]' END;\n"
              "END LOOP;").format(tmp=tmp_text),
            S("DROP TYPE {};").format(type_ident(self.type)),
            S("ALTER TYPE {tmp} RENAME TO {name};").format(tmp=tmp, name=ident(name)),
            if_then(S("v_owner <> (SELECT t.typowner FROM pg_catalog.pg_type t WHERE t.oid = {})").format(
                        type_oid(self.type)),
                    S("EXECUTE 'ALTER TYPE ' || {t} || ' OWNER TO ' || (SELECT pg_catalog.quote_ident(r.rolname)"
                      " FROM pg_catalog.pg_roles r WHERE r.oid = v_owner);").format(
                        t=literal(render(type_ident(self.type))))),
            if_then(S("v_comment IS NOT NULL"),
                    S("EXECUTE 'COMMENT ON TYPE ' || {t} || ' IS ' || pg_catalog.quote_literal(v_comment);").format(
                        t=literal(render(type_ident(self.type))))),
            S("FOR v_i IN 1 .. COALESCE(pg_catalog.cardinality(v_tables), 0) LOOP\n"
              "    IF v_defaults[v_i] IS NOT NULL THEN\n"
              "        EXECUTE 'ALTER TABLE ' || v_tables[v_i] || ' ALTER COLUMN ' || v_columns[v_i] || ' SET DEFAULT '"
              " || v_defaults[v_i];\n"
              "    END IF;\n"
              "END LOOP;"),
            forget_owned(ctx, "enum_value", self.key),
            notice(ctx, f"removed label {self.value!r} from enum {self.type} by rebuilding the type (the tables "
                        "with a column of it were rewritten)"),
        )
        declare = [*self._DECLARE, "v_owner oid", "v_comment text", "v_labels text", "v_tables text[]",
                   "v_columns text[]", "v_scalar boolean[]", "v_defaults text[]", "v_i int", "v_bk record"]
        return scaled([Step("rebuild_enum", self.type, "ACCESS EXCLUSIVE", True, do_block(body, declare=declare),
                            f"remove label {self.value!r} from enum {self.type} if {ctx.label} added it: rebuild the "
                            "type without it (rewrites every table with a column of the type)")], REBUILD_SCALES)

    def rollback_preflight(self, ctx: PlanContext) -> list:
        removes = S("{owned} AND NOT {created} AND {oid} IS NOT NULL AND {label}").format(
            owned=is_owned(ctx, "enum_value", self.key), created=is_owned(ctx, "enum_type", self.type),
            oid=type_oid(self.type), label=has_label(self.type, self.value))
        body = block(S("v_oid := {};").format(type_oid(self.type)), if_then(removes, *self._checks(ctx)))
        declare = S("    v_oid oid; v_count bigint; v_total bigint; v_col record; v_unsupported text;")
        return [block(S("DECLARE"), declare, S("BEGIN"), indented(body),
                      S("END;"))]

    def checklist(self, ctx: PlanContext, earlier: ChecklistItems) -> ChecklistItems:
        columns = queries.query(S(
            "SELECT a.attrelid::pg_catalog.regclass AS table_name, a.attname AS column_name,"
            " pg_catalog.format_type(a.atttypid, a.atttypmod) AS type\n"
            "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid\n"
            "WHERE a.atttypid IN ({oid}, (SELECT t.typarray FROM pg_catalog.pg_type t WHERE t.oid = {oid}))\n"
            "  AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind = 'r'").format(oid=type_oid(self.type)))
        return ChecklistItems(
            prerequisites=[CheckQuery(f"Labels of enum {self.type} now, in order", queries.query(
                S("SELECT {} AS labels").format(enum_labels(self.type))), ""),
                CheckQuery(f"Table columns of enum {self.type} (rewritten by a rollback of this label)", columns, "")],
            health_checks=[CheckQuery(f"Enum {self.type} has label {self.value!r}", queries.query(
                S("SELECT {} AS has_label").format(has_label(self.type, self.value))), "true")],
            notes=[f"ALTER TYPE {self.type} ADD VALUE runs in its own step outside a transaction block (PostgreSQL "
                   "docs, ALTER TYPE): the new label can be used once that step committed, not inside the "
                   "transaction that adds it. It locks no table."],
            rollback_notes=[f"PostgreSQL cannot remove an enum label. The rollback removes {self.value!r} only if "
                            f"{ctx.label} added it, by rebuilding {self.type} without it: every table with a column "
                            "of the type is rewritten under ACCESS EXCLUSIVE (reads and writes wait; the time grows "
                            "with their rows). It refuses before any change, with the count, while any row holds "
                            "the label, and while a domain, function, view, index expression, CHECK or grant depends "
                            "on the type."])


__all__ = ["AddEnumValue"]
