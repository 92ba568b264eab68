"""``dbdeploy lint``: every rule against its pass/fail fixtures, ``allow``, the CLI and ``generate``.

Fixtures live in ``tests/lint_fixtures/<rule-id>/``: ``fail_*.py`` must produce findings of that
rule and of no other (``EXPECT`` lists a piece of each finding's subject, in order); ``pass_*.py``
must produce no finding at all that the spec does not allow. Each fixture is a complete spec file
(it defines its own base migration), so ``dbdeploy lint --specs`` works on a copy of it too.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from dbdeploy import AddColumn, Backfill, Column, CreateIndex, CreateTable, Index, Migration, RawSQL
from dbdeploy.errors import SpecError
from dbdeploy.lint import BY_ID, RULES, LintError, lint_migrations, lint_specs
from dbdeploy.lint.report import render_json, render_text
from dbdeploy.lint.sqlwalk import PLACEHOLDER, body_statements, dynamic_sql
from dbdeploy.plan.loader import LoadedMigration
from dbdeploy.plan.migration_plan import plan_all
from dbdeploy.render.checklist import CHECKLIST_NAME
from dbdeploy.render.writer import build_bundles

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "lint_fixtures"
FIXTURE_FILES = sorted(FIXTURES.glob("*/*.py"))
RULES_DIR = ROOT / "dbdeploy" / "lint" / "rules"


def load_fixture(path: Path) -> tuple[list[LoadedMigration], list[str]]:
    module = runpy.run_path(str(path))
    migrations = sorted({id(v): v for v in module.values() if isinstance(v, Migration)}.values(),
                        key=lambda m: int(m.version))
    return [LoadedMigration(m, path) for m in migrations], list(module.get("EXPECT", []))


def unallowed(report):
    return [f for f in report.findings if f.allowed is None]


# -- the rules and their fixtures --------------------------------------------------------------


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fixture(path: Path):
    rule = path.parent.name
    assert rule in BY_ID, f"fixture folder {rule} names no rule"
    loaded, expect = load_fixture(path)
    report = lint_migrations(loaded)
    found = unallowed(report)
    if path.stem.startswith("fail_"):
        assert {f.rule for f in found} == {rule}, [(f.rule, f.subject) for f in found]
        subjects = [f.subject for f in found]
        assert len(subjects) == len(expect), subjects
        for piece, subject in zip(expect, subjects, strict=True):
            assert piece in subject, (piece, subject)
        for finding in found:
            assert finding.severity == BY_ID[rule].severity
            assert (finding.problem, finding.fix) == (BY_ID[rule].problem, BY_ID[rule].fix)
            assert finding.file.endswith(path.name) and finding.version.isdigit()
        assert report.exit_code == (2 if BY_ID[rule].severity == "error" else 0)
    else:
        assert path.stem.startswith("pass_"), "fixture names start with pass_ or fail_"
        assert found == [], [(f.rule, f.subject) for f in found]
        assert report.exit_code == 0


@pytest.mark.parametrize("path", [p for p in FIXTURE_FILES if p.stem.startswith("pass_")],
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_pass_fixtures_are_plannable_specs(path: Path):
    """A passing fixture is a real spec: dbdeploy can plan it (its safe form is what the rule asks for)."""
    loaded, _ = load_fixture(path)
    plan_all(loaded)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_every_rule_has_pass_and_fail_fixtures(rule):
    names = [p.stem for p in (FIXTURES / rule.id).glob("*.py")]
    assert any(n.startswith("fail_") for n in names), f"{rule.id} has no fail_ fixture"
    assert any(n.startswith("pass_") for n in names), f"{rule.id} has no pass_ fixture"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_rule_is_documented(rule):
    assert re.fullmatch(r"[a-z]+(-[a-z]+)+", rule.id), rule.id
    assert rule.severity in ("error", "warning")
    for text in (rule.problem, rule.fix):
        assert len(text) > 30 and text.endswith("."), text
    module = importlib.import_module(f"dbdeploy.lint.rules.{rule.id.replace('-', '_')}")
    assert module.RULE is rule and (
        rule.id, rule.severity, rule.problem, rule.fix) == (module.ID, module.SEVERITY, module.PROBLEM, module.FIX)


def test_registry_lists_every_rule_module_once():
    modules = sorted(p.stem for p in RULES_DIR.glob("*.py") if not p.stem.startswith("_"))
    assert sorted(r.id.replace("-", "_") for r in RULES) == modules
    assert len({r.id for r in RULES}) == len(RULES)


# -- the examples --------------------------------------------------------------------------------


def test_examples_lint_clean_of_errors():
    report = lint_specs(ROOT / "specs")
    assert report.errors == [] and report.exit_code == 0
    assert all(f.allowed for f in report.findings if f.severity == "error")


def test_example_checklist_lists_the_allowed_findings():
    bundles = {b.folder: b.files for b in build_bundles(ROOT / "specs", lint=True)}
    checklist = bundles["V002__evolve_site_tracking_events"][CHECKLIST_NAME]
    assert "### Lint findings allowed by the spec" in checklist
    assert "`fk-without-index` (warning) on `operations[7]` (add_foreign_key raw.site_tracking_events_r): " \
           "record_sources is a small lookup table" in checklist
    assert "`volatile-default` (warning) on `operations[4]`" in checklist
    assert "Lint findings allowed" not in bundles["V001__create_site_tracking_raw_layer"][CHECKLIST_NAME]


# -- allow={…} -------------------------------------------------------------------------------------


def _table(**extra) -> CreateTable:
    return CreateTable(table="app.t", columns=[Column(name="id", type="integer")], primary_key=["id"], **extra)


@pytest.mark.parametrize("allow, message", [
    ({"prefer-bigints": "x"}, "unknown lint rule 'prefer-bigints'"),
    ({"prefer-bigint": ""}, "empty reason"),
    ({"prefer-bigint": "   "}, "empty reason"),
    ({"prefer-bigint": "two\nlines"}, "line break or another control character"),
    ({"prefer-bigint": "nul\x00byte"}, "control character"),
    ({"prefer-bigint": "x" * 301}, "301 characters"),
    ({"backfill-without-key": "trust me"}, "cannot include 'backfill-without-key'"),
    ({"unused-allow": "x"}, "cannot include 'unused-allow'"),
    ({"prefer-bigint": 4}, "valid string"),
    (["prefer-bigint"], "valid dictionary"),
])
def test_allow_is_validated(allow, message):
    with pytest.raises(ValidationError) as info:
        _table(allow=allow)
    error = info.value.errors()[0]
    assert error["loc"][0] == "allow", error
    assert message in str(info.value)


def test_allow_error_in_a_spec_names_file_field_and_fix(tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "V001_t.py").write_text(textwrap.dedent('''\
        from dbdeploy import Column, CreateTable, Migration
        migration = Migration(version="001", name="t", operations=[
            CreateTable(table="app.t", columns=[Column(name="id", type="bigint")],
                        allow={"no-such-rule": "because"}),
        ])
    '''))
    with pytest.raises(SpecError) as info:
        lint_specs(specs)
    text = str(info.value)
    assert "V001_t.py" in text and "allow" in text and "no-such-rule" in text and "prefer-bigint" in text


def test_allow_is_accepted_by_every_operation():
    ops = [_table(allow={"prefer-bigint": "r"}),
           RawSQL(forward="TRUNCATE app.x", rollback="SELECT 1", allow={"ban-truncate": "r", "missing-rollback": "r"}),
           CreateIndex(table="app.t", index=Index(columns=["id"]), allow={"fk-without-index": "r"})]
    assert [op.allow for op in ops][0] == {"prefer-bigint": "r"}
    assert ops[1].allow == {"ban-truncate": "r", "missing-rollback": "r"}


def _lint(*migrations: Migration, file: str = "specs/V.py"):
    return lint_migrations([LoadedMigration(m, Path(file)) for m in migrations])


def test_allow_suppresses_with_the_reason():
    raw = RawSQL(forward="TRUNCATE app.staging", rollback="SELECT pg_catalog.pg_notify('x', 'y')")
    report = _lint(Migration(version="001", name="m", operations=[raw]))
    assert [f.rule for f in report.errors] == ["ban-truncate"] and report.exit_code == 2
    allowed = raw.model_copy(update={"allow": {"ban-truncate": "staging is disposable"}})
    report = _lint(Migration(version="001", name="m", operations=[allowed]))
    assert report.errors == [] and report.exit_code == 0
    [finding] = report.allowed
    assert (finding.rule, finding.allowed, finding.blocking) == ("ban-truncate", "staging is disposable", False)
    assert finding.as_dict()["allowed"] is True and finding.as_dict()["reason"] == "staging is disposable"


def test_allow_applies_to_its_own_operation_only():
    bad = "CREATE INDEX i ON app.t (a)"
    ops = [RawSQL(forward=bad, rollback="DROP INDEX CONCURRENTLY app.i",
                  allow={"require-concurrent-index-creation": "app.t is empty"}),
           RawSQL(forward=bad.replace(" i ", " j "), rollback="DROP INDEX CONCURRENTLY app.j")]
    report = _lint(Migration(version="001", name="m", operations=ops))
    assert [(f.operation_index, f.allowed is None) for f in report.findings] == [(0, False), (1, True)]


# -- the engine ------------------------------------------------------------------------------------


def test_findings_carry_file_version_and_operation():
    base = Migration(version="001", name="base", operations=[
        CreateTable(table="app.t", columns=[Column(name="id", type="bigint")], primary_key=["id"])])
    change = Migration(version="002", name="change", operations=[
        AddColumn(table="app.t", column=Column(name="a", type="text")),
        RawSQL(forward="ALTER TABLE app.t RENAME COLUMN a TO b", rollback="ALTER TABLE app.t RENAME COLUMN b TO a")])
    [finding] = _lint(base, change).findings
    assert (finding.rule, finding.severity, finding.file, finding.version, finding.migration) == (
        "renaming-column", "error", "specs/V.py", "002", "change")
    assert (finding.operation_index, finding.operation) == (1, "raw_sql")
    assert finding.location == "Migration 002.operations[1] (raw_sql)"
    assert finding.subject == ("forward, statement 1: ALTER TABLE app.t RENAME COLUMN a TO b "
                               "(renames app.t.a to b)")


def test_spec_errors_found_on_the_walk_are_spec_errors():
    """An operation the planner would refuse (not explained by a rule) stops lint like generate."""
    base = Migration(version="001", name="base", operations=[
        CreateTable(table="app.t", columns=[Column(name="id", type="bigint")], primary_key=["id"])])
    again = Migration(version="002", name="again", operations=[
        AddColumn(table="app.t", column=Column(name="id", type="bigint"))])
    with pytest.raises(SpecError) as info:
        _lint(base, again, file="specs/V002_again.py")
    assert info.value.file == "specs/V002_again.py"
    assert info.value.field == "Migration 002.operations[0] (add_column app.t)"
    assert "already exists" in info.value.reason


def test_a_rule_that_explains_a_spec_error_reports_it_as_a_finding():
    base = Migration(version="001", name="base", operations=[
        CreateTable(table="app.log", columns=[Column(name="msg", type="text")])])
    fill = Migration(version="002", name="fill", operations=[Backfill(table="app.log", set={"msg": "lower(msg)"})])
    report = _lint(base, fill)
    assert [f.rule for f in report.errors] == ["backfill-without-key"]


def test_refusal_lists_every_blocking_finding():
    ops = [RawSQL(forward="TRUNCATE app.a; ALTER TABLE app.b RENAME TO c", rollback="ALTER TABLE app.c RENAME TO b"),
           AddColumn(table="app.b", column=Column(name="at", type="timestamp"))]
    report = _lint(Migration(version="001", name="m", operations=ops))
    error = LintError(report.errors)
    assert error.exit_code == 2
    text = str(error)
    assert text.startswith("lint found 2 error(s) that the specs do not allow; nothing was written:")
    assert "specs/V.py: Migration 001.operations[0] (raw_sql): ban-truncate:" in text
    assert "renaming-table" in text and "prefer-timestamptz" not in text   # a warning does not block
    assert 'allow={"rule-id": "why it is safe here"}' in text


# -- RawSQL parsing: DO blocks, functions, dynamic SQL ------------------------------------------


@pytest.mark.parametrize("expression, sql", [
    ("'TRUNCATE app.t'", "TRUNCATE app.t"),
    ("format('DROP INDEX %I.%I', 'app', 'i')", "DROP INDEX app.i"),
    ("format('ALTER TABLE %I ADD c %s', v_table, 'int')", f"ALTER TABLE {PLACEHOLDER} ADD c int"),
    ("format('SELECT %L, %2$s, 100%%', 'it''s', 'x')", "SELECT 'it''s', x, 100%"),
    ("format('CREATE INDEX ON %I (a)', 'Mixed Case')", 'CREATE INDEX ON "Mixed Case" (a)'),
    ("'CREATE INDEX ' || v_name || '_idx ON app.t (a)'", f"CREATE INDEX {PLACEHOLDER}_idx ON app.t (a)"),
    ("v_sql", None),
])
def test_dynamic_sql_is_rebuilt_from_its_literals(expression, sql):
    assert dynamic_sql(expression) == sql


def test_statements_inside_do_blocks_and_functions():
    text = textwrap.dedent("""\
        CREATE TABLE app.n (id bigint PRIMARY KEY);
        DO $$
        BEGIN
          IF true THEN
            CREATE INDEX a_idx ON app.t (a);
          ELSE
            EXECUTE format('TRUNCATE %I.%I', 'app', 't');
          END IF;
        EXCEPTION WHEN others THEN
          ALTER TABLE app.t ALTER COLUMN a SET NOT NULL;
        END $$;
        CREATE FUNCTION app.f() RETURNS void LANGUAGE sql AS $f$ DELETE FROM app.t $f$;
        CREATE PROCEDURE app.p() LANGUAGE plpgsql AS $p$ BEGIN DROP TABLE app.t; END $p$;
    """)
    found = [(s.where, type(s.node).__name__, s.in_function, s.dynamic) for s in body_statements(text, "forward")]
    assert found == [
        ("statement 1", "CreateStmt", False, False),
        ("statement 2", "DoStmt", False, False),
        ("statement 2, DO block", "IndexStmt", False, False),
        ("statement 2, DO block, EXECUTE", "TruncateStmt", False, True),
        ("statement 2, DO block", "AlterTableStmt", False, False),
        ("statement 3", "CreateFunctionStmt", False, False),
        ("statement 3, function app.f", "DeleteStmt", True, False),
        ("statement 4", "CreateFunctionStmt", False, False),
        ("statement 4, procedure app.p", "DropStmt", True, False),
    ]
    assert all("app.n" in s.created_tables for s in body_statements(text, "forward")[1:])


def test_every_nested_statement_is_linted():
    raw = RawSQL(forward=textwrap.dedent("""\
        DO $$ BEGIN
          CREATE INDEX a_idx ON app.t (a);
          EXECUTE 'TRUNCATE app.t';
        END $$"""), rollback="DROP INDEX CONCURRENTLY IF EXISTS app.a_idx")
    report = _lint(Migration(version="001", name="m", operations=[raw]))
    assert [(f.rule, f.subject.split(":")[0]) for f in report.findings] == [
        ("require-concurrent-index-creation", "forward, statement 1, DO block"),
        ("ban-truncate", "forward, statement 1, DO block, EXECUTE"),
    ]


def test_broken_plpgsql_body_is_not_a_crash():
    raw = RawSQL(forward="DO $$ BEGIN x := ; END $$", rollback="DO $$ BEGIN NULL; END $$")
    report = _lint(Migration(version="001", name="m", operations=[raw]))
    assert [f.rule for f in report.findings] == ["missing-rollback"]


# -- output formats --------------------------------------------------------------------------------


def _mixed_report():
    ops = [RawSQL(forward="CREATE INDEX i ON app.t (a)", rollback="DROP INDEX CONCURRENTLY IF EXISTS app.i"),
           AddColumn(table="app.t", column=Column(name="doc", type="json")),
           AddColumn(table="app.t", column=Column(name="n_id", type="integer"),
                     allow={"prefer-bigint": "external ids are int4"})]
    return _lint(Migration(version="001", name="m", operations=ops))


def test_text_format():
    text = render_text(_mixed_report())
    blocks = text.split("\n\n")
    assert blocks[0].splitlines() == [
        "specs/V.py: Migration 001.operations[0] (raw_sql): error [require-concurrent-index-creation]",
        "  forward, statement 1: CREATE INDEX i ON app.t (a) (on existing table app.t)",
        f"  problem: {BY_ID['require-concurrent-index-creation'].problem}",
        f"  fix: {BY_ID['require-concurrent-index-creation'].fix}",
    ]
    assert blocks[1].startswith("specs/V.py: Migration 001.operations[1] (add_column app.t): warning [prefer-jsonb]")
    assert blocks[2].splitlines() == [
        "specs/V.py: Migration 001.operations[2] (add_column app.t): allowed warning [prefer-bigint]",
        "  column app.t.n_id is integer",
        "  reason: external ids are int4",
    ]
    assert text.endswith("lint: 1 error, 1 warning, 1 allowed by the specs in 1 migration\n"
                         'error findings stop `dbdeploy generate`; make the change the safe way, or allow it on its '
                         'operation with the reason: allow={"rule-id": "why it is safe here"}')


def test_json_format():
    data = json.loads(render_json(_mixed_report()))
    assert data["summary"] == {"errors": 1, "warnings": 1, "allowed": 1, "migrations": 1}
    assert data["exit_code"] == 2
    assert [(f["rule"], f["severity"], f["allowed"], f["reason"]) for f in data["findings"]] == [
        ("require-concurrent-index-creation", "error", False, None),
        ("prefer-jsonb", "warning", False, None),
        ("prefer-bigint", "warning", True, "external ids are int4"),
    ]
    assert set(data["findings"][0]) == {"rule", "severity", "file", "version", "migration", "operation_index",
                                        "operation", "subject", "problem", "fix", "allowed", "reason"}


# -- the command line ------------------------------------------------------------------------------


def _executable() -> str:
    candidate = Path(sys.executable).parent / "dbdeploy"
    found = str(candidate) if candidate.exists() else shutil.which("dbdeploy")
    if not found:
        pytest.skip("the dbdeploy console script is not installed")
    return found


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "DBDEPLOY"))}
    env.update(NO_COLOR="1", COLUMNS="200", TERM="dumb")
    return subprocess.run([_executable(), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120)


def tree(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


GOOD = '''\
from dbdeploy import Column, CreateSchema, CreateTable, Index, Migration

migration = Migration(version="001", name="things", operations=[
    CreateSchema(name="app"),
    CreateTable(table="app.things", columns=[
        Column(name="id", type="bigint", identity=True),
        Column(name="label", type="text", nullable=False, default="'x'"),
        Column(name="seen_at", type="timestamp"),
    ], primary_key=["id"], indexes=[Index(columns=["label"])]),
])
'''

BAD = '''\
from dbdeploy import Migration, RawSQL

migration = Migration(version="002", name="index_label", operations=[
    RawSQL(forward="CREATE INDEX things_seen_idx ON app.things (seen_at)",
           rollback="DROP INDEX CONCURRENTLY IF EXISTS app.things_seen_idx"{allow}),
])
'''
ALLOW = ',\n           allow={"require-concurrent-index-creation": "app.things is empty in every environment"}'


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "V001_things.py").write_text(GOOD)
    return tmp_path


def test_cli_clean_with_warnings_exits_0(project: Path):
    proc = run(project, "lint")
    assert proc.returncode == 0, proc.stderr
    assert "warning [prefer-timestamptz]" in proc.stdout
    assert proc.stdout.rstrip().endswith("lint: 0 errors, 1 warning in 1 migration")
    assert "specs/V001_things.py: Migration 001.operations[1] (create_table app.things)" in proc.stdout


def test_cli_error_exits_2(project: Path):
    (project / "specs" / "V002_index_label.py").write_text(BAD.format(allow=""))
    proc = run(project, "lint")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert ("specs/V002_index_label.py: Migration 002.operations[0] (raw_sql): error "
            "[require-concurrent-index-creation]") in proc.stdout
    assert "  problem: CREATE INDEX without CONCURRENTLY" in proc.stdout
    assert "  fix: Use the CreateIndex operation" in proc.stdout
    assert "lint: 1 error, 1 warning in 2 migrations" in proc.stdout


def test_cli_json(project: Path):
    (project / "specs" / "V002_index_label.py").write_text(BAD.format(allow=""))
    proc = run(project, "lint", "--format", "json")
    assert proc.returncode == 2
    data = json.loads(proc.stdout)
    assert [(f["rule"], f["version"], f["operation_index"], f["allowed"]) for f in data["findings"]] == [
        ("prefer-timestamptz", "001", 1, False), ("require-concurrent-index-creation", "002", 0, False)]
    assert data["findings"][1]["file"] == "specs/V002_index_label.py"


def test_cli_json_lists_allowed_findings_with_reason(project: Path):
    (project / "specs" / "V002_index_label.py").write_text(BAD.format(allow=ALLOW))
    proc = run(project, "lint", "--format", "json")
    assert proc.returncode == 0, proc.stdout
    finding = json.loads(proc.stdout)["findings"][1]
    assert (finding["rule"], finding["allowed"], finding["reason"]) == (
        "require-concurrent-index-creation", True, "app.things is empty in every environment")


def test_cli_specs_option_and_help(project: Path, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    proc = run(elsewhere, "lint", "--specs", str(project / "specs"))
    assert proc.returncode == 0 and "1 warning in 1 migration" in proc.stdout
    help_text = run(elsewhere, "lint", "--help").stdout
    assert "--specs" in help_text and "--format" in help_text
    assert "lint" in run(elsewhere, "--help").stdout
    bogus = run(project, "lint", "--format", "xml")
    assert bogus.returncode == 2 and "Traceback" not in bogus.stderr


def test_cli_invalid_spec_is_a_clean_exit_2(project: Path):
    (project / "specs" / "V002_bad.py").write_text(BAD.format(allow=',\n           allow={"ban-truncat": "x"}'))
    proc = run(project, "lint")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "V002_bad.py" in proc.stderr and "ban-truncat" in proc.stderr


def test_generate_refuses_error_findings_and_writes_nothing(project: Path):
    assert run(project, "generate").returncode == 0
    before = tree(project / "generated")
    (project / "specs" / "V002_index_label.py").write_text(BAD.format(allow=""))
    for args in (["generate"], ["generate", "--check"]):
        proc = run(project, *args)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
        assert "lint found 1 error(s) that the specs do not allow; nothing was written" in proc.stderr
        assert ("specs/V002_index_label.py: Migration 002.operations[0] (raw_sql): "
                "require-concurrent-index-creation:") in proc.stderr
        assert tree(project / "generated") == before


def test_generate_accepts_allowed_findings_and_the_checklist_shows_them(project: Path):
    (project / "specs" / "V002_index_label.py").write_text(BAD.format(allow=ALLOW))
    proc = run(project, "generate")
    assert proc.returncode == 0, proc.stderr
    checklist = (project / "generated" / "V002__index_label" / CHECKLIST_NAME).read_text()
    assert ("### Lint findings allowed by the spec\n\n`dbdeploy lint` reports these; the spec accepts each one with "
            "the reason below.") in checklist
    assert ("- [ ] `require-concurrent-index-creation` (error) on `operations[0]` (raw_sql): app.things is empty "
            "in every environment\n") in checklist
    first = (project / "generated" / "V001__things" / CHECKLIST_NAME).read_text()
    assert "Lint findings allowed" not in first
