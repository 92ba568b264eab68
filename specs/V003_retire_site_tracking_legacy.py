"""V003: a destructive change, made reversible: every dropped thing can be brought back."""

from dbdeploy import DropColumn, DropIndex, DropTable, Migration

migration = Migration(
    version="003",
    name="retire_site_tracking_legacy",
    description="Remove the unused error_message column, the batch index and the legacy sessions table.",
    operations=[
        DropColumn(table="raw.site_tracking_events_r", column="error_message"),
        DropIndex(name="raw.idx_site_tracking_events_r_batch"),
        DropTable(table="raw.site_tracking_sessions_r"),
    ],
)
