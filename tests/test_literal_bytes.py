"""Issue 10, item 4: every literal survives spec → bundle → psql and executor byte for byte.

A string from the spec is used, in one pair of migrations, as:

- a column default (CreateTable, and AddColumn on a populated table) and read back by inserting a
  row with ``DEFAULT``;
- a column comment (both paths) and a table comment, read back with ``col_description`` /
  ``obj_description``;
- a CHECK literal (``c IS NULL OR c = '<s>'``: CreateTable's table check and AddCheck on a populated
  table, NOT VALID + VALIDATE), read back by inserting exactly the string (text equality under a
  deterministic collation is byte equality) and seeing a different string refused;
- a backfill value (``Backfill(set={"b": "'<s>'"})`` over seeded rows) and a backfill WHERE literal;
- seed values, as ``INSERT … VALUES`` (few rows) and as COPY data (more than ``COPY_MIN_ROWS``);
- a literal inside RawSQL (plain, and inside a DO block's dollar-quoted body).

Each migration pair is generated with the real renderer and writer, then applied on one fresh
database by the executor (``Deployment.apply``, what ``dbdeploy apply`` runs) and on another with
``psql -v ON_ERROR_STOP=1 -f`` on the forward files, and every value read back is compared with the
spec's string exactly. The strings are drawn by Hypothesis from pieces that broke or could break
text handling: line breaks (LF, CR, CRLF, U+2028, U+0085, form feed — ``str.splitlines`` splits at
all of them), tabs and leading spaces, quotes, backslashes, ``--``, ``/*``, ``*/``, ``$$``,
``$dbdeploy$``, every dbdeploy marker text, astral and combining characters. Seeded and bounded:
``derandomize=True`` and a few dozen examples by default; ``DBDEPLOY_FULL=1`` runs more, on every
server. Explicit tests replay the issue's inputs on both servers, and show that ``dbdeploy verify``
notices a default that differs from the spec by one byte.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st
from psycopg import sql

from dbdeploy import (
    AddCheck,
    AddColumn,
    Backfill,
    Check,
    Column,
    CreateSchema,
    CreateTable,
    Migration,
    RawSQL,
    SeedRows,
)
from dbdeploy.bundle.markers import BATCH_BEGIN, BATCH_END, POSTAMBLE, PREAMBLE
from dbdeploy.executor.bundles import parse_script
from dbdeploy.executor.config import Config, Environment
from dbdeploy.executor.deploy import Deployment
from dbdeploy.ops.seed_rows import COPY_MIN_ROWS
from dbdeploy.plan.loader import LoadedMigration
from dbdeploy.plan.migration_plan import plan_all
from dbdeploy.render.bundle import render_bundle
from dbdeploy.render.writer import write
from dbdeploy.sql import literal, render
from dbdeploy.sql.psql import indent, statements
from tests.executor_support import make_project, write_spec
from tests.pg import PgServer, TestDatabase, temporary_database

FULL = os.environ.get("DBDEPLOY_FULL") == "1"
EXAMPLES = 200 if FULL else 24

MARKERS = [PREAMBLE, POSTAMBLE, BATCH_BEGIN, BATCH_END,
           "-- dbdeploy:step 1 backfill tx=none lock=ROW EXCLUSIVE target=lit.t"]
PIECES = [
    "\n", "\r", "\r\n", "\n    ", "\n\t", "\t", "  ", "\u2028", "\u2029", "\x85", "\x0c", "\x0b", "\x1e",
    "'", "''", '"', "\\", "\\n", "\\'", "E'", "--", "/*", "*/", "/* x */", "$$", "$dbdeploy$", "$dbdeploy_1$",
    "$tag$", "$1", ";", ":name", ":'v'", "{", "}", "{{", "%s", "%", "\\.", "\n\\.\n", "\n-", "BEGIN;", "COMMIT;",
    "é", "e\u0301", "\U0001d11e", "\U0001f600", "\u200b", "\ufeff", "中文", *MARKERS, *(f"\n{m}\n" for m in MARKERS),
]
# Any character PostgreSQL text can hold (no NUL, no lone surrogate), in a bounded alphabet mix.
CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
TEXTS = st.lists(st.one_of(st.sampled_from(PIECES), st.text(CHARS, max_size=6)), max_size=12).map("".join)

COPY_ROWS = COPY_MIN_ROWS + 1


# --- the specs -----------------------------------------------------------------------------------

def _lit(s: str) -> str:
    """The spec's SQL expression for the string ``s``: a quoted literal, as psycopg writes it."""
    return render(literal(s)).strip()


def _dollar(body: str, tag: str = "q") -> str:
    while f"${tag}" in body:
        tag += "q"
    return f"${tag}${body}${tag}$"


def migrations(s: str) -> list[Migration]:
    """V001 creates and seeds the table with ``s`` in every literal; V002 changes it while populated."""
    lit = _lit(s)
    create = Migration(version="001", name="literals", description="literals byte for byte", operations=[
        CreateSchema(name="lit"),
        CreateTable(table="lit.t", comment=s, primary_key=["id"], columns=[
            Column(name="id", type="bigint", nullable=False),
            Column(name="a", type="text", default=lit, comment=s),
            Column(name="b", type="text"),
            Column(name="c", type="text"),
            Column(name="e", type="text"),
            Column(name="seed", type="text"),
        ], checks=[Check(name="t_c_check", expression=f"c IS NULL OR c = {lit}")]),
        CreateTable(table="lit.many", primary_key=["id"], columns=[
            Column(name="id", type="bigint", nullable=False), Column(name="v", type="text")]),
        SeedRows(table="lit.t", conflict_columns=["id"],
                 rows=[{"id": 1, "seed": s}, {"id": 2, "seed": s + "\n"}, {"id": 3, "seed": "x"}]),
        SeedRows(table="lit.many", conflict_columns=["id"],
                 rows=[{"id": i, "v": s if i % 2 else "-" + s} for i in range(1, COPY_ROWS + 1)]),
    ])
    change = Migration(version="002", name="literals_change", description="change populated", operations=[
        AddColumn(table="lit.t", column=Column(name="d", type="text", default=lit, comment=s)),
        Backfill(table="lit.t", set={"b": lit}, where=f"seed = {lit} OR id = 3", key=["id"], batch_size=2),
        AddCheck(table="lit.t", check=Check(name="t_e_check", expression=f"e IS NULL OR e = {lit}")),
        RawSQL(forward=f"INSERT INTO lit.t (id, seed) VALUES (10, {lit});\n"
                       f"DO {_dollar(f'BEGIN INSERT INTO lit.t (id, seed) VALUES (11, {lit}); END', 'body')};",
               rollback="DELETE FROM lit.t WHERE id IN (10, 11);"),
    ])
    return [create, change]


def generate(s: str, out: Path) -> list[Path]:
    """Plan, render and write the bundles as ``dbdeploy generate`` does; the forward files in order."""
    loaded = [LoadedMigration(m, Path(f"V{m.version}_{m.name}.py")) for m in migrations(s)]
    bundles = [render_bundle(plan, item.source.name) for plan, item in zip(plan_all(loaded), loaded, strict=True)]
    write(bundles, out)
    return [out / b.folder / next(iter(b.files)) for b in bundles]


# --- applying and reading back -------------------------------------------------------------------

def _deployment(generated: Path, db: TestDatabase) -> Deployment:
    env = Environment(name="test", dsn=db.dsn, lock_timeout="5s", retries=2)
    config = Config(root=generated.parent, specs=generated.parent / "specs", generated=generated,
                    environments={"test": env})
    return Deployment(config=config, env=env, dsn=db.dsn)


def read_back(db: TestDatabase, s: str) -> dict[str, object]:
    """Every place the spec put ``s``, as the database holds it now (for the ``expected`` dict)."""
    with db.connect() as conn:
        got: dict[str, object] = {}
        conn.execute("INSERT INTO lit.t (id) VALUES (100)")
        got["default (CreateTable)"], got["default (AddColumn)"] = conn.execute(
            "SELECT a, d FROM lit.t WHERE id = 100").fetchone()
        got["comment (table)"], got["comment (CreateTable column)"], got["comment (AddColumn column)"] = \
            conn.execute("SELECT obj_description('lit.t'::regclass, 'pg_class'),"
                         " col_description('lit.t'::regclass, 2), col_description('lit.t'::regclass, 7)").fetchone()
        got["seed (VALUES)"] = [r[0] for r in conn.execute("SELECT seed FROM lit.t WHERE id IN (1, 2) ORDER BY id")]
        got["seed (COPY)"] = conn.execute(
            "SELECT count(*) FILTER (WHERE v = %s AND id %% 2 = 1) + count(*) FILTER (WHERE v = %s AND id %% 2 = 0)"
            " FROM lit.many", [s, "-" + s]).fetchone()[0]
        got["backfill (value and WHERE)"] = [r[0] for r in conn.execute(
            "SELECT b FROM lit.t WHERE id IN (1, 2, 3) ORDER BY id")]
        got["raw SQL (plain, DO body)"] = [r[0] for r in conn.execute(
            "SELECT seed FROM lit.t WHERE id IN (10, 11) ORDER BY id")]
        for column, name in (("c", "check (CreateTable)"), ("e", "check (AddCheck)")):
            accepted = True
            try:
                with conn.transaction():
                    conn.execute(f"INSERT INTO lit.t (id, {column}) VALUES (200, %s)", [s])  # noqa: S608
                    raise _Rollback
            except _Rollback:
                pass
            except psycopg.errors.CheckViolation:
                accepted = False
            refused = False
            try:
                with conn.transaction():
                    conn.execute(f"INSERT INTO lit.t (id, {column}) VALUES (201, %s)", [s + "x"])  # noqa: S608
            except psycopg.errors.CheckViolation:
                refused = True
            got[name] = (accepted, refused)
    return got


class _Rollback(Exception):
    pass


def expected(s: str) -> dict[str, object]:
    """What :func:`read_back` must find: the spec's string, byte for byte, in every place."""
    # PostgreSQL stores no empty comment: COMMENT … IS '' drops it (commands/comment.c)
    comment = s if s else None
    return {
        "default (CreateTable)": s, "default (AddColumn)": s,
        "comment (table)": comment, "comment (CreateTable column)": comment, "comment (AddColumn column)": comment,
        "seed (VALUES)": [s, s + "\n"], "seed (COPY)": COPY_ROWS,
        # row 1 holds s (the WHERE literal matches it), row 2 holds s + "\n" (it does not), row 3 by id
        "backfill (value and WHERE)": [s, None, s],
        "raw SQL (plain, DO body)": [s, s],
        "check (CreateTable)": (True, True), "check (AddCheck)": (True, True),
    }


def assert_both_paths(by_executor: TestDatabase, by_psql: TestDatabase, s: str, out: Path) -> None:
    """Generate, apply with the executor on ``by_executor`` and with psql on ``by_psql`` (both
    without dbdeploy's and the test's schemas), compare what they hold with ``s``."""
    forwards = generate(s, out / "generated")
    for forward in forwards:   # what the executor will run reads back as psql splits it
        script = parse_script(forward.read_bytes().decode("utf-8"))
        assert [step.number for step in script.steps] == list(range(1, len(script.steps) + 1))
    _deployment(out / "generated", by_executor).apply()
    for forward in forwards:
        by_psql.psql_file(forward)
    want = expected(s)
    assert read_back(by_executor, s) == want, f"executor: {s!r}"
    assert read_back(by_psql, s) == want, f"psql: {s!r}"


# --- the property -------------------------------------------------------------------------------

SCHEMAS = ("lit", "migrations", "dbdeploy_backup")


def _reset(db: TestDatabase) -> None:
    """As fresh as a new database for these migrations: the test's and dbdeploy's schemas dropped
    (a new database per example costs seconds: DROP DATABASE waits for a checkpoint)."""
    db.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.SQL(", ").join(map(sql.Identifier, SCHEMAS))))


@pytest.fixture
def database_pairs(request: pytest.FixtureRequest, pg_server: PgServer) -> Iterator[list[tuple[TestDatabase, ...]]]:
    """Two fresh databases (executor, psql) on the primary server; with ``DBDEPLOY_FULL=1`` on every
    server (PG 15 and the embedded PG 16)."""
    servers = request.getfixturevalue("pg_servers") if FULL else [pg_server]
    with contextlib.ExitStack() as stack:
        yield [(stack.enter_context(temporary_database(server)), stack.enter_context(temporary_database(server)))
               for server in servers]


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          phases=(Phase.explicit, Phase.generate),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(s=TEXTS)
def test_every_literal_is_byte_exact(s, database_pairs, tmp_path_factory):
    note(f"string: {s!r}")
    for by_executor, by_psql in database_pairs:
        _reset(by_executor)
        _reset(by_psql)
        assert_both_paths(by_executor, by_psql, s, tmp_path_factory.mktemp("literal"))


# --- the issue's inputs, on both servers -------------------------------------------------------

ISSUE_INPUTS = {
    "multi-line default with indented lines": "first line\n    indented four\n\tindented by a tab\n  two\n",
    "marker text inside a backfill value": f"before\n{BATCH_END}\n    INTO v_rows, v_changed;\n{BATCH_BEGIN}\nafter",
    "every marker at line starts": "\n".join([*MARKERS, "x"]),
    "CRLF and lone CR": "a\r\nb\rc\r\n",
    "separators splitlines splits at": "a\u2028b\u2029c\x85d\x0ce\x0bf\x1cg",
    "dollar quotes of the DO blocks": "$dbdeploy$\n$$\n$dbdeploy_1$ END $$; DROP TABLE lit.t; --",
    "comment openers and quotes": "/* not closed\n-- not a comment\n'\"\\\n*/",
    "leading spaces and COPY end line": "   \n\\.\n   -x\n",
}


@pytest.mark.parametrize("s", list(ISSUE_INPUTS.values()), ids=list(ISSUE_INPUTS))
def test_issue_inputs_on_both_servers(s, fresh_db_each, tmp_path):
    """Replays the issue's inputs on PG 15 and PG 16 (the fixture picks each server), on new databases."""
    with temporary_database(fresh_db_each.server) as by_psql:
        assert_both_paths(fresh_db_each, by_psql, s, tmp_path)


def test_batch_marker_in_a_value_does_not_cut_the_batch(tmp_path):
    """The executor's batch statement is the whole UPDATE, the marker text stays inside its literal."""
    s = ISSUE_INPUTS["marker text inside a backfill value"]
    forwards = generate(s, tmp_path / "generated")
    script = parse_script(forwards[1].read_bytes().decode("utf-8"))
    [backfill] = [step for step in script.steps if step.batch is not None]
    assert _lit(s) in backfill.batch
    [batch] = statements(backfill.batch)
    assert batch.text == backfill.batch and batch.words[:1] == ("with",)


# --- the lexer-aware indentation itself -----------------------------------------------------------

@settings(max_examples=200, derandomize=True, deadline=None, database=None)
@given(s=TEXTS, by=st.sampled_from(["    ", "\t", "  "]))
def test_indent_changes_only_whitespace_between_tokens(s, by):
    """Indenting SQL that holds the literal (as a string, a dollar quote, a quoted identifier and a
    comment) changes no token: the token texts before and after are the same."""
    from pglast.parser import scan

    ident = '"' + s.replace('"', '""') + '"' if s else '"x"'
    comment = "/* " + s.replace("*/", "* /").replace("/*", "/ *") + " */"
    text = f"SELECT\n{_lit(s)},\n  {_dollar(s)}\n  AS {ident}, {comment}\n1;\n"
    out = indent(text, by)

    def token_texts(t: str) -> list[str]:
        return [t[k.start:k.end + 1] for k in scan(t)]

    assert token_texts(out) == token_texts(text)
    # only whole-line indentation was added, and only before lines that start outside every token
    lines, indented = text.split("\n"), out.split("\n")
    assert len(lines) == len(indented)
    assert all(new in (old, by + old) for old, new in zip(lines, indented, strict=True))


def test_indent_leaves_unlexable_text_alone():
    text = "SELECT 'not closed\n  x"
    assert indent(text) == text


# --- verify notices a differing default --------------------------------------------------------

SPEC = '''
from dbdeploy import Column, CreateSchema, CreateTable, Migration

migration = Migration(
    version="001",
    name="notes",
    description="A multi-line default.",
    operations=[
        CreateSchema(name="notes"),
        CreateTable(table="notes.note", primary_key=["id"], columns=[
            Column(name="id", type="bigint", identity=True),
            Column(name="body", type="text", nullable=False, default={default!r}),
        ]),
    ],
)
'''


def test_verify_notices_a_default_that_differs_by_one_space(fresh_db, tmp_path):
    """``dbdeploy verify`` compares the default as the catalog spells it: the spec's multi-line default
    passes; the same default with one line indented more (what text-level indentation did) fails."""
    s = "Dear customer,\n    thank you.\n"
    source = tmp_path / "spec_sources"
    write_spec(source, "V001_notes.py", SPEC.format(default=_lit(s)))
    project = make_project(tmp_path / "project", fresh_db.dsn, specs=source)
    applied = project.run("apply", "--env", "test", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    fresh_db.execute("INSERT INTO notes.note DEFAULT VALUES")
    assert fresh_db.execute("SELECT body FROM notes.note") == [(s,)]
    clean = project.run("verify", "--env", "test")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    shifted = s.replace("\n    ", "\n        ")
    fresh_db.execute(f"ALTER TABLE notes.note ALTER COLUMN body SET DEFAULT {_lit(shifted)}")
    differs = project.run("verify", "--env", "test")
    assert differs.returncode != 0, differs.stdout + differs.stderr
    assert "notes.note" in differs.stdout + differs.stderr


SEED_SPEC = '''
from dbdeploy import Column, CreateSchema, CreateTable, Migration, SeedRows

migration = Migration(
    version="001",
    name="names",
    description="Many names, some with line separators.",
    operations=[
        CreateSchema(name="names"),
        CreateTable(table="names.person", primary_key=["id"], columns=[
            Column(name="id", type="bigint", nullable=False),
            Column(name="name", type="text", nullable=False),
        ]),
        SeedRows(table="names.person", conflict_columns=["id"],
                 rows=[{{"id": i, "name": {name!r} + str(i)}} for i in range(1, {rows} + 1)]),
    ],
)
'''


def test_verify_reads_copy_seed_values_holding_line_separators(fresh_db, tmp_path):
    """A large seed goes in as COPY data, where U+2028, U+0085 and friends stay as they are (COPY
    escapes only backslash, LF, CR and tab): ``verify`` reads the data back from the bundle by
    ``\\n`` lines only, so the data still has the generator's sha256 and the check passes."""
    name = "line\u2028sep\x85next\x0cform\x1dgroup -- dbdeploy:batch-end\n\\.\n"
    source = tmp_path / "spec_sources"
    write_spec(source, "V001_names.py", SEED_SPEC.format(name=name, rows=COPY_ROWS))
    project = make_project(tmp_path / "project", fresh_db.dsn, specs=source)
    applied = project.run("apply", "--env", "test", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert fresh_db.execute("SELECT count(*) FROM names.person WHERE name = %s || id::text", [name]) == [(COPY_ROWS,)]
    verified = project.run("verify", "--env", "test")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    fresh_db.execute("DELETE FROM names.person WHERE id = 7")
    missing = project.run("verify", "--env", "test")
    assert missing.returncode != 0, missing.stdout + missing.stderr


def test_checklist_queries_keep_literals(tmp_path):
    """The deployment checklist shows the queries to run by hand in fenced blocks of list items: once
    Markdown removes the list item's two spaces from each line, a literal in them (the AddCheck's
    validation query) has its CR, U+2028 and U+0085 and its indented lines as in the spec."""
    from dbdeploy.sql import parse_expression

    s = "one\r\ntwo\u2028three\x85four\n    five"
    forwards = generate(s, tmp_path / "generated")
    checklist = (forwards[1].parent / "deployment_checklist.md").read_bytes().decode("utf-8")
    shown = "\n".join(line[2:] if line.startswith("  ") else line for line in checklist.split("\n"))
    forms = {_lit(s), parse_expression(_lit(s)).text}
    assert any(form in shown for form in forms), checklist
