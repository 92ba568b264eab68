"""An expansion (``online=True``) that no later spec contracts."""

from __future__ import annotations

from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule

ID = "expansion-left-open"
SEVERITY = "warning"
PROBLEM = ("An online rename keeps the old name working beside the new one (a trigger copying every write, or a "
           "view) until a Contract removes it; left open, every write pays for the trigger and the old name stays "
           "in use for good.")
FIX = ("Once no running application uses the old name, add Contract(version=\"<the expanding version>\") to a later "
       "migration.")


def check(ctx: OpContext):
    """Nothing per operation: which expansions stay open is known only after the last spec, so the
    engine reports them from the final state (:func:`dbdeploy.lint.engine.lint_migrations`)."""
    return ()


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
