"""SQL smuggled into a foreign key's ON DELETE action, which is keyword text, not a name."""

from dbdeploy import AddForeignKey, ForeignKey, Migration

migration = Migration(
    version="001",
    name="sql_in_on_delete",
    operations=[
        AddForeignKey(
            table="app.orders",
            foreign_key=ForeignKey(columns=["user_id"], references="app.users", ref_columns=["id"],
                                   on_delete="CASCADE; DROP TABLE app.users; --"),
        ),
    ],
)
