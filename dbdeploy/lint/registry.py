"""Every lint rule, in the order findings are reported, and the check of a spec's ``allow``."""

from __future__ import annotations

from dbdeploy.lint.model import Rule
from dbdeploy.lint.rules import (
    add_column_rewrite,
    backfill_without_key,
    ban_truncate,
    changing_column_type,
    constraint_missing_not_valid,
    fk_without_index,
    irreversible_drop,
    missing_rollback,
    prefer_bigint,
    prefer_identity,
    prefer_jsonb,
    prefer_text,
    prefer_timestamptz,
    renaming_column,
    renaming_table,
    require_concurrent_index_creation,
    require_concurrent_index_deletion,
    set_not_null_without_check,
    unused_allow,
    volatile_default,
)

RULES: tuple[Rule, ...] = tuple(module.RULE for module in (
    # RawSQL: locks and rewrites
    require_concurrent_index_creation,
    require_concurrent_index_deletion,
    constraint_missing_not_valid,
    set_not_null_without_check,
    changing_column_type,
    add_column_rewrite,
    # RawSQL: compatibility and reversibility
    renaming_table,
    renaming_column,
    irreversible_drop,
    ban_truncate,
    missing_rollback,
    # the spec model
    backfill_without_key,
    volatile_default,
    fk_without_index,
    prefer_bigint,
    prefer_identity,
    prefer_timestamptz,
    prefer_jsonb,
    prefer_text,
    # about allow={…} itself (checked by the engine)
    unused_allow,
))

BY_ID: dict[str, Rule] = {rule.id: rule for rule in RULES}
UNUSED_ALLOW = BY_ID[unused_allow.ID]
ALLOWABLE = tuple(rule.id for rule in RULES if rule.allowable)

MAX_REASON = 300
_FIX = " — fix: "    # the marker SpecError splits the fix off at


def check_allow(value: dict[str, str]) -> dict[str, str]:
    """Validate an operation's ``allow``: known, allowable rule ids, each with a one-line reason."""
    for rule_id, reason in value.items():
        rule = BY_ID.get(rule_id)
        if rule is None:
            raise ValueError(f"allow names unknown lint rule {rule_id!r}{_FIX}use one of: {', '.join(ALLOWABLE)}")
        if not rule.allowable:
            raise ValueError(f"allow cannot include {rule_id!r}: dbdeploy cannot work around it{_FIX}{rule.fix}")
        if not reason.strip():
            raise ValueError(f"allow[{rule_id!r}] has an empty reason{_FIX}say why the finding is safe here")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in reason):
            raise ValueError(f"allow[{rule_id!r}]: the reason contains a line break or another control character"
                             f"{_FIX}give the reason as one line of plain text")
        if len(reason) > MAX_REASON:
            raise ValueError(f"allow[{rule_id!r}]: the reason is {len(reason)} characters long"
                             f"{_FIX}keep it under {MAX_REASON} characters (the checklist shows it)")
    return value
