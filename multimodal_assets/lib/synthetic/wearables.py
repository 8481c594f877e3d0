"""Render wearable activity as a vendor's daily JSONL exports: heart rate and steps hourly,
one sleep session a night. Activity declines before progression (the latent `activity_decline`),
uploads arrive late or twice, the export schema changes on a known date, one upload is cut off.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from .files import write_delivered

SCHEMA_V2_FROM = date(2022, 1, 1)
LATENESS_HORIZON_DAYS = 7
# Share of waking-hour steps by local hour (0-23): people walk in the day, not at night.
_HOUR_WEIGHTS = np.array(
    [0, 0, 0, 0, 0, 0, 1, 4, 7, 7, 6, 6, 7, 6, 6, 6, 7, 8, 7, 5, 4, 2, 1, 0], dtype=float
)
_HOUR_WEIGHTS /= _HOUR_WEIGHTS.sum()


def _daily_steps(p: dict, day_number: int, post_index_day: int, rng) -> float:
    # Activity falls over the pre-index weeks in proportion to the latent decline, and falls
    # further after the index date for patients who will progress.
    decline = 0.35 * p["activity_decline"] * day_number / 56
    after = 0.4 * max(0, post_index_day) / 28 if p["label"] else 0.0
    return float(p["baseline_steps"] * np.exp(-decline - after) * rng.lognormal(0, 0.15))


def patient_events(p: dict, rng: np.random.Generator, counters: dict[str, int]) -> list[dict]:
    """Every event a patient's device records in the wearing window (canonical truth form)."""
    device = p["device_id"]
    start, end, index = p["wearable_start"], p["wearable_end"], p["index_date"]
    events = []

    def add(kind, at, value, end_at=None):
        counters[device] = counters.get(device, 0) + 1
        events.append(
            {
                "device_id": device,
                "event_id": f"{device}-{counters[device]:07d}",
                "mrn": p["mrn"],
                "event_type": kind,
                "event_time": at,
                "end_time": end_at,
                "value": value,
            }
        )

    for day_number in range((end - start).days):
        day = start + timedelta(days=day_number)
        midnight = datetime(day.year, day.month, day.day)
        steps = rng.multinomial(
            int(_daily_steps(p, day_number, (day - index).days, rng)), _HOUR_WEIGHTS
        )
        for hour in range(24):
            at = midnight + timedelta(hours=hour)
            active = steps[hour] / 600.0
            bpm = p["resting_hr"] + 4 * active + (-6 if hour < 6 else 0) + rng.normal(0, 2.5)
            add("heart_rate", at, round(float(bpm), 1))
            add("steps", at, int(steps[hour]), at + timedelta(hours=1))
        asleep = max(120, int(rng.normal(420 - 15 * p["frailty"], 35)))
        bed = midnight + timedelta(hours=23)
        add("sleep", bed, asleep, bed + timedelta(minutes=asleep))
    return events


def _v1(event: dict) -> dict:
    """The first export schema: short names, typed value fields, minutes of sleep."""
    row = {
        "device": event["device_id"],
        "id": event["event_id"],
        "ts": event["event_time"].isoformat() + "Z",
    }
    if event["event_type"] == "heart_rate":
        row.update(type="hr", bpm=event["value"])
    elif event["event_type"] == "steps":
        row.update(type="steps", end=event["end_time"].isoformat() + "Z", count=event["value"])
    else:
        row.update(type="sleep", end=event["end_time"].isoformat() + "Z", minutes=event["value"])
    return row


def _v2(event: dict, battery: int) -> dict:
    """The second schema: renamed fields, a value/unit pair, sleep in seconds, a new field."""
    row = {
        "schema_version": 2,
        "device_id": event["device_id"],
        "event_id": event["event_id"],
        "timestamp": event["event_time"].isoformat() + "Z",
        "battery_pct": battery,
    }
    if event["event_type"] == "heart_rate":
        row.update(kind="heart_rate", value=event["value"], unit="count/min")
    elif event["event_type"] == "steps":
        row.update(
            kind="steps",
            end_timestamp=event["end_time"].isoformat() + "Z",
            value=event["value"],
            unit="count",
        )
    else:
        row.update(
            kind="sleep",
            end_timestamp=event["end_time"].isoformat() + "Z",
            value=event["value"] * 60,
            unit="s",
        )
    return row


def render_exports(cohort: pd.DataFrame, seed: int, folder) -> tuple[pd.DataFrame, list[dict]]:
    """Write daily export files under `folder`; return the event truth and the file list."""
    rng = np.random.default_rng([seed, 4])
    counters: dict[str, int] = {}
    truth = []
    wearers = cohort[cohort.device_id.notna()].sort_values("wearable_start", kind="stable")
    for p in wearers.to_dict("records"):
        truth.extend(patient_events(p, rng, counters))
    by_arrival: dict[date, list[dict]] = {}
    for event in truth:
        day = event["event_time"].date()
        u = rng.random()
        # Most events upload the same or next day; some days late; a few beyond the horizon.
        delay = (
            int(rng.integers(0, 2))
            if u < 0.947
            else int(rng.integers(2, 7))
            if u < 0.997
            else int(rng.integers(LATENESS_HORIZON_DAYS + 2, 21))
        )
        event["arrival"] = day + timedelta(days=delay)
        by_arrival.setdefault(event["arrival"], []).append(event)
        if rng.random() < 0.01:  # the same event uploaded again a few days later
            by_arrival.setdefault(
                event["arrival"] + timedelta(days=int(rng.integers(1, 4))), []
            ).append(event)
    files = []
    days = sorted(by_arrival)
    corrupt_day = days[len(days) // 2] if days else None
    for day in days:
        events = by_arrival[day]
        order = rng.permutation(len(events))  # uploads arrive out of order
        battery = int(rng.integers(20, 100))
        lines = [
            json.dumps(_v2(events[i], battery) if day >= SCHEMA_V2_FROM else _v1(events[i]))
            for i in order
        ]
        data = ("\n".join(lines) + "\n").encode()
        path = folder / day.isoformat() / f"export-{day.isoformat()}.jsonl"
        write_delivered(path, data, day, hour=23)
        files.append({"path": path, "kind": "export", "expected_status": "ingested"})
        if day == corrupt_day:
            # An upload cut off mid-line the same day; the complete export follows.
            broken = path.with_name(f"export-{day.isoformat()}-upload1.jsonl")
            write_delivered(broken, data[: len(data) // 2], day, hour=23)
            files.append({"path": broken, "kind": "truncated", "expected_status": "quarantined"})
    frame = pd.DataFrame(truth)
    if not frame.empty:
        lateness = pd.to_datetime(frame.arrival) + pd.Timedelta(hours=23) - frame.event_time
        frame["beyond_horizon"] = lateness > pd.Timedelta(days=LATENESS_HORIZON_DAYS)
    return frame, files
