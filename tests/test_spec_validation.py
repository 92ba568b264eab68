"""Build-time validation of the spec DSL (no database needed).

Every rejection must happen when the model is built (a spec file fails on import), and the
message must name what is wrong: the field (pydantic ``loc``) and/or the offending value.
Accepted SQL fragments must be stored in pglast's canonical rendering, never the user's text.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from dbdeploy import (
    AddCheck,
    AddColumn,
    AddEnumValue,
    AddForeignKey,
    AddPrimaryKey,
    AddUnique,
    Backfill,
    Check,
    Column,
    CreateCompositeType,
    CreateDomain,
    CreateEnum,
    CreateIndex,
    CreateSchema,
    CreateTable,
    DropColumn,
    DropConstraint,
    DropEnum,
    DropIndex,
    DropTable,
    Exclusion,
    ForeignKey,
    Index,
    Migration,
    RawSQL,
    RenameConstraint,
    RenameEnumValue,
    RenameIndex,
    RequireExtension,
    SeedRows,
    Unique,
)
from dbdeploy.model.names import MAX_IDENTIFIER_BYTES, check_identifier, derived_name
from dbdeploy.render.writer import build_bundles
from dbdeploy.sql import parse_expression

ROOT = Path(__file__).resolve().parent.parent


def rejected(build, *fragments: str, loc: str | None = None) -> ValidationError:
    """Assert ``build()`` raises ValidationError whose text contains every fragment.

    ``loc`` (dotted, e.g. ``"set.a"``) must be the location of one of the errors; ``""`` means a
    model-level error.
    """
    with pytest.raises(ValidationError) as info:
        build()
    err = info.value
    text = str(err)
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in error:\n{text}"
    if loc is not None:
        locs = [".".join(str(p) for p in e["loc"]) for e in err.errors()]
        assert loc in locs, f"expected an error at {loc!r}, got {locs}"
    return err


def col(name: str = "a", type: str = "text", **kw) -> Column:  # noqa: A002 (DSL field name)
    return Column(name=name, type=type, **kw)


# --- identifiers -------------------------------------------------------------------------

BAD_IDENTIFIERS = [
    pytest.param("a" * 64, "64 bytes", id="64-bytes"),
    pytest.param("\u0430bc", "not a lowercase snake_case ASCII name", id="cyrillic-a"),
    pytest.param("ab\u0441", "not a lowercase snake_case ASCII name", id="cyrillic-es"),
    pytest.param("caf\u00e9", "not a lowercase snake_case ASCII name", id="latin-accent"),
    pytest.param("\u00e9" * 32, "64 bytes", id="multibyte-64-bytes"),
    pytest.param('x"; DROP TABLE y; --', "not a lowercase snake_case ASCII name", id="sql-injection"),
    pytest.param('a"b', "not a lowercase snake_case ASCII name", id="double-quote"),
    pytest.param("it's", "not a lowercase snake_case ASCII name", id="single-quote"),
    pytest.param("my col", "not a lowercase snake_case ASCII name", id="space"),
    pytest.param("a\x00b", "NUL byte", id="nul"),
    pytest.param("Orders", "not a lowercase snake_case ASCII name", id="uppercase"),
    pytest.param("1abc", "not a lowercase snake_case ASCII name", id="leading-digit"),
    pytest.param("a-b", "not a lowercase snake_case ASCII name", id="hyphen"),
    pytest.param("a.b", "", id="dot"),  # "not ... snake_case" or, in a table name, "one dot at most"
    pytest.param("a\n", "not a lowercase snake_case ASCII name", id="trailing-newline"),
    pytest.param("", "empty", id="empty"),
]

# (builder taking one identifier, pydantic loc of the identifier)
IDENTIFIER_FIELDS = [
    pytest.param(lambda v: Column(name=v, type="text"), "name", id="Column.name"),
    pytest.param(lambda v: CreateSchema(name=v), "name", id="CreateSchema.name"),
    pytest.param(lambda v: CreateTable(table=f"s.{v}", columns=[col()]), "table", id="CreateTable.table"),
    pytest.param(lambda v: CreateTable(table=f"{v}.t", columns=[col()]), "table", id="CreateTable.schema"),
    pytest.param(lambda v: DropTable(table=f"s.{v}"), "table", id="DropTable.table"),
    pytest.param(lambda v: DropColumn(table="t", column=v), "column", id="DropColumn.column"),
    pytest.param(lambda v: DropIndex(name=f"s.{v}"), "name", id="DropIndex.name"),
    pytest.param(lambda v: Index(columns=["a"], name=v), "name", id="Index.name"),
    pytest.param(lambda v: Index(columns=["a"], include=[v]), "include.0", id="Index.include"),
    pytest.param(lambda v: Unique(columns=[v]), "columns.0", id="Unique.columns"),
    pytest.param(lambda v: Unique(columns=["a"], name=v), "name", id="Unique.name"),
    pytest.param(lambda v: Check(expression="a > 0", name=v), "name", id="Check.name"),
    pytest.param(lambda v: ForeignKey(columns=[v], references="u", ref_columns=["id"]), "columns.0",
                 id="ForeignKey.columns"),
    pytest.param(lambda v: ForeignKey(columns=["a"], references=f"s.{v}", ref_columns=["id"]), "references",
                 id="ForeignKey.references"),
    pytest.param(lambda v: ForeignKey(columns=["a"], references="u", ref_columns=["id"], name=v), "name",
                 id="ForeignKey.name"),
    # model_construct: the column itself is not validated, so only primary_key can be at fault
    pytest.param(lambda v: CreateTable(table="t", columns=[Column.model_construct(name=v, type="text")],
                                       primary_key=[v]), "primary_key.0",
                 id="CreateTable.primary_key"),
    pytest.param(lambda v: Backfill(table="t", set={v: "1"}), "set", id="Backfill.set-key"),
    pytest.param(lambda v: Backfill(table="t", set={"a": "1"}, key=[v]), "key.0", id="Backfill.key"),
    pytest.param(lambda v: SeedRows(table="t", rows=[{"id": 1, v: 1}], conflict_columns=["id"]), "rows",
                 id="SeedRows.rows-column"),
    pytest.param(lambda v: SeedRows(table="t", rows=[{v: 1}], conflict_columns=[v]), "conflict_columns.0",
                 id="SeedRows.conflict_columns"),
]


@pytest.mark.parametrize("build, loc", IDENTIFIER_FIELDS)
@pytest.mark.parametrize("value, reason", BAD_IDENTIFIERS)
def test_bad_identifier_is_rejected_everywhere(build, loc, value, reason):
    err = rejected(lambda: build(value), reason, loc=loc)
    if value:
        # the message quotes the offending value (repr, so NUL and look-alikes are visible)
        assert repr(value)[1:-1] in str(err)


@pytest.mark.parametrize("build, loc", IDENTIFIER_FIELDS)
def test_identifier_of_63_bytes_is_accepted(build, loc):
    build("a" * MAX_IDENTIFIER_BYTES)


@pytest.mark.parametrize("value", ["a", "_a", "a1", "snake_case_name", "select", "order", "user"])
def test_plain_snake_case_identifiers_are_accepted(value):
    assert Column(name=value, type="text").name == value
    assert check_identifier(value) == value


def test_non_string_identifier_rejected():
    rejected(lambda: Column(name=5, type="text"), loc="name")


def test_table_names_are_normalized_to_schema_qualified():
    assert CreateTable(table="orders", columns=[col()]).table == "public.orders"
    assert CreateTable(table="sales.orders", columns=[col()]).table == "sales.orders"
    assert ForeignKey(columns=["a"], references="u", ref_columns=["id"]).references == "public.u"
    assert DropIndex(name="my_idx").name == "public.my_idx"


@pytest.mark.parametrize("value", ["a.b.c", ".t", "s.", "s..t"])
def test_malformed_table_names_rejected(value):
    rejected(lambda: DropTable(table=value), loc="table")


def test_63_byte_schema_and_table_accepted_64_rejected():
    ok = f"{'s' * 63}.{'t' * 63}"
    assert CreateTable(table=ok, columns=[col()]).table == ok
    rejected(lambda: CreateTable(table=f"{'s' * 64}.t", columns=[col()]), "64 bytes", loc="table")
    rejected(lambda: CreateTable(table=f"s.{'t' * 64}", columns=[col()]), "64 bytes", loc="table")


@pytest.mark.parametrize("value", ["pg-trgm; drop", "PgCrypto", "x y", "a" * 64, ""])
def test_extension_name_rejected(value):
    rejected(lambda: RequireExtension(name=value), loc="name")


def test_extension_names_with_hyphen_accepted():
    assert RequireExtension(name="uuid-ossp").name == "uuid-ossp"


# --- derived names -----------------------------------------------------------------------

LONG_TABLE = f"{'s' * 63}.{'t' * 63}"
LONG_A = "a" * 63
LONG_B = "b" * 63


def _derived_names(table: str, a: str, b: str) -> dict[str, str]:
    return {
        "unique": Unique(columns=[a, b]).resolved_name(table),
        "fkey": ForeignKey(columns=[a], references="u", ref_columns=["id"]).resolved_name(table),
        "check": Check(expression=f"{a} > {b}").resolved_name(table),
        "index": Index(columns=[a, b]).resolved_name(table),
        "expr_index": Index(columns=[f"lower({a})", f"{b} DESC"]).resolved_name(table),
    }


def test_derived_names_fit_in_63_bytes_and_are_valid_identifiers():
    for kind, name in _derived_names(LONG_TABLE, LONG_A, LONG_B).items():
        assert len(name.encode()) <= MAX_IDENTIFIER_BYTES, (kind, name)
        assert check_identifier(name) == name


def test_short_derived_names_are_readable_and_unchanged():
    names = _derived_names("public.orders", "a", "b")
    assert names["unique"] == "orders_a_b_key"
    assert names["fkey"] == "orders_a_fkey"
    assert names["index"] == "orders_a_b_idx"
    assert re.fullmatch(r"orders_a_b_[0-9a-f]{8}_check", names["check"])
    assert derived_name("t", "a", suffix="idx") == "t_a_idx"


def test_derived_names_are_deterministic_in_process():
    assert _derived_names(LONG_TABLE, LONG_A, LONG_B) == _derived_names(LONG_TABLE, LONG_A, LONG_B)
    assert derived_name("x" * 80, suffix="idx") == derived_name("x" * 80, suffix="idx")


def test_derived_names_are_deterministic_across_processes():
    """No dependence on Python's randomized hash(): a fresh interpreter computes the same names."""
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(ROOT)!r})
        from tests.test_spec_validation import _derived_names
        print(json.dumps(_derived_names({LONG_TABLE!r}, {LONG_A!r}, {LONG_B!r})))
    """)
    expected = _derived_names(LONG_TABLE, LONG_A, LONG_B)
    for seed in ("1", "12345"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}, cwd=ROOT)
        assert json.loads(out.stdout) == expected


def test_long_names_sharing_a_63_byte_prefix_get_different_names():
    prefix = "p" * 70
    one = derived_name(prefix + "_one", suffix="idx")
    two = derived_name(prefix + "_two", suffix="idx")
    assert one != two
    assert len(one.encode()) <= 63 and len(two.encode()) <= 63
    assert one.endswith("_idx") and two.endswith("_idx")
    # via the components: two tables whose names share 63 bytes... (schema-qualified, max length)
    t1, t2 = f"s.{'t' * 62}1", f"s.{'t' * 62}2"
    assert Unique(columns=[LONG_A]).resolved_name(t1) != Unique(columns=[LONG_A]).resolved_name(t2)
    assert Index(columns=[LONG_A, "x"]).resolved_name("s.t") != Index(columns=[LONG_A, "y"]).resolved_name("s.t")
    assert (Check(expression=f"{LONG_A} > 1").resolved_name(LONG_TABLE)
            != Check(expression=f"{LONG_A} > 2").resolved_name(LONG_TABLE))


def test_check_name_does_not_depend_on_spelling_of_the_same_expression():
    assert (Check(expression="a>0").resolved_name("t")
            == Check(expression="a  >  0 -- positive").resolved_name("t"))


def test_explicit_names_win_over_derived_ones():
    assert Unique(columns=["a"], name="uq_x").resolved_name("t") == "uq_x"
    assert Index(columns=["a"], name="ix").qualified_name("s.t") == "s.ix"
    assert Index(columns=["a"]).qualified_name("s.t") == "s.t_a_idx"


def _quoted_identifiers(specs: Path) -> set[str]:
    found: set[str] = set()
    for bundle in build_bundles(specs):
        for name, text in bundle.files.items():
            if name.endswith(".sql"):
                found |= set(re.findall(r'"([a-z0-9_]+)"', text))
    return found


def _write_long_spec(tmp_path: Path, *, primary_key: bool) -> Path:
    specs = tmp_path / "specs"
    specs.mkdir()
    pk = f"primary_key=[{LONG_A!r}]," if primary_key else ""
    (specs / "V001_long.py").write_text(textwrap.dedent(f"""
        from dbdeploy import *
        T = {LONG_TABLE!r}
        A, B = {LONG_A!r}, {LONG_B!r}
        migration = Migration(version="001", name="long", operations=[
            CreateSchema(name={'s' * 63!r}),
            CreateTable(table=T, columns=[Column(name=A, type="bigint", nullable=False), Column(name=B, type="text")],
                        {pk}
                        uniques=[Unique(columns=[A, B])], checks=[Check(expression=f"{{A}} > 0")],
                        indexes=[Index(columns=[B, A]), Index(columns=[f"lower({{B}})"]),
                                 Index(columns=[A], unique=True)],  # the backfill's key=[A] must be a key
                        foreign_keys=[ForeignKey(columns=[A], references="u", ref_columns=["id"], optional=True)]),
        ])
        migration2 = Migration(version="002", name="long2", operations=[
            AddColumn(table=T, column=Column(name="c" * 63, type="uuid", nullable=False,
                                             default="'00000000-0000-0000-0000-000000000000'")),
            AddColumn(table=T, column=Column(name="d" * 63, type="text", nullable=False)),
            Backfill(table=T, set={{"d" * 63: "'x'"}}, key=[A]),
            CreateIndex(table=T, index=Index(columns=["c" * 63])),
            AddUnique(table=T, unique=Unique(columns=["c" * 63, "d" * 63])),
            AddCheck(table=T, check=Check(expression="{'d' * 63} <> ''")),
            AddForeignKey(table=T, foreign_key=ForeignKey(columns=[B], references="u", ref_columns=["id"])),
            SeedRows(table=T, rows=[{{A: 1, B: "x"}}], conflict_columns=[A]),
        ])
        migration3 = Migration(version="003", name="long3", operations=[
            DropColumn(table=T, column="c" * 63),
            DropIndex(name={'s' * 63!r} + "." + Index(columns=[B, A]).resolved_name(T)),
            DropTable(table=T),
        ])
    """))
    return specs


def test_every_identifier_in_generated_sql_fits_in_63_bytes(tmp_path):
    """Max-length schema/table/column names: no emitted identifier may be silently truncated."""
    names = _quoted_identifiers(_write_long_spec(tmp_path, primary_key=False))
    assert LONG_A in names  # the regex really sees the identifiers
    too_long = sorted(n for n in names if len(n.encode()) > MAX_IDENTIFIER_BYTES)
    assert not too_long


def test_primary_key_name_fits_in_63_bytes(tmp_path):
    names = _quoted_identifiers(_write_long_spec(tmp_path, primary_key=True))
    too_long = sorted(n for n in names if len(n.encode()) > MAX_IDENTIFIER_BYTES)
    assert not too_long
    table = CreateTable(table=LONG_TABLE, columns=[col(LONG_A)], primary_key=[LONG_A])
    assert len(table.pk_name.encode()) <= MAX_IDENTIFIER_BYTES


# --- SQL expressions ---------------------------------------------------------------------

# (builder taking one expression, loc, getter of the stored value)
EXPRESSION_FIELDS = [
    pytest.param(lambda v: Column(name="a", type="text", default=v), "default", lambda m: m.default,
                 id="Column.default"),
    pytest.param(lambda v: Check(expression=v), "expression", lambda m: m.expression, id="Check.expression"),
    pytest.param(lambda v: Index(columns=["a"], where=v), "where", lambda m: m.where, id="Index.where"),
    pytest.param(lambda v: Backfill(table="t", set={"a": v}), "set.a", lambda m: m.set["a"],
                 id="Backfill.set-value"),
    pytest.param(lambda v: Backfill(table="t", set={"a": "1"}, where=v), "where", lambda m: m.where,
                 id="Backfill.where"),
]

BAD_EXPRESSIONS = [
    pytest.param("now()); DROP TABLE x; --", "syntax error", id="close-paren-injection"),
    pytest.param("1; SELECT 1", "more than one statement", id="two-statements"),
    pytest.param("1; DROP TABLE x", "more than one statement", id="drop-statement"),
    pytest.param("1 --\n; DROP TABLE x", "more than one statement", id="comment-then-statement"),
    pytest.param("1, 2", "list of expressions", id="list"),
    pytest.param("1 FROM t", "not a single expression", id="from"),
    pytest.param("1 WHERE true", "not a single expression", id="where"),
    pytest.param("1 ORDER BY 1", "not a single expression", id="order-by"),
    pytest.param("1 LIMIT 1", "not a single expression", id="limit"),
    pytest.param("1 INTO x", "not a single expression", id="into"),
    pytest.param("1 FOR UPDATE", "not a single expression", id="for-update"),
    pytest.param("(SELECT 1) UNION SELECT 2", "not a single expression", id="union"),
    pytest.param("1 INTERSECT SELECT 2", "not a single expression", id="intersect"),
    pytest.param("DISTINCT 1", "not a single expression", id="distinct"),
    pytest.param("1 AS x", "alias", id="alias"),
    pytest.param("*", "'*'", id="star"),
    pytest.param("1 /*", "unterminated /* comment", id="unterminated-comment"),
    pytest.param("'abc", "unterminated", id="unterminated-string"),
    pytest.param("$$abc", "unterminated", id="unterminated-dollar"),
    pytest.param("", "is empty", id="empty"),
    pytest.param("   \n ", "is empty", id="blank"),
    pytest.param("1\x00", "NUL byte", id="nul"),
]


@pytest.mark.parametrize("build, loc, _get", EXPRESSION_FIELDS)
@pytest.mark.parametrize("value, reason", BAD_EXPRESSIONS)
def test_expression_that_is_not_exactly_one_expression_is_rejected(build, loc, _get, value, reason):
    rejected(lambda: build(value), "invalid SQL expression", reason, repr(value)[1:-1], loc=loc)


GOOD_EXPRESSIONS = [
    ("now()", "now()"),
    ("now() -- set on insert", "now()"),
    ("now() /* comment */", "now()"),
    ("-- leading comment\nnow()", "now()"),
    ("1 -- ; DROP TABLE x", "1"),
    ("  a  >  0  ", "a > 0"),
    ("coalesce(x, 'y')", "COALESCE(x, 'y')"),
    ("'it''s'", "'it''s'"),
    ("$$x; DROP TABLE y$$", "'x; DROP TABLE y'"),
    ("status IN ('A', 'B')", "status IN ('A', 'B')"),
    ("(SELECT 1)", "(SELECT 1)"),
]


# Well-formed expressions that the field's own rules refuse (dbdeploy.sql.expression_rules): a column
# reference or subquery in a default, a subquery in a CHECK or index predicate, now() in an index
# predicate (not IMMUTABLE). tests/test_static_refusals.py proves PostgreSQL rejects each.
REFUSED_BY_FIELD_RULES = {
    ("Column.default", "a  >  0"): "column references", ("Column.default", "coalesce(x,"): "column references",
    ("Column.default", "status IN"): "column references", ("Column.default", "(SELECT 1)"): "subquery",
    ("Check.expression", "(SELECT 1)"): "subquery", ("Index.where", "(SELECT 1)"): "subquery",
    ("Index.where", "now()"): "not IMMUTABLE", ("Index.where", "-- leading comment\nnow()"): "not IMMUTABLE",
}


@pytest.mark.parametrize("build, loc, get", EXPRESSION_FIELDS)
@pytest.mark.parametrize("value, canonical", GOOD_EXPRESSIONS)
def test_valid_expression_is_stored_in_canonical_form(request, build, loc, get, value, canonical):
    field = request.node.callspec.id.rsplit("-", 1)[1]
    refusal = next((why for (f, start), why in REFUSED_BY_FIELD_RULES.items()
                    if f == field and value.strip().startswith(start)), None)
    if refusal is not None:
        rejected(lambda: build(value), refusal, loc=loc)
        return
    stored = get(build(value))
    assert stored == canonical
    assert "--" not in stored and "/*" not in stored
    assert parse_expression(stored).text == stored  # canonical form is a fixed point


# --- types -------------------------------------------------------------------------------

@pytest.mark.parametrize("value, canonical", [
    ("numeric(10,2)", "numeric(10, 2)"),
    ("timestamptz", "timestamptz"),
    ("text[]", "text[]"),
    ("TEXT", "text"),
    ("varchar(20)", "varchar(20)"),
    ("character varying(5)", "varchar(5)"),
    ("double precision", "double precision"),
    ("timestamp with time zone", "timestamp with time zone"),
    ("int[][]", "integer[][]"),
    ("public.mytype", "public.mytype"),
    ("jsonb", "jsonb"),
])
def test_valid_type_is_parsed_and_canonical(value, canonical):
    assert Column(name="a", type=value).type == canonical


@pytest.mark.parametrize("value", [
    "text); DROP TABLE x; --",
    "numeric(10,2); SELECT 1",
    "text, b int",
    "text DEFAULT 1",
    "text -- comment",
    "integer)",
    "not a type",
    "",
    "text\x00",
])
def test_invalid_type_rejected(value):
    rejected(lambda: Column(name="a", type=value), "invalid PostgreSQL type", loc="type")


def test_setof_is_not_a_column_type():
    rejected(lambda: Column(name="a", type="SETOF int"), loc="type")


# --- index keys --------------------------------------------------------------------------

def test_index_keys_accept_names_and_expressions():
    index = Index(columns=["email", "lower(email)", "created_at DESC"])
    assert index.columns == ["email", "(lower(email))", "created_at DESC"]
    assert index.referenced_columns == {"email", "created_at"}


@pytest.mark.parametrize("value, reason", [
    ("a); DROP TABLE x; --", "not one index key"),
    ("a, b", "one list entry per key"),
    ("", "is empty"),
])
def test_bad_index_key_rejected(value, reason):
    rejected(lambda: Index(columns=[value]), "invalid index key", reason, loc="columns.0")


def test_index_needs_columns_and_a_known_method():
    rejected(lambda: Index(columns=[]), "at least one column", loc="columns")
    rejected(lambda: Index(columns=["a"], method="btree; DROP TABLE x"), "must be one of", loc="method")


# --- references inside CreateTable -------------------------------------------------------

def _table(**kw) -> CreateTable:
    return CreateTable(table="t", columns=[col("a"), col("b", "bigint")], **kw)


@pytest.mark.parametrize("kw, where, column", [
    ({"primary_key": ["zz"]}, "primary_key", "zz"),
    ({"uniques": [Unique(columns=["a", "zz"])]}, "uniques[0].columns", "zz"),
    ({"checks": [Check(expression="zz > 0")]}, "checks[0].expression", "zz"),
    ({"indexes": [Index(columns=["zz"])]}, "indexes[0]", "zz"),
    ({"indexes": [Index(columns=["lower(zz)"])]}, "indexes[0]", "zz"),
    ({"indexes": [Index(columns=["a"], where="zz IS NOT NULL")]}, "indexes[0]", "zz"),
    ({"indexes": [Index(columns=["a"], include=["zz"])]}, "indexes[0]", "zz"),
    ({"foreign_keys": [ForeignKey(columns=["zz"], references="u", ref_columns=["id"])]},
     "foreign_keys[0].columns", "zz"),
    ({"foreign_keys": [ForeignKey(columns=["b"], references="t", ref_columns=["zz"])]},
     "foreign_keys[0].ref_columns", "zz"),
])
def test_create_table_reference_to_unknown_column_names_it(kw, where, column):
    rejected(lambda: _table(**kw), where, f"unknown column(s) {column}", "(columns: a, b)")


def test_create_table_with_valid_references_accepted():
    table = _table(primary_key=["b"], uniques=[Unique(columns=["a"])], checks=[Check(expression="b > 0")],
                   indexes=[Index(columns=["lower(a)"], where="b > 0", include=["b"])],
                   foreign_keys=[ForeignKey(columns=["b"], references="t", ref_columns=["b"]),
                                 # another table's columns are not known here, so not checked
                                 ForeignKey(columns=["a"], references="other", ref_columns=["anything"])])
    assert table.primary_key == ["b"]


def test_duplicate_column_names_rejected():
    rejected(lambda: CreateTable(table="t", columns=[col("a"), col("a", "int")]), "'a' is defined twice",
             loc="columns")


def test_table_needs_columns():
    rejected(lambda: CreateTable(table="t", columns=[]), "at least one column", loc="columns")


@pytest.mark.parametrize("kw, dupe", [
    ({"checks": [Check(expression="b > 0", name="c1"), Check(expression="b > 1", name="c1")]}, "c1"),
    ({"uniques": [Unique(columns=["a"], name="x1")], "checks": [Check(expression="b > 0", name="x1")]}, "x1"),
    ({"uniques": [Unique(columns=["a"], name="i1")], "indexes": [Index(columns=["b"], name="i1")]}, "i1"),
    ({"indexes": [Index(columns=["a"], name="i1"), Index(columns=["b"], name="i1")]}, "i1"),
    ({"primary_key": ["b"], "uniques": [Unique(columns=["a"], name="t_pkey")]}, "t_pkey"),
    ({"uniques": [Unique(columns=["a"]), Unique(columns=["a"])]}, "t_a_key"),
    ({"indexes": [Index(columns=["a"]), Index(columns=["a"], where="b > 0")]}, "t_a_idx"),
    ({"foreign_keys": [ForeignKey(columns=["b"], references="u", ref_columns=["id"]),
                       ForeignKey(columns=["b"], references="v", ref_columns=["id"])]}, "t_b_fkey"),
])
def test_duplicate_constraint_or_index_names_rejected(kw, dupe):
    rejected(lambda: _table(**kw), f"name(s) {dupe} used twice")


def test_primary_key_listing_a_column_twice_rejected():
    rejected(lambda: _table(primary_key=["a", "a"]), "primary_key lists a column twice")


# --- foreign keys ------------------------------------------------------------------------

def test_foreign_key_column_count_mismatch_rejected():
    rejected(lambda: ForeignKey(columns=["a"], references="u", ref_columns=["x", "y"]),
             "1 column(s) but 2 ref_columns")
    rejected(lambda: ForeignKey(columns=["a", "b"], references="u", ref_columns=["x"]),
             "2 column(s) but 1 ref_columns")


def test_foreign_key_columns_must_be_non_empty_and_distinct():
    rejected(lambda: ForeignKey(columns=[], references="u", ref_columns=[]), "must not be empty", loc="columns")
    rejected(lambda: ForeignKey(columns=["a", "a"], references="u", ref_columns=["x", "y"]), "'a' is listed twice",
             loc="columns")


@pytest.mark.parametrize("value", ["DROP", "CASCADE; DROP TABLE u", "SET", "cascade restrict", ""])
def test_foreign_key_invalid_on_delete_rejected(value):
    rejected(lambda: ForeignKey(columns=["a"], references="u", ref_columns=["id"], on_delete=value),
             "must be one of", repr(value), loc="on_delete")


@pytest.mark.parametrize("value, normal", [
    ("cascade", "CASCADE"), ("set  null", "SET NULL"), ("Set Default", "SET DEFAULT"),
    ("RESTRICT", "RESTRICT"), ("no action", "NO ACTION"), (None, None),
])
def test_foreign_key_on_delete_normalized(value, normal):
    assert ForeignKey(columns=["a"], references="u", ref_columns=["id"], on_delete=value).on_delete == normal


# --- identity ----------------------------------------------------------------------------

def test_identity_with_default_rejected():
    rejected(lambda: Column(name="id", type="bigint", identity=True, default="1"),
             "'id'", "cannot also have a default")


@pytest.mark.parametrize("value", ["text", "numeric", "serial", "uuid", "bigint[]"])
def test_identity_needs_integer_type(value):
    rejected(lambda: Column(name="id", type=value, identity=True), "'id'", "identity needs an integer type")


@pytest.mark.parametrize("value", ["bigint", "BIGINT", "int", "integer", "smallint", "int8", "pg_catalog.int8"])
def test_identity_on_integer_types_accepted_and_not_null(value):
    column = Column(name="id", type=value, identity=True)
    assert column.identity and column.nullable is False


def test_add_column_identity_refused():
    rejected(lambda: AddColumn(table="t", column=Column(name="id", type="bigint", identity=True)),
             "identity column", "ACCESS EXCLUSIVE")


def test_comment_with_nul_rejected():
    rejected(lambda: Column(name="a", type="text", comment="x\x00y"), "NUL byte", loc="comment")


# --- SeedRows ----------------------------------------------------------------------------

def _seed(rows, conflict=("id",)) -> SeedRows:
    return SeedRows(table="t", rows=rows, conflict_columns=list(conflict))


def test_seed_rows_missing_conflict_column_rejected():
    rejected(lambda: _seed([{"id": 1, "x": 1}, {"x": 2}]), "rows[1] has no value for conflict column(s) id")


@pytest.mark.parametrize("value, kind", [
    (object(), "object"), (b"bytes", "bytes"), ({1, 2}, "set"), (1j, "complex"), ((1, 2), "tuple"),
])
def test_seed_rows_unsupported_value_type_rejected(value, kind):
    rejected(lambda: _seed([{"id": 1, "val": value}]), "rows[0].val", f"unsupported value type {kind}",
             loc="rows")


def test_seed_rows_nul_in_string_rejected():
    rejected(lambda: _seed([{"id": 1}, {"id": 2, "name": "a\x00b"}]), "rows[1].name contains a NUL byte",
             loc="rows")


def test_seed_rows_nested_unsupported_value_rejected():
    rejected(lambda: _seed([{"id": 1, "tags": [object()]}]), "unsupported value type", loc="rows")


def test_seed_rows_nested_nul_rejected():
    rejected(lambda: _seed([{"id": 1, "tags": ["a\x00b"]}]), "NUL", loc="rows")


def test_seed_rows_empty_rows_rejected():
    rejected(lambda: _seed([]), "at least one row", loc="rows")
    rejected(lambda: _seed([{}]), "rows[0] is empty", loc="rows")
    rejected(lambda: _seed([{"id": 1}], conflict=()), "must not be empty", loc="conflict_columns")


def test_seed_rows_supported_values_accepted():
    import datetime
    import decimal
    import uuid

    row = {"id": 1, "n": None, "b": True, "f": 1.5, "d": decimal.Decimal("1.50"), "day": datetime.date(2024, 1, 2),
           "ts": datetime.datetime(2024, 1, 2, 3, 4), "u": uuid.UUID(int=1), "j": {"k": [1, "x"]}, "s": "text"}
    assert _seed([row]).rows == [row]


# --- Backfill ----------------------------------------------------------------------------

def test_backfill_empty_set_rejected():
    rejected(lambda: Backfill(table="t", set={}), "at least one column", loc="set")


def test_backfill_batch_size_bounds():
    rejected(lambda: Backfill(table="t", set={"a": "1"}, batch_size=0), loc="batch_size")
    rejected(lambda: Backfill(table="t", set={"a": "1"}, batch_size=1_000_001), loc="batch_size")
    assert Backfill(table="t", set={"a": "1"}, batch_size=1).batch_size == 1


def test_backfill_cannot_change_its_own_key():
    rejected(lambda: Migration(version="1", name="m", operations=[
        CreateTable(table="t", columns=[col("id", "bigint")], primary_key=["id"]),
        Backfill(table="t", set={"id": "id + 1"}),
    ]), "operations[1]", "own key column(s) id")


def test_backfill_referencing_unknown_column_of_created_table_rejected():
    rejected(lambda: Migration(version="1", name="m", operations=[
        CreateTable(table="t", columns=[col("id", "bigint"), col("a")], primary_key=["id"]),
        Backfill(table="t", set={"a": "zz"}),
    ]), "operations[1]", "zz")


# --- Migration ---------------------------------------------------------------------------

def _migration(**kw) -> Migration:
    args = {"version": "001", "name": "m", "operations": [CreateSchema(name="s")]}
    args.update(kw)
    return Migration(**args)


@pytest.mark.parametrize("value", ["001", "1", "0000000001", "9999999999"])
def test_migration_version_digits_accepted(value):
    assert _migration(version=value).version == value


@pytest.mark.parametrize("value", [1, "v1", "", "1a", "12345678901", "\u0661", " 1", "001\n", "1.0", "-1"])
def test_migration_version_must_be_digits(value):
    rejected(lambda: _migration(version=value), "must be a string of 1-10 digits", loc="version")


@pytest.mark.parametrize("value", ["Add", "add-x", "1add", "", "a" * 81, "add x", "add\n", "_add"])
def test_migration_name_must_be_snake_case(value):
    rejected(lambda: _migration(name=value), "must be snake_case", loc="name")


def test_migration_name_of_80_chars_accepted():
    assert _migration(name="a" * 80).folder == "V001__" + "a" * 80


def test_migration_needs_operations():
    rejected(lambda: _migration(operations=[]), "at least one operation", loc="operations")


def test_migration_description_with_nul_rejected():
    rejected(lambda: _migration(description="a\x00"), "NUL byte", loc="description")


def test_not_null_add_column_without_default_or_backfill_rejected():
    rejected(lambda: _migration(operations=[
        AddColumn(table="t", column=col("c", nullable=False)),
    ]), "operations[0]", "'c' is NOT NULL without a default", "Backfill")


def test_not_null_add_column_backfilled_later_accepted():
    m = _migration(operations=[
        AddColumn(table="t", column=col("c", nullable=False)),
        Backfill(table="public.t", set={"c": "'x'"}, key=["id"]),  # same table, spelled differently
    ])
    assert len(m.operations) == 2


def test_not_null_add_column_with_default_accepted():
    _migration(operations=[AddColumn(table="t", column=col("c", nullable=False, default="'x'"))])
    _migration(operations=[AddColumn(table="t", column=col("c", "uuid", nullable=False,
                                                           default="gen_random_uuid()"))])


@pytest.mark.parametrize("ops", [
    pytest.param([Backfill(table="t", set={"c": "'x'"}, key=["id"]),
                  AddColumn(table="t", column=col("c", nullable=False))], id="backfill-before"),
    pytest.param([AddColumn(table="t", column=col("c", nullable=False)),
                  Backfill(table="t", set={"other": "'x'"}, key=["id"])], id="backfill-other-column"),
    pytest.param([AddColumn(table="t", column=col("c", nullable=False)),
                  Backfill(table="u", set={"c": "'x'"}, key=["id"])], id="backfill-other-table"),
])
def test_not_null_add_column_needs_its_own_later_backfill(ops):
    rejected(lambda: _migration(operations=ops), "'c' is NOT NULL without a default")


def test_add_column_then_index_on_it_in_same_migration_accepted():
    m = _migration(operations=[
        CreateTable(table="t", columns=[col("id", "bigint")], primary_key=["id"]),
        AddColumn(table="t", column=col("c")),
        CreateIndex(table="t", index=Index(columns=["c"])),
        AddCheck(table="t", check=Check(expression="c <> ''")),
        AddUnique(table="t", unique=Unique(columns=["c"])),
        DropIndex(name="t_c_idx"),
    ])
    assert [op.kind for op in m.operations][-1] == "drop_index"


def test_create_table_then_add_existing_column_rejected():
    rejected(lambda: _migration(operations=[
        CreateTable(table="t", columns=[col("id", "bigint")]),
        AddColumn(table="t", column=col("id")),
    ]), "operations[1]", "column 'id' already exists in public.t")


@pytest.mark.parametrize("op, message", [
    (CreateIndex(table="t", index=Index(columns=["zz"])), "zz"),
    (AddCheck(table="t", check=Check(expression="zz > 0")), "zz"),
    (AddUnique(table="t", unique=Unique(columns=["zz"])), "zz"),
    (AddForeignKey(table="t", foreign_key=ForeignKey(columns=["zz"], references="u", ref_columns=["id"])), "zz"),
    (SeedRows(table="t", rows=[{"id": 1, "zz": 2}], conflict_columns=["id"]), "zz"),
    (DropColumn(table="t", column="zz"), "no column 'zz'"),
    (DropColumn(table="t", column="id"), "primary key"),
    (CreateTable(table="public.t", columns=[col("x")]), "already created"),
    (CreateIndex(table="t", index=Index(columns=["id"], name="ix")),
     "public.ix is already used by an index of public.t"),
])
def test_operations_checked_against_tables_created_earlier_in_the_migration(op, message):
    rejected(lambda: _migration(operations=[
        CreateTable(table="t", columns=[col("id", "bigint")], primary_key=["id"],
                    indexes=[Index(columns=["id"], name="ix")]),
        op,
    ]), "operations[1]", message)


# --- renames, DropConstraint, AddPrimaryKey (issue 12) ------------------------------------

_KEYED = [
    CreateTable(table="t", columns=[col("id", "bigint"), col("c"), col("r", "bigint")], primary_key=["id"],
                uniques=[Unique(columns=["c"], name="t_c_key")], checks=[Check(expression="c <> ''", name="t_c_chk")],
                indexes=[Index(columns=["c"], name="t_c_idx")]),
    CreateTable(table="u", columns=[col("id", "bigint"), col("t_c")], primary_key=["id"],
                foreign_keys=[ForeignKey(columns=["t_c"], references="t", ref_columns=["c"], name="u_t_fk")]),
    CreateTable(table="nokey", columns=[col("a", "bigint"), col("j", "json")]),
]


@pytest.mark.parametrize("op, message", [
    (RenameIndex(name="public.t_c_idx", new_name="t_c_idx"), "new_name is the index's current name"),
    (RenameIndex(name="public.t_c_key", new_name="t_c_key2"), "fix: use RenameConstraint"),
    (RenameIndex(name="public.t_c_idx", new_name="t_c_key"), "public.t_c_key is already used"),
    (RenameConstraint(table="t", name="t_c_chk", new_name="t_c_chk"), "new_name is the constraint's current name"),
    (RenameConstraint(table="t", name="nope", new_name="n2"), "t has no constraint 'nope'"),
    (RenameConstraint(table="t", name="t_c_chk", new_name="t_c_key"), "already has a constraint named 't_c_key'"),
    (DropConstraint(table="t", name="nope"), "has no constraint 'nope'"),
    (DropConstraint(table="t", name="t_c_key"), "referenced by public.u (foreign key u_t_fk)"),
    (AddPrimaryKey(table="t", columns=["c"]), "already has a primary key"),
    (AddPrimaryKey(table="nokey", columns=["zz"]), "zz"),
    (AddPrimaryKey(table="nokey", columns=["j"]), "json"),
])
def test_constraint_operations_checked_against_earlier_specs(op, message):
    err = rejected(lambda: _migration(operations=[*_KEYED, op]), "operations[3]", message)
    assert "fix:" in str(err)


def test_dropping_the_referencing_foreign_key_first_allows_dropping_the_key():
    m = _migration(operations=[*_KEYED, DropConstraint(table="u", name="u_t_fk"),
                               DropConstraint(table="t", name="t_c_key"), DropConstraint(table="t", name="t_pkey"),
                               AddPrimaryKey(table="t", columns=["c"], name="t_c_pkey")])
    assert [op.kind for op in m.operations][-1] == "add_primary_key"


def test_rename_index_requires_a_qualified_name():
    rejected(lambda: RenameIndex(name="bad name", new_name="x"), loc="name")
    rejected(lambda: AddPrimaryKey(table="t", columns=[]), loc="columns")


# --- RawSQL ------------------------------------------------------------------------------

@pytest.mark.parametrize("field", ["forward", "rollback", "verify"])
@pytest.mark.parametrize("value, reason", [
    ("SELEC 1", "not valid SQL"),
    ("SELECT 1 /* x", "not valid SQL"),
    ("", "not valid SQL"),
    ("BEGIN; SELECT 1; COMMIT;", "BEGIN/COMMIT/ROLLBACK"),
    ("COMMIT", "BEGIN/COMMIT/ROLLBACK"),
    ("ROLLBACK", "BEGIN/COMMIT/ROLLBACK"),
    ("START TRANSACTION", "BEGIN/COMMIT/ROLLBACK"),
    ("SELECT 1; SAVEPOINT a", "BEGIN/COMMIT/ROLLBACK"),
])
def test_raw_sql_invalid_or_transaction_control_rejected(field, value, reason):
    args = {"forward": "SELECT 1", "rollback": "SELECT 1", field: value}
    rejected(lambda: RawSQL(**args), f"{field} ", reason, loc=field)


def test_raw_sql_valid_accepted():
    raw = RawSQL(forward="CREATE INDEX CONCURRENTLY i ON t (a);", rollback="DROP INDEX CONCURRENTLY i",
                 verify="SELECT 1")
    assert raw.forward_sql == "CREATE INDEX CONCURRENTLY i ON t (a);"
    assert raw.rollback_sql == "DROP INDEX CONCURRENTLY i"


# --- unknown fields and immutability -----------------------------------------------------

MINIMAL = [
    (Column, {"name": "a", "type": "text"}),
    (ForeignKey, {"columns": ["a"], "references": "u", "ref_columns": ["id"]}),
    (Check, {"expression": "a > 0"}),
    (Unique, {"columns": ["a"]}),
    (Index, {"columns": ["a"]}),
    (CreateSchema, {"name": "s"}),
    (RequireExtension, {"name": "pgcrypto"}),
    (CreateTable, {"table": "t", "columns": [Column(name="a", type="text")]}),
    (AddColumn, {"table": "t", "column": Column(name="a", type="text")}),
    (CreateIndex, {"table": "t", "index": Index(columns=["a"])}),
    (AddForeignKey, {"table": "t", "foreign_key": ForeignKey(columns=["a"], references="u", ref_columns=["id"])}),
    (AddCheck, {"table": "t", "check": Check(expression="a > 0")}),
    (AddUnique, {"table": "t", "unique": Unique(columns=["a"])}),
    (Backfill, {"table": "t", "set": {"a": "1"}}),
    (SeedRows, {"table": "t", "rows": [{"a": 1}], "conflict_columns": ["a"]}),
    (DropIndex, {"name": "s.i"}),
    (DropColumn, {"table": "t", "column": "a"}),
    (DropTable, {"table": "t"}),
    (RenameIndex, {"name": "s.i", "new_name": "j"}),
    (RenameConstraint, {"table": "t", "name": "c", "new_name": "d"}),
    (DropConstraint, {"table": "t", "name": "c"}),
    (AddPrimaryKey, {"table": "t", "columns": ["a"]}),
    (RawSQL, {"forward": "SELECT 1", "rollback": "SELECT 1"}),
    (Exclusion, {"elements": [("during", "&&")]}),
    (Migration, {"version": "001", "name": "m", "operations": [CreateSchema(name="s")]}),
]


@pytest.mark.parametrize("model, kwargs", MINIMAL, ids=[m.__name__ for m, _ in MINIMAL])
def test_unknown_field_rejected(model, kwargs):
    model(**kwargs)  # the minimal form is valid
    err = rejected(lambda: model(**kwargs, nullabel=False), "Extra inputs are not permitted", loc="nullabel")
    assert err.errors()[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize("model, kwargs", MINIMAL, ids=[m.__name__ for m, _ in MINIMAL])
def test_models_are_frozen(model, kwargs):
    obj = model(**kwargs)
    field = next(iter(type(obj).model_fields))
    with pytest.raises(ValidationError, match="frozen"):
        setattr(obj, field, getattr(obj, field))


def test_missing_required_field_named():
    rejected(lambda: Column(name="a"), "Field required", loc="type")
    rejected(lambda: Migration(version="001", name="m"), "Field required", loc="operations")


# --- RenameColumn / RenameTable / Contract (expand/contract) -------------------------------------

def _renames_plan(*later_ops_by_version):
    """Plan a spec-created public.m (id, a, b) and then each migration of ``later_ops_by_version``
    (version 002, 003, …) with every earlier spec known, as `dbdeploy generate` does."""
    from dbdeploy import Contract, RenameColumn, RenameTable  # noqa: F401  (the DSL names)
    from dbdeploy.plan.loader import LoadedMigration
    from dbdeploy.plan.migration_plan import plan_all

    first = Migration(version="001", name="m", operations=[CreateTable(
        table="public.m", columns=[Column(name="id", type="bigint", nullable=False), Column(name="a", type="text"),
                                   Column(name="b", type="text")], primary_key=["id"])])
    migrations = [first] + [Migration(version=f"{i + 2:03d}", name=f"m{i + 2}", operations=list(ops))
                            for i, ops in enumerate(later_ops_by_version)]
    return plan_all([LoadedMigration(m, Path(f"V{m.version}__{m.name}.py")) for m in migrations])


def test_rename_column_refusals_name_the_fix():
    from dbdeploy import RenameColumn
    from dbdeploy.errors import SpecError

    rejected(lambda: Migration(version="002", name="m", operations=[
        RenameColumn(table="t", column="a", new_name="a")]), "new_name is the column's current name", "fix:")
    rejected(lambda: Migration(version="002", name="m", operations=[
        RenameColumn(table="t", column="a", new_name="b", key=["id"])]), "key is only used by the online form",
             "fix: remove key")
    for op, reason in [
        (RenameColumn(table="public.m", column="zz", new_name="c"), "has no column 'zz' to rename"),
        (RenameColumn(table="public.m", column="a", new_name="b"), "already has a column 'b'"),
    ]:
        with pytest.raises(SpecError) as info:
            _renames_plan([op])
        text = str(info.value)
        assert reason in text and "fix:" in text and "V002__m2.py" in text and "operations[0]" in text, text
    # an online rename of a table whose primary key the specs do not know needs key=[...]
    with pytest.raises(SpecError, match=r"primary key is not known from the specs — fix: set key=\[\.\.\.\]"):
        _renames_plan([RenameColumn(table="public.other", column="a", new_name="c", online=True)])


def test_rename_table_refusals_name_the_fix():
    from dbdeploy import RenameColumn, RenameTable
    from dbdeploy.errors import SpecError

    rejected(lambda: RenameTable(table="public.t", new_name="archive.t"), "is not a rename",
             "fix: keep the schema (public.t)")
    rejected(lambda: RenameTable(table="public.t", new_name="public.t"), "current name", "fix:")
    with pytest.raises(SpecError, match="rename the table in a migration after that Contract"):
        _renames_plan([RenameColumn(table="public.m", column="a", new_name="c", online=True)],
                      [RenameTable(table="public.m", new_name="public.n")])


def test_contract_refusals_name_the_fix():
    from dbdeploy import Contract, RenameColumn
    from dbdeploy.errors import SpecError

    rejected(lambda: Contract(version="v2"), "is not a version number", "fix:")
    # no expansion in that version
    with pytest.raises(SpecError) as info:
        _renames_plan([RenameColumn(table="public.m", column="a", new_name="c")], [Contract(version="002")])
    assert "V002 has no open expansion to contract" in str(info.value) and "fix:" in str(info.value)
    # not applied before it in version order (a later or the same version)
    rejected(lambda: Migration(version="002", name="m", operations=[Contract(version="003")]),
             "contract in a migration after V003", loc="")
    rejected(lambda: Migration(version="002", name="m", operations=[Contract(version="002")]),
             "contract in a migration after V002", loc="")
    # contracted twice
    with pytest.raises(SpecError, match="contracted already"):
        _renames_plan([RenameColumn(table="public.m", column="a", new_name="c", online=True)],
                      [Contract(version="002")], [Contract(version="002")])
    # the right order plans
    _renames_plan([RenameColumn(table="public.m", column="a", new_name="c", online=True)], [Contract(version="002")])
# --- SetNotNull, DropNotNull, SetDefault, DropDefault (issue 12) --------------------------------

def _on_created_table(*ops) -> Migration:
    """``ops`` in a migration after the one that creates public.t (id primary key, n NOT NULL, m, g identity)."""
    from dbdeploy import DropDefault, DropNotNull, SetDefault, SetNotNull  # noqa: F401 (the DSL names exist)
    from dbdeploy.ops import SchemaState
    from dbdeploy.plan.migration_plan import plan_migration
    state = SchemaState(complete=True)
    plan_migration(Migration(version="001", name="base", operations=[CreateTable(
        table="t", columns=[col("id", "bigint"), col("n", nullable=False), col("m"),
                            col("g", "bigint", identity=True)], primary_key=["id"])]), state)
    migration = Migration(version="002", name="change", operations=list(ops))
    return plan_migration(migration, state)


@pytest.mark.parametrize("op, message", [
    ("SetNotNull(table='t', column='n')", "column 'n' of public.t is already NOT NULL — fix: remove this SetNotNull"),
    ("SetNotNull(table='t', column='id')", "already NOT NULL"),
    ("SetNotNull(table='t', column='zz')", "refers to column(s) zz that public.t does not have"),
    ("DropNotNull(table='t', column='id')", "part of public.t's primary key, which PostgreSQL keeps NOT NULL — fix:"),
    ("DropNotNull(table='t', column='g')", "identity column, which PostgreSQL keeps NOT NULL — fix:"),
    ("SetDefault(table='t', column='g', default='1')", "identity column, which has no default (PostgreSQL refuses "
                                                       "one) — fix: remove this SetDefault"),
    ("DropDefault(table='t', column='g')", "fix: remove this DropDefault"),
    ("DropDefault(table='t', column='zz')", "zz"),
])
def test_column_changes_checked_against_the_specs(op, message):
    import dbdeploy
    built = eval(op, {name: getattr(dbdeploy, name) for name in ("SetNotNull", "DropNotNull", "SetDefault",
                                                                  "DropDefault")})
    with pytest.raises(Exception) as info:
        _on_created_table(built)
    text = str(info.value)
    assert "operations[0]" in text and message in text, text


@pytest.mark.parametrize("op", ["SetNotNull", "DropNotNull", "SetDefault", "DropDefault"])
def test_column_changes_refuse_a_column_of_their_own_migration(op):
    import dbdeploy
    from dbdeploy.errors import SpecError
    from dbdeploy.ops import SchemaState
    from dbdeploy.plan.migration_plan import plan_migration
    kwargs = {"table": "t", "column": "m" if op != "DropNotNull" else "n"}
    if op == "SetDefault":
        kwargs["default"] = "'x'"
    migration = Migration(version="001", name="m", operations=[
        CreateTable(table="t", columns=[col("id", "bigint"), col("n", nullable=False), col("m")], primary_key=["id"]),
        getattr(dbdeploy, op)(**kwargs)])
    with pytest.raises(SpecError) as info:
        plan_migration(migration, SchemaState(complete=True))
    text = str(info.value)
    assert f"operations[1] ({getattr(dbdeploy, op).kind} public.t)" in text, text
    assert "which this same migration creates — fix:" in text, text


@pytest.mark.parametrize("value, reason", [
    ("now()); DROP TABLE x; --", "invalid SQL expression"),
    ("(SELECT 1)", "subquery"),
    ("pg_sleep(1)", "pg_sleep"),
    ("active", "column"),
])
def test_set_default_expression_rules(value, reason):
    from dbdeploy import SetDefault
    rejected(lambda: SetDefault(table="t", column="a", default=value), reason, loc="default")


def test_column_change_fields_are_checked():
    from dbdeploy import DropNotNull, SetNotNull
    rejected(lambda: SetNotNull(table="t", column="Bad Name"), "not a lowercase snake_case ASCII name", loc="column")
    rejected(lambda: DropNotNull(table="a.b.c", column="x"), loc="table")
# --- AlterColumnType -----------------------------------------------------------------------

def _alter_after(table_ops: list, **alter) -> Migration:
    from dbdeploy import AlterColumnType

    return Migration(version="001", name="m", operations=[*table_ops, AlterColumnType(**alter)])


_ALTER_TABLE = [CreateTable(table="t", columns=[Column(name="id", type="integer", nullable=False),
                                                Column(name="a", type="text"), Column(name="b", type="text")],
                            primary_key=["id"], indexes=[Index(columns=["lower(a)"])])]


@pytest.mark.parametrize("alter, fragments", [
    ({"table": "t", "column": "nope", "type": "text"}, ("has no column 'nope'", "fix: check the column name")),
    ({"table": "t", "column": "b", "type": "integer", "using": "a::integer"},
     ("using reads a, not only 'b'", "fix: write the conversion over b alone")),
    ({"table": "t", "column": "b", "type": "varchar(9)", "online": True},
     ("online=True keeps the old column", "fix: give new_name=")),
    ({"table": "t", "column": "b", "type": "integer", "online": True, "new_name": "b2", "back": "a::text"},
     ("back reads a, not only 'b2'", "fix: write the conversion new → old over b2 alone")),
    ({"table": "t", "column": "id", "type": "bigint", "online": True, "new_name": "id2"},
     ("part of the primary key", "fix: drop online=True")),
    ({"table": "t", "column": "b", "type": "varchar(9)", "online": True, "new_name": "a"},
     ("already has a column 'a'", "fix: pick another new_name")),
    ({"table": "t", "column": "b", "type": "varchar(9)", "new_name": "b2"},
     ("new_name is only used by the expand/contract form", "fix: remove new_name")),
    ({"table": "t", "column": "b", "type": "varchar(9)", "back": "b"},
     ("back is only used by the expand/contract form", "fix: remove back")),
    ({"table": "t", "column": "b", "type": "varchar(9)", "key": ["id"]},
     ("key is only used by the expand/contract form", "fix: remove key")),
    ({"table": "t", "column": "a", "type": "integer", "using": "a::integer"},
     ("uses public.t.a in an expression or predicate", "fix: drop the index first")),
])
def test_alter_column_type_refusals(alter, fragments):
    rejected(lambda: _alter_after(_ALTER_TABLE, **alter), *fragments)


def test_alter_column_type_online_needs_a_one_column_key():
    table = [CreateTable(table="t", columns=[Column(name="k1", type="integer", nullable=False),
                                             Column(name="k2", type="integer", nullable=False),
                                             Column(name="n", type="integer")], primary_key=["k1", "k2"])]
    rejected(lambda: _alter_after(table, table="t", column="n", type="bigint"),
             "needs a one-column primary key", "fix: add one")


def test_alter_column_type_expand_needs_back_for_a_type_the_specs_do_not_know():
    """An existing table (not made by the specs): the old type is unknown, so the conversion new → old
    must be given; with ``back`` the plan holds."""
    from dbdeploy import AlterColumnType
    from dbdeploy.errors import SpecError
    from dbdeploy.plan.loader import LoadedMigration
    from dbdeploy.plan.migration_plan import plan_all

    def plan(**extra):
        op = AlterColumnType(table="public.legacy", column="code", type="integer", using="code::integer",
                             online=True, new_name="code_int", key=["id"], **extra)
        return plan_all([LoadedMigration(Migration(version="001", name="m", operations=[op]), Path("V001.py"))])

    with pytest.raises(SpecError) as refused:
        plan()
    assert "the specs do not know the type of public.legacy.code" in str(refused.value)
    assert "fix: give back=" in str(refused.value)
    assert plan(back="code_int::text")[-1].migration.operations[0].describe_expansion().startswith(
        "public.legacy.code → code_int (integer")


def test_alter_column_type_bad_type_and_batch_size_rejected():
    from dbdeploy import AlterColumnType

    rejected(lambda: AlterColumnType(table="t", column="a", type="no such type"), loc="type")
    rejected(lambda: AlterColumnType(table="t", column="a", type="text", batch_size=0), loc="batch_size")
# --- constraint and column options (issue 12) ------------------------------------------------------

def _fk(**kw) -> ForeignKey:
    return ForeignKey(columns=["a"], references="u", ref_columns=["id"], **kw)


OPTION_REFUSALS = [
    pytest.param(lambda: _fk(on_update="explode"), "on_update 'explode' must be one of", "on_update",
                 id="on_update"),
    pytest.param(lambda: _fk(match="partial"), "does not implement MATCH PARTIAL", "match", id="match-partial"),
    pytest.param(lambda: _fk(initially_deferred=True), "needs deferrable=True", "", id="initially-deferred"),
    pytest.param(lambda: CreateTable(table="t", columns=[col("a", "bigint"), col("id", "bigint")],
                                     foreign_keys=[ForeignKey(columns=["a"], references="t", ref_columns=["id"],
                                                              validate=False)], uniques=[Unique(columns=["id"])]),
                 "validate=False has no effect on a new table", "", id="validate-false-new-table"),
    pytest.param(lambda: CreateTable(table="t", columns=[col()], primary_key_name="t_pk"),
                 "primary_key_name names a primary key this table does not have", "", id="pk-name-without-pk"),
    pytest.param(lambda: Index(columns=["a"], nulls_not_distinct=True), "applies to unique indexes only", "",
                 id="nulls-not-distinct-not-unique"),
    pytest.param(lambda: col("g", "integer", generated="a + 1", default="0"), "cannot also have a default", "",
                 id="generated-and-default"),
    pytest.param(lambda: col("g", "bigint", generated="a + 1", identity=True), "cannot also have identity", "",
                 id="generated-and-identity"),
    pytest.param(lambda: col("g", "integer", generated="g + 1"), "reads the column itself", "",
                 id="generated-self"),
    pytest.param(lambda: col("g", "integer", generated="random()"), "", "generated", id="generated-volatile"),
    pytest.param(lambda: col("g", "integer", generated="(SELECT 1)"), "subquery", "generated",
                 id="generated-subquery"),
    pytest.param(lambda: CreateTable(table="t", columns=[col("a", "integer", generated="b + 1"),
                                                         col("b", "integer", generated="c + 1"), col("c", "integer")]),
                 "reads the generated column(s) b", "", id="generated-reads-generated"),
    pytest.param(lambda: CreateTable(table="t", columns=[col("a", "integer", generated="nope + 1")]),
                 "unknown column(s) nope", "", id="generated-unknown-column"),
    pytest.param(lambda: AddColumn(table="t", column=col("g", "integer", generated="a + 1")),
                 "rewrites it under ACCESS EXCLUSIVE", "", id="add-generated-column"),
    pytest.param(lambda: col("i", "bigint", identity="sometimes"), "must be True", "identity", id="identity-value"),
    pytest.param(lambda: col("i", "bigint", identity="true"), "must be True", "identity", id="identity-string"),
    pytest.param(lambda: col(collation='C"; DROP TABLE x; --'), "is not a collation name", "collation",
                 id="collation-quote"),
    pytest.param(lambda: col(collation="caf\u00e9"), "is not a collation name", "collation", id="collation-unicode"),
    pytest.param(lambda: col(collation="c" * 64), "is not a collation name", "collation", id="collation-long"),
    pytest.param(lambda: Exclusion(elements=[("during", "; DROP")]), "is not one dbdeploy knows", "elements",
                 id="exclusion-operator"),
    pytest.param(lambda: Exclusion(elements=[]), "at least one (element, operator) pair", "elements",
                 id="exclusion-empty"),
    pytest.param(lambda: Exclusion(elements=[("during", "&&")], using="brin"), "must be gist", "using",
                 id="exclusion-using"),
    pytest.param(lambda: Exclusion(elements=[("random() + a", "=")]), "", "elements", id="exclusion-volatile"),
    pytest.param(lambda: CreateTable(table="t", columns=[col()], exclusions=[Exclusion(elements=[("b", "=")])]),
                 "unknown column(s) b", "", id="exclusion-unknown-column"),
]


@pytest.mark.parametrize("build, fragment, loc", OPTION_REFUSALS)
def test_option_refusals(build, fragment, loc):
    err = rejected(build, fragment, "fix:" if fragment else "")
    if loc:
        locs = [".".join(str(p) for p in e["loc"]) for e in err.errors()]
        assert any(x.startswith(loc) or x.endswith(loc) for x in locs), locs


def test_option_spellings_are_normalized():
    fk = _fk(on_update="set  null", match="Full", validate=False)
    assert (fk.on_update, fk.match, fk.validate) == ("SET NULL", "FULL", False)
    assert _fk(match="simple").match is None
    assert col("i", "bigint", identity="always").identity == "always"
    assert col("i", "bigint", identity=True).identity is True


# --- quoted mixed-case names of existing objects (issue 12) -----------------------------------------

@pytest.mark.parametrize("build, loc", [p for p in IDENTIFIER_FIELDS if p.id != "CreateTable.primary_key"])
def test_quoted_mixed_case_name_is_accepted_as_its_exact_name(build, loc):
    build('"AspNetUsers"')     # every identifier field takes the quoted form


@pytest.mark.parametrize(("value", "exact"), [
    ('"AspNetUsers"', "public.AspNetUsers"), ('public."AspNetUsers"', "public.AspNetUsers"),
    ('"Identity"."AspNetUsers"', "Identity.AspNetUsers"), ('"my table"', "public.my table"),
    ('"orders"', "public.orders"),
])
def test_quoted_table_names_keep_the_exact_name(value, exact):
    assert DropTable(table=value).table == exact


def test_quoted_columns_keep_the_exact_name_everywhere():
    assert Column(name='"UserName"', type="text").name == "UserName"
    assert Index(columns=['"Email"', '"UserName" DESC']).referenced_columns == {"Email", "UserName"}
    assert list(Backfill(table="t", set={'"DisplayName"': '"UserName"'}).set) == ["DisplayName"]
    assert SeedRows(table="t", rows=[{'"Id"': 1}], conflict_columns=['"Id"']).rows == [{"Id": 1}]
    assert DropColumn(table='"AspNetUsers"', column='"LegacyCode"').column == "LegacyCode"


@pytest.mark.parametrize(("value", "reason"), [
    ("AspNetUsers", "write '\"AspNetUsers\"' (in double quotes) for the exact-case name"),
    ('"Asp"Net"', "contains a double quote inside the quoted name"),
    ('"Asp\x00Net"', "NUL byte"),
    ('"Asp.Net"', "contains a dot inside the quoted name"),
    ('"Asp\u0430Net"', "U+0430"),
    ('"Asp\nNet"', "control character"),
    ('""', "empty quoted name"),
    ('"' + "A" * 64 + '"', "64 bytes between the quotes"),
])
def test_bad_quoted_or_mixed_case_names_are_refused(value, reason):
    rejected(lambda: Column(name=value, type="text"), reason, "fix:", loc="name")
    rejected(lambda: DropTable(table=f"public.{value}"), reason, loc="table")


# -- quoted names in models built from resolved names (issue 12, names.spelled) ------------------

@pytest.mark.parametrize("exact", ["AspNetUsers", "PK_AspNetUsers", "my table", "orders", "AspNetUsers_Id_v002_swap"])
def test_spelled_gives_back_the_exact_name(exact):
    """``spelled`` is the inverse of ``check_identifier`` for every exact name dbdeploy resolves, so
    an operation may rebuild a model (Index, Unique) from resolved names without refusal."""
    from dbdeploy.model.names import spelled
    assert check_identifier(spelled(exact)) == exact


def test_operations_that_rebuild_models_from_resolved_quoted_names_plan():
    """AddPrimaryKey (its unique index), AlterColumnType online (the moved named primary key and
    unique), DropConstraint of spec-known keys (the rollback's concurrent index) and the online
    RenameColumn (the mirrored unique index) build Index models from exact mixed-case names: they
    plan, and the bundle addresses the objects under their quoted names."""
    from dbdeploy import AddPrimaryKey, AlterColumnType, Check, DropConstraint, RenameColumn, Unique
    from dbdeploy.plan.loader import LoadedMigration
    from dbdeploy.plan.migration_plan import plan_all

    users = 'public."AspNetUsers"'
    create = Migration(version="001", name="identity", operations=[CreateTable(
        table=users, columns=[Column(name='"Id"', type="integer", nullable=False),
                              Column(name='"UserName"', type="varchar(64)"), Column(name='"Level"', type="text")],
        primary_key=['"Id"'], primary_key_name='"PK_AspNetUsers"', uniques=[Unique(columns=['"UserName"'])],
        checks=[Check(expression='"Level" <> \'\'', name='"CK_Level"')])])
    for version, op in [
            ("002", AddPrimaryKey(table='"AspNetUserLogins"', columns=['"LoginProvider"'], name='"PK_Logins"')),
            ("002", AlterColumnType(table=users, column='"Id"', type="bigint")),
            ("002", DropConstraint(table=users, name='"PK_AspNetUsers"')),
            ("002", DropConstraint(table=users, name='"AspNetUsers_UserName_key"')),
            ("002", RenameColumn(table=users, column='"UserName"', new_name='"Login"', online=True))]:
        later = Migration(version=version, name="change", operations=[op])
        plans = plan_all([LoadedMigration(create, Path("V001_identity.py")), LoadedMigration(later, Path("V002.py"))])
        assert len(plans) == 2, op


# -- views (issue 13) ------------------------------------------------------------------------------

@pytest.mark.parametrize("query, fragments", [
    ("", ("is empty", "fix:")),
    ("SELECT 1; SELECT 2", ("contains 2 statements", "fix: give exactly one SELECT")),
    ("DELETE FROM public.t", ("is not a query", "Delete", "fix:")),
    ("SELECT * INTO public.copy FROM public.t", ("SELECT … INTO", "fix: remove the INTO clause")),
    ("SELECT id FROM orders", ("reads 'orders' without its schema", "fix: write it as schema.orders")),
    ("WITH d AS (DELETE FROM public.t RETURNING *) SELECT * FROM d", ("data-modifying statement in WITH", "fix:")),
    ("SELECT (1", ("invalid view query", "fix:")),
])
def test_view_query_refusals_name_the_fix(query, fragments):
    from dbdeploy import CreateView, ReplaceView

    rejected(lambda: CreateView(name="public.v", query=query), *fragments, loc="query")
    rejected(lambda: ReplaceView(name="public.v", query=query), *fragments, loc="query")


def test_view_query_is_kept_in_canonical_form():
    from dbdeploy import CreateView

    view = CreateView(name="public.v", query="select t.id from public.t t where t.a <> 'x' -- hidden")
    assert view.query == "SELECT t.id FROM public.t AS t WHERE t.a <> 'x'"
    assert view.query.relations == frozenset({"public.t"})


def _views_base():
    return [CreateTable(table="public.t", columns=[col("id", "bigint", nullable=False), col("a")], primary_key=["id"])]


@pytest.mark.parametrize("ops, fragments", [
    (lambda V: [V.CreateView(name="public.v", query="SELECT t.nope FROM public.t AS t")],
     ("reads column 'nope' of public.t", "fix: use one of its columns")),
    (lambda V: [DropTable(table="public.t"), V.CreateView(name="public.v", query="SELECT t.id FROM public.t AS t")],
     ("reads public.t, which an earlier operation drops", "fix:")),
    (lambda V: [V.CreateView(name="public.t", query="SELECT 1 AS one")], ("already used by", "fix: pick another name")),
    (lambda V: [V.CreateView(name="public.v", query="SELECT 1 AS one"),
                V.CreateView(name="public.v", query="SELECT 2 AS two")], ("already created", "fix: pick another name")),
    (lambda V: [V.ReplaceView(name="public.t", query="SELECT 1 AS one")], ("is a table, not a view", "fix:")),
    (lambda V: [V.DropView(name="public.t")], ("is a table, not a view", "fix: drop it with DropTable")),
    (lambda V: [V.CreateView(name="public.v", query="SELECT t.id FROM public.t AS t"),
                V.CreateView(name="public.w", query="SELECT v.id FROM public.v AS v"), V.DropView(name="public.v")],
     ("read by view(s) public.w", "never drops with CASCADE", "fix: drop those first")),
])
def test_view_operations_refuse_what_the_specs_know_is_wrong(ops, fragments):
    import dbdeploy as V

    with pytest.raises(ValueError) as info:
        Migration(version="1", name="m", operations=[*_views_base(), *ops(V)])
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_materialized_view_refusals_name_the_fix():
    from dbdeploy import CreateMaterializedView, CreateView, DropView, RefreshMaterializedView

    totals = "SELECT t.a, count(*) AS n FROM public.t AS t GROUP BY t.a"
    rejected(lambda: CreateMaterializedView(name="public.m", query="SELECT 1; SELECT 2"), "fix:", loc="query")
    rejected(lambda: CreateMaterializedView(name="public.m", query=totals, indexes=[
        Index(columns=["a"], name="m_a"), Index(columns=["n"], name="m_a")]), "same name", "fix:", loc="indexes")
    cases = [
        ([CreateMaterializedView(name="public.m", query=totals), RefreshMaterializedView(name="public.m")],
         "needs a unique index on plain columns"),
        ([CreateMaterializedView(name="public.m", query=totals, indexes=[Index(columns=["a"], unique=True,
                                                                                  where="a IS NOT NULL")]),
          RefreshMaterializedView(name="public.m")], "set concurrently=False"),
        ([CreateView(name="public.v", query=totals), RefreshMaterializedView(name="public.v")],
         "is a plain view"),
        ([RefreshMaterializedView(name="public.t")], "is a table, not a materialized view"),
        ([CreateMaterializedView(name="public.m", query=totals), DropView(name="public.m")],
         "is a materialized view — fix:"),
    ]
    for ops, fragment in cases:
        with pytest.raises(ValueError) as info:
            Migration(version="1", name="m", operations=[*_views_base(), *ops])
        assert fragment in str(info.value) and "fix:" in str(info.value), str(info.value)
    # with a usable unique index, or not concurrently, it plans
    Migration(version="1", name="m", operations=[*_views_base(), CreateMaterializedView(
        name="public.m", query=totals, indexes=[Index(columns=["a"], unique=True)]), RefreshMaterializedView(
        name="public.m")])
    Migration(version="1", name="m", operations=[*_views_base(), CreateMaterializedView(name="public.m", query=totals),
                                                  RefreshMaterializedView(name="public.m", concurrently=False)])
# -- enum types (issue 13) -------------------------------------------------------------------------

MOOD = CreateEnum(name="public.mood", values=["sad", "ok", "happy"])


def _enum_migration(*ops) -> Migration:
    return Migration(version="001", name="moods", operations=[MOOD, *ops])


ENUM_REFUSALS = [
    pytest.param(lambda: CreateEnum(name="public.mood", values=[]), "values must not be empty", "values",
                 id="no-labels"),
    pytest.param(lambda: CreateEnum(name="public.mood", values=["a", "b", "a"]), "'a' is listed twice", "values",
                 id="repeated-label"),
    pytest.param(lambda: CreateEnum(name="public.mood", values=["a", ""]), "values[1] is empty", "values",
                 id="empty-label"),
    pytest.param(lambda: CreateEnum(name="public.mood", values=["x" * 64]), "64 bytes", "values",
                 id="label-over-63-bytes"),
    pytest.param(lambda: CreateEnum(name="public.mood", values=["a\x00"]), "NUL byte", "values", id="nul-label"),
    pytest.param(lambda: CreateEnum(name="Mood", values=["a"]), "not a lowercase snake_case", "name",
                 id="unquoted-mixed-case-name"),
    pytest.param(lambda: CreateEnum(name="a.b.c", values=["a"]), "one dot at most", "name", id="three-part-name"),
    pytest.param(lambda: AddEnumValue(type="public.mood", value="meh", before="ok", after="sad"),
                 "give before or after, not both", "", id="before-and-after"),
    pytest.param(lambda: AddEnumValue(type="public.mood", value=""), "value is empty", "value", id="empty-value"),
    pytest.param(lambda: AddEnumValue(type="public.mood", value="ok", after="ok"), "next to itself", "",
                 id="next-to-itself"),
    pytest.param(lambda: RenameEnumValue(type="public.mood", value="ok", new_value="ok"), "the same label", "",
                 id="rename-to-itself"),
    pytest.param(lambda: RenameEnumValue(type="public.mood", value="ok", new_value="y" * 64), "64 bytes",
                 "new_value", id="rename-over-63-bytes"),
    pytest.param(lambda: DropEnum(name="public.Mood"), "not a lowercase snake_case", "name", id="drop-bad-name"),
    # against what the specs built (Migration validation: the operation's index and the fix)
    pytest.param(lambda: _enum_migration(CreateEnum(name="public.mood", values=["a"])),
                 "type public.mood is already created by an earlier operation", None, id="created-twice"),
    pytest.param(lambda: _enum_migration(AddEnumValue(type="public.mood", value="ok")),
                 "enum public.mood already has label 'ok'", None, id="add-existing-label"),
    pytest.param(lambda: _enum_migration(AddEnumValue(type="public.mood", value="meh", after="bored")),
                 "has no label 'bored' to put 'meh' after", None, id="add-after-missing-label"),
    pytest.param(lambda: _enum_migration(RenameEnumValue(type="public.mood", value="bored", new_value="meh")),
                 "enum public.mood has no label 'bored'", None, id="rename-missing-label"),
    pytest.param(lambda: _enum_migration(RenameEnumValue(type="public.mood", value="ok", new_value="happy")),
                 "already has label 'happy'", None, id="rename-onto-existing-label"),
    pytest.param(lambda: _enum_migration(CreateTable(table="public.diary", columns=[
        Column(name="mood", type="public.mood[]")]), DropEnum(name="public.mood")),
                 "column mood of public.diary uses type public.mood", None, id="drop-used-type"),
    pytest.param(lambda: Migration(version="001", name="t", operations=[
        CreateTable(table="public.mood", columns=[Column(name="id", type="integer")]),
        CreateEnum(name="public.mood", values=["a"])]), "a table's row type has its name", None,
                 id="enum-named-like-a-table"),
]


@pytest.mark.parametrize("build, fragment, loc", ENUM_REFUSALS)
def test_enum_refusals(build, fragment, loc):
    fragments = (fragment, "fix:") if loc is None or loc else (fragment,)
    rejected(build, *fragments, loc=loc)


def test_enum_names_and_labels_are_kept_exactly():
    op = CreateEnum(name='public."Mood"', values=["Sad", "it's ok", "très bien"])
    assert op.name == "public.Mood"
    assert op.values == ["Sad", "it's ok", "très bien"]
    assert CreateEnum(name="mood", values=["a"]).name == "public.mood"
    assert AddEnumValue(type='"Mood"', value="Meh", before="Sad").type == "public.Mood"


@pytest.mark.parametrize("build, fragment, loc", [
    pytest.param(lambda: CreateDomain(name="public.qty", type="integer", checks=["qty > 0"]),
                 "checks[0] reads qty; a domain CHECK sees only VALUE", "checks", id="check-reads-a-column"),
    pytest.param(lambda: CreateDomain(name="public.qty", type="integer", checks=["VALUE > (SELECT 1)"]),
                 "contains a subquery", "checks", id="check-subquery"),
    pytest.param(lambda: CreateDomain(name="public.qty", type="integer", default="VALUE + 1"),
                 "PostgreSQL does not allow column references in DEFAULT", "default", id="default-reads-value"),
    pytest.param(lambda: CreateDomain(name="public.qty", type="integer(", checks=[]), "invalid PostgreSQL type",
                 "type", id="bad-type"),
    pytest.param(lambda: CreateDomain(name="Qty", type="integer"), "not a lowercase snake_case", "name",
                 id="bad-name"),
    pytest.param(lambda: Migration(version="001", name="d", operations=[
        CreateDomain(name="public.qty", type="integer"), CreateEnum(name="public.qty", values=["a"])]),
                 "type public.qty is already created by an earlier operation", None, id="type-created-twice"),
])
def test_create_domain_refusals(build, fragment, loc):
    rejected(build, fragment, loc=loc)


def test_create_domain_keeps_the_parsed_expressions():
    op = CreateDomain(name='public."Email"', type="varchar(254)", checks=["VALUE  LIKE  '%@%'"], default="''",
                      not_null=True)
    assert op.name == "public.Email"
    assert op.checks == ["value ~~ '%@%'"] or op.checks == ["value LIKE '%@%'"]


@pytest.mark.parametrize("build, fragment", [
    pytest.param(lambda: CreateCompositeType(name="public.pair", attributes=[]), "attributes must not be empty",
                 id="no-attributes"),
    pytest.param(lambda: CreateCompositeType(name="public.pair", attributes=[
        Column(name="a", type="integer", nullable=False)]), "sets nullable=False", id="not-null-attribute"),
    pytest.param(lambda: CreateCompositeType(name="public.pair", attributes=[
        Column(name="a", type="integer", default="1")]), "sets default", id="default-attribute"),
    pytest.param(lambda: CreateCompositeType(name="public.pair", attributes=[
        Column(name="a", type="integer"), Column(name="a", type="text")]), "attribute 'a' is listed twice",
                 id="repeated-attribute"),
    pytest.param(lambda: Migration(version="001", name="p", operations=[
        CreateTable(table="public.pair", columns=[Column(name="id", type="integer")]),
        CreateCompositeType(name="public.pair", attributes=[Column(name="a", type="integer")])]),
                 "public.pair is a table or index of the specs", id="named-like-a-table"),
])
def test_create_composite_type_refusals(build, fragment):
    rejected(build, fragment, "fix:")

# --- CommentOn (issue 13) ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, fragments, loc", [
    ({"object_kind": "RULE", "name": "public.t", "comment": "x"}, ["Input should be 'TABLE'"], "object_kind"),
    ({"object_kind": "TABLE", "name": "a.b.c", "comment": "x"},
     ["a TABLE is named 'schema.name' (or 'name' in public), got 'a.b.c' — fix: write it as"], "name"),
    ({"object_kind": "TABLE", "name": "Orders", "comment": "x"}, ["folds it to 'orders' — fix:"], "name"),
    ({"object_kind": "COLUMN", "name": "t.c", "comment": "x"},
     ["a COLUMN is named 'schema.table.column' (the schema always: 'public.t.c' for a table in public), got 't.c'"
      " — fix:"], "name"),
    ({"object_kind": "COLUMN", "name": "s.t.c.d", "comment": "x"}, ["got 's.t.c.d' — fix:"], "name"),
    ({"object_kind": "CONSTRAINT", "name": "s.t", "comment": "x"}, ["fix:"], "name"),
    ({"object_kind": "TRIGGER", "name": 's.t."bad.name"', "comment": "x"}, ["dot inside the quoted name — fix:"],
     "name"),
    ({"object_kind": "SCHEMA", "name": "a.b", "comment": "x"}, ["not a lowercase snake_case", "fix:"], "name"),
    ({"object_kind": "FUNCTION", "name": "public.f", "comment": "x"}, ["has no argument list — fix:"], "name"),
    ({"object_kind": "FUNCTION", "name": "f(integer)", "comment": "x"},
     ["is not schema-qualified (schema.name) — fix:"], "name"),
    ({"object_kind": "FUNCTION", "name": "public.f(integer) IS 'x'; DROP TABLE t; --", "comment": "x"},
     ["more than one statement — fix:"], "name"),
    ({"object_kind": "FUNCTION", "name": "public.f(nosuchtype)", "comment": "x"},
     ["not a built-in PostgreSQL type — fix:"], "name"),
    ({"object_kind": "TABLE", "name": "public.t", "comment": "a\x00b"},
     ["contains a NUL byte, which PostgreSQL text cannot hold — fix:"], "comment"),
    ({"object_kind": "TABLE", "name": "public.t"}, ["Field required"], "comment"),
])
def test_comment_on_refusals(kwargs, fragments, loc):
    from dbdeploy import CommentOn
    rejected(lambda: CommentOn(**kwargs), *fragments, loc=loc)


def test_comment_on_normalizes_names():
    from dbdeploy import CommentOn
    assert CommentOn(object_kind="TABLE", name="orders", comment=None).name == "public.orders"
    assert CommentOn(object_kind="COLUMN", name='public.orders."Total"', comment="").name == "public.orders.Total"
    assert CommentOn(object_kind="FUNCTION", name='s."F"(IN a integer, varchar(3)[])', comment="x").name == \
        's."F"(integer, varchar(3)[])'


# --- CreateSequence, AlterSequence, SetSequenceValue (issue 13) ---------------------------------------

@pytest.mark.parametrize("op, kwargs, fragments, loc", [
    ("CreateSequence", {"name": "public.s", "increment": 0}, ["increment is 0 — fix:"], ""),
    ("CreateSequence", {"name": "public.s", "cache": 0}, ["cache is 0; PostgreSQL needs at least 1 — fix:"], ""),
    ("CreateSequence", {"name": "public.s", "min_value": 10, "max_value": 10},
     ["min_value 10 is not below max_value 10 — fix:"], ""),
    ("CreateSequence", {"name": "public.s", "start": 5, "min_value": 10}, ["start 5 is below min_value 10 — fix:"], ""),
    ("CreateSequence", {"name": "public.s", "as_type": "smallint", "max_value": 40000},
     ["max_value 40000 does not fit the sequence's type smallint — fix:"], ""),
    ("CreateSequence", {"name": "public.s", "as_type": "numeric"}, ["Input should be 'smallint'"], "as_type"),
    ("CreateSequence", {"name": "public.s", "owned_by": "t.c"}, ["owned_by 't.c' is not 'schema.table.column' — fix:"],
     "owned_by"),
    ("CreateSequence", {"name": "Seq"}, ["folds it to 'seq' — fix:"], "name"),
    ("AlterSequence", {"name": "public.s"}, ["AlterSequence of public.s changes nothing — fix:"], ""),
    ("AlterSequence", {"name": "public.s", "restart": 1, "min_value": 5}, ["restart 1 is below min_value 5 — fix:"],
     ""),
    ("SetSequenceValue", {"name": "public.s"}, ["Field required"], "value"),
    ("SetSequenceValue", {"name": "public.s", "value": "ten"}, ["valid integer"], "value"),
])
def test_sequence_refusals(op, kwargs, fragments, loc):
    import dbdeploy
    rejected(lambda: getattr(dbdeploy, op)(**kwargs), *fragments, loc=loc)


def test_sequence_refusals_against_the_specs():
    from dbdeploy import CreateSequence
    from dbdeploy.ops import SchemaState
    from dbdeploy.plan.migration_plan import plan_migration
    base = CreateTable(table="t", columns=[col("id", "bigint")], primary_key=["id"])
    for ops, message in [
        ([base, CreateSequence(name="public.t_numbers", owned_by="public.t.nope")],
         "owned_by refers to column(s) nope that public.t does not have"),
        ([base, CreateSequence(name="public.t")], "public.t is already used by"),
        ([CreateSequence(name="public.s"), CreateSequence(name="public.s")],
         "sequence public.s is already created by an earlier operation — fix:"),
    ]:
        with pytest.raises(Exception) as info:
            plan_migration(Migration(version="001", name="m", operations=ops), SchemaState(complete=True))
        assert message in str(info.value) and "operations[1]" in str(info.value), str(info.value)
# --- partitions (issue 13) ------------------------------------------------------------------------

def _events(**extra) -> dict:
    from dbdeploy import Column

    spec = {"table": "public.events", "columns": [Column(name="id", type="bigint", nullable=False),
                                                  Column(name="at", type="timestamptz", nullable=False)],
            "primary_key": ["id", "at"], "partition_by": "RANGE (at)"}
    spec.update(extra)
    return spec


@pytest.mark.parametrize("extra, fragments", [
    ({"partition_by": "RANGE (lower(at))"}, ("uses an expression", "fix: give RANGE, LIST or HASH")),
    ({"partition_by": "LIST (id, at)"}, ("LIST partitioning takes exactly one column", "fix:")),
    ({"partition_by": "RANGE (at)); DROP TABLE x; --"}, ("invalid partition key", "fix:")),
    ({"partition_by": "RANGE (nope)"}, ("partition_by: refers to unknown column(s) nope", "fix:")),
    ({"primary_key": ["id"]}, ("must include every partition column (PostgreSQL refuses it otherwise); missing at",
                               "fix: add them to the key")),
])
def test_partitioned_table_refusals(extra, fragments):
    rejected(lambda: CreateTable(**_events(**extra)), *fragments)


@pytest.mark.parametrize("operation, fragments", [
    ("index", ("public.events is partitioned, and CreateIndex", "fix: declare it in the table's CreateTable")),
    ("unique", ("public.events is partitioned, and AddUnique", "ON ONLY the parent")),
    ("fk", ("public.events is partitioned, and AddForeignKey", "fix:")),
    ("default twice", ("already has a DEFAULT partition", "fix: give this partition bounds")),
    ("not partitioned", ("public.plain is not partitioned", "fix: add partition_by")),
    ("other schema", ("is in another schema than public.events", "fix: create it in schema public")),
    ("bad bound", ("invalid partition bound", "fix: give PostgreSQL's bound")),
])
def test_partition_refusals_at_generate(operation, fragments):
    """What PostgreSQL refuses at apply on a partitioned table is refused when the spec loads."""
    from dbdeploy import AddForeignKey, Column, CreateIndex, CreatePartition, ForeignKey, Index, Unique

    base = [CreateTable(**_events()),
            CreateTable(table="public.plain", columns=[Column(name="id", type="bigint", nullable=False)],
                        primary_key=["id"])]
    later = {
        "index": lambda: [CreateIndex(table="public.events", index=Index(columns=["at"]))],
        "unique": lambda: [AddUnique(table="public.events", unique=Unique(columns=["id", "at"]))],
        "fk": lambda: [AddForeignKey(table="public.events", foreign_key=ForeignKey(
            columns=["id"], references="public.plain", ref_columns=["id"]))],
        "default twice": lambda: [CreatePartition(parent="public.events", table="public.events_d1", bounds="DEFAULT"),
                                  CreatePartition(parent="public.events", table="public.events_d2", bounds="DEFAULT")],
        "not partitioned": lambda: [CreatePartition(parent="public.plain", table="public.plain_1", bounds="DEFAULT")],
        "other schema": lambda: [CreatePartition(parent="public.events", table="other.events_1", bounds="DEFAULT")],
        "bad bound": lambda: [CreatePartition(parent="public.events", table="public.events_1",
                                              bounds="FOR VALUES IN (1); DROP TABLE x")],
    }[operation]
    rejected(lambda: Migration(version="001", name="m", operations=[*base, *later()]), *fragments)
# -- code: functions and triggers (issue 13) ----------------------------------------------------------

def _fn(**overrides):
    from dbdeploy import CreateFunction
    fields = dict(name="public.touch", returns="trigger", language="plpgsql",
                  body="BEGIN NEW.at := now(); RETURN NEW; END")
    return CreateFunction(**{**fields, **overrides})


def _proc(**overrides):
    from dbdeploy import CreateProcedure
    return CreateProcedure(**{**dict(name="public.p", language="sql", body="SELECT 1"), **overrides})


def _trg(**overrides):
    from dbdeploy import CreateTrigger
    fields = dict(table="public.docs", name="docs_touch", function="public.touch", timing="BEFORE", events=["UPDATE"])
    return CreateTrigger(**{**fields, **overrides})


CODE_REFUSALS = [
    pytest.param(lambda: _fn(body="BEGIN NEW.at := now() RETURN NEW; END"), "PL/pgSQL body does not parse", "",
                 id="plpgsql-syntax"),
    pytest.param(lambda: _fn(language="sql", returns="integer", body="SELEC 1"), "does not parse", "",
                 id="sql-body-syntax"),
    pytest.param(lambda: _fn(language="plperlu"), "", "language", id="language"),
    pytest.param(lambda: _fn(returns="integer; DROP TABLE x"), "invalid return type", "returns",
                 id="returns-injection"),
    pytest.param(lambda: _fn(returns="nosuchtype"), "not a built-in PostgreSQL type", "returns", id="returns-unknown"),
    pytest.param(lambda: _fn(args=[("a", "nosuchtype")]), "not a built-in PostgreSQL type", "", id="arg-type"),
    pytest.param(lambda: _fn(args=[("a", "integer"), ("a", "text")]), "listed twice", "", id="arg-twice"),
    pytest.param(lambda: _fn(args=[("Bad Name", "integer")]), "", "", id="arg-name"),
    pytest.param(lambda: _fn(body="   "), "body is empty", "", id="empty-body"),
    pytest.param(lambda: _fn(body="x\x00"), "NUL byte", "body", id="nul-body"),
    pytest.param(lambda: _fn(volatility="sometimes"), "", "volatility", id="volatility"),
    pytest.param(lambda: _fn(search_path="public; DROP TABLE x"), "", "search_path", id="search-path"),
    pytest.param(lambda: _fn(name="a.b.c"), "is not 'schema.table'", "name", id="name-dots"),
    pytest.param(lambda: _trg(events=["UPDATE", "UPDATE"]), "lists an event twice", "",
                 id="event-twice"),
    pytest.param(lambda: _trg(events=[]), "events is empty", "", id="events-empty"),
    pytest.param(lambda: _trg(events=["SELECT"]), "", "events.0", id="event-unknown"),
    pytest.param(lambda: _trg(events=["TRUNCATE"]), "fire per statement only", "", id="truncate-row"),
    pytest.param(lambda: _trg(timing="DURING"), "", "timing", id="timing"),
    pytest.param(lambda: _trg(when="NEW.a = 1); DROP TABLE x; --"), "", "when", id="when-injection"),
    pytest.param(lambda: _trg(timing="INSTEAD OF", when="NEW.a = 1"), "cannot have a WHEN", "", id="instead-when"),
    pytest.param(lambda: _proc(returns="integer"), "", "returns", id="procedure-returns"),
    pytest.param(lambda: _proc(volatility="STABLE"), "", "volatility", id="procedure-volatility"),
    pytest.param(lambda: _proc(language="plpgsql", body="BEGIN COMMIT END"), "PL/pgSQL body does not parse", "",
                 id="procedure-body"),
]


@pytest.mark.parametrize("build, fragment, loc", CODE_REFUSALS)
def test_code_refusals(build, fragment, loc):
    err = rejected(build, fragment, "fix:" if fragment else "")
    if loc:
        locs = [".".join(str(p) for p in e["loc"]) for e in err.errors()]
        assert any(x.startswith(loc) or x.endswith(loc) for x in locs), locs


def test_code_refusals_against_the_schema_state():
    """apply(): a signature created twice, a trigger calling a spec function that does not return trigger,
    INSTEAD OF on a table the specs created, a trigger name used twice."""
    from dbdeploy.ops import SchemaState
    state = SchemaState(complete=True)
    _fn().apply(state)
    with pytest.raises(ValueError, match="already created by an earlier operation — fix:"):
        _fn().apply(state)
    _fn(name="public.count_docs", returns="bigint", language="sql", body="SELECT 1::bigint").apply(state)
    with pytest.raises(ValueError, match="not trigger — fix:"):
        _trg(function="public.count_docs").apply(state)
    CreateTable(table="public.docs", columns=[col("a", "integer")]).apply(state)
    with pytest.raises(ValueError, match="INSTEAD OF triggers are for views.*fix:"):
        _trg(timing="INSTEAD OF").apply(state)
    _trg().apply(state)
    with pytest.raises(ValueError, match="already has a trigger 'docs_touch'.*fix:"):
        _trg().apply(state)


def test_drop_function_refused_while_a_spec_trigger_calls_it():
    from dbdeploy import DropFunction, DropTrigger
    from dbdeploy.ops import SchemaState
    state = SchemaState(complete=True)
    _fn().apply(state)
    _trg().apply(state)
    with pytest.raises(ValueError, match="called by trigger.*public.docs.docs_touch.*fix: drop them first"):
        DropFunction(name="public.touch").apply(state)
    DropTrigger(table="public.docs", name="docs_touch").apply(state)
    DropFunction(name="public.touch").apply(state)
    assert "public.touch()" not in state.functions


@pytest.mark.parametrize("columns", [["day"], ["created_at", "region"], ['"Region"'], ['"user"'], ["id", "window_"]])
def test_partition_key_text_is_what_postgresql_prints(fresh_db, columns):
    """The key text verify compares is pg_get_partkeydef's own: identifiers quoted only where
    PostgreSQL's quote_ident quotes them (an unreserved keyword like day is not; a reserved one is)."""
    from dbdeploy.sql import parse_partition_key

    key = parse_partition_key(f"RANGE ({', '.join(columns)})")
    names = ", ".join(f"{c} text" for c in columns)
    fresh_db.execute(f"CREATE TABLE public.p ({names}) PARTITION BY RANGE ({', '.join(columns)})")
    assert fresh_db.execute("SELECT pg_get_partkeydef('public.p'::regclass)") == [(str(key),)]
