"""Inert: quotes, backslashes and SQL in seed values, comments and the description.

Values are composed as literals (psycopg), so `O'Reilly\\'; DROP TABLE pwned; --` stays one
string; the description's lines become SQL comment lines, so its newline cannot start a statement.
"""

from dbdeploy import Column, CreateSchema, CreateTable, Migration, SeedRows

PAYLOAD = "O'Reilly\\'; DROP TABLE pwned; -- \"quoted\" E'\\x41' $$ $a$"

migration = Migration(
    version="001",
    name="quotes_and_backslashes_in_values",
    description="Authors.\nDROP TABLE pwned;\r\nDROP TABLE pwned; --\u2028DROP TABLE pwned;",
    operations=[
        CreateSchema(name="app"),
        CreateTable(table="app.authors", columns=[
            Column(name="code", type="text"),
            Column(name="name", type="text", comment=PAYLOAD),
            Column(name="meta", type="jsonb"),
        ], primary_key=["code"], comment=PAYLOAD),
        SeedRows(table="app.authors", rows=[
            {"code": PAYLOAD, "name": PAYLOAD, "meta": {PAYLOAD: [PAYLOAD, 1, None]}},
            {"code": "b\\", "name": "'", "meta": None},
        ], conflict_columns=["code"]),
    ],
)
