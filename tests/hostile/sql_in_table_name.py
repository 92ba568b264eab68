"""SQL smuggled into a table name: a name that closes the statement and drops another table.

Names are never formatted into SQL, but one that needs quoting is refused outright.
"""

from dbdeploy import Column, CreateTable, Migration

migration = Migration(
    version="001",
    name="sql_in_table_name",
    operations=[
        CreateTable(table="app.users; DROP TABLE app.accounts; --", columns=[Column(name="id", type="bigint")]),
    ],
)
