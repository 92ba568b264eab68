"""Load spec files: each ``specs/*.py`` is imported on its own and its Migration objects collected.

Every failure names the file (and line and field where known) and is raised as SpecError, so
the CLI prints one message instead of a traceback.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from dbdeploy.errors import SpecError
from dbdeploy.spec.migration import Migration


@dataclass(frozen=True)
class LoadedMigration:
    migration: Migration
    source: Path


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
        loaded += [LoadedMigration(m, path) for m in load_spec_file(path)]
    seen: dict[int, LoadedMigration] = {}
    for item in loaded:
        number = int(item.migration.version)
        if number in seen:
            other = seen[number]
            raise SpecError(
                f"version {item.migration.version} is also used by {other.source.name} "
                f"({other.migration.name})", file=str(item.source), field="version",
                fix="give each migration its own version number (dbdeploy new NAME picks the next one)")
        seen[number] = item
    return sorted(loaded, key=lambda item: int(item.migration.version))


def load_spec_file(path: Path) -> list[Migration]:
    module_name = f"dbdeploy_spec_{abs(hash(str(path.resolve())))}"
    try:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise SpecError("cannot be imported as a Python module", file=str(path))
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
        raise SpecError(f"called sys.exit({exc.code!r}) while being imported", file=str(path),
                        fix="a spec file must only define Migration objects") from None
    except Exception as exc:  # a spec is user code: any failure must become one clear message
        line = _line_in(path, exc)
        raise SpecError(f"raised {type(exc).__name__}{line}: {exc}", file=str(path),
                        fix="make the spec file import cleanly (python " + str(path) + ")") from None
    finally:
        sys.modules.pop(module_name, None)
    migrations = list({id(v): v for v in vars(module).values() if isinstance(v, Migration)}.values())
    if not migrations:
        raise SpecError("defines no Migration at module level", file=str(path),
                        fix="assign a Migration(...) to a module-level name, e.g. migration = Migration(...)")
    return migrations


def _line_in(path: Path, exc: BaseException) -> str:
    target = path.resolve()
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == target]
    return f" at line {frames[-1].lineno}" if frames else ""


def _validation_error(path: Path, exc: ValidationError) -> SpecError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    model = exc.title
    loc = ".".join(str(p) for p in first["loc"])
    field = f"{model}.{loc}" if loc else model
    message = first["msg"].removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return SpecError(f"{message}{more}{_line_in(path, exc)}", file=str(path), field=field,
                     fix=_fix_for(first))


def _fix_for(error: dict) -> str | None:
    kind = error.get("type", "")
    if kind == "missing":
        return "add the missing field"
    if kind == "extra_forbidden":
        return "remove the unknown field (check its spelling against the DSL reference in the README)"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return "give a value of the expected type"
    return None  # validators' own messages already say what to change
