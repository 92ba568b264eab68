"""The ``allow={rule id: reason}`` an operation may carry: which lint rule ids exist and which of them
a spec may allow, checked where the operation is validated (:mod:`dbdeploy.ops.base`) without importing
the lint rules (which import the operations). :mod:`dbdeploy.lint.registry` re-exports the check, and
tests/test_layers.py asserts these ids are exactly the registry's rules.
"""

from __future__ import annotations

# the rules a spec may allow, in the registry's order (the order `use one of:` lists them)
ALLOWABLE: tuple[str, ...] = (
    "require-concurrent-index-creation", "require-concurrent-index-deletion", "constraint-missing-not-valid",
    "set-not-null-without-check", "changing-column-type", "add-column-rewrite", "adding-constraint-without-index",
    "renaming-table",
    "renaming-column", "irreversible-drop", "ban-truncate", "missing-rollback", "volatile-default",
    "fk-without-index", "prefer-bigint", "prefer-identity", "prefer-timestamptz", "prefer-jsonb", "prefer-text",
    "expansion-left-open", "snake-case-names",
    "refresh-materialized-view-without-concurrently",
    "enum-value-used-in-transaction",
    "raw-sequence-position",
    "security-definer-without-search-path",
)
# the rules dbdeploy cannot work around → their fix (the rule's own FIX text)
NOT_ALLOWABLE: dict[str, str] = {
    "backfill-without-key": ("Set key=[…] to the table's primary key or another unique, NOT NULL, indexed column "
                             "list, e.g. Backfill(table=…, set={…}, key=[\"id\"])."),
    "unused-allow": "Remove the entry from allow={…}, or move it to the operation the finding is about.",
}

MAX_REASON = 300
_FIX = " — fix: "    # the marker SpecError splits the fix off at


def check_allow(value: dict[str, str]) -> dict[str, str]:
    """Validate an operation's ``allow``: known, allowable rule ids, each with a one-line reason of at
    most :data:`MAX_REASON` characters. Returns ``value``; raises ValueError ending in ``— fix: …``."""
    for rule_id, reason in value.items():
        if rule_id in NOT_ALLOWABLE:
            raise ValueError(f"allow cannot include {rule_id!r}: dbdeploy cannot work around it"
                             f"{_FIX}{NOT_ALLOWABLE[rule_id]}")
        if rule_id not in ALLOWABLE:
            raise ValueError(f"allow names unknown lint rule {rule_id!r}{_FIX}use one of: {', '.join(ALLOWABLE)}")
        if not reason.strip():
            raise ValueError(f"allow[{rule_id!r}] has an empty reason{_FIX}say why the finding is safe here")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in reason):
            raise ValueError(f"allow[{rule_id!r}]: the reason contains a line break or another control character"
                             f"{_FIX}give the reason as one line of plain text")
        if len(reason) > MAX_REASON:
            raise ValueError(f"allow[{rule_id!r}]: the reason is {len(reason)} characters long"
                             f"{_FIX}keep it under {MAX_REASON} characters (the checklist shows it)")
    return value
