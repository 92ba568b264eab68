"""An ``allow`` entry that matches no finding of its operation.

Checked by the engine after every other rule has run on the operation (see
:func:`dbdeploy.lint.engine.lint_migrations`); this module only describes it.
"""

from __future__ import annotations

from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule

ID = "unused-allow"
SEVERITY = "warning"
PROBLEM = ("The operation allows a rule that does not fire on it: the allowance (and its reason, which the "
           "deployment checklist shows) is stale or on the wrong operation.")
FIX = "Remove the entry from allow={…}, or move it to the operation the finding is about."


def check(ctx: OpContext):
    return ()


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check, allowable=False)
