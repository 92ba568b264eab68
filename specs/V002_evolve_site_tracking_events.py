"""V002: evolve the populated events table without blocking the tracker that writes to it."""

from dbdeploy import (
    AddCheck,
    AddColumn,
    AddForeignKey,
    AddUnique,
    Backfill,
    Check,
    Column,
    CreateIndex,
    CreateTable,
    ForeignKey,
    Index,
    Migration,
    SeedRows,
    Unique,
)

EVENTS = "raw.site_tracking_events_r"

migration = Migration(
    version="002",
    name="evolve_site_tracking_events",
    description="Typed event_type and a stable event_uuid on events; known record sources as a lookup table.",
    operations=[
        CreateTable(
            table="raw.record_sources",
            columns=[
                Column(name="source_code", type="text"),
                Column(name="description", type="text", nullable=False),
            ],
            primary_key=["source_code"],
        ),
        SeedRows(
            table="raw.record_sources",
            conflict_columns=["source_code"],
            rows=[
                {"source_code": "site_tracker", "description": "JavaScript site tracker"},
                {"source_code": "mobile_sdk", "description": "Mobile SDK"},
            ],
        ),
        # NOT NULL without a default: added nullable, filled by the Backfill below, then made
        # NOT NULL through a validated CHECK (no long ACCESS EXCLUSIVE scan).
        AddColumn(table=EVENTS, column=Column(name="event_type", type="text", nullable=False)),
        Backfill(
            table=EVENTS,
            set={"event_type": "coalesce(raw_payload ->> 'event_type', 'unknown')"},
            where="event_type IS NULL",
            batch_size=5000,
        ),
        # Volatile default: existing rows are filled in batches, new rows get the default.
        AddColumn(table=EVENTS, column=Column(name="event_uuid", type="uuid", nullable=False,
                                              default="gen_random_uuid()"),
                  allow={"volatile-default": "every existing event needs its own uuid before the unique "
                                             "constraint below; the batched fill of all rows is intended"}),
        CreateIndex(table=EVENTS, index=Index(name="idx_site_tracking_events_r_type_time",
                                              columns=["event_type", "received_timestamp"])),
        AddCheck(table=EVENTS, check=Check(name="chk_site_tracking_events_r_event_type",
                                           expression="event_type <> ''")),
        AddForeignKey(table=EVENTS, foreign_key=ForeignKey(
            name="fk_site_tracking_events_r_source", columns=["record_source"],
            references="raw.record_sources", ref_columns=["source_code"]),
            allow={"fk-without-index": "record_sources is a small lookup table whose rows are never deleted or "
                                       "re-keyed; an index on the few values of record_source would only slow "
                                       "the tracker's inserts"}),
        AddUnique(table=EVENTS, unique=Unique(name="uq_site_tracking_events_r_event_uuid",
                                              columns=["event_uuid"])),
    ],
)
