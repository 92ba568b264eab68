"""The real ``dbdeploy`` console script, run as a subprocess in a scratch folder.

Exit codes are the contract: 0 ok, 1 failure / stale output, 2 bad spec or usage. Errors are
one clear message on stderr, never a Python traceback, and a failing command writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import dbdeploy

ROOT = Path(__file__).resolve().parent.parent


def _executable() -> str:
    candidate = Path(sys.executable).parent / "dbdeploy"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("dbdeploy")
    if not found:
        pytest.skip("the dbdeploy console script is not installed")
    return found


DBDEPLOY = _executable()


def run(cwd: Path, *args: str, seed: str = "0") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "DBDEPLOY"))}
    env.update(PYTHONHASHSEED=seed, NO_COLOR="1", COLUMNS="200", TERM="dumb")
    return subprocess.run([DBDEPLOY, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120)


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path → bytes), plus empty directories."""
    if not folder.exists():
        return {}
    result: dict[str, bytes] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if "__pycache__" in path.parts:
            continue
        if path.is_file():
            result[rel] = path.read_bytes()
        elif path.is_dir() and not any(path.iterdir()):
            result[rel + "/"] = b""
    return result


def assert_clean_error(proc: subprocess.CompletedProcess[str], code: int) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr


SPEC_ONE = '''\
"""A test spec."""

from dbdeploy import Check, Column, CreateSchema, CreateTable, Index, Migration

migration = Migration(
    version="001",
    name="create_things",
    description="Things.",
    operations=[
        CreateSchema(name="app"),
        CreateTable(
            table="app.things",
            columns=[
                Column(name="id", type="bigint", identity=True),
                Column(name="label", type="text", nullable=False, default="'x'"),
            ],
            primary_key=["id"],
            checks=[Check(expression="label <> ''")],
            indexes=[Index(columns=["label"])],
        ),
    ],
)
'''

SPEC_TWO = '''\
from dbdeploy import AddColumn, Backfill, Column, Migration

migration = Migration(
    version="002",
    name="add_size",
    operations=[
        AddColumn(table="app.things", column=Column(name="size", type="integer", nullable=False)),
        Backfill(table="app.things", set={"size": "length(label)"}),
    ],
)
'''

HOSTILE = '''\
from dbdeploy import Column, CreateTable, Migration

migration = Migration(
    version="003",
    name="hostile",
    operations=[
        CreateTable(
            table="app.evil",
            columns=[Column(name="at", type="timestamptz", default="now()); DROP TABLE x; --")],
        ),
    ],
)
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "V001_create_things.py").write_text(SPEC_ONE)
    (specs / "V002_add_size.py").write_text(SPEC_TWO)
    return tmp_path


@pytest.fixture
def generated(project: Path) -> Path:
    proc = run(project, "generate")
    assert proc.returncode == 0, proc.stderr
    return project / "generated"


# --- basics ------------------------------------------------------------------------------

def test_version(tmp_path):
    proc = run(tmp_path, "--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"dbdeploy {dbdeploy.__version__}"


@pytest.mark.parametrize("args, expected", [
    (["--help"], ["generate", "new", "--version"]),
    (["generate", "--help"], ["--check", "--specs", "--out"]),
    (["new", "--help"], ["NAME", "--specs"]),
])
def test_help(tmp_path, args, expected):
    proc = run(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr
    for word in expected:
        assert word in proc.stdout
    assert list(tmp_path.iterdir()) == []  # help writes nothing


# --- new ---------------------------------------------------------------------------------

def test_new_scaffolds_numbered_specs_that_generate(tmp_path):
    proc = run(tmp_path, "new", "add_orders")
    assert proc.returncode == 0, proc.stderr
    first = tmp_path / "specs" / "V001_add_orders.py"
    assert first.is_file()
    assert "specs/V001_add_orders.py" in proc.stdout
    text = first.read_text()
    assert 'version="001"' in text and 'name="add_orders"' in text
    compile(text, str(first), "exec")

    proc = run(tmp_path, "new", "add_customers")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "specs" / "V002_add_customers.py").is_file()
    assert 'version="002"' in (tmp_path / "specs" / "V002_add_customers.py").read_text()

    proc = run(tmp_path, "generate")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "generated" / "V001__add_orders" / "V001__add_orders.sql").is_file()
    assert (tmp_path / "generated" / "V002__add_customers" / "manifest.json").is_file()


def test_new_continues_after_highest_existing_version(tmp_path):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "V007_old.py").write_text("")
    (tmp_path / "specs" / "V003_older.py").write_text("")
    proc = run(tmp_path, "new", "next_one")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "specs" / "V008_next_one.py").is_file()


def test_new_with_custom_specs_folder(tmp_path):
    proc = run(tmp_path, "new", "x", "--specs", "migrations/specs")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "migrations" / "specs" / "V001_x.py").is_file()


@pytest.mark.parametrize("name", ["Bad", "add-orders", "1abc", "add orders", "x;rm -rf", "a" * 81, ""])
def test_new_with_bad_name_exits_2_and_writes_nothing(tmp_path, name):
    proc = run(tmp_path, "new", name)
    assert_clean_error(proc, 2)
    assert "snake_case" in proc.stderr
    assert not (tmp_path / "specs").exists()


def test_new_name_must_fit_as_the_scaffold_table_name(tmp_path):
    """The scaffold uses NAME as its table name: longer than 63 bytes is refused up front."""
    refused = run(tmp_path, "new", "a" * 64)
    assert refused.returncode == 2
    assert "at most 63" in refused.stderr
    assert not list((tmp_path / "specs").glob("*.py")) if (tmp_path / "specs").exists() else True
    assert run(tmp_path, "new", "a" * 63).returncode == 0
    proc = run(tmp_path, "generate")
    assert proc.returncode == 0, proc.stderr


# --- generate ----------------------------------------------------------------------------

def manifest_files(bundle):
    return json.loads((bundle / "manifest.json").read_text())["files"].values()


def test_generate_writes_bundles_with_matching_manifest(project):
    proc = run(project, "generate")
    assert proc.returncode == 0, proc.stderr
    assert f"2 bundle(s) in {project / 'generated'}" in proc.stdout or "2 bundle(s) in generated\n" in proc.stdout
    out = project / "generated"
    assert sorted(p.name for p in out.iterdir()) == [".gitattributes", "V001__create_things", "V002__add_size"]
    assert (out / ".gitattributes").read_text().splitlines()[-1] == "* -text"  # git never converts line endings
    for folder, version, name in [("V001__create_things", "001", "create_things"),
                                  ("V002__add_size", "002", "add_size")]:
        bundle = out / folder
        forward = bundle / f"{folder}.sql"
        rollback = bundle / f"V{version}__rollback_{name}.sql"
        assert sorted(p.name for p in bundle.iterdir()) == sorted([
            forward.name, rollback.name, f"test_{folder}.py", "deployment_checklist.md", "manifest.json"])
        for entry in manifest_files(bundle):
            assert hashlib.sha256((bundle / entry["name"]).read_bytes()).hexdigest() == entry["sha256"]
        manifest = json.loads((bundle / "manifest.json").read_text())
        assert manifest["version"] == version and manifest["name"] == name
        assert manifest["source"] == f"V{version}_{name}.py"
        assert manifest["files"]["forward"]["name"] == forward.name
        assert manifest["files"]["rollback"]["name"] == rollback.name
        assert manifest["files"]["forward"]["sha256"] == hashlib.sha256(forward.read_bytes()).hexdigest()
        assert manifest["files"]["rollback"]["sha256"] == hashlib.sha256(rollback.read_bytes()).hexdigest()
        assert manifest["steps"] and manifest["rollback_steps"]
        assert "-- dbdeploy:step 1 " in forward.read_text()


def test_generate_is_deterministic(project, tmp_path_factory):
    """Two runs (in different folders, different hash seeds) give byte-identical bundles."""
    other = tmp_path_factory.mktemp("again")
    shutil.copytree(project / "specs", other / "specs")
    assert run(project, "generate", seed="1").returncode == 0
    assert run(other, "generate", seed="98765").returncode == 0
    first = tree(project / "generated")
    assert first and first == tree(other / "generated")
    # re-running in place changes nothing and says so
    proc = run(project, "generate", seed="42")
    assert proc.returncode == 0
    assert "already up to date" in proc.stdout
    assert tree(project / "generated") == first


def test_generate_repairs_stale_missing_and_extra(generated):
    expected = tree(generated)
    (generated / "V001__create_things" / "manifest.json").write_text("{}")
    (generated / "V002__add_size" / "V002__add_size.sql").unlink()
    (generated / "V009__renamed_away").mkdir()
    (generated / "V009__renamed_away" / "x.sql").write_text("SELECT 1;")
    (generated / "V001__create_things" / "stray.txt").write_text("x")
    (generated / "README.md").write_text("not a bundle")
    proc = run(generated.parent, "generate")
    assert proc.returncode == 0, proc.stderr
    assert "updated stale:   V001__create_things/manifest.json" in proc.stdout
    assert "updated missing: V002__add_size/V002__add_size.sql" in proc.stdout
    assert "removed V009__renamed_away/" in proc.stdout
    assert "removed V001__create_things/stray.txt" in proc.stdout
    expected["README.md"] = b"not a bundle"  # files that are not bundles are left alone
    assert tree(generated) == expected


def test_generate_custom_folders(tmp_path, project):
    shutil.move(project / "specs", tmp_path / "my_specs")
    proc = run(tmp_path, "generate", "--specs", "my_specs", "--out", "build/bundles")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "build" / "bundles" / "V002__add_size" / "manifest.json").is_file()
    assert not (tmp_path / "generated").exists()


# --- generate --check --------------------------------------------------------------------

def test_check_passes_when_current(generated):
    before = tree(generated)
    proc = run(generated.parent, "generate", "--check")
    assert proc.returncode == 0, proc.stderr
    assert "up to date" in proc.stdout
    assert tree(generated) == before


def test_check_lists_stale_missing_and_extra_and_writes_nothing(generated):
    (generated / "V001__create_things" / "V001__create_things.sql").write_text("-- edited\n")
    (generated / "V002__add_size" / "manifest.json").unlink()
    (generated / "V005__leftover").mkdir()
    (generated / "V002__add_size" / "notes.md").write_text("x")
    before = tree(generated)
    proc = run(generated.parent, "generate", "--check")
    assert_clean_error(proc, 1)
    assert "stale:   V001__create_things/V001__create_things.sql" in proc.stderr
    assert "missing: V002__add_size/manifest.json" in proc.stderr
    assert "extra:   V005__leftover/" in proc.stderr
    assert "extra:   V002__add_size/notes.md" in proc.stderr
    assert "dbdeploy generate" in proc.stderr  # says how to fix it
    assert tree(generated) == before


def test_check_detects_a_spec_change(generated):
    spec = generated.parent / "specs" / "V002_add_size.py"
    spec.write_text(spec.read_text().replace("length(label)", "length(label) + 1"))
    before = tree(generated)
    proc = run(generated.parent, "generate", "--check")
    assert_clean_error(proc, 1)
    assert "stale:   V002__add_size/V002__add_size.sql" in proc.stderr
    assert "V001__" not in proc.stderr
    assert tree(generated) == before


def test_check_without_generated_folder_creates_nothing(project):
    proc = run(project, "generate", "--check")
    assert_clean_error(proc, 1)
    assert "missing: V001__create_things/V001__create_things.sql" in proc.stderr
    assert "missing: V002__add_size/manifest.json" in proc.stderr
    assert not (project / "generated").exists()


# --- bad specs ---------------------------------------------------------------------------

def test_hostile_spec_exits_2_with_one_clear_message_and_writes_nothing(project):
    (project / "specs" / "V003_hostile.py").write_text(HOSTILE)
    for args in (["generate"], ["generate", "--check"]):
        proc = run(project, *args)
        assert_clean_error(proc, 2)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        spec_path = project / "specs" / "V003_hostile.py"
        assert (lines[0].startswith(f"error: {spec_path}: Column.default: ")
                or lines[0].startswith("error: specs/V003_hostile.py: Column.default: ")), lines[0]
        assert "now()); DROP TABLE x; --" in lines[0]
        assert "line 9" in lines[0]
        assert proc.stdout == ""
        assert not (project / "generated").exists()


def test_hostile_spec_leaves_existing_generated_unchanged(generated):
    (generated.parent / "specs" / "V003_hostile.py").write_text(HOSTILE)
    # also make an existing bundle stale: a failing run must not "fix" it half-way
    (generated / "V001__create_things" / "manifest.json").write_text("{}")
    before = tree(generated)
    proc = run(generated.parent, "generate")
    assert_clean_error(proc, 2)
    assert "V003_hostile.py" in proc.stderr and "Column.default" in proc.stderr
    assert tree(generated) == before


@pytest.mark.parametrize("source, fragments", [
    ("migration = (\n", ["V003_bad.py", "syntax error"]),
    ("raise RuntimeError('boom')\n", ["V003_bad.py", "RuntimeError", "boom"]),
    ("from dbdeploy import Nope\n", ["V003_bad.py", "Nope"]),
    ("X = 1\n", ["V003_bad.py", "no Migration"]),
    ("from dbdeploy import *\nm = Migration(version='1', name='dup', operations=[CreateSchema(name='s')])\n",
     ["V003_bad.py", "V001_create_things.py", "version"]),
    ("from dbdeploy import *\nm = Migration(version='3', name='d', operations=[DropIndex(name='app.nope')])\n",
     ["V003_bad.py", "operations[0]", "app.nope"]),
])
def test_bad_specs_exit_2_without_traceback(generated, source, fragments):
    before = tree(generated)
    (generated.parent / "specs" / "V003_bad.py").write_text(source)
    proc = run(generated.parent, "generate")
    assert_clean_error(proc, 2)
    assert proc.stderr.startswith("error: ")
    for fragment in fragments:
        assert fragment in proc.stderr
    assert tree(generated) == before


def test_missing_specs_folder_exits_2(tmp_path):
    proc = run(tmp_path, "generate")
    assert_clean_error(proc, 2)
    assert "specs" in proc.stderr and "does not exist" in proc.stderr
    assert list(tmp_path.iterdir()) == []


# --- usage errors ------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["generate", "--bogus"],
    ["--bogus"],
    ["no-such-command"],
    ["new"],
    ["new", "a", "b"],
])
def test_usage_errors_exit_2_without_traceback(tmp_path, args):
    proc = run(tmp_path, *args)
    assert_clean_error(proc, 2)
    assert proc.stderr.strip()
    assert list(tmp_path.iterdir()) == []


# --- the repository's own examples -------------------------------------------------------

def test_repository_examples_generate_exactly_the_committed_bundles(tmp_path):
    shutil.copytree(ROOT / "specs", tmp_path / "specs", ignore=shutil.ignore_patterns("__pycache__"))
    proc = run(tmp_path, "generate")
    assert proc.returncode == 0, proc.stderr
    produced = tree(tmp_path / "generated")
    committed = tree(ROOT / "generated")
    assert produced, "nothing generated"
    assert sorted(produced) == sorted(committed)
    for rel in produced:
        assert produced[rel] == committed[rel], f"{rel} differs from the committed file"


def test_repository_generated_folder_is_current(tmp_path):
    """`generate --check` against the repository itself (read-only)."""
    proc = run(tmp_path, "generate", "--check", "--specs", str(ROOT / "specs"), "--out", str(ROOT / "generated"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "up to date (3 bundle(s))" in proc.stdout


def test_spec_text_is_self_contained():
    """The fixtures above are real, valid specs (guards against the CLI tests passing vacuously)."""
    namespace: dict = {}
    exec(compile(textwrap.dedent(SPEC_ONE), "SPEC_ONE", "exec"), namespace)
    assert namespace["migration"].version == "001"
