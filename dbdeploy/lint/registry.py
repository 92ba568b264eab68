"""Every lint rule, in the order findings are reported, and the check of a spec's ``allow``."""

from __future__ import annotations

from dbdeploy.lint.model import Rule
from dbdeploy.lint.rules import (
    add_column_rewrite,
    adding_constraint_without_index,
    backfill_without_key,
    ban_truncate,
    changing_column_type,
    constraint_missing_not_valid,
    enum_value_used_in_transaction,
    expansion_left_open,
    fk_without_index,
    irreversible_drop,
    missing_rollback,
    prefer_bigint,
    prefer_identity,
    prefer_jsonb,
    prefer_text,
    prefer_timestamptz,
    raw_sequence_position,
    refresh_materialized_view_without_concurrently,
    renaming_column,
    renaming_table,
    require_concurrent_index_creation,
    require_concurrent_index_deletion,
    security_definer_without_search_path,
    set_not_null_without_check,
    snake_case_names,
    unused_allow,
    volatile_default,
)
from dbdeploy.model.allow import MAX_REASON, check_allow

RULES: tuple[Rule, ...] = tuple(module.RULE for module in (
    # RawSQL: locks and rewrites
    require_concurrent_index_creation,
    require_concurrent_index_deletion,
    constraint_missing_not_valid,
    set_not_null_without_check,
    changing_column_type,
    add_column_rewrite,
    adding_constraint_without_index,
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
    # expand/contract over every spec (reported by the engine after the last one)
    expansion_left_open,
    snake_case_names,
    # issue 13: RawSQL on materialized views
    refresh_materialized_view_without_concurrently,
    # RawSQL: enum labels (issue 13)
    enum_value_used_in_transaction,
    # RawSQL moving a sequence (issue 13: SetSequenceValue, AlterSequence)
    raw_sequence_position,
    # issue 13: functions
    security_definer_without_search_path,
    # about allow={…} itself (checked by the engine)
    unused_allow,
))

BY_ID: dict[str, Rule] = {rule.id: rule for rule in RULES}
UNUSED_ALLOW = BY_ID[unused_allow.ID]
ALLOWABLE = tuple(rule.id for rule in RULES if rule.allowable)

# the check of allow={…} lives below the operations (they validate it); the ids there are these rules'
__all__ = ["ALLOWABLE", "BY_ID", "MAX_REASON", "RULES", "UNUSED_ALLOW", "check_allow"]
