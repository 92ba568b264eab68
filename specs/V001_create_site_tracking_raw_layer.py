"""V001: the seed example's raw layer for site tracking events."""

from dbdeploy import (
    Check,
    Column,
    CreateSchema,
    CreateTable,
    ForeignKey,
    Index,
    Migration,
    RequireExtension,
)

migration = Migration(
    version="001",
    name="create_site_tracking_raw_layer",
    description="Raw layer for site tracking events: one row per event as received from the tracker.",
    operations=[
        RequireExtension(name="plpgsql"),
        CreateSchema(name="raw"),
        CreateTable(
            table="raw.site_tracking_events_r",
            comment="Site tracking events exactly as received (raw layer).",
            columns=[
                Column(name="raw_event_id", type="bigint", identity=True),
                Column(name="tenant_hk", type="bytea", comment="Hash key of the tenant (auth.tenant_h)."),
                Column(name="api_key_hk", type="bytea"),
                Column(name="received_timestamp", type="timestamptz", nullable=False, default="now()"),
                Column(name="client_ip", type="inet"),
                Column(name="user_agent", type="text"),
                Column(name="raw_payload", type="jsonb", nullable=False),
                Column(name="batch_id", type="text"),
                Column(name="processing_status", type="text", nullable=False, default="'PENDING'"),
                Column(name="error_message", type="text"),
                Column(name="retry_count", type="integer", nullable=False, default="0"),
                Column(name="record_source", type="text", nullable=False, default="'site_tracker'"),
            ],
            primary_key=["raw_event_id"],
            foreign_keys=[
                # auth.tenant_h belongs to another team's migration: skip (NOTICE) until it exists.
                ForeignKey(columns=["tenant_hk"], references="auth.tenant_h", ref_columns=["tenant_hk"],
                           optional=True, name="fk_site_tracking_events_r_tenant"),
            ],
            checks=[
                Check(name="chk_site_tracking_events_r_status",
                      expression="processing_status IN ('PENDING', 'PROCESSING', 'PROCESSED', 'ERROR')"),
                Check(name="chk_site_tracking_events_r_retries", expression="retry_count >= 0"),
            ],
            indexes=[
                Index(name="idx_site_tracking_events_r_status_time",
                      columns=["processing_status", "received_timestamp"]),
                Index(name="idx_site_tracking_events_r_tenant_time", columns=["tenant_hk", "received_timestamp"]),
                Index(name="idx_site_tracking_events_r_batch", columns=["batch_id"],
                      where="batch_id IS NOT NULL"),
                Index(name="idx_site_tracking_events_r_payload", columns=["raw_payload"], method="gin"),
            ],
        ),
        CreateTable(
            table="raw.site_tracking_sessions_r",
            comment="Legacy per-session rollup; replaced by queries over events (dropped in V003).",
            columns=[
                Column(name="session_id", type="text"),
                Column(name="first_seen", type="timestamptz", nullable=False, default="now()"),
                Column(name="event_count", type="integer", nullable=False, default="0"),
            ],
            primary_key=["session_id"],
            checks=[Check(expression="event_count >= 0")],
        ),
    ],
)
