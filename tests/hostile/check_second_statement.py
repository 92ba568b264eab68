"""A CHECK expression followed by a second statement after a semicolon."""

from dbdeploy import AddCheck, Check, Migration

migration = Migration(
    version="001",
    name="check_second_statement",
    operations=[AddCheck(table="app.users", check=Check(expression="id > 0; DROP TABLE app.users"))],
)
