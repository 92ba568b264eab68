"""Second spec: indexes a column that the table created by the first spec does not have.

Valid on its own (the table is not known while one file is read); refused when all specs are
planned together.
"""

from dbdeploy import CreateIndex, Index, Migration

migration = Migration(
    version="002",
    name="index_unknown_column",
    operations=[CreateIndex(table="app.users", index=Index(columns=["e_mail"]))],
)
