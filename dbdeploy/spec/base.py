"""Pydantic plumbing shared by every spec model: strict, frozen, and validated at build time."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from dbdeploy.spec import names
from dbdeploy.sql import SqlParseError, parse_expression, parse_index_element, parse_type


class SpecModel(BaseModel):
    """Base for every DSL model: unknown fields are errors, and models are immutable once built."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, validate_default=True)


def _shown(value: str) -> str:
    """``value`` for an error message: its repr, cut to 80 characters (a 100 kB expression must not
    fill the terminal)."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}… ({len(value):,} characters)"


def _expr(value: str) -> str:
    try:
        return parse_expression(value).text
    except SqlParseError as exc:
        raise ValueError(f"invalid SQL expression {_shown(value)}: {exc}") from None


def _type(value: str) -> str:
    try:
        return parse_type(value).text
    except SqlParseError as exc:
        raise ValueError(f"invalid PostgreSQL type {_shown(value)}: {exc}") from None


def _index_key(value: str) -> str:
    if isinstance(value, str) and value.strip() and names._IDENTIFIER.match(value):
        return names.check_identifier(value, "index column")
    try:
        return parse_index_element(value).text
    except SqlParseError as exc:
        raise ValueError(f"invalid index key {_shown(value)}: {exc}") from None


def _unique_list(values: list[str]) -> list[str]:
    seen = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{value!r} is listed twice — fix: list each column once")
        seen.add(value)
    return values


def _non_empty(values: list) -> list:
    if not values:
        raise ValueError("must not be empty — fix: list at least one column")
    return values


def _free_text(value: str) -> str:
    """Comments and descriptions: any text PostgreSQL can store (no NUL byte)."""
    if "\x00" in value:
        raise ValueError("contains a NUL byte, which PostgreSQL text cannot hold — fix: remove the NUL byte (\\x00)")
    return value


Identifier = Annotated[str, AfterValidator(lambda v: names.check_identifier(v, "name"))]
TableName = Annotated[str, AfterValidator(names.check_table_name)]
SqlExpression = Annotated[str, AfterValidator(_expr)]
SqlType = Annotated[str, AfterValidator(_type)]
IndexKey = Annotated[str, AfterValidator(_index_key)]
ColumnList = Annotated[list[Identifier], AfterValidator(_non_empty), AfterValidator(_unique_list)]
FreeText = Annotated[str, AfterValidator(_free_text)]
