"""``dbdeploy lint``: rules over the specs and over the SQL inside RawSQL operations.

One module per rule in :mod:`dbdeploy.lint.rules` (a kebab-case id, a severity, the problem and the
safe fix), listed in :mod:`dbdeploy.lint.registry`. Error-level findings stop ``dbdeploy generate``
unless the operation allows them with a reason (``allow={"rule-id": "reason"}``), which the
deployment checklist then shows.
"""

from dbdeploy.lint.engine import lint_migrations, lint_specs, refuse_errors
from dbdeploy.lint.model import Finding, LintError, LintReport, Rule
from dbdeploy.lint.registry import BY_ID, RULES

__all__ = ["BY_ID", "RULES", "Finding", "LintError", "LintReport", "Rule", "lint_migrations", "lint_specs",
           "refuse_errors"]
