"""One SchemaState, advanced once per operation by the operation's own ``apply`` (dbdeploy.ops.walk),
is what Migration validation, planning and lint all see.

The table below says, for every operation type, what its apply() records; each case is checked on the
state the walk leaves, the state planning leaves, and the state lint rules are given (``OpContext.after``),
so an effect recorded in only one of them — or not at all — fails here. No database is needed: this is
about what generation knows, not about SQL.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dbdeploy import (
    AddCheck,
    AddColumn,
    AddEnumValue,
    AddForeignKey,
    AddPrimaryKey,
    AddUnique,
    AlterColumnType,
    AlterSequence,
    Backfill,
    Check,
    Column,
    CommentOn,
    Contract,
    CreateCompositeType,
    CreateDomain,
    CreateEnum,
    CreateFunction,
    CreateIndex,
    CreateMaterializedView,
    CreatePartition,
    CreateProcedure,
    CreateSchema,
    CreateSequence,
    CreateTable,
    CreateTrigger,
    CreateView,
    DropColumn,
    DropConstraint,
    DropDefault,
    DropEnum,
    DropFunction,
    DropIndex,
    DropNotNull,
    DropTable,
    DropTrigger,
    DropView,
    ForeignKey,
    Index,
    Migration,
    RawSQL,
    RefreshMaterializedView,
    RenameColumn,
    RenameConstraint,
    RenameEnumValue,
    RenameIndex,
    RenameTable,
    ReplaceFunction,
    ReplaceView,
    RequireExtension,
    SeedRows,
    SetDefault,
    SetNotNull,
    SetSequenceValue,
    Unique,
)
from dbdeploy.lint import lint_migrations
from dbdeploy.lint.model import Rule
from dbdeploy.ops import OPERATION_TYPES, SchemaState
from dbdeploy.ops.base import PartitionFact
from dbdeploy.ops.create_composite_type import CompositeFact
from dbdeploy.ops.create_domain import DomainFact
from dbdeploy.ops.enum_common import EnumFact
from dbdeploy.ops.sequence_common import SequenceFact
from dbdeploy.ops.view_common import ViewFact
from dbdeploy.ops.walk import walk
from dbdeploy.plan.loader import LoadedMigration
from dbdeploy.plan.migration_plan import plan_all, plan_migration

V = "900"
GONE = "<gone>"


def _prefix() -> list:
    """public.p (referenced) and public.t with a foreign key, a NOT NULL check and an index on p."""
    return [
        CreateTable(table="public.p", columns=[Column(name="id", type="bigint", nullable=False)], primary_key=["id"]),
        CreateTable(table="public.t", columns=[Column(name="id", type="bigint", nullable=False),
                                               Column(name="p", type="bigint"), Column(name="q", type="bigint"),
                                               Column(name="a", type="text"), Column(name="b", type="text")],
                    primary_key=["id"],
                    foreign_keys=[ForeignKey(columns=["p"], references="public.p", ref_columns=["id"])],
                    checks=[Check(expression="p IS NOT NULL", name="t_p_nn")],
                    indexes=[Index(columns=["p"], name="t_p_idx")]),
    ]


_TOUCH = CreateFunction(name="public.touch", returns="trigger", language="plpgsql",
                        body="BEGIN NEW.a := 'x'; RETURN NEW; END")
_RETOUCH = ReplaceFunction(name="public.touch", returns="trigger", language="plpgsql",
                           body="BEGIN NEW.b := 'y'; RETURN NEW; END")
_ARCHIVE = CreateProcedure(name="public.archive", args=[("p_id", "integer")], language="sql",
                           body="DELETE FROM public.t WHERE id < p_id")
_TOUCH_T = CreateTrigger(table="public.t", name="t_touch", function="public.touch", timing="BEFORE",
                         events=["INSERT", "UPDATE"])


# operation → the facts its apply() changes (every other fact must stay as it was); GONE: removed.
CASES = {
    "create_schema": (CreateSchema(name="s1"), {}),
    "require_extension": (RequireExtension(name="pgcrypto"), {}),
    "create_table": (
        CreateTable(table="public.c", columns=[Column(name="id", type="bigint", nullable=False),
                                               Column(name="p", type="bigint"), Column(name="u", type="text")],
                    primary_key=["id"],
                    foreign_keys=[ForeignKey(columns=["p"], references="public.p", ref_columns=["id"], name="c_fk")],
                    checks=[Check(expression="u IS NOT NULL", name="c_u_nn")],
                    uniques=[Unique(columns=["u"], name="c_u_key")],
                    indexes=[Index(columns=["p"], name="c_p_idx")]),
        {("columns", "public.c"): ("id", "p", "u"), ("primary_key", "public.c"): ("id",),
         ("constraints", "public.c"): frozenset({"c_pkey", "c_fk", "c_u_nn", "c_u_key"}),
         ("uniques", "public.c"): (("c_u_key", ("u",)),),
         ("relations", "public.c"): ("table", "public.c"),
         ("relations", "public.c_pkey"): ("the primary key", "public.c"),
         ("relations", "public.c_u_key"): ("a unique constraint", "public.c"),
         ("relations", "public.c_p_idx"): ("an index", "public.c"), ("indexes", "public.c_p_idx"): ("public.c", ("p",)),
         ("foreign_keys", ("public.c", "c_fk")): (("p",), "public.p", ("id",), V, 2),
         ("checks", ("public.c", "c_u_nn")): ("u IS NOT NULL", frozenset({"u"}), "u")}),
    "add_column": (AddColumn(table="public.t", column=Column(name="d", type="text")),
                   {("columns", "public.t"): ("id", "p", "q", "a", "b", "d")}),
    "create_index": (CreateIndex(table="public.t", index=Index(columns=["a"], name="t_a_idx")),
                     {("indexes", "public.t_a_idx"): ("public.t", ("a",)),
                      ("relations", "public.t_a_idx"): ("an index", "public.t")}),
    "add_foreign_key": (
        AddForeignKey(table="public.t", foreign_key=ForeignKey(columns=["q"], references="public.p",
                                                               ref_columns=["id"], name="t_q_fk")),
        {("foreign_keys", ("public.t", "t_q_fk")): (("q",), "public.p", ("id",), V, 2),
         ("constraints", "public.t"): frozenset({"t_pkey", "t_p_fkey", "t_p_nn", "t_q_fk"})}),
    "add_check": (AddCheck(table="public.t", check=Check(expression="a IS NOT NULL", name="t_a_nn")),
                  {("checks", ("public.t", "t_a_nn")): ("a IS NOT NULL", frozenset({"a"}), "a"),
                   ("constraints", "public.t"): frozenset({"t_pkey", "t_p_fkey", "t_p_nn", "t_a_nn"})}),
    "add_unique": (AddUnique(table="public.t", unique=Unique(columns=["b"], name="t_b_key")),
                   {("uniques", "public.t"): (("t_b_key", ("b",)),),
                    ("relations", "public.t_b_key"): ("a unique constraint", "public.t"),
                    ("constraints", "public.t"): frozenset({"t_pkey", "t_p_fkey", "t_p_nn", "t_b_key"})}),
    "backfill": (Backfill(table="public.t", set={"a": "'x'"}), {}),
    "seed_rows": (SeedRows(table="public.p", rows=[{"id": 1}], conflict_columns=["id"]), {}),
    "drop_index": (DropIndex(name="public.t_p_idx"),
                   {("indexes", "public.t_p_idx"): GONE, ("relations", "public.t_p_idx"): GONE}),
    "drop_column": (DropColumn(table="public.t", column="p"),
                    {("columns", "public.t"): ("id", "q", "a", "b"),
                     ("indexes", "public.t_p_idx"): GONE, ("relations", "public.t_p_idx"): GONE,
                     ("foreign_keys", ("public.t", "t_p_fkey")): GONE, ("checks", ("public.t", "t_p_nn")): GONE,
                     ("dropped",): (("public.t", "p"),)}),
    "drop_table": (DropTable(table="public.t"),
                   {("columns", "public.t"): GONE, ("primary_key", "public.t"): GONE, ("constraints", "public.t"): GONE,
                    ("uniques", "public.t"): GONE, ("relations", "public.t"): GONE,
                    ("relations", "public.t_pkey"): GONE, ("indexes", "public.t_p_idx"): GONE,
                    ("relations", "public.t_p_idx"): GONE, ("foreign_keys", ("public.t", "t_p_fkey")): GONE,
                    ("checks", ("public.t", "t_p_nn")): GONE, ("dropped",): (("public.t", ""),)}),
    "raw_sql": (RawSQL(forward="ALTER TABLE public.t ADD COLUMN z integer;",
                       rollback="ALTER TABLE public.t DROP COLUMN z;"),
                # a text search: "p" occurs in the SQL too, and marking too many is the safe side
                {("raw_changed",): frozenset({"public.t", "public.p"})}),
    "rename_column": (RenameColumn(table="public.t", column="p", new_name="parent"),
                      # the check's expression text keeps the old name; its column set follows the rename
                      {("columns", "public.t"): ("id", "parent", "q", "a", "b"),
                       ("indexes", "public.t_p_idx"): ("public.t", ("parent",)),
                       ("foreign_keys", ("public.t", "t_p_fkey")): (("parent",), "public.p", ("id",), V, 1),
                       ("checks", ("public.t", "t_p_nn")): ("p IS NOT NULL", frozenset({"parent"}), "parent")}),
    "rename_table": (RenameTable(table="public.p", new_name="public.parents"),
                     {("columns", "public.p"): GONE, ("primary_key", "public.p"): GONE,
                      ("constraints", "public.p"): GONE,
                      ("uniques", "public.p"): GONE, ("relations", "public.p"): GONE,
                      ("columns", "public.parents"): ("id",), ("primary_key", "public.parents"): ("id",),
                      ("constraints", "public.parents"): frozenset({"p_pkey"}), ("uniques", "public.parents"): (),
                      ("relations", "public.parents"): ("table", "public.parents"),
                      ("relations", "public.p_pkey"): ("the primary key", "public.parents"),
                      ("foreign_keys", ("public.t", "t_p_fkey")): (("p",), "public.parents", ("id",), V, 1)}),
    # after EARLIER["contract"] (V899 renamed t.a to a2 and p to p2 online): the old sides go
    "contract": (Contract(version="899"),
                 {("columns", "public.t"): ("id", "p", "q", "b", "a2"), ("dropped",): (("public.t", "a"),),
                  ("views", "public.p"): GONE, ("relations", "public.p"): GONE}),
    # These change a column's nullability or default, which facts() does not list (it lists column
    # names), and refuse a column their own migration creates (as _prefix() does): here on a table the
    # specs do not know (nothing to record); COLUMN_CASES below checks what they record for a table an
    # earlier migration created, on the walk, planning and lint states alike.
    "set_not_null": (SetNotNull(table="public.old", column="a"), {}),
    "drop_not_null": (DropNotNull(table="public.old", column="a"), {}),
    "set_default": (SetDefault(table="public.old", column="a", default="'x'"), {}),
    "drop_default": (DropDefault(table="public.old", column="b"), {}),
    "rename_index": (RenameIndex(name="public.t_p_idx", new_name="t_p_renamed_idx"),
                     {("indexes", "public.t_p_idx"): GONE, ("relations", "public.t_p_idx"): GONE,
                      ("indexes", "public.t_p_renamed_idx"): ("public.t", ("p",)),
                      ("relations", "public.t_p_renamed_idx"): ("an index", "public.t")}),
    "rename_constraint": (RenameConstraint(table="public.t", name="t_p_nn", new_name="t_p_present"),
                          {("constraints", "public.t"): frozenset({"t_pkey", "t_p_fkey", "t_p_present"}),
                           ("checks", ("public.t", "t_p_nn")): GONE,
                           ("checks", ("public.t", "t_p_present")): ("p IS NOT NULL", frozenset({"p"}), "p")}),
    "drop_constraint": (DropConstraint(table="public.t", name="t_p_fkey"),
                        {("constraints", "public.t"): frozenset({"t_pkey", "t_p_nn"}),
                         ("foreign_keys", ("public.t", "t_p_fkey")): GONE}),
    # a table the specs did not create: only the primary key's relation name is known
    "add_primary_key": (AddPrimaryKey(table="public.legacy", columns=["id"]),
                        {("relations", "public.legacy_pkey"): ("the primary key", "public.legacy")}),
    # The column's type is the only change, and facts() does not list column types (the Column model in
    # TableState.columns changes: tests/test_alter_column_type.py checks it on walk, plan and lint states).
    "alter_column_type": (AlterColumnType(table="public.t", column="a", type="varchar"), {}),
    # issue 13: views. A view the specs create or replace is recorded with its canonical query and what it reads.
    "create_view": (CreateView(name="public.tv", query="select t.id, t.a from public.t t"),
                    {("views", "public.tv"): ViewFact("SELECT t.id, t.a FROM public.t AS t", frozenset({"public.t"})),
                     ("relations", "public.tv"): ("a view", "public.tv")}),
    "replace_view": (ReplaceView(name="public.old_v", query="SELECT t.id FROM public.t AS t"),
                     {("views", "public.old_v"): ViewFact("SELECT t.id FROM public.t AS t", frozenset({"public.t"})),
                      ("relations", "public.old_v"): ("a view", "public.old_v")}),
    "drop_view": (DropView(name="public.old_v"), {("dropped",): (("public.old_v", ""),)}),
    "create_materialized_view": (
        CreateMaterializedView(name="public.tm", query="SELECT t.p, count(*) AS n FROM public.t AS t GROUP BY t.p",
                               indexes=[Index(columns=["p"], unique=True, name="tm_p_key")]),
        {("views", "public.tm"): ViewFact("SELECT t.p, count(*) AS n FROM public.t AS t GROUP BY t.p",
                                          frozenset({"public.t"}), True, (("p",),)),
         ("relations", "public.tm"): ("a materialized view", "public.tm"),
         ("relations", "public.tm_p_key"): ("an index", "public.tm"),
         ("indexes", "public.tm_p_key"): ("public.tm", ("p",))}),
    # a refresh changes no definition: nothing the specs track
    "refresh_materialized_view": (RefreshMaterializedView(name="public.old_m"), {}),
    # issue 13: enum types (the later ones change the type an earlier migration created, see EARLIER)
    "create_enum": (CreateEnum(name="public.mood", values=["sad", "happy"]),
                    {("types", "public.mood"): EnumFact(("sad", "happy"), V)}),
    "add_enum_value": (AddEnumValue(type="public.mood", value="ok", before="happy"),
                       {("types", "public.mood"): EnumFact(("sad", "ok", "happy"), "898")}),
    "rename_enum_value": (RenameEnumValue(type="public.mood", value="sad", new_value="blue"),
                          {("types", "public.mood"): EnumFact(("blue", "happy"), "898")}),
    "drop_enum": (DropEnum(name="public.mood"), {("types", "public.mood"): GONE}),
    "create_domain": (CreateDomain(name="public.qty", type="integer", checks=["VALUE > 0"]),
                      {("types", "public.qty"): DomainFact("integer", V)}),
    "create_composite_type": (CreateCompositeType(name="public.pair", attributes=[
        Column(name="a", type="integer"), Column(name="b", type="text")]),
                              {("types", "public.pair"): CompositeFact(("a", "b"), V),
                               ("relations", "public.pair"): ("a composite type", "public.pair")}),
    # A comment is nothing the specs track (no later operation, plan or lint rule reads it): {} says, and
    # this test checks, that CommentOn changes nothing in the state.
    "comment_on": (CommentOn(object_kind="COLUMN", name="public.t.a", comment="the a"), {}),
    "create_sequence": (CreateSequence(name="public.t_numbers", as_type="integer", start=10, owned_by="public.t.q"),
                        {("sequences", "public.t_numbers"): SequenceFact("integer", 10, None, None, None, None, False,
                                                                         "public.t.q"),
                         ("relations", "public.t_numbers"): ("a sequence", "public.t_numbers")}),
    # a sequence the specs did not create (public.legacy_seq): nothing known to update; a spec-created
    # one is checked in test_alter_sequence_updates_the_spec_sequence below
    "alter_sequence": (AlterSequence(name="public.legacy_seq", increment=5), {}),
    # the position of a sequence is nothing the specs track
    "set_sequence_value": (SetSequenceValue(name="public.legacy_seq", value=10), {}),
    # a partition of a partitioned table the specs did not create: its name and what it is a partition of
    "create_partition": (CreatePartition(parent="public.legacy_events", table="public.legacy_events_2026",
                                         bounds="FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')"),
                         {("relations", "public.legacy_events_2026"): ("table", "public.legacy_events_2026"),
                          ("partitions", "public.legacy_events_2026"): PartitionFact(parent="public.legacy_events")}),
    # issue 13: functions by signature; triggers in the same slot, keyed "trigger schema.table.name"
    "create_function": (_TOUCH, {("functions", "public.touch()"): _TOUCH}),
    "create_trigger": (_TOUCH_T, {("functions", "trigger public.t.t_touch"): _TOUCH_T}),
    "replace_function": (_RETOUCH, {("functions", "public.touch()"): _RETOUCH}),
    # functions and triggers the specs did not create: nothing they track changes
    "drop_function": (DropFunction(name="public.untracked", args=[("a", "integer")]), {}),
    "drop_trigger": (DropTrigger(table="public.t", name="t_untracked"), {}),
    "create_procedure": (_ARCHIVE, {("functions", "public.archive(integer)"): _ARCHIVE}),
}

# Operations that close what an earlier version opened: these migrations (versions below V) run
# first, and the case's operation is V's only operation.
def _mood() -> list:
    return [Migration(version="898", name="prefix", operations=[*_prefix(), CreateEnum(
        name="public.mood", values=["sad", "happy"])])]


EARLIER = {
    "add_enum_value": _mood, "rename_enum_value": _mood, "drop_enum": _mood,
    "contract": lambda: [
        Migration(version="898", name="prefix", operations=_prefix()),
        Migration(version="899", name="expand", operations=[
            RenameColumn(table="public.t", column="a", new_name="a2", online=True),
            RenameTable(table="public.p", new_name="public.p2", online=True)]),
    ],
}


def _states_after_earlier(earlier: list, ops: list) -> dict[str, SchemaState]:
    """As :func:`_states_after`, with the migrations ``earlier`` applied before V (``ops``, possibly none)."""
    migrations = [*earlier, *([Migration(version=V, name="state", operations=ops)] if ops else [])]
    walked = SchemaState(complete=True)
    for migration in migrations:
        for visit in walk(migration.operations, walked, version=migration.version):
            assert visit.error is None, visit.error
    planned = SchemaState(complete=True)
    for migration in migrations:
        plan_migration(migration, planned)
    seen: dict[tuple[str, int], SchemaState] = {}

    def capture(ctx):
        seen[ctx.version, ctx.index] = ctx.after.schema
        return ()

    rule = Rule("capture-state", "warning", "-", "-", capture)
    lint_migrations([LoadedMigration(m, Path(f"V{m.version}__state.py")) for m in migrations], rules=(rule,))
    last = migrations[-1]
    return {"walk": walked, "plan": planned, "lint": seen[last.version, len(last.operations) - 1]}


def facts(state: SchemaState) -> dict:
    """Every fact of a SchemaState, flat: (kind, key) → value."""
    out: dict = {}
    for name, table in state.tables.items():
        out["columns", name] = tuple(table.columns)
        out["primary_key", name] = tuple(table.primary_key)
        out["constraints", name] = frozenset(table.constraints)
        out["uniques", name] = tuple(sorted(table.uniques.items()))
    for name, (owner, index) in state.indexes.items():
        out["indexes", name] = (owner, tuple(index.columns))
    for name, value in state.relations.items():
        out["relations", name] = value
    for key, fk in state.foreign_keys.items():
        out["foreign_keys", key] = (fk.columns, fk.references, fk.ref_columns, fk.version, fk.index)
    for key, check in state.checks.items():
        out["checks", key] = (check.expression, check.columns, check.not_null_column)
    for room in ("sequences", "views", "types", "functions", "partitions"):
        for name, value in getattr(state, room).items():
            out[room, name] = value
    out["dropped",] = state.dropped
    out["raw_changed",] = state.raw_changed
    return out


def _diff(before: dict, after: dict) -> dict:
    return {k: after.get(k, GONE) for k in before.keys() | after.keys() if before.get(k, GONE) != after.get(k, GONE)}


def _states_after(ops: list) -> dict[str, SchemaState]:
    """The state after the last of ``ops`` (one migration) as the walk, planning and lint each leave it."""
    migration = Migration(version=V, name="state", operations=ops)
    walked = SchemaState(complete=True)
    for visit in walk(ops, walked, version=V):
        assert visit.error is None, visit.error
    planned = SchemaState(complete=True)
    plan_migration(migration, planned)
    seen: dict[int, SchemaState] = {}

    def capture(ctx):
        seen[ctx.index] = ctx.after.schema
        return ()

    rule = Rule("capture-state", "warning", "-", "-", capture)
    lint_migrations([LoadedMigration(migration, Path("V900__state.py"))], rules=(rule,))
    return {"walk": walked, "plan": planned, "lint": seen[len(ops) - 1]}


def test_every_operation_type_has_a_state_case():
    kinds = {cls.kind for cls in OPERATION_TYPES}
    missing = sorted(kinds - set(CASES))
    assert not missing, f"no schema-state case for {missing}: add what its apply() records to CASES"


@pytest.mark.parametrize("kind", sorted(CASES))
def test_apply_records_its_effect_once_for_everyone(kind):
    op, expected = CASES[kind]
    if kind in EARLIER:
        before = facts(_states_after_earlier(EARLIER[kind](), [])["walk"])
        states = _states_after_earlier(EARLIER[kind](), [op])
    else:
        before = facts(_states_after(_prefix())["walk"])
        states = _states_after([*_prefix(), op])
    after = {who: facts(state) for who, state in states.items()}
    assert after["plan"] == after["walk"], "planning saw another state than the walk"
    assert after["lint"] == after["walk"], "lint rules saw another state than the walk"
    assert _diff(before, after["walk"]) == expected


def test_validation_walks_the_same_operations():
    """Migration validation refuses what apply() refuses, with the operation's index."""
    with pytest.raises(ValueError, match=r"operations\[2\] \(drop_column public.t\).*primary key"):
        Migration(version=V, name="state", operations=[*_prefix(), DropColumn(table="public.t", column="id")])


def _lint(ops: list) -> list:
    return lint_migrations([LoadedMigration(Migration(version=V, name="state", operations=ops),
                                            Path("V900__state.py"))]).findings


def _rules(findings) -> list[str]:
    return [f.rule for f in findings]


def test_lint_sees_foreign_keys_and_their_cover_from_apply():
    """fk-without-index reads the foreign keys apply() recorded (CreateTable, AddForeignKey) and the
    paths that cover them (primary key, AddUnique, CreateIndex)."""
    add_fk = AddForeignKey(table="public.t", foreign_key=ForeignKey(columns=["q"], references="public.p",
                                                                    ref_columns=["id"], name="t_q_fk"))
    found = _lint([*_prefix(), add_fk])
    assert [f.subject for f in found if f.rule == "fk-without-index"] == [
        "foreign key t_q_fk on public.t (q) → public.p: no index on public.t starts with (q)"]
    for cover in (AddUnique(table="public.t", unique=Unique(columns=["q", "a"], name="t_q_key")),
                  CreateIndex(table="public.t", index=Index(columns=["q"], name="t_q_idx"))):
        assert "fk-without-index" not in _rules(_lint([*_prefix(), add_fk, cover]))
    # dropped later in the same migration: the end state has no cover, reported where the key is added
    dropped_cover = _lint([*_prefix(), DropIndex(name="public.t_p_idx")])
    assert [(f.operation_index, f.subject) for f in dropped_cover if f.rule == "fk-without-index"] == [
        (1, "foreign key t_p_fkey on public.t (p) → public.p: no index on public.t starts with (p)")]
    # dropped by a later migration: reported there
    report = lint_migrations([
        LoadedMigration(Migration(version="901", name="first", operations=_prefix()), Path("V901.py")),
        LoadedMigration(Migration(version="902", name="later", operations=[DropIndex(name="public.t_p_idx")]),
                        Path("V902.py"))])
    assert [(f.version, f.subject) for f in report.findings if f.rule == "fk-without-index"] == [
        ("902", "foreign key t_p_fkey on public.t (p) → public.p loses its only covering index public.t_p_idx")]


def test_lint_sees_not_null_checks_from_apply_and_from_raw_sql():
    """A validated CHECK (c IS NOT NULL) that AddCheck (or CreateTable) recorded lets RawSQL SET NOT NULL pass;
    DropColumn and a RawSQL DROP CONSTRAINT take it away. Tables the specs never created count too."""
    set_nn = RawSQL(forward="ALTER TABLE public.old ALTER COLUMN a SET NOT NULL;",
                    rollback="ALTER TABLE public.old ALTER COLUMN a DROP NOT NULL;")
    add = AddCheck(table="public.old", check=Check(expression="a IS NOT NULL", name="old_a_nn"))
    assert "set-not-null-without-check" in _rules(_lint([set_nn]))
    assert "set-not-null-without-check" not in _rules(_lint([add, set_nn]))
    drop_con = RawSQL(forward="ALTER TABLE public.old DROP CONSTRAINT old_a_nn;",
                      rollback="ALTER TABLE public.old ADD CONSTRAINT old_a_nn CHECK (a IS NOT NULL);")
    assert "set-not-null-without-check" in _rules(_lint([add, drop_con, set_nn]))
    # the same name added again after RawSQL dropped it is a new check, and counts
    assert "set-not-null-without-check" not in _rules(_lint([add, drop_con, add.model_copy(), set_nn]))
    on_t = RawSQL(forward="ALTER TABLE public.t ALTER COLUMN p SET NOT NULL;",
                  rollback="ALTER TABLE public.t ALTER COLUMN p DROP NOT NULL;")
    # public.t is created in this migration: no rows, no finding either way; use two migrations instead
    first = Migration(version="901", name="first", operations=_prefix())
    later = Migration(version="902", name="later", operations=[on_t])
    report = lint_migrations([LoadedMigration(first, Path("V901.py")), LoadedMigration(later, Path("V902.py"))])
    assert "set-not-null-without-check" not in _rules(report.findings)


def test_raw_sql_facts_follow_spec_drops():
    """What RawSQL told lint (a unique constraint covering a foreign key) goes with a DropColumn of its column."""
    first = Migration(version="901", name="first", operations=[
        *_prefix(),
        AddForeignKey(table="public.t", foreign_key=ForeignKey(columns=["q"], references="public.p",
                                                               ref_columns=["id"], name="t_q_fk"),
                      allow={"fk-without-index": "covered by the RawSQL unique below"}),
        RawSQL(forward="ALTER TABLE public.t ADD CONSTRAINT t_qa_key UNIQUE (q, a);",
               rollback="ALTER TABLE public.t DROP CONSTRAINT t_qa_key;"),
    ])
    second = Migration(version="902", name="second", operations=[DropColumn(table="public.t", column="a")])
    report = lint_migrations([LoadedMigration(first, Path("V901.py")), LoadedMigration(second, Path("V902.py"))])
    assert [f.subject for f in report.findings if f.rule == "fk-without-index" and f.version == "902"] == [
        "foreign key t_q_fk on public.t (q) → public.p loses its only covering unique constraint t_qa_key"]


def test_lint_state_reads_no_operation_class():
    """lint/state.py keeps only RawSQL's facts: it names no operation class (no isinstance chain)."""
    source = (Path(__file__).parent.parent / "dbdeploy" / "lint" / "state.py").read_text()
    names = {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
    assert not names & {cls.__name__ for cls in OPERATION_TYPES}


# --- the NOT NULL-after-backfill rule -----------------------------------------------------------

def _nn_migration(*extra, default=None) -> Migration:
    return Migration(version=V, name="nn", operations=[
        AddColumn(table="public.old", column=Column(name="n", type="text", nullable=False, default=default)),
        *extra])


def test_not_null_column_without_default_needs_a_later_backfill():
    with pytest.raises(ValueError, match=r"operations\[0\] \(add_column public.old\): column 'n' is NOT NULL "
                                         r"without a default"):
        _nn_migration(Backfill(table="public.old", set={"other": "1"}, key=["id"]))


def test_not_null_steps_run_after_the_last_backfill_that_sets_the_column():
    fill = Backfill(table="public.old", set={"n": "'a'"}, key=["id"])
    other = Backfill(table="public.old", set={"m": "'b'"}, key=["id"])
    again = Backfill(table="public.old", set={"n": "'c'"}, where="n = 'a'", key=["id"])
    migration = _nn_migration(fill, other, again)
    assert migration.operations[0].not_null_after(migration.operations[1:]) == 2
    plan = plan_all([LoadedMigration(migration, Path("V900__nn.py"))])[0]
    owners = [(plan.forward_ops[k], step.kind) for k, step in enumerate(plan.forward)
              if step.kind in ("add_not_null_check", "validate_constraint", "set_not_null")
              or plan.forward_ops[k] == 3]
    assert owners and owners[-1][0] == 0, owners                 # the NOT NULL steps come last …
    last_fill = max(k for k, o in enumerate(plan.forward_ops) if o == 3)
    first_nn = min(k for k, step in enumerate(plan.forward) if plan.forward_ops[k] == 0 and step.kind == "set_not_null")
    assert first_nn > last_fill                                   # … after the second backfill of n
    notes = plan.checklist[0].notes
    assert any("made NOT NULL after this migration's backfill" in n for n in notes)
    assert plan.checklist[0].not_null_pending == ["public.old.n"]


def test_not_null_with_a_constant_default_needs_no_backfill():
    migration = _nn_migration(default="'x'")
    assert migration.operations[0].not_null_after(()) is None
    plan = plan_all([LoadedMigration(migration, Path("V900__nn.py"))])[0]
    assert plan.checklist[0].not_null_pending == []


# --- nullability and defaults (SetNotNull, DropNotNull, SetDefault, DropDefault) ----------------

def _column_prefix() -> list:
    return [CreateTable(table="public.c", columns=[Column(name="id", type="bigint"),
                                                   Column(name="n", type="text", nullable=False, default="'n'"),
                                                   Column(name="m", type="text")],
                        primary_key=["id"])]


# operation → (column, (nullable, default)) the state holds after it
COLUMN_CASES = {
    "set_not_null": (SetNotNull(table="public.c", column="m"), "m", (False, None)),
    "drop_not_null": (DropNotNull(table="public.c", column="n"), "n", (True, "'n'")),
    "set_default": (SetDefault(table="public.c", column="m", default="now()::text"), "m",
                    (True, "CAST(now() AS text)")),
    "drop_default": (DropDefault(table="public.c", column="n"), "n", (False, None)),
}


@pytest.mark.parametrize("kind", sorted(COLUMN_CASES))
def test_column_changes_are_recorded_once_for_everyone(kind):
    op, column, expected = COLUMN_CASES[kind]
    first = Migration(version="899", name="first", operations=_column_prefix())
    second = Migration(version=V, name="state", operations=[op])
    walked = SchemaState(complete=True)
    for migration in (first, second):
        for visit in walk(migration.operations, walked, version=migration.version):
            assert visit.error is None, visit.error
    planned = SchemaState(complete=True)
    plan_migration(first, planned)
    plan_migration(second, planned)
    seen: dict[str, SchemaState] = {}

    def capture(ctx):
        seen[ctx.version] = ctx.after.schema
        return ()

    lint_migrations([LoadedMigration(first, Path("V899__first.py")), LoadedMigration(second, Path("V900__state.py"))],
                    rules=(Rule("capture-state", "warning", "-", "-", capture),))
    for who, state in {"walk": walked, "plan": planned, "lint": seen[V]}.items():
        col = state.tables["public.c"].columns[column]
        assert (col.nullable, col.default) == expected, who
        assert facts(state) == facts(walked), who


def test_alter_sequence_updates_the_spec_sequence():
    """AlterSequence replaces what the specs know about a sequence they created (walk, plan and lint alike)."""
    states = _states_after([*_prefix(), CreateSequence(name="public.n", as_type="integer", start=10),
                            AlterSequence(name="public.n", as_type="bigint", increment=3)])
    for who, state in states.items():
        assert state.sequences["public.n"] == SequenceFact("bigint", 10, 3, None, None, None, False, None), who
