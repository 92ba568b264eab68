"""SQL smuggled into a constraint name: a quote that ends the name and adds a CHECK (false)."""

from dbdeploy import AddUnique, Migration, Unique

migration = Migration(
    version="001",
    name="sql_in_constraint_name",
    operations=[
        AddUnique(table="app.users", unique=Unique(columns=["email"], name='users_email_key" CHECK (false) --')),
    ],
)
