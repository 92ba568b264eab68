"""The executor runs without the spec machinery (issue 11): `dbdeploy apply`, `rollback`, `status` and
`verify` read only the bundle contract (dbdeploy.bundle), so a deploy host needs neither pydantic nor
Jinja2, and none of dbdeploy's generate-time packages is imported.

Each check runs in a fresh interpreter (a test process has long since imported everything): the
modules behind the commands are imported, and the commands are really run against a database, with a
``sitecustomize`` that writes ``sys.modules`` to a file when the interpreter exits.

pydantic: the CLI framework itself (Typer 0.29 requires pydantic and imports it to convert option
values) loads it when a command runs, so the commands' checks allow pydantic only when the installed
Typer requires it; the import check allows nothing.

pglast: none of these commands loads it. Running a bundle's SQL (apply, rollback, verify's bundle
check, the ``--dry-run`` plan) splits it as psql does by the statement index ``generate`` recorded in
the manifest (:mod:`dbdeploy.bundle.statement_index`); only a bundle without it (an older dbdeploy) is
split with PostgreSQL's own lexer, pglast's C scanner (:func:`dbdeploy.sql.psql.scan`), loaded then —
and still never dbdeploy's parser module (:mod:`dbdeploy.sql.parse`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from importlib.metadata import requires
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DBDEPLOY = Path(sys.executable).parent / "dbdeploy"

FORBIDDEN_PACKAGES = ("pydantic", "pglast", "jinja2")
FORBIDDEN_DBDEPLOY = ("dbdeploy.ops", "dbdeploy.model", "dbdeploy.plan", "dbdeploy.render", "dbdeploy.lint",
                      "dbdeploy.sql.parse")
EXECUTOR_MODULES = ("dbdeploy.cli.app", "dbdeploy.cli.deploy_commands", "dbdeploy.executor.deploy",
                    "dbdeploy.executor.inspect")

SITECUSTOMIZE = textwrap.dedent('''\
    import atexit, os, sys

    def _dump():
        with open(os.environ["DBDEPLOY_MODULES_OUT"], "w") as out:
            out.write("\\n".join(sorted(sys.modules)))

    atexit.register(_dump)
    ''')


# pydantic modules loaded because the CLI framework needs them, not because dbdeploy does
TYPER_NEEDS = ("pydantic", "pydantic_core") if any(r.split()[0].startswith("pydantic")
                                                   for r in requires("typer") or ()) else ()


def _forbidden(modules: list[str], allow: tuple[str, ...] = ()) -> list[str]:
    """The loaded modules that are (in) a forbidden package, except those under ``allow``."""
    roots = [*FORBIDDEN_PACKAGES, *FORBIDDEN_DBDEPLOY]
    found = [m for m in modules if any(m == r or m.startswith(r + ".") for r in roots)]
    return [m for m in found if not any(m == a or m.startswith(a + ".") for a in allow)]


def _env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    out = tmp_path / "modules.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "DBDEPLOY"))}
    env.update(PYTHONPATH=str(hook), DBDEPLOY_MODULES_OUT=str(out), NO_COLOR="1", COLUMNS="200", TERM="dumb")
    return env, out


def _modules_of(command: list[str], cwd: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    env, out = _env(tmp_path)
    out.unlink(missing_ok=True)
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert out.exists(), f"no module list written: {proc.stderr}"
    return proc, out.read_text().split("\n")


def test_the_executor_modules_import_none_of_the_spec_machinery(tmp_path: Path) -> None:
    code = "import " + ", ".join(EXECUTOR_MODULES)
    proc, modules = _modules_of([sys.executable, "-c", code], tmp_path, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "dbdeploy.executor.deploy" in modules
    bad = _forbidden(modules)
    assert not bad, f"importing {', '.join(EXECUTOR_MODULES)} loaded forbidden modules: {', '.join(bad)}"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with the repository's generated bundles (V001-V003) and no specs."""
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copytree(ROOT / "generated", folder / "generated")
    return folder


def test_status_loads_none_of_the_spec_machinery(fresh_db, project: Path, tmp_path: Path) -> None:
    proc, modules = _modules_of([str(DBDEPLOY), "status", "--dsn", fresh_db.dsn], project, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "create_site_tracking_raw_layer" in proc.stdout and "dbdeploy.executor.inspect" in modules
    bad = _forbidden(modules, allow=TYPER_NEEDS)
    assert not bad, f"`dbdeploy status` loaded forbidden modules: {', '.join(bad)}"


def test_apply_verify_rollback_load_no_pglast(fresh_db, project: Path, tmp_path: Path) -> None:
    """The deploy commands that read a bundle's SQL split it by the manifest's statement index: they load
    neither pglast nor anything else forbidden."""
    dsn = fresh_db.dsn
    for args in (["apply", "--dry-run"], ["apply", "--to", "1"], ["verify"], ["rollback", "--to", "0"]):
        proc, modules = _modules_of([str(DBDEPLOY), *args, "--dsn", dsn], project, tmp_path)
        assert proc.returncode == 0, (args, proc.stdout + proc.stderr)
        bad = _forbidden(modules, allow=TYPER_NEEDS)
        assert not bad, f"`dbdeploy {' '.join(args)}` loaded forbidden modules: {', '.join(bad)}"


def test_a_bundle_without_the_statement_index_is_split_with_the_lexer(fresh_db, project: Path,
                                                                      tmp_path: Path) -> None:
    """A manifest of an older dbdeploy (no ``statements``) still applies and rolls back: its files are
    split with PostgreSQL's lexer, which loads pglast's scanner and nothing else forbidden."""
    for manifest in (project / "generated").glob("*/manifest.json"):
        data = json.loads(manifest.read_text())
        del data["statements"]
        manifest.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    dsn = fresh_db.dsn
    for args in (["apply", "--to", "1"], ["rollback", "--to", "0"]):
        proc, modules = _modules_of([str(DBDEPLOY), *args, "--dsn", dsn], project, tmp_path)
        assert proc.returncode == 0, (args, proc.stdout + proc.stderr)
        assert "pglast.parser" in modules, args
        bad = _forbidden(modules, allow=("pglast", *TYPER_NEEDS))
        assert not bad, f"`dbdeploy {' '.join(args)}` loaded forbidden modules: {', '.join(bad)}"


EDGE_TEXTS = ["a\n'x\ny'\n b", "a\n\"q\nz\" c\n d", "-- it's\nx\n'y'", "'it''s\nthere'\nb", "x\n'unterminated\nz",
              "e'a\\'\nb'\nc", "x\n$$a\nb$$\nc", "/* a\n*/ b\nc", "'a'\n'b'\nc", "\"\"\nx", "a - b\n-- c\nd--e\n'f'"]


def test_indent_without_the_lexer_finds_the_lexers_multiline_tokens() -> None:
    """psql.indent's pure path (no pglast: the executor's trust check) agrees with the lexer on every
    statement of the committed bundles and goldens, and leaves what it cannot decide to the lexer."""
    from dbdeploy.sql import psql

    texts = list(EDGE_TEXTS)
    for path in [*ROOT.glob("generated/**/*.sql"), *ROOT.glob("tests/golden/**/*.sql")]:
        text = path.read_text(encoding="utf-8")
        texts += [text, *(s.text for s in psql.statements(text))]
    decided = 0
    for text in texts:
        spans = psql._plain_spans(text)
        if spans is None:
            continue
        decided += 1
        lexed = [(t.start, t.end) for t in psql.scan(text) if text.find("\n", t.start, t.end + 1) >= 0]
        assert spans == lexed, text[:200]
    assert decided > 100


def test_the_allow_list_below_the_operations_is_the_lint_registry() -> None:
    """ops validate allow={…} with dbdeploy.model.allow (no import of the lint rules); its ids and fixes
    are the registry's."""
    from dbdeploy.lint import registry
    from dbdeploy.model import allow

    assert allow.ALLOWABLE == registry.ALLOWABLE
    assert {r.id: r.fix for r in registry.RULES if not r.allowable} == allow.NOT_ALLOWABLE


def test_import_linter_contracts_hold() -> None:
    """pyproject.toml's [tool.importlinter] contracts (the layers and the executor's forbidden imports)."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    if not lint_imports.exists():
        pytest.skip("import-linter is not installed (the test extra has it)")
    proc = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
