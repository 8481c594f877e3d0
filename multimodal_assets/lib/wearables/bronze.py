"""Wearables bronze: the canonical event every layout maps to, and its table."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from ..platform.tables import Column, Table, provenance_columns

LATENESS_HORIZON_DAYS = 7
CANONICAL_UNITS = {
    "heart_rate": "count/min",
    "steps": "count",
    "daily_steps": "count",
    "sleep": "min",
    "in_bed": "min",
    "weight": "kg",
    "active_energy": "kcal",
    "workout": "min",
}

_LOCATOR = "Device/event id of the event (device serials identify people)."
WEARABLE_EVENTS = Table(
    layer="bronze",
    name="wearable_events",
    modality="wearables",
    primary_key=("device_id", "event_id"),
    restricted=True,
    append_once=True,
    description="Every wearable event exactly once per (device, event id), as delivered.",
    columns=(
        Column(
            "device_id", "VARCHAR", "Device serial or account id.", "phi", "hipaa", nullable=False
        ),
        Column(
            "event_id", "VARCHAR", "Event id, unique per device.", "phi", "hipaa", nullable=False
        ),
        Column(
            "event_type",
            "VARCHAR",
            "Canonical event type (or the source's own).",
            "none",
            nullable=False,
        ),
        Column(
            "event_time",
            "TIMESTAMP",
            "Start of the event (UTC; Fitbit local time).",
            "phi",
            "hipaa",
            nullable=False,
        ),
        Column("end_time", "TIMESTAMP", "End of an interval event.", "phi", "hipaa"),
        Column("value", "DOUBLE", "Value in `unit`.", "sensitive", "hipaa"),
        Column("unit", "VARCHAR", "Canonical unit for known types.", "none"),
        Column(
            "source_schema",
            "VARCHAR",
            "Layout the event came in (v1, v2, fitbit_*, …).",
            "none",
            nullable=False,
        ),
        Column(
            "extra",
            "JSON",
            "Fields the canonical schema does not know, kept verbatim.",
            "phi",
            "hipaa",
        ),
        Column(
            "received_at",
            "TIMESTAMP",
            "When the delivering file arrived (UTC).",
            "none",
            nullable=False,
        ),
        *provenance_columns(_LOCATOR, "phi"),
    ),
)


def _event(device, event_id, kind, start, value, unit, schema, end=None, extra=None) -> dict:
    return {
        "device_id": device,
        "event_id": event_id,
        "event_type": kind,
        "event_time": start,
        "end_time": end,
        "value": value,
        "unit": unit,
        "source_schema": schema,
        "extra": json.dumps(extra) if extra else None,
        "_source_locator": f"{device}/{event_id}",
    }


def _workout(device: str, start: datetime, seconds: float, schema: str, sport) -> dict:
    """One workout event: its duration in minutes, from a device's session or activity."""
    return _event(
        device,
        f"workout:{start.isoformat()}",
        "workout",
        start,
        seconds / 60,
        "min",
        schema,
        start + timedelta(seconds=seconds),
        {"sport": sport} if sport else None,
    )


def _heart_rate(device: str, when: datetime, bpm: float, schema: str) -> dict:
    """One heart-rate sample of a device's recording (its id: the time, unique per device)."""
    return _event(device, f"hr:{when.isoformat()}", "heart_rate", when, bpm, "count/min", schema)
