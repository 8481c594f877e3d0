"""Render wearable activity as a vendor's daily JSONL exports: heart rate and steps hourly,
one sleep session a night. Activity declines before progression (the latent `activity_decline`),
uploads arrive late or twice, the export schema changes on a known date, one upload is cut off.

Patients are rendered in chunks with numpy and appended to the day files, so memory stays
bounded at any cohort size; the truth is streamed to Parquet the same way.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .files import batch_folder, stamp_delivery, write_delivered

SCHEMA_V2_FROM = date(2022, 1, 1)
LATENESS_HORIZON_DAYS = 7
CHUNK_PATIENTS = 200
# Share of steps by local hour (0-23): people walk in the day, not at night.
_HOUR_WEIGHTS = np.array(
    [0, 0, 0, 0, 0, 0, 1, 4, 7, 7, 6, 6, 7, 6, 6, 6, 7, 8, 7, 5, 4, 2, 1, 0], dtype=float
)
_HOUR_WEIGHTS /= _HOUR_WEIGHTS.sum()
_NIGHT = np.where(np.arange(24) < 6, -6.0, 0.0)
_EVENTS_PER_DAY = 24 * 2 + 1
_TRUTH_SCHEMA = pa.schema(
    [
        ("device_id", pa.string()),
        ("event_id", pa.string()),
        ("mrn", pa.string()),
        ("event_type", pa.string()),
        ("event_time", pa.timestamp("s")),
        ("end_time", pa.timestamp("s")),
        ("value", pa.float64()),
        ("arrival", pa.date32()),
        ("beyond_horizon", pa.bool_()),
    ]
)


def patient_events(p: dict, rng: np.random.Generator, first_id: int) -> pd.DataFrame:
    """Every event a patient's device records in the wearing window, in recording order."""
    start, end, index = p["wearable_start"], p["wearable_end"], p["index_date"]
    days = (end - start).days
    day_number = np.arange(days)
    after_index = np.maximum(0, day_number - (index - start).days)
    # Activity falls over the pre-index weeks in proportion to the latent decline, and falls
    # further after the index date for patients who will progress.
    level = np.exp(
        -0.35 * p["activity_decline"] * day_number / 56
        - (0.4 * after_index / 28 if p["label"] else 0.0)
    )
    daily = (p["baseline_steps"] * level * rng.lognormal(0, 0.15, days)).astype(np.int64)
    steps = rng.multinomial(daily, _HOUR_WEIGHTS)  # days × 24
    bpm = np.round(p["resting_hr"] + 4 * steps / 600.0 + _NIGHT + rng.normal(0, 2.5, (days, 24)), 1)
    asleep = np.maximum(120, rng.normal(420 - 15 * p["frailty"], 35, days)).astype(np.int64)

    midnight = np.datetime64(start, "s") + day_number.astype("timedelta64[D]")
    hours = midnight[:, None] + (np.arange(24) * 3600).astype("timedelta64[s]")
    # Per day: heart rate and steps for each hour, interleaved, then the night's sleep.
    event_time = np.concatenate(
        [
            np.stack([hours, hours], axis=2).reshape(days, 48),
            (midnight + np.timedelta64(23 * 3600, "s"))[:, None],
        ],
        axis=1,
    )
    end_time = np.concatenate(
        [
            np.stack(
                [np.full((days, 24), np.datetime64("NaT", "s")), hours + np.timedelta64(3600, "s")],
                axis=2,
            ).reshape(days, 48),
            (event_time[:, 48] + (asleep * 60).astype("timedelta64[s]"))[:, None],
        ],
        axis=1,
    )
    value = np.concatenate(
        [
            np.stack([bpm, steps.astype(float)], axis=2).reshape(days, 48),
            asleep[:, None].astype(float),
        ],
        axis=1,
    )
    kinds = np.array(["heart_rate", "steps"] * 24 + ["sleep"], dtype=object)
    n = days * _EVENTS_PER_DAY
    device = p["device_id"]
    return pd.DataFrame(
        {
            "device_id": device,
            "event_id": [f"{device}-{i:07d}" for i in range(first_id, first_id + n)],
            "mrn": p["mrn"],
            "event_type": np.tile(kinds, days),
            "event_time": event_time.reshape(n),
            "end_time": end_time.reshape(n),
            "value": value.reshape(n),
        }
    )


class _Lines:
    """JSON lines of one chunk's events in either export schema, formatted from plain lists
    (per-event pandas or json.dumps would dominate the generator's time)."""

    def __init__(self, events: pd.DataFrame):
        self.device = events.device_id.tolist()
        self.event_id = events.event_id.tolist()
        self.kind = events.event_type.tolist()
        self.value = events.value.tolist()
        as_text = lambda col: np.datetime_as_string(  # noqa: E731
            events[col].to_numpy().astype("datetime64[s]"), unit="s"
        ).tolist()
        self.ts, self.end = as_text("event_time"), as_text("end_time")

    def v1(self, i: int) -> str:
        """The first schema: short names, typed value fields, minutes of sleep."""
        head = f'{{"device": "{self.device[i]}", "id": "{self.event_id[i]}", "ts": "{self.ts[i]}Z"'
        kind, value = self.kind[i], self.value[i]
        if kind == "heart_rate":
            return f'{head}, "type": "hr", "bpm": {value}}}'
        name = "count" if kind == "steps" else "minutes"
        return f'{head}, "type": "{kind}", "end": "{self.end[i]}Z", "{name}": {int(value)}}}'

    def v2(self, i: int, battery: int) -> str:
        """The second schema: renamed fields, value/unit pairs, sleep in seconds, a new field."""
        head = (
            f'{{"schema_version": 2, "device_id": "{self.device[i]}", "event_id": '
            f'"{self.event_id[i]}", "timestamp": "{self.ts[i]}Z", "battery_pct": {battery}'
        )
        kind, value = self.kind[i], self.value[i]
        if kind == "heart_rate":
            return f'{head}, "kind": "heart_rate", "value": {value}, "unit": "count/min"}}'
        amount, unit = (int(value), "count") if kind == "steps" else (int(value) * 60, "s")
        return (
            f'{head}, "kind": "{kind}", "end_timestamp": "{self.end[i]}Z", '
            f'"value": {amount}, "unit": "{unit}"}}'
        )


def _arrivals(events: pd.DataFrame, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Upload day of each event, and the events uploaded a second time (with their day)."""
    n = len(events)
    u = rng.random(n)
    # Most events upload the same or next day; some days late; a few beyond the horizon.
    delay = np.where(
        u < 0.947,
        rng.integers(0, 2, n),
        np.where(u < 0.997, rng.integers(2, 7, n), rng.integers(LATENESS_HORIZON_DAYS + 2, 21, n)),
    )
    day = events.event_time.to_numpy().astype("datetime64[D]")
    arrival = day + delay.astype("timedelta64[D]")
    again = np.flatnonzero(rng.random(n) < 0.01)
    resend = arrival[again] + rng.integers(1, 4, len(again)).astype("timedelta64[D]")
    return arrival, np.stack([again, resend.astype(np.int64)], axis=1) if len(again) else (
        np.empty((0, 2), dtype=np.int64)
    )


def render_exports(cohort: pd.DataFrame, seed: int, folder: Path, truth_path: Path) -> list[dict]:
    """Append daily export files under `folder` and stream the event truth to `truth_path`."""
    rng = np.random.default_rng([seed, 4])
    next_id: dict[str, int] = {}
    written: dict[date, Path] = {}
    batteries: dict[date, int] = {}
    wearers = cohort[cohort.device_id.notna()].sort_values("wearable_start", kind="stable")
    with pq.ParquetWriter(truth_path, _TRUTH_SCHEMA) as truth:
        for first in range(0, len(wearers), CHUNK_PATIENTS):
            frames = []
            for p in wearers.iloc[first : first + CHUNK_PATIENTS].to_dict("records"):
                start = next_id.get(p["device_id"], 1)
                frames.append(patient_events(p, rng, start))
                next_id[p["device_id"]] = start + len(frames[-1])
            events = pd.concat(frames, ignore_index=True)
            arrival, resent = _arrivals(events, rng)
            lateness = (
                arrival.astype("datetime64[s]")
                + np.timedelta64(23 * 3600, "s")
                - events.event_time.to_numpy().astype("datetime64[s]")
            )
            events["arrival"] = arrival
            events["beyond_horizon"] = lateness > np.timedelta64(LATENESS_HORIZON_DAYS, "D")
            truth.write_table(
                pa.Table.from_pandas(events, schema=_TRUTH_SCHEMA, preserve_index=False)
            )
            rows = np.concatenate([np.arange(len(events)), resent[:, 0]])
            days = np.concatenate([arrival.astype(np.int64), resent[:, 1]])
            # Grouped by upload day, shuffled within a day: uploads arrive out of order.
            order = np.lexsort((rng.random(len(rows)), days))
            rows, days = rows[order], days[order]
            lines = _Lines(events)
            bounds = np.flatnonzero(np.diff(days)) + 1
            for block_rows, block_days in zip(
                np.split(rows, bounds), np.split(days, bounds), strict=True
            ):
                day = date(1970, 1, 1) + timedelta(days=int(block_days[0]))
                battery = batteries.setdefault(day, int(rng.integers(20, 100)))
                text = [
                    lines.v2(i, battery) if day >= SCHEMA_V2_FROM else lines.v1(i)
                    for i in block_rows.tolist()
                ]
                # The first chunk that uploads on a day creates its file; later ones append.
                mode = "a" if day in written else "w"
                # Daily exports, pushed in weekly deliveries like every other modality: a
                # delivery is a Dagster partition, and a folder per day gave ~1,000 of them.
                path = written.setdefault(
                    day, folder / batch_folder(day) / f"export-{day.isoformat()}.jsonl"
                )
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, mode) as handle:
                    handle.write("\n".join(text) + "\n")
    files = []
    for day, path in sorted(written.items()):
        stamp_delivery(path, day, hour=23)
        files.append({"path": path, "kind": "export", "expected_status": "ingested"})
    if written:
        # An upload cut off mid-line on one day; the complete export follows it.
        day = sorted(written)[len(written) // 2]
        data = written[day].read_bytes()
        broken = written[day].with_name(f"export-{day.isoformat()}-upload1.jsonl")
        write_delivered(broken, data[: len(data) // 2], day, hour=23)
        files.append({"path": broken, "kind": "truncated", "expected_status": "quarantined"})
    return files
