"""SQL smuggled into a column name that tries to end the column list and start a new statement."""

from dbdeploy import Column, CreateTable, Migration

migration = Migration(
    version="001",
    name="sql_in_column_name",
    operations=[
        CreateTable(
            table="app.users",
            columns=[
                Column(name="id", type="bigint"),
                Column(name='email text); DROP TABLE app.accounts; --', type="text"),
            ],
        ),
    ],
)
