"""Loading spec files (``load_specs``) and whole-history planning (``build_bundles``).

Every failure must surface as one :class:`dbdeploy.errors.SpecError` naming the spec file (and
the field path and line when known), never as a raw exception from user code.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from dbdeploy import Migration
from dbdeploy.errors import DbdeployError, SpecError
from dbdeploy.plan.loader import LoadedMigration, load_specs
from dbdeploy.render.writer import build_bundles


def write(folder: Path, name: str, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(source).lstrip("\n"))
    return path


def spec(version: str, name: str, ops: str, *, var: str = "migration") -> str:
    return f"from dbdeploy import *\n\n{var} = Migration(version={version!r}, name={name!r}, operations=[{ops}])\n"


SCHEMA_OP = 'CreateSchema(name="s")'
TABLE_T = ('CreateTable(table="s.t", columns=[Column(name="id", type="bigint"), Column(name="a", type="text")], '
           'primary_key=["id"], indexes=[Index(columns=["a"], name="t_a_ix")])')
TABLE_NOPK = ('CreateTable(table="s.nopk", columns=[Column(name="id", type="bigint", nullable=False), '
              'Column(name="a", type="text")])')


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    folder = tmp_path / "specs"
    folder.mkdir()
    return folder


def load_error(folder: Path) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_specs(folder)
    return info.value


def plan_error(folder: Path) -> SpecError:
    with pytest.raises(SpecError) as info:
        build_bundles(folder)
    return info.value


# --- valid specs -------------------------------------------------------------------------

def test_valid_file_is_loaded(specs):
    path = write(specs, "V001_init.py", spec("001", "init", SCHEMA_OP))
    loaded = load_specs(specs)
    assert len(loaded) == 1
    assert isinstance(loaded[0], LoadedMigration)
    assert isinstance(loaded[0].migration, Migration)
    assert loaded[0].migration.version == "001"
    assert loaded[0].migration.name == "init"
    assert loaded[0].source == path


def test_migrations_sorted_numerically_and_several_per_file(specs):
    write(specs, "a_later.py", spec("10", "ten", SCHEMA_OP))
    write(specs, "b_early.py", spec("9", "nine", SCHEMA_OP) + spec("2", "two", SCHEMA_OP, var="other"))
    loaded = load_specs(specs)
    assert [item.migration.version for item in loaded] == ["2", "9", "10"]
    assert [item.source.name for item in loaded] == ["b_early.py", "b_early.py", "a_later.py"]


def test_spec_modules_are_not_left_in_sys_modules(specs):
    write(specs, "V001_init.py", spec("001", "init", SCHEMA_OP))
    before = set(sys.modules)
    load_specs(specs)
    assert not [name for name in set(sys.modules) - before if name.startswith("dbdeploy_spec_")]


def test_files_starting_with_underscore_and_non_python_files_are_skipped(specs):
    write(specs, "V001_init.py", spec("001", "init", SCHEMA_OP))
    write(specs, "_helpers.py", "raise RuntimeError('a helper module must not be imported as a spec')\n")
    write(specs, "__init__.py", "raise RuntimeError('not a spec')\n")
    write(specs, "notes.txt", "not python")
    write(specs, "V002_draft.py.bak", "raise RuntimeError('not a spec')\n")
    write(specs / "sub", "V003_nested.py", "raise RuntimeError('subfolders are not specs')\n")
    loaded = load_specs(specs)
    assert [item.source.name for item in loaded] == ["V001_init.py"]


def test_spec_error_is_a_dbdeploy_error_with_exit_code_2():
    assert issubclass(SpecError, DbdeployError)
    assert SpecError("x").exit_code == 2


# --- import failures ---------------------------------------------------------------------

def test_syntax_error_names_file_and_line(specs):
    path = write(specs, "V001_broken.py", """
        from dbdeploy import *

        migration = Migration(
            version="001",
    """)
    err = load_error(specs)
    assert err.file == str(path)
    assert str(path) in str(err)
    assert "syntax error" in str(err)
    assert "line 3" in str(err)


def test_raising_module_names_file_exception_and_line(specs):
    path = write(specs, "V001_raises.py", """
        from dbdeploy import *


        raise RuntimeError("boom from the spec")
    """)
    err = load_error(specs)
    text = str(err)
    assert err.file == str(path)
    assert str(path) in text
    assert "RuntimeError" in text and "boom from the spec" in text
    assert "line 4" in text


def test_error_raised_in_a_helper_function_reports_the_spec_line(specs):
    write(specs, "V001_helper.py", """
        from dbdeploy import *

        def columns():
            return {}["missing"]

        migration = Migration(version="001", name="x", operations=[CreateSchema(name="s")])
        cols = columns()
    """)
    text = str(load_error(specs))
    assert "KeyError" in text and "'missing'" in text
    assert "line 4" in text  # the innermost frame inside the spec file


@pytest.mark.parametrize("source, missing", [
    ("from dbdeploy import Nope\n", "Nope"),
    ("import no_such_module_for_dbdeploy_tests\n", "no_such_module_for_dbdeploy_tests"),
    ("from dbdeploy import *\n\nmigration = Migration(version='001', name='x', operations=[Undefined()])\n",
     "Undefined"),
])
def test_import_failure_names_file_and_missing_name(specs, source, missing):
    path = write(specs, "V001_imports.py", source)
    err = load_error(specs)
    assert err.file == str(path)
    assert str(path) in str(err)
    assert missing in str(err)
    assert err.__cause__ is None and err.__suppress_context__  # raised "from None": no chained traceback


def test_first_broken_file_stops_loading_and_is_the_one_named(specs):
    write(specs, "V001_ok.py", spec("001", "ok", SCHEMA_OP))
    bad = write(specs, "V002_bad.py", "raise ValueError('second file is broken')\n")
    err = load_error(specs)
    assert err.file == str(bad)
    assert "V001_ok.py" not in str(err)


def test_spec_calling_sys_exit_is_a_spec_error(specs):
    write(specs, "V001_exits.py", "import sys\n\nsys.exit(0)\n")
    err = load_error(specs)
    assert "V001_exits.py" in str(err)


# --- validation errors inside a spec file -------------------------------------------------

def test_validation_error_names_file_field_path_value_and_line(specs):
    path = write(specs, "V001_hostile.py", """
        from dbdeploy import *

        migration = Migration(
            version="001",
            name="hostile",
            operations=[
                CreateTable(
                    table="t",
                    columns=[
                        Column(name="id", type="bigint"),
                        Column(name="at", type="timestamptz", default="now()); DROP TABLE x; --"),
                    ],
                ),
            ],
        )
    """)
    err = load_error(specs)
    text = str(err)
    assert err.file == str(path)
    assert err.field == "Column.default"
    assert text.startswith(f"{path}: Column.default: ")
    assert "now()); DROP TABLE x; --" in text
    assert "line 11" in text
    assert "\n" not in text  # one line


@pytest.mark.parametrize("snippet, field, fragment", [
    ('Index(columns=["a, b"])', "Index.columns.0", "one list entry per key"),
    ('Column(name="a", type="text", nullabel=False)', "Column.nullabel", "Extra inputs are not permitted"),
    ('Column(name="Bad", type="text")', "Column.name", "'Bad'"),
    ('Migration(version="v1", name="x", operations=[CreateSchema(name="s")])', "Migration.version", "'v1'"),
    ('CreateTable(table="t", columns=[Column(name="a", type="text")], primary_key=["zz"])', "CreateTable.primary_key",
     "zz"),
])
def test_validation_error_field_paths(specs, snippet, field, fragment):
    path = write(specs, "V001_bad.py", f"from dbdeploy import *\n\n\nvalue = {snippet}\n")
    err = load_error(specs)
    assert err.file == str(path)
    assert err.field == field
    assert f"{path}: {field}: " in str(err)
    assert fragment in str(err)
    assert "line 4" in str(err)


def test_validation_error_counts_further_problems_and_gives_a_fix(specs):
    write(specs, "V001_bad.py", 'from dbdeploy import *\n\nc = Column(name="A", type="", bogus=1)\n')
    err = load_error(specs)
    assert "(and 2 more problem(s))" in str(err)
    write(specs, "V001_bad.py", 'from dbdeploy import *\n\nc = Column(name="a", type="text", bogus=1)\n')
    err = load_error(specs)
    assert err.fix and "unknown field" in err.fix and "fix:" in str(err)


def test_migration_level_consistency_error_names_operation(specs):
    write(specs, "V001_dup.py", spec("001", "dup", f"{TABLE_T}, "
                                     'AddColumn(table="s.t", column=Column(name="a", type="text"))'))
    err = load_error(specs)
    assert err.field == "Migration.operations[1] (add_column s.t)"
    assert "column 'a' already exists in s.t" in str(err)


def test_file_without_migration_is_an_error(specs):
    path = write(specs, "V001_empty.py", "from dbdeploy import Column\n\nX = Column(name='a', type='text')\n")
    err = load_error(specs)
    assert err.file == str(path)
    assert "defines no Migration" in str(err)


def test_migrations_inside_containers_do_not_count(specs):
    write(specs, "V001_list.py", "from dbdeploy import *\n\n"
                                 "ALL = [Migration(version='001', name='x', operations=[CreateSchema(name='s')])]\n")
    assert "defines no Migration" in str(load_error(specs))


# --- duplicate versions ------------------------------------------------------------------

@pytest.mark.parametrize("first, second", [("001", "001"), ("001", "1"), ("7", "0007")])
def test_duplicate_versions_across_files_name_both_files(specs, first, second):
    write(specs, "V001_first.py", spec(first, "first", SCHEMA_OP))
    second_path = write(specs, "V002_second.py", spec(second, "second", SCHEMA_OP))
    err = load_error(specs)
    text = str(err)
    assert "V001_first.py" in text and "V002_second.py" in text
    assert err.file == str(second_path)
    assert err.field == "Migration.version"


def test_duplicate_versions_within_one_file(specs):
    write(specs, "V001_two.py", spec("001", "one", SCHEMA_OP) + spec("01", "two", SCHEMA_OP, var="other"))
    err = load_error(specs)
    assert "also used by V001_two.py" in str(err)


def test_same_migration_object_under_two_names_is_loaded_once(specs):
    write(specs, "V001_alias.py", spec("001", "alias", SCHEMA_OP) + "latest = migration\n")
    assert [item.migration.version for item in load_specs(specs)] == ["001"]


def test_missing_specs_dir(tmp_path):
    missing = tmp_path / "nope"
    err = load_error(missing)
    assert str(missing) in str(err)
    assert "does not exist" in str(err)
    assert err.fix and "dbdeploy new" in err.fix
    with pytest.raises(SpecError, match="does not exist"):
        build_bundles(missing)


def test_empty_specs_dir_loads_nothing(specs):
    assert load_specs(specs) == []
    assert build_bundles(specs) == []


# --- cross-migration checks at planning ---------------------------------------------------

def _history(specs: Path, later_ops: str) -> Path:
    write(specs, "V001_base.py", spec("001", "base", f"{SCHEMA_OP}, {TABLE_T}, {TABLE_NOPK}"))
    return write(specs, "V002_later.py", spec("002", "later", later_ops))


def test_valid_history_plans(specs):
    _history(specs, 'DropIndex(name="s.t_a_ix"), '
                    'Backfill(table="s.t", set={"a": "upper(a)"}), '
                    'CreateIndex(table="s.nopk", index=Index(columns=["id"], unique=True)), '
                    'Backfill(table="s.nopk", set={"a": "upper(a)"}, key=["id"]), '
                    'DropColumn(table="s.t", column="a")')
    bundles = build_bundles(specs)
    assert [b.folder for b in bundles] == ["V001__base", "V002__later"]
    assert set(bundles[1].files) == {"V002__later.sql", "V002__rollback_later.sql", "test_V002__later.py",
                                     "deployment_checklist.md", "manifest.json"}


def test_single_migration_alone_cannot_know_earlier_objects(specs):
    """Loading alone accepts what only planning can reject (earlier specs' objects are unknown)."""
    _history(specs, 'DropIndex(name="s.never_created")')
    assert len(load_specs(specs)) == 2
    with pytest.raises(SpecError):
        build_bundles(specs)


@pytest.mark.parametrize("ops, fragments", [
    pytest.param('DropIndex(name="s.never_created")',
                 ["operations[0] (drop_index s.never_created)", "not created by any earlier spec"],
                 id="drop-unknown-index"),
    pytest.param('DropIndex(name="s.t_a_ix"), DropIndex(name="s.t_a_ix")',
                 ["operations[1] (drop_index s.t_a_ix)", "not created by any earlier spec"],
                 id="drop-index-twice"),
    pytest.param('DropIndex(name="public.t_a_ix")', ["public.t_a_ix", "not created by any earlier spec"],
                 id="drop-index-wrong-schema"),
    pytest.param('Backfill(table="s.nopk", set={"a": "upper(a)"})',
                 ["operations[0] (backfill s.nopk)", "primary key is not known", "key=[...]"],
                 id="backfill-table-without-pk"),
    pytest.param('Backfill(table="s.elsewhere", set={"a": "1"})',
                 ["operations[0] (backfill s.elsewhere)", "primary key is not known"],
                 id="backfill-unknown-table"),
    pytest.param('DropColumn(table="s.t", column="zz")', ["operations[0] (drop_column s.t)", "no column 'zz'"],
                 id="drop-missing-column"),
    pytest.param('DropColumn(table="s.t", column="a"), DropColumn(table="s.t", column="a")',
                 ["operations[1] (drop_column s.t)", "no column 'a'"], id="drop-column-twice"),
    pytest.param('AddColumn(table="s.t", column=Column(name="a", type="text"))',
                 ["operations[0] (add_column s.t)", "'a' already exists"], id="add-existing-column"),
    pytest.param('CreateIndex(table="s.t", index=Index(columns=["zz"]))',
                 ["operations[0] (create_index s.t)", "zz"], id="index-on-missing-column"),
    pytest.param('CreateIndex(table="s.t", index=Index(columns=["a"], name="t_a_ix"))',
                 ["s.t_a_ix is already used by an index of s.t"], id="index-name-taken"),
    pytest.param('Backfill(table="s.t", set={"zz": "1"})', ["zz"], id="backfill-missing-column"),
    pytest.param('CreateTable(table="s.t", columns=[Column(name="x", type="text")])',
                 ["already created"], id="create-existing-table"),
])
def test_planning_rejects_references_to_what_earlier_specs_did_not_create(specs, ops, fragments):
    later = _history(specs, ops)
    err = plan_error(specs)
    text = str(err)
    assert err.file == str(later)
    assert text.startswith(f"{later}: Migration 002.operations[")
    for fragment in fragments:
        assert fragment in text, text


def test_index_of_a_table_dropped_earlier_cannot_be_dropped_again(specs):
    _history(specs, 'DropTable(table="s.t")')
    third = write(specs, "V003_third.py", spec("003", "third", 'DropIndex(name="s.t_a_ix")'))
    err = plan_error(specs)
    assert err.file == str(third)
    assert "not created by any earlier spec" in str(err)


def test_index_dropped_with_its_column_is_forgotten(specs):
    _history(specs, 'DropColumn(table="s.t", column="a")')
    third = write(specs, "V003_third.py", spec("003", "third", 'DropIndex(name="s.t_a_ix")'))
    err = plan_error(specs)
    assert err.file == str(third)


def test_column_and_index_can_be_recreated_after_drop_column(specs):
    _history(specs, 'DropColumn(table="s.t", column="a")')
    write(specs, "V003_third.py", spec("003", "third", (
        'AddColumn(table="s.t", column=Column(name="a", type="text")), '
        'CreateIndex(table="s.t", index=Index(columns=["a"], name="t_a_ix"))')))
    assert len(build_bundles(specs)) == 3


def test_planning_uses_columns_added_by_earlier_specs(specs):
    _history(specs, 'AddColumn(table="s.t", column=Column(name="b", type="text"))')
    write(specs, "V003_third.py", spec("003", "third", 'CreateIndex(table="s.t", index=Index(columns=["b"])), '
                                                       'DropColumn(table="s.t", column="b")'))
    assert len(build_bundles(specs)) == 3


def test_planning_error_in_first_file_names_it(specs):
    first = write(specs, "V001_only.py", spec("001", "only", 'DropIndex(name="s.nothing")'))
    err = plan_error(specs)
    assert err.file == str(first)


def test_index_name_clashing_with_a_constraint_index_in_the_schema_is_rejected(specs):
    write(specs, "V001_clash.py", spec("001", "clash", (
        'CreateTable(table="t", columns=[Column(name="id", type="bigint")], primary_key=["id"]), '
        'CreateTable(table="u", columns=[Column(name="id", type="bigint")]), '
        'CreateIndex(table="u", index=Index(columns=["id"], name="t_pkey"))')))
    plan_error(specs)
