"""SQL smuggled into the table a foreign key references (REFERENCES <table> (...))."""

from dbdeploy import AddForeignKey, ForeignKey, Migration

migration = Migration(
    version="001",
    name="sql_in_fk_reference",
    operations=[
        AddForeignKey(
            table="app.orders",
            foreign_key=ForeignKey(columns=["user_id"], references="app.users(id); DROP TABLE app.users; --",
                                   ref_columns=["id"]),
        ),
    ],
)
