"""Load spec files: each ``specs/*.py`` is imported on its own and its Migration objects collected.

Every failure names the file (and line and field where known) and is raised as SpecError, so
the CLI prints one message instead of a traceback.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from dbdeploy.errors import SpecError, split_fix
from dbdeploy.model.base import recording_sources, stop_recording
from dbdeploy.ops.migration import Migration

# Spec file names are copied into the bundle's SQL comments and its generated Python test file,
# so they are restricted to characters that cannot end a comment or a string there.
_SPEC_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\.py\Z")

MAX_SPEC_FILE_BYTES = 32 * 1024 * 1024
"""A spec file larger than this (32 MiB) is refused before it is imported (README "Limits")."""


@dataclass(frozen=True)
class LoadedMigration:
    migration: Migration
    source: Path
    # the line of ``source`` at which each operation was built (None where unknown), in operation order
    op_lines: tuple[int | None, ...] = ()

    def op_line(self, index: int) -> int | None:
        """The spec line of operation ``index`` (0-based), or None."""
        return self.op_lines[index] if 0 <= index < len(self.op_lines) else None


def load_specs(specs_dir: Path) -> list[LoadedMigration]:
    """All migrations under ``specs_dir``, sorted by version; versions must be unique."""
    specs_dir = Path(specs_dir)
    if not specs_dir.is_dir():
        raise SpecError(f"specs folder {specs_dir} does not exist",
                        fix="create it, or pass --specs DIR (dbdeploy new NAME scaffolds one)")
    loaded: list[LoadedMigration] = []
    for path in sorted(specs_dir.glob("*.py")):
        if path.name.startswith("_"):
            continue
        if not _SPEC_FILE_NAME.match(path.name):
            raise SpecError(
                f"spec file {str(path)!r} has a name with characters other than ASCII letters, digits, "
                "'_', '-' and '.' (the name is copied into the bundle's SQL comments and generated test file)",
                fix="rename the file, e.g. V001_add_users.py")
        if not path.is_file():
            raise SpecError("is not a regular file", file=str(path),
                            fix="remove it, or rename it so that its name does not end in .py")
        size = path.stat().st_size
        if size > MAX_SPEC_FILE_BYTES:
            raise SpecError(f"is {size:,} bytes, more than the {MAX_SPEC_FILE_BYTES:,} bytes (32 MiB) a spec file may "
                            "have (dbdeploy's documented limit)", file=str(path), field="file size",
                            fix="split it into several spec files (migrations), or load bulk data with COPY from a "
                                "file outside the specs")
        built: list = []
        migrations = load_spec_file(path, built)
        lines = {id(model): line for model, line in built}
        loaded += [LoadedMigration(m, path, tuple(lines.get(id(op)) for op in m.operations)) for m in migrations]
    seen: dict[int, LoadedMigration] = {}
    for item in loaded:
        number = int(item.migration.version)
        if number in seen:
            other = seen[number]
            raise SpecError(
                f"version {item.migration.version} is also used by {other.source.name} "
                f"({other.migration.name})", file=str(item.source), field="Migration.version",
                fix="give each migration its own version number (dbdeploy new NAME picks the next one)")
        seen[number] = item
    return sorted(loaded, key=lambda item: int(item.migration.version))


def load_spec_file(path: Path, built: list | None = None) -> list[Migration]:
    """Import one spec file and return its Migration objects. ``built``, when given, receives
    (operation, line) for every operation the file builds (see :func:`dbdeploy.model.base.record_source`)."""
    module_name = f"dbdeploy_spec_{abs(hash(str(path.resolve())))}"
    found, token = recording_sources(str(path))
    try:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise SpecError("cannot be imported as a Python module", file=str(path),
                            fix="give the spec file a .py name and Python content")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except SpecError:
        raise
    except ValidationError as exc:
        raise _validation_error(path, exc) from None
    except SyntaxError as exc:
        raise SpecError(f"Python syntax error at line {exc.lineno}: {exc.msg}", file=str(path),
                        fix="correct the Python syntax") from None
    except SystemExit as exc:
        raise SpecError(f"called sys.exit({exc.code!r}){_line_in(path, exc)} while being imported", file=str(path),
                        fix="remove the sys.exit() call: a spec file only defines Migration objects") from None
    except KeyboardInterrupt:
        raise
    except ImportError as exc:
        fix = ("import only names the DSL provides (see the README)" if exc.name == "dbdeploy"
               else "make the spec file import cleanly (python " + str(path) + ")")
        raise SpecError(f"raised {type(exc).__name__}{_line_in(path, exc)}: {exc}", file=str(path),
                        fix=fix) from None
    except BaseException as exc:  # a spec is user code: any failure must become one clear message
        line = _line_in(path, exc)
        raise SpecError(f"raised {type(exc).__name__}{line}: {exc}", file=str(path),
                        fix="make the spec file import cleanly (python " + str(path) + ")") from None
    finally:
        sys.modules.pop(module_name, None)
        stop_recording(token)
        if built is not None:
            built += found
    migrations = list({id(v): v for v in vars(module).values() if isinstance(v, Migration)}.values())
    if not migrations:
        raise SpecError("defines no Migration at module level", file=str(path),
                        fix="assign a Migration(...) to a module-level name, e.g. migration = Migration(...)")
    return migrations


def _line_in(path: Path, exc: BaseException) -> str:
    target = path.resolve()
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == target]
    return f" at line {frames[-1].lineno}" if frames else ""


# A model-level validator names the part at fault first: "primary_key: ...", "operations[2] (backfill t): ...".
_PATH_PREFIX = re.compile(r"([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+(?:\[\d+\])?)*(?: \([^()]*\))?): (.*)\Z", re.DOTALL)


def _validation_error(path: Path, exc: ValidationError) -> SpecError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    model = exc.title
    if model == "Migration" and _not_an_operation(first):
        return _operation_error(path, exc, errors, first)
    parts = [str(p) for p in first["loc"]]
    message, fix = split_fix(first["msg"].removeprefix("Value error, "))
    found = _PATH_PREFIX.match(message)
    if found and (not parts or found.group(1).startswith((parts[-1] + ".", parts[-1] + "["))):
        # the message names the part more precisely than pydantic's location
        parts, message = parts[:-1] + [found.group(1)], found.group(2)
    field = ".".join([model, *parts])
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return SpecError(f"{message}{more}{_line_in(path, exc)}", file=str(path), field=field,
                     fix=fix or _fix_for(first))


def _not_an_operation(error: dict) -> bool:
    """An entry of Migration.operations that no operation model accepts (pydantic tries each one)."""
    from dbdeploy.ops import OPERATION_TYPES

    loc = error["loc"]
    return (len(loc) >= 3 and loc[0] == "operations" and isinstance(loc[1], int)
            and loc[2] in {t.__name__ for t in OPERATION_TYPES})


def _operation_error(path: Path, exc: ValidationError, errors: list[dict], first: dict) -> SpecError:
    index = first["loc"][1]
    entry = next((e["input"] for e in errors if e["loc"][:2] == ("operations", index) and len(e["loc"]) == 3),
                 first["input"])
    shown = repr(entry).replace("\n", "\\n").replace("\r", "\\r")  # one line, whatever __repr__ does
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    others = [e for e in errors if e["loc"][:2] != ("operations", index)]
    more = f" (and {len(others)} more problem(s))" if others else ""
    return SpecError(
        f"{type(entry).__name__} {shown} is not an operation{more}{_line_in(path, exc)}", file=str(path),
        field=f"Migration.operations[{index}]",
        fix="build each entry with an operation model, e.g. CreateTable(...), AddColumn(...) or "
            "RawSQL(forward=..., rollback=...)")


_TYPE_FIXES = {
    "string_type": "give a string (in quotes)", "int_type": "give a whole number", "int_parsing": "give a whole number",
    "int_from_float": "give a whole number", "bool_type": "give True or False", "bool_parsing": "give True or False",
    "dict_type": "give a dict", "list_type": "give a list",
}


def _fix_for(error: dict) -> str:
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return f"add the required field {error['loc'][-1]}=..." if error["loc"] else "add the missing field"
    if kind == "extra_forbidden":
        return "remove the unknown field (check its spelling against the DSL reference in the README)"
    if kind in _TYPE_FIXES:
        return _TYPE_FIXES[kind]
    if kind in ("model_type", "model_attributes_type"):
        if "class_name" in ctx:
            return f"give a {ctx['class_name']}(...) here"
        return "give the model this field expects (see the DSL reference in the README)"
    bounds = {"greater_than_equal": ("ge", "at least"), "greater_than": ("gt", "more than"),
              "less_than_equal": ("le", "at most"), "less_than": ("lt", "less than")}
    if kind in bounds and bounds[kind][0] in ctx:
        key, words = bounds[kind]
        return f"use a value of {words} {ctx[key]}"
    if kind == "literal_error" and "expected" in ctx:
        return f"use one of {ctx['expected']}"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return "give a value of the expected type (see the DSL reference in the README)"
    return "change the value as the message says (the DSL reference in the README lists what each field accepts)"
