"""The hostile-input corpus: whole spec files run through the real ``dbdeploy generate``.

``tests/hostile/`` holds one case per entry: a spec file, or a folder of spec files for attacks
that need several (duplicate versions across files, a reference that only fails when all specs
are planned together). Each file's docstring says what it attacks. Every case must be refused
the way the README promises: exit code 2, exactly one ``error: ...`` message on stderr (no
traceback) that names the file, the field and the fix, and nothing written.

``tests/hostile/inert/`` holds the opposite: specs whose values look like injections but are
legitimate data (a string default that contains ``$$; DROP TABLE pwned; $$``, the generator's own
``$dbdeploy$`` tag inside a value, a trailing comment). They must be accepted, and the bundle
must run none of it: the SQL parses, including the PL/pgSQL inside DO blocks, no statement
touches the relation ``pwned``, and BEGIN/COMMIT stay paired.

The CLI runs are slow-ish (one Python process each), so all of them run once, concurrently, in
a module-scoped fixture; the parametrized tests then check one result each.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.sqlwalk import parse_everything, relations, transaction_balance

HOSTILE = Path(__file__).resolve().parent / "hostile"
INERT = HOSTILE / "inert"
DBDEPLOY = Path(sys.executable).parent / "dbdeploy"


def _cases(folder: Path, skip: tuple[Path, ...] = ()) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p not in skip and not p.name.startswith(("_", "."))
                  and (p.suffix == ".py" or (p.is_dir() and any(p.glob("*.py")))))


CASES = _cases(HOSTILE, skip=(INERT,))
INERT_CASES = _cases(INERT)


# case → (the spec file the message must name, the field it must name, a fragment of the fix).
# Planning errors name the migration and operation ("Migration 002.operations[0] (...)").
EXPECTED: dict[str, tuple[str, str, str]] = {
    # SQL smuggled into names and keyword fields
    "sql_in_table_name": ("sql_in_table_name.py", "CreateTable.table", "write it as 'schema.table'"),
    "sql_in_column_name": ("sql_in_column_name.py", "Column.name", "rename it"),
    "sql_in_index_name": ("sql_in_index_name.py", "Index.name", "rename it"),
    "sql_in_constraint_name": ("sql_in_constraint_name.py", "Unique.name", "rename it"),
    "sql_in_schema_name": ("sql_in_schema_name.py", "CreateSchema.name", "rename it"),
    "sql_in_fk_reference": ("sql_in_fk_reference.py", "ForeignKey.references", "write it as 'schema.table'"),
    "sql_in_seed_column_name": ("sql_in_seed_column_name.py", "SeedRows.rows", "rename it"),
    "sql_in_on_delete": ("sql_in_on_delete.py", "ForeignKey.on_delete", "use one of them"),
    "sql_in_index_method": ("sql_in_index_method.py", "Index.method", "use one of them"),
    "sql_in_extension_name": ("sql_in_extension_name.py", "RequireExtension.name", "use lowercase letters"),
    # quotes and backslashes
    "double_quote_in_name": ("double_quote_in_name.py", "Column.name", "rename it"),
    "single_quote_in_name": ("single_quote_in_name.py", "CreateTable.table", "rename it"),
    "backslash_in_name": ("backslash_in_name.py", "Index.include.0", "rename it"),
    # NUL bytes
    "nul_in_table_name": ("nul_in_table_name.py", "CreateTable.table", "write it as 'schema.table'"),
    "nul_in_default": ("nul_in_default.py", "Column.default", "remove the NUL byte"),
    "nul_in_column_comment": ("nul_in_column_comment.py", "Column.comment", "remove the NUL byte"),
    "nul_in_table_comment": ("nul_in_table_comment.py", "CreateTable.comment", "remove the NUL byte"),
    "nul_in_description": ("nul_in_description.py", "Migration.description", "remove the NUL byte"),
    "nul_in_seed_value": ("nul_in_seed_value.py", "SeedRows.rows", "remove the NUL byte"),
    "nul_in_jsonb_seed_key": ("nul_in_jsonb_seed_key.py", "SeedRows.rows[0].value", "without \\x00"),
    "nul_in_backfill_where": ("nul_in_backfill_where.py", "Backfill.where", "remove the NUL byte"),
    "nul_in_raw_sql": ("nul_in_raw_sql.py", "RawSQL.forward", "remove the NUL byte"),
    # names PostgreSQL would truncate
    "name_64_bytes_column": ("name_64_bytes_column.py", "Column.name", "at most 63 bytes"),
    "name_64_bytes_index": ("name_64_bytes_index.py", "Index.name", "at most 63 bytes"),
    "name_64_bytes_schema": ("name_64_bytes_schema.py", "CreateTable.table", "at most 63 bytes"),
    "migration_name_too_long": ("migration_name_too_long.py", "Migration.name", "rename it"),
    # Unicode look-alikes and invisible characters
    "cyrillic_lookalike_table": ("cyrillic_lookalike_table.py", "CreateTable.table", "retype the name in plain ASCII"),
    "greek_lookalike_column": ("greek_lookalike_column.py", "ForeignKey.columns.0", "retype the name in plain ASCII"),
    "fullwidth_primary_key": ("fullwidth_primary_key.py", "CreateTable.primary_key.0",
                              "retype the name in plain ASCII"),
    "zero_width_joiner_conflict_column": ("zero_width_joiner_conflict_column.py", "SeedRows.rows",
                                          "retype the name in plain ASCII"),
    "bidi_override_migration_name": ("bidi_override_migration_name.py", "Migration.name", "rename it"),
    # expressions: a second statement, extra clauses, comments and dollar quotes
    "default_second_statement": ("default_second_statement.py", "Column.default", "give exactly one SQL expression"),
    "check_second_statement": ("check_second_statement.py", "Check.expression", "give exactly one SQL expression"),
    "backfill_set_second_statement": ("backfill_set_second_statement.py", "Backfill.set.status",
                                      "give exactly one SQL expression"),
    "backfill_set_reads_other_table": ("backfill_set_reads_other_table.py", "Backfill.set.nickname",
                                       "give only the expression"),
    "index_where_union": ("index_where_union.py", "Index.where", "give only the expression"),
    "line_comment_swallows_type": ("line_comment_swallows_type.py", "Column.type", "remove the comment"),
    "line_comment_swallows_index_key": ("line_comment_swallows_index_key.py", "Index.columns.0",
                                        "remove the comment"),
    "block_comment_swallows_rest": ("block_comment_swallows_rest.py", "Check.expression", "no unterminated comment"),
    "dollar_quote_unterminated": ("dollar_quote_unterminated.py", "Column.default", "give exactly one SQL expression"),
    "dollar_quote_after_value": ("dollar_quote_after_value.py", "Column.default", "give exactly one SQL expression"),
    "dbdeploy_tag_closes_do_block": ("dbdeploy_tag_closes_do_block.py", "Backfill.where",
                                     "give exactly one SQL expression"),
    # types
    "type_with_second_statement": ("type_with_second_statement.py", "Column.type", "give one PostgreSQL type"),
    "type_setof": ("type_setof.py", "Column.type", "drop SETOF"),
    "type_unclosed_array": ("type_unclosed_array.py", "Column.type", "give one PostgreSQL type"),
    "type_does_not_exist": ("type_does_not_exist.py", "Column.type", "schema-qualify"),
    "type_pseudo": ("type_pseudo.py", "Column.type", "give one PostgreSQL type"),
    # unknown columns
    "unknown_column_in_primary_key": ("unknown_column_in_primary_key.py", "CreateTable.primary_key",
                                      "use one of the table's columns"),
    "unknown_column_in_index": ("unknown_column_in_index.py", "CreateTable.indexes[0]",
                                "use one of the table's columns"),
    "unknown_column_in_check": ("unknown_column_in_check.py", "CreateTable.checks[0].expression",
                                "use one of the table's columns"),
    "unknown_column_in_foreign_key": ("unknown_column_in_foreign_key.py", "CreateTable.foreign_keys[0].columns",
                                      "use one of the table's columns"),
    "unknown_column_in_backfill_set": ("unknown_column_in_backfill_set.py",
                                       "Migration.operations[1] (backfill app.users)", "use one of its columns"),
    "unknown_column_in_backfill_where": ("unknown_column_in_backfill_where.py",
                                         "Migration.operations[1] (backfill app.users)", "use one of its columns"),
    "unknown_column_in_seed_rows": ("unknown_column_in_seed_rows.py",
                                    "Migration.operations[1] (seed_rows app.roles)", "use one of its columns"),
    "unknown_column_in_later_spec": ("V002_index_unknown_column.py",
                                     "Migration 002.operations[0] (create_index app.users)", "use one of its columns"),
    # the spec files themselves
    "duplicate_version_across_files": ("V001_create_audit.py", "Migration.version",
                                       "give each migration its own version"),
    "spec_raises": ("spec_raises.py", "line 7", "make the spec file import cleanly"),
    "spec_raises_base_exception": ("spec_raises_base_exception.py", "line 11", "make the spec file import cleanly"),
    "spec_sys_exit": ("spec_sys_exit.py", "line 8", "remove the sys.exit() call"),
    "spec_syntax_error": ("spec_syntax_error.py", "line 5", "correct the Python syntax"),
    "spec_without_migration": ("spec_without_migration.py", "defines no Migration", "assign a Migration(...)"),
    "spec_imports_unknown_model": ("spec_imports_unknown_model.py", "line 3", "import only names the DSL provides"),
    # wrong field types and unknown fields
    "int_where_str": ("int_where_str.py", "Column.name", "give a string"),
    "list_where_dict": ("list_where_dict.py", "Backfill.set", "give a dict"),
    "none_where_required": ("none_where_required.py", "Column.type", "give a string"),
    "string_as_operation": ("string_as_operation.py", "Migration.operations[1]", "build each entry with an operation"),
    "dict_as_operation": ("dict_as_operation.py", "Migration.operations[1]", "build each entry with an operation"),
    "unknown_field": ("unknown_field.py", "Column.nulable", "remove the unknown field"),
    "seed_value_unsupported_type": ("seed_value_unsupported_type.py", "SeedRows.rows[0].data", "use str, int"),
    # versions and migration names
    "version_with_sql": ("version_with_sql.py", "Migration.version", 'version="001"'),
    "version_as_int": ("version_as_int.py", "Migration.version", 'version="001"'),
    "version_too_long": ("version_too_long.py", "Migration.version", 'version="001"'),
    "migration_name_path_traversal": ("migration_name_path_traversal.py", "Migration.name", "rename it"),
    "migration_name_not_snake_case": ("migration_name_not_snake_case.py", "Migration.name", "rename it"),
    # operations that cannot be generated safely
    "backfill_no_key_unknown_table": ("backfill_no_key_unknown_table.py",
                                      "operations[0] (backfill legacy.customers)", "key="),
    "drop_index_unknown": ("drop_index_unknown.py", "Migration 001.operations[0] (drop_index app.users_email_idx)",
                           "drop it with RawSQL"),
    "raw_sql_begin_commit": ("raw_sql_begin_commit.py", "RawSQL.forward", "remove the transaction statements"),
    "raw_sql_invalid": ("raw_sql_invalid.py", "RawSQL.rollback", "correct the SQL"),
    "batch_size_zero": ("batch_size_zero.py", "Backfill.batch_size", "at least 1"),
    "batch_size_huge": ("batch_size_huge.py", "Backfill.batch_size", "at most 1000000"),
    "batch_size_sql": ("batch_size_sql.py", "Backfill.batch_size", "give a whole number"),
    "empty_operations": ("empty_operations.py", "Migration.operations", "add its operations"),
}


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    workdir: Path
    out: Path

    def written(self) -> list[str]:
        """Everything in the scratch folder besides the specs the test put there."""
        return sorted(p.name for p in self.workdir.iterdir() if p.name != "specs")


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "DBDEPLOY"))}
    env.update(PYTHONHASHSEED="0", NO_COLOR="1", COLUMNS="200", TERM="dumb")
    return env


def generate(case: Path, workdir: Path) -> Run:
    """Copy the case into ``workdir/specs`` and run ``dbdeploy generate`` there."""
    specs = workdir / "specs"
    specs.mkdir(parents=True)
    for source in sorted(case.glob("*.py")) if case.is_dir() else [case]:
        shutil.copy(source, specs / source.name)
    proc = subprocess.run([str(DBDEPLOY), "generate", "--specs", "specs", "--out", "out"], cwd=workdir,
                          capture_output=True, text=True, env=_environment(), timeout=120)
    return Run(proc.returncode, proc.stdout, proc.stderr, workdir, workdir / "out")


def _run_all(cases: list[Path], root: Path) -> dict[str, Run]:
    with ThreadPoolExecutor(max_workers=max(2, (os.cpu_count() or 2))) as pool:
        runs = pool.map(lambda case: generate(case, root / case.stem), cases)
        return {case.stem: run for case, run in zip(cases, runs, strict=True)}


@pytest.fixture(scope="module")
def refused(tmp_path_factory) -> dict[str, Run]:
    if not DBDEPLOY.exists():
        pytest.skip("the dbdeploy console script is not installed next to this Python")
    return _run_all(CASES, tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def accepted(tmp_path_factory) -> dict[str, Run]:
    if not DBDEPLOY.exists():
        pytest.skip("the dbdeploy console script is not installed next to this Python")
    return _run_all(INERT_CASES, tmp_path_factory.mktemp("inert"))


# --- the corpus itself ---------------------------------------------------------------------

def test_corpus_has_at_least_40_cases_each_with_an_expectation():
    names = {case.stem for case in CASES}
    assert len(names) >= 40, len(names)
    assert names == set(EXPECTED), (sorted(names - set(EXPECTED)), sorted(set(EXPECTED) - names))


@pytest.mark.parametrize("path", sorted(p for p in HOSTILE.rglob("*.py") if "__pycache__" not in p.parts),
                         ids=lambda p: p.relative_to(HOSTILE).as_posix())
def test_every_spec_file_says_what_it_attacks(path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith('"""'), f"{path.name} must start with a docstring saying what it attacks"
    docstring = text[3:text.index('"""', 3)]
    assert len(docstring.split()) >= 5, f"{path.name}: the docstring is too short to explain the attack"


# --- every hostile case is refused cleanly -------------------------------------------------

@pytest.mark.parametrize("case", [c.stem for c in CASES])
def test_hostile_spec_is_refused_with_one_clear_message(refused, case):
    run = refused[case]
    file, field, fix = EXPECTED[case]
    assert run.returncode == 2, (
        f"{case} was {'ACCEPTED — a hostile spec got through' if run.returncode == 0 else 'not refused cleanly'} "
        f"(exit {run.returncode}):\n{run.stdout}{run.stderr}")
    err = run.stderr
    assert "Traceback" not in err + run.stdout, err
    assert run.stdout == "", run.stdout
    assert err.startswith("error: "), err
    lines = err.rstrip("\n").splitlines()
    assert len(lines) <= 5, f"more than a few lines on stderr:\n{err}"
    assert sum(line.startswith("error:") for line in lines) == 1, err
    assert f"specs/{file}" in err, f"the message does not name the file specs/{file}:\n{err}"
    assert field in err, f"the message does not name the field {field!r}:\n{err}"
    assert "fix:" in err and err.split("fix:", 1)[1].strip(), f"the message gives no fix:\n{err}"
    assert fix in err.split("fix:", 1)[1], f"the fix does not say {fix!r}:\n{err}"


@pytest.mark.parametrize("case", [c.stem for c in CASES])
def test_hostile_spec_writes_nothing(refused, case):
    run = refused[case]
    assert not run.out.exists(), f"{case}: --out was created"
    assert run.written() == [], f"{case} wrote {run.written()}"


def test_spec_file_name_cannot_inject_into_the_bundle(tmp_path):
    """A spec file's name is copied into the bundle's SQL comments and its generated Python test:
    a newline in it would start a SQL statement, and quotes would end the test's docstring."""
    valid = HOSTILE / "inert" / "raw_sql_trailing_comment.py"
    case = tmp_path / "case"
    case.mkdir()
    shutil.copy(valid, case / 'V001_x\nDROP TABLE pwned;\n-- """; import os; """.py')
    run = generate(case, tmp_path / "run")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert run.stderr.startswith("error: ") and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "rename the file" in run.stderr
    assert not run.out.exists()


# --- look-alike injections that are legitimate data: accepted, and inert -----------------

def test_inert_corpus_is_not_empty():
    assert len(INERT_CASES) >= 5


@pytest.mark.parametrize("case", [c.stem for c in INERT_CASES])
def test_inert_spec_is_accepted_and_runs_none_of_its_payload(accepted, case):
    run = accepted[case]
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stderr == "", run.stderr
    bundles = [p for p in run.out.iterdir() if p.is_dir()]
    assert len(bundles) == 1, bundles
    manifest = json.loads((bundles[0] / "manifest.json").read_text(encoding="utf-8"))
    for which in ("forward", "rollback"):
        sql = (bundles[0] / manifest["files"][which]["name"]).read_text(encoding="utf-8")
        parsed = parse_everything(sql)
        assert "pwned" not in relations(parsed.all_statements), f"{which} SQL touches the relation pwned"
        begins, commits = transaction_balance(parsed.statements)
        assert begins == commits, f"{which} SQL has {begins} BEGIN but {commits} COMMIT"
    tests = bundles[0] / manifest["files"]["tests"]["name"]
    compile(tests.read_text(encoding="utf-8"), str(tests), "exec")  # the generated test is still Python
