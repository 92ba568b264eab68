"""The only place that quotes identifiers and literals and parses SQL from specs.

Everything else builds SQL from :mod:`psycopg.sql` composables returned here, so no SQL is ever
string-formatted from user input.
"""

from dbdeploy.sql.parse import (
    Expression,
    IndexElement,
    SqlParseError,
    TrustedText,
    TypeName,
    column_default,
    is_probably_volatile,
    is_transaction_control,
    parse_expression,
    parse_index_element,
    parse_statements,
    parse_type,
    statement_needs_autocommit,
)
from dbdeploy.sql.quote import (
    SQL,
    Composable,
    dollar_quote,
    dollar_quoted,
    ident,
    line_comment,
    literal,
    qualified,
    regclass,
    regclass_literal,
    regclass_of,
    render,
)

__all__ = [
    "IndexElement",
    "SqlParseError",
    "is_transaction_control",
    "parse_index_element",
    "statement_needs_autocommit",
    "SQL",
    "Composable",
    "Expression",
    "TypeName",
    "TrustedText",
    "column_default",
    "dollar_quote",
    "dollar_quoted",
    "ident",
    "is_probably_volatile",
    "line_comment",
    "literal",
    "parse_expression",
    "parse_statements",
    "parse_type",
    "qualified",
    "regclass",
    "regclass_literal",
    "regclass_of",
    "render",
]
