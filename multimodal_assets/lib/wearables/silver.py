"""Wearables silver: events linked to patients through device use, within the lateness horizon."""

from __future__ import annotations

from ..platform.tables import RESEARCH_KEY as RK
from ..platform.tables import Column, Table, provenance_columns
from .bronze import _LOCATOR, CANONICAL_UNITS, LATENESS_HORIZON_DAYS

# ---- silver and gold ----------------------------------------------------------------------
_B = "bronze.wearable_events"


_LINKED = """
FROM bronze.wearable_events e
JOIN silver.device_use d ON d.device_id = e.device_id
 AND e.event_time >= d.period_start AND e.event_time < d.period_end + INTERVAL 1 DAY
"""
_ON_TIME = f"e.received_at - e.event_time <= INTERVAL {LATENESS_HORIZON_DAYS} DAY"

EVENTS_SQL = f"""
SELECT d.research_key, e.event_type, e.event_time, e.end_time,
       CAST(e.event_time AS DATE) AS event_date, e.value, e.unit, e.source_schema,
       date_diff('second', e.event_time, e.received_at) / 3600.0 AS hours_late,
       e._source_sha256, e._source_locator, $run_id AS _run_id
{_LINKED}
WHERE {_ON_TIME}
"""


EVENTS = Table(
    layer="silver",
    name="wearable_events",
    modality="wearables",
    primary_key=("_source_locator",),
    partition_column="event_date",
    description="Canonical wearable events linked to patients, by event day (within the "
    "lateness horizon).",
    columns=(
        RK,
        Column(
            "event_type",
            "VARCHAR",
            "Canonical event type.",
            "none",
            nullable=False,
            allowed=tuple(CANONICAL_UNITS),
        ),
        Column("event_time", "TIMESTAMP", "Start of the event.", "phi", "hipaa", nullable=False),
        Column("end_time", "TIMESTAMP", "End of an interval event.", "phi", "hipaa"),
        Column(
            "event_date",
            "DATE",
            "Day partition (date of event_time).",
            "phi",
            "hipaa",
            nullable=False,
        ),
        Column("value", "DOUBLE", "Value in `unit`.", "sensitive", "hipaa"),
        Column("unit", "VARCHAR", "Canonical unit.", "none"),
        Column("source_schema", "VARCHAR", "Layout the event came in.", "none"),
        Column("hours_late", "DOUBLE", "Hours between the event and its file's arrival.", "none"),
        *provenance_columns(_LOCATOR, "phi"),
    ),
    build_sql=EVENTS_SQL,
)

# Events kept in bronze but not published: no device-use link, or later than the horizon.
EVENT_COVERAGE_SQL = f"""
SELECT
  (SELECT count(*) FROM bronze.wearable_events) AS bronze_events,
  (SELECT count(*) {_LINKED}) AS linked_events,
  (SELECT count(*) {_LINKED} WHERE NOT ({_ON_TIME})) AS beyond_lateness_horizon
"""
