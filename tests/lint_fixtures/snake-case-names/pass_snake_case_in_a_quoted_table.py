"""An existing ORM table addressed by its quoted mixed-case name; everything created in it is snake_case."""

from dbdeploy import AddColumn, AddForeignKey, Column, CreateIndex, ForeignKey, Index, Migration

change = Migration(
    version="001",
    name="change",
    operations=[
        AddColumn(table='public."AspNetUsers"', column=Column(name="display_name", type="text")),
        CreateIndex(table='public."AspNetUsers"', index=Index(columns=['"Email"'], name="aspnet_users_email_idx")),
        AddForeignKey(table='public."AspNetUsers"', foreign_key=ForeignKey(
            columns=['"RoleId"'], references='public."AspNetRoles"', ref_columns=['"Id"'],
            name="aspnet_users_role_fkey")),
    ],
)
