"""Wearables: table declarations, parsers for every delivered layout, and the feature SQL.

Layouts: the vendor's JSONL exports (schema v1 and v2), Fitbit/Fitabase CSV exports (heart
rate seconds, minute steps narrow and wide, hourly steps, daily activity, sleep, weight) and
Apple Health `export.xml`/`export.zip`. All map to one canonical event; fields we do not know
are kept in `extra`, never dropped. Parsed with the standard library: each layout is a few
columns, and no maintained library reads all of them.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import re
import zipfile
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from .ingest import PartlyRead, QuarantineError, mostly_bad
from .tables import RESEARCH_KEY as RK
from .tables import Column, Table, provenance_columns

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
    asset_key=("wearables", "wearable_events"),
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


# ---- vendor JSONL ---------------------------------------------------------------------------
# Read by Arrow's JSON reader and mapped by DuckDB: tens of millions of events a run do not go
# through Python objects.
_V1 = ("device", "id", "ts", "type", "end", "bpm", "count", "minutes")
_V2 = (
    "schema_version",
    "device_id",
    "event_id",
    "timestamp",
    "kind",
    "end_timestamp",
    "value",
    "unit",
)
_TIME_FIELDS = ("ts", "end", "timestamp", "end_timestamp")
_JSONL_SCHEMA = pa.schema(
    [(f, pa.timestamp("us", tz="UTC")) for f in _TIME_FIELDS]
    + [(f, pa.string()) for f in ("device", "id", "type", "device_id", "event_id", "kind", "unit")]
    + [(f, pa.float64()) for f in ("bpm", "count", "minutes", "value")]
)
_V1_SQL = """
SELECT device AS device_id, id AS event_id,
       CASE type WHEN 'hr' THEN 'heart_rate' ELSE type END AS event_type,
       ts AS event_time, "end" AS end_time,
       CASE type WHEN 'hr' THEN bpm WHEN 'steps' THEN "count" WHEN 'sleep' THEN minutes END
           AS value,
       CASE type WHEN 'hr' THEN 'count/min' WHEN 'steps' THEN 'count' WHEN 'sleep' THEN 'min'
       END AS unit,
       'v1' AS source_schema, {extra} AS extra
FROM raw
"""
_V2_SQL = """
SELECT device_id, event_id, kind AS event_type, "timestamp" AS event_time,
       end_timestamp AS end_time,
       CASE WHEN kind = 'sleep' AND unit = 's' THEN value / 60 ELSE value END AS value,
       CASE WHEN kind = 'sleep' THEN 'min' ELSE unit END AS unit,
       'v2' AS source_schema, {extra} AS extra
FROM raw
"""


@functools.cache
def _mapper() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB per process for mapping batches (a new one costs ~40 ms)."""
    return duckdb.connect()


# pyarrow's JSON reader recurses without a limit: a line nested ~10,000 deep crashes the
# process (SIGSEGV), taking the run with it. Vendor exports nest 2 or 3 levels.
MAX_JSON_NESTING = 64


def _max_nesting(data: bytes, chunk: int = 1 << 22) -> int:
    """An upper bound on the bracket nesting of JSON text (brackets inside strings count too),
    with whole-array operations, chunk by chunk."""
    import numpy as np

    depth = deepest = 0
    for start in range(0, len(data), chunk):
        codes = np.frombuffer(
            data, dtype=np.uint8, count=min(chunk, len(data) - start), offset=start
        )
        steps = np.isin(codes, (0x5B, 0x7B)).astype(np.int32) - np.isin(codes, (0x5D, 0x7D))
        running = depth + np.cumsum(steps)
        if running.size:
            deepest, depth = max(deepest, int(running.max())), int(running[-1])
    return deepest


def _read_events(data: bytes) -> pa.Table:
    return pa_json.read_json(
        io.BytesIO(data),
        parse_options=pa_json.ParseOptions(
            explicit_schema=_JSONL_SCHEMA, unexpected_field_behavior="infer"
        ),
    )


def _refuse_mostly_bad(rejected: list[tuple[int, str, str]], lines: int) -> None:
    if mostly_bad(len(rejected), lines):
        first, code, _ = min(rejected)
        raise QuarantineError(
            code, f"{len(rejected)} of {lines} lines are not valid events (the first: {first})"
        )


def _events_by_line(data: bytes) -> tuple[pa.Table, list[int], list[tuple[int, str, str]]]:
    """The events of the lines Arrow's reader accepts, their line numbers, and the lines it
    refuses: halves of a failing range are read again until each bad line stands alone (a few
    bad lines among millions cost a few dozen reads, not one per line)."""
    lines = [(n, line) for n, line in enumerate(data.split(b"\n"), 1) if line.strip()]
    last_line = lines[-1][0] if lines else 0
    good: list[tuple[list[int], pa.Table]] = []
    bad: list[tuple[int, str, str]] = []

    def sort_out(chunk: list[tuple[int, bytes]]) -> None:
        try:
            good.append(
                ([n for n, _ in chunk], _read_events(b"\n".join(line for _, line in chunk)))
            )
        except pa.ArrowInvalid:
            if len(chunk) == 1 and chunk[0][0] == last_line and not data.endswith(b"\n"):
                bad.append((last_line, "truncated", "the file ends inside this event (cut short)"))
            elif len(chunk) == 1:
                bad.append((chunk[0][0], "invalid_json", "not a valid JSON event"))
            else:
                sort_out(chunk[: len(chunk) // 2])
                sort_out(chunk[len(chunk) // 2 :])

    sort_out(lines)
    _refuse_mostly_bad(bad, len(lines))
    try:
        table = pa.concat_tables([t for _, t in good], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a field's type differs between lines
        raise QuarantineError(
            "invalid_json", "an extra field has a different JSON type on different lines"
        ) from None
    return table, [n for numbers, _ in good for n in numbers], bad


def _jsonl(data: bytes) -> pa.Table | PartlyRead:
    """Vendor JSONL events. Each line is an event of its own: a line that is not valid JSON or
    lacks a required field is quarantined with its number, and the other lines are ingested."""
    if _max_nesting(data) > MAX_JSON_NESTING:
        raise QuarantineError(
            "json_too_deep",
            f"JSON nested deeper than {MAX_JSON_NESTING} levels: refused before the native "
            "reader, which crashes on deep nesting",
        )
    line_numbers, rejected = None, []
    try:
        raw = _read_events(data)
    except pa.ArrowInvalid:
        raw, line_numbers, rejected = _events_by_line(data)
    columns = set(raw.column_names)
    v2 = "device_id" in columns and raw.column("device_id").null_count < raw.num_rows
    known = set(_V2 if v2 else _V1) | set(_JSONL_SCHEMA.names)
    required = (
        ("device_id", "event_id", "timestamp", "kind") if v2 else ("device", "id", "ts", "type")
    )
    absent = [f for f in required if f not in columns or raw.column(f).null_count == raw.num_rows]
    if absent:
        raise QuarantineError("invalid_event", f"events lack {', '.join(absent)}")
    if any(raw.column(f).null_count for f in required):
        if line_numbers is None:
            raw, line_numbers, rejected = _events_by_line(data)
        complete = functools.reduce(pc.and_, [pc.is_valid(raw.column(f)) for f in required])
        lacking = f"the event lacks one of {', '.join(required)}"
        rejected += [
            (n, "invalid_event", lacking)
            for n, ok in zip(line_numbers, complete.to_pylist(), strict=True)
            if not ok
        ]
        _refuse_mostly_bad(rejected, len(rejected) + pc.sum(complete).as_py())
        raw = raw.filter(complete)
    for name in _TIME_FIELDS:  # UTC instants → naive UTC timestamps, the warehouse convention
        if name in columns:
            raw = raw.set_column(
                raw.schema.get_field_index(name), name, raw.column(name).cast(pa.timestamp("us"))
            )
    unknown = sorted(columns - known)
    extra = (
        "to_json(struct_pack(" + ", ".join(f'"{c}" := "{c}"' for c in unknown) + "))"
        if unknown
        else "CAST(NULL AS JSON)"
    )
    conn = _mapper()
    conn.register("raw", raw)
    try:
        mapped = conn.sql((_V2_SQL if v2 else _V1_SQL).format(extra=extra)).to_arrow_table()
    finally:
        conn.unregister("raw")
    locator = pc.binary_join_element_wise(
        mapped.column("device_id"), mapped.column("event_id"), "/"
    )
    events = mapped.append_column("_source_locator", locator)
    return PartlyRead(events, sorted(rejected)) if rejected else events


# ---- Fitbit / Fitabase CSV --------------------------------------------------------------------
# Fitbit writes month-first US dates ("4/12/2016 7:21:00 AM"); a spreadsheet that re-saved the
# file writes its own locale's (day-first "12/04/2016 07:21", dotted "12.04.2016"), so the order
# is decided per file from the values and kept in each event's provenance.
_TIME_FORMATS = {
    "month-first": (
        "%m/%d/%Y %I:%M:%S %p",
        "%m/%d/%Y %I:%M %p",
        "%m/%d/%Y %H:%M:%S",
        "%m/%d/%Y %H:%M",
        "%m/%d/%Y",
        "%m/%d/%y",
    ),
    "day-first": (
        "%d/%m/%Y %H:%M:%S",
        "%d/%m/%Y %H:%M",
        "%d/%m/%Y %I:%M:%S %p",
        "%d/%m/%Y",
        "%d.%m.%Y %H:%M:%S",
        "%d.%m.%Y %H:%M",
        "%d.%m.%Y",
        "%d/%m/%y",
    ),
}
_ISO_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")
_DAY_MONTH = re.compile(r"^\s*(\d{1,2})[/.](\d{1,2})[/.]\d{2,4}")


def _date_order(values) -> str:
    """month-first or day-first, from the file's own dates: a first field above 12 can only be
    a day, and so can a second one. When every field is 12 or less, Fitbit's own 12-hour times
    (AM/PM) say month-first; without them the order is unknowable and the file is quarantined
    rather than read with days and months possibly swapped."""
    first_day = second_day = twelve_hour = False
    for value in values:
        match = _DAY_MONTH.match(value or "")
        if match:
            first_day |= int(match.group(1)) > 12
            second_day |= int(match.group(2)) > 12
        twelve_hour |= (value or "").rstrip().upper().endswith(("AM", "PM"))
    if first_day and second_day:
        raise QuarantineError(
            "invalid_event", "the file's dates are day-first in some rows and month-first in others"
        )
    if first_day:
        return "day-first"
    if second_day or twelve_hour:
        return "month-first"
    if not any(_DAY_MONTH.match(v or "") for v in values):
        return "month-first"  # ISO dates only: no order to decide
    raise QuarantineError(
        "ambiguous_dates",
        "every date has day and month of 12 or less and no AM/PM: day-first and month-first "
        "cannot be told apart",
    )


def _fitbit_time(text: str, order: str = "month-first") -> datetime:
    for fmt in (*_ISO_FORMATS, *_TIME_FORMATS[order.split(" ")[0]]):
        try:
            return datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
    raise QuarantineError("invalid_event", "a date/time is in no known Fitbit format")


_SCIENTIFIC = re.compile(r"^(\d)(?:\.(\d+))?[eE]\+?(\d+)$")


def _fitbit_id(text: str) -> str:
    """The user id as written, or as a spreadsheet wrote it in scientific notation (1.503960366E+09)
    when every digit survived; a rounded one (1.50396E+09) cannot be recovered."""
    match = _SCIENTIFIC.match(text.strip())
    if not match:
        return text.strip()
    lead, fraction, exponent = match.group(1), match.group(2) or "", int(match.group(3))
    if len(fraction) > exponent:
        return text.strip()  # not an integer id: keep what was written
    if len(fraction) < exponent:  # the missing digits may have been anything
        raise QuarantineError(
            "invalid_event",
            "a user Id is in scientific notation with digits lost (a spreadsheet rounded it)",
        )
    return lead + fraction + "0" * (exponent - len(fraction))


def _fitbit_rows(kind_name, device, stamp, kind, value, unit, minutes=None, order=None) -> dict:
    start = _fitbit_time(stamp, order or "month-first")
    end = start + timedelta(minutes=minutes) if minutes else None
    return _event(
        device,
        f"{kind_name}:{start.isoformat()}",
        kind,
        start,
        None if value in ("", None) else _number(value),
        unit,
        f"fitbit_{kind_name}",
        end,
        {"date_order": order} if order else None,
    )


# (columns that identify the layout, layout name, time column, event type, value column, unit,
# interval minutes)
_FITBIT_LAYOUTS = (
    ({"Time", "Value"}, "heartrate_seconds", "Time", "heart_rate", "Value", "count/min", None),
    ({"ActivityMinute", "Steps"}, "minute_steps", "ActivityMinute", "steps", "Steps", "count", 1),
    (
        {"ActivityHour", "StepTotal"},
        "hourly_steps",
        "ActivityHour",
        "steps",
        "StepTotal",
        "count",
        60,
    ),
    (
        {"ActivityDate", "TotalSteps"},
        "daily_activity",
        "ActivityDate",
        "daily_steps",
        "TotalSteps",
        "count",
        24 * 60,
    ),
    (
        {"SleepDay", "TotalMinutesAsleep"},
        "sleep_day",
        "SleepDay",
        "sleep",
        "TotalMinutesAsleep",
        "min",
        None,
    ),
    ({"Date", "WeightKg"}, "weight_log", "Date", "weight", "WeightKg", "kg", None),
)


def _fitbit_csv(text: str) -> list[dict]:
    reader = csv.DictReader(io.StringIO(text))
    header = set(reader.fieldnames or [])
    wide = {"ActivityHour", "Steps00"} <= header  # minute steps, one column per minute
    layout = next((spec for spec in _FITBIT_LAYOUTS if spec[0] <= header), None)
    if layout is None and not wide:
        raise QuarantineError(
            "unsupported_format",
            "CSV layout not recognised (columns: " + ", ".join(sorted(header)[:12]) + ")",
        )
    rows = [row for row in reader if any((v or "").strip() for v in row.values())]
    time_column = "ActivityHour" if wide else layout[2]
    split = "Date" in header and time_column != "Date"  # a spreadsheet split the date off
    if split:
        for row in rows:
            if not _DAY_MONTH.match(row[time_column] or "") and row.get("Date"):
                row[time_column] = f"{row['Date']} {row[time_column]}"
    order = _date_order([row[time_column] for row in rows])
    events = []
    for row in rows:
        device = f"fitbit:{_fitbit_id(row['Id'])}"
        if wide:
            hour = _fitbit_time(row["ActivityHour"], order)
            for minute in range(60):
                stamp = (hour + timedelta(minutes=minute)).strftime("%Y-%m-%d %H:%M:%S")
                events.append(
                    _fitbit_rows(
                        "minute_steps",
                        device,
                        stamp,
                        "steps",
                        row[f"Steps{minute:02d}"],
                        "count",
                        minutes=1,
                        order=order,
                    )
                )
            continue
        _, name, time_column, kind, value_column, unit, minutes = layout
        events.append(
            _fitbit_rows(
                name,
                device,
                row[time_column],
                kind,
                row[value_column],
                unit,
                minutes=minutes,
                order=order,
            )
        )
    return events


# ---- Apple Health -----------------------------------------------------------------------------
_APPLE_TYPES = {
    "HKQuantityTypeIdentifierHeartRate": ("heart_rate", {"count/min": 1.0}),
    "HKQuantityTypeIdentifierStepCount": ("steps", {"count": 1.0}),
    "HKQuantityTypeIdentifierActiveEnergyBurned": ("active_energy", {"kcal": 1.0, "kJ": 1 / 4.184}),
    "HKQuantityTypeIdentifierBodyMass": ("weight", {"kg": 1.0, "lb": 0.45359237}),
}
# Every export version since iOS 9 writes "2016-03-01 10:00:00 +0100"; iOS 8's first exports
# wrote "20150301100000+0100".
_APPLE_TIMES = ("%Y-%m-%d %H:%M:%S %z", "%Y%m%d%H%M%S%z")
# C0 control characters are not allowed in XML 1.0; early exports carry vertical tabs (\x0b)
# in free-text values, which stop any XML parser. They are dropped before parsing.
_XML_INVALID = bytes(range(0, 9)) + b"\x0b\x0c" + bytes(range(14, 32))


def _apple_time(text: str) -> datetime:
    for fmt in _APPLE_TIMES:
        try:
            return datetime.strptime(text, fmt).astimezone(UTC).replace(tzinfo=None)
        except ValueError:
            continue
    raise ValueError("not an Apple Health date")


def _number(value: str) -> float:
    """A value as exported: a decimal point, or a decimal comma from a non-US locale."""
    try:
        return float(value)
    except ValueError:
        if re.fullmatch(r"-?\d+,\d+", value):
            return float(value.replace(",", "."))
        raise


def _apple_event(element) -> dict:
    attrs = element.attrib
    # The source name is often "<owner>'s Apple Watch": hash it rather than keep a name.
    device = "apple:" + hashlib.sha256(attrs.get("sourceName", "").encode()).hexdigest()[:16]
    start, end = _apple_time(attrs["startDate"]), _apple_time(attrs["endDate"])
    raw_type = attrs.get("type") or element.tag
    identity = "|".join([raw_type, attrs["startDate"], attrs["endDate"], attrs.get("value", "")])
    event_id = hashlib.sha256(identity.encode()).hexdigest()[:24]
    extra = {
        k: v
        for k, v in attrs.items()
        if k not in ("type", "startDate", "endDate", "value", "unit", "sourceName")
    }
    if element.tag == "Workout":
        minutes = (end - start).total_seconds() / 60
        extra["workoutActivityType"] = attrs.get("workoutActivityType")
        return _event(
            device, event_id, "workout", start, minutes, "min", "apple_health", end, extra
        )
    if raw_type == "HKCategoryTypeIdentifierSleepAnalysis":
        kind = "in_bed" if attrs.get("value", "").endswith("InBed") else "sleep"
        minutes = (end - start).total_seconds() / 60
        return _event(device, event_id, kind, start, minutes, "min", "apple_health", end, extra)
    kind, factors = _APPLE_TYPES.get(raw_type, (raw_type, {}))
    unit = attrs.get("unit")
    value = attrs.get("value")
    numeric = None
    try:
        numeric = _number(value) if value is not None else None
    except ValueError:
        extra["value"] = value
    if unit in factors and numeric is not None:
        numeric, unit = numeric * factors[unit], CANONICAL_UNITS[kind]
    return _event(device, event_id, kind, start, numeric, unit, "apple_health", end, extra)


def _apple_xml(data: bytes) -> list[dict]:
    events = []
    data = data.translate(None, delete=_XML_INVALID)
    try:
        for _, element in ElementTree.iterparse(io.BytesIO(data), events=("end",)):
            if element.tag in ("Record", "Workout"):
                events.append(_apple_event(element))
                element.clear()
    except ElementTree.ParseError as err:
        raise QuarantineError(
            "invalid_xml", f"Apple Health XML is malformed ({err.code})"
        ) from None
    except LookupError:
        raise QuarantineError(
            "invalid_xml", "the XML declaration names an unknown character encoding"
        ) from None
    except (KeyError, ValueError):
        raise QuarantineError(
            "invalid_event", "an Apple Health record lacks or garbles a date"
        ) from None
    return events


def _apple_zip(data: bytes) -> list[dict]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise QuarantineError("invalid_zip", "the ZIP archive is corrupt") from None
    members = [
        n for n in archive.namelist() if n.endswith("export.xml") and not n.startswith("__MACOSX/")
    ]
    if len(members) != 1:
        raise QuarantineError(
            "unsupported_format", f"expected one export.xml in the ZIP, found {len(members)}"
        )
    return _apple_xml(archive.read(members[0]))


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


# ---- Garmin Training Center (TCX) -------------------------------------------------------------
def _tcx_time(text: str) -> datetime:
    return (
        datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        .astimezone(UTC)
        .replace(tzinfo=None)
    )


def _tcx(data: bytes) -> list[dict]:
    """Heart rate per trackpoint and one workout per activity from a TCX file. Positions are
    locations, not events: they are not kept."""
    try:
        root = ElementTree.fromstring(data.translate(None, delete=_XML_INVALID))
    except ElementTree.ParseError as err:
        raise QuarantineError("invalid_xml", f"TCX XML is malformed ({err.code})") from None
    except LookupError:
        raise QuarantineError(
            "invalid_xml", "the XML declaration names an unknown character encoding"
        ) from None

    def local(element) -> str:
        return element.tag.rsplit("}", 1)[-1]

    def child(element, name):
        return next((c for c in element if local(c) == name), None)

    events = []
    try:
        for activity in (e for e in root.iter() if local(e) == "Activity"):
            creator = child(activity, "Creator")
            unit = "|".join(
                (c.text or "").strip()
                for c in (creator if creator is not None else [])
                if local(c) in ("Name", "UnitId", "ProductID")
            )
            # The unit id is a device serial: hashed, like Apple's source names.
            device = "tcx:" + hashlib.sha256(unit.encode()).hexdigest()[:16]
            laps = [c for c in activity if local(c) == "Lap"]
            seconds = sum(float(child(lap, "TotalTimeSeconds").text) for lap in laps)
            start = _tcx_time(laps[0].get("StartTime") if laps else child(activity, "Id").text)
            events.append(_workout(device, start, seconds, "garmin_tcx", activity.get("Sport")))
            for point in (e for e in activity.iter() if local(e) == "Trackpoint"):
                heart = child(point, "HeartRateBpm")
                value = child(heart, "Value") if heart is not None else None
                if value is None or child(point, "Time") is None:
                    continue
                when = _tcx_time(child(point, "Time").text)
                events.append(_heart_rate(device, when, _number(value.text.strip()), "garmin_tcx"))
    except (AttributeError, TypeError, ValueError):
        raise QuarantineError(
            "invalid_event", "a TCX activity lacks or garbles a time or a number"
        ) from None
    return events


# ---- Garmin FIT --------------------------------------------------------------------------------
_FIT_SIGNATURE = b".FIT"


def _is_fit(data: bytes) -> bool:
    return len(data) >= 12 and data[0] in (12, 14) and data[8:12] == _FIT_SIGNATURE


def _fit_time(value) -> datetime | None:
    return value.astimezone(UTC).replace(tzinfo=None) if isinstance(value, datetime) else None


def _fit_messages(data: bytes) -> list[tuple[str, dict, int | None]]:
    """Each data message of a Garmin FIT file as (name, field values, the cycles field's raw
    value), decoded by fitdecode with its CRC checked; a file it cannot decode is quarantined."""
    import fitdecode

    messages = []
    try:
        with fitdecode.FitReader(io.BytesIO(data), check_crc=fitdecode.CrcCheck.RAISE) as fit:
            for frame in fit:
                if frame.frame_type == fitdecode.FIT_FRAME_DATA:
                    cycles = frame.get_field("cycles") if frame.has_field("cycles") else None
                    messages.append(
                        (
                            frame.name,
                            {f.name: f.value for f in frame.fields},
                            cycles and cycles.raw_value,
                        )
                    )
    except fitdecode.FitEOFError:
        raise QuarantineError(
            "truncated", "Garmin FIT, truncated: the file ends inside a message"
        ) from None
    except fitdecode.FitCRCError:
        raise QuarantineError(
            "invalid_fit", "Garmin FIT whose CRC does not match its content (corrupt)"
        ) from None
    except Exception as err:  # on malformed bytes the reader also raises TypeError, AssertionError
        raise QuarantineError(
            "invalid_fit", f"Garmin FIT that does not decode ({type(err).__name__})"
        ) from None
    return messages


def _fit(data: bytes) -> list[dict]:
    """Heart rate from activity records and monitoring messages, steps from monitoring counts,
    one workout per session, from a Garmin FIT file (compressed timestamps and developer fields
    read). Positions are locations, not events: they are not kept. A file with none of these
    (settings, workout plans, weight) is quarantined with its FIT file type named."""
    device, events, undated, file_type = "fit:unknown", [], 0, "unknown"
    last_time: datetime | None = None
    steps = _FitStepCounter()
    for name, values, cycles in _fit_messages(data):
        if name == "file_id":
            # The serial number identifies the watch, and so its wearer: hashed.
            unit = "|".join(
                str(values.get(k)) for k in ("manufacturer", "garmin_product", "serial_number")
            )
            device = "fit:" + hashlib.sha256(unit.encode()).hexdigest()[:16]
            file_type = str(values.get("type") or "unknown")
        when = _fit_time(values.get("timestamp"))
        if when is None and isinstance(values.get("timestamp_16"), int) and last_time:
            # 16-bit timestamps count seconds on from the last full one, modulo 2^16.
            base = int(last_time.replace(tzinfo=UTC).timestamp()) - _FIT_EPOCH
            delta = (values["timestamp_16"] - (base & 0xFFFF)) & 0xFFFF
            when = last_time + timedelta(seconds=delta)
        if when is not None:
            last_time = when
        if name == "monitoring_info":
            steps.start_day(when)
        elif name == "monitoring" and isinstance(cycles, int):
            # Steps are the raw value of the cycles field for walking and running (the FIT
            # profile's `steps` subfield, unscaled): the reader leaves it unresolved.
            step = steps.count(device, when, values.get("activity_type"), cycles)
            if step is not None:
                events.append(step)
            undated += when is None and values.get("activity_type") in _FIT_STEPPING
        heart = values.get("heart_rate")
        if name in ("record", "monitoring") and isinstance(heart, int | float):
            if when is None:  # no time, or a relative one (seconds since power-on)
                undated += heart > 0
            elif heart > 0:
                events.append(_heart_rate(device, when, float(heart), "garmin_fit"))
        elif name == "session":
            start = _fit_time(values.get("start_time"))
            seconds = values.get("total_elapsed_time")
            if start is not None and isinstance(seconds, int | float):
                sport = values.get("sport")
                events.append(_workout(device, start, seconds, "garmin_fit", sport and str(sport)))
    if undated:
        # FIT timestamps below 0x10000000 count from the device's power-on, not a date: the
        # samples cannot be placed in time, and dropping them would lose them silently.
        raise QuarantineError(
            "undatable_events",
            f"Garmin FIT with {undated} heart-rate or step sample(s) without an absolute time "
            "(no timestamp, or a relative one)",
        )
    if not events:
        raise QuarantineError(
            "no_measurements",
            f"Garmin FIT file of type '{file_type}': no heart rate, steps or workout in it",
        )
    return events


_FIT_STEPPING = ("walking", "running")


class _FitStepCounter:
    """Step events from a FIT monitoring file, whose counts accumulate per activity type from
    the start of the day (`monitoring_info`): each event is the steps since the last count of
    its type, from that count's time to this one."""

    def __init__(self):
        self._last: dict[str, tuple[datetime | None, int]] = {}

    def start_day(self, when: datetime | None) -> None:
        self._last = {kind: (when, 0) for kind in _FIT_STEPPING}

    def count(self, device: str, when, activity_type, total: int) -> dict | None:
        if activity_type not in _FIT_STEPPING or when is None:
            return None
        since, before = self._last.get(activity_type, (None, 0))
        taken = total - before if total >= before else total  # a lower count: a new day
        self._last[activity_type] = (when, total)
        if taken <= 0 or since is None:
            return None
        return _event(
            device,
            f"steps:{activity_type}:{when.isoformat()}",
            "steps",
            since,
            float(taken),
            "count",
            "garmin_fit",
            when,
        )


_FIT_EPOCH = 631065600  # 1989-12-31T00:00:00Z, where FIT timestamps count from


def parse_wearables_file(data: bytes) -> list[dict] | pa.Table:
    """Canonical events from one delivered file of any supported layout, or QuarantineError."""
    if data.startswith(b"PK\x03\x04"):
        return _apple_zip(data)
    if _is_fit(data):
        return _fit(data)
    if not data.strip():
        raise QuarantineError("empty_file", "the file is empty")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise QuarantineError(
            "encoding_error", f"not UTF-8 text (invalid byte at offset {err.start})"
        ) from None
    head = text.lstrip()[:2000]
    if head.startswith("<"):
        # Exports carry an inline DTD of several kilobytes before the root element.
        if re.search(r"<!DOCTYPE\s+HealthData\b|<HealthData[\s>]", text[:200_000]):
            return _apple_xml(data)
        if "<TrainingCenterDatabase" in head:
            return _tcx(data)
        if "<gpx" in head:
            raise QuarantineError(
                "unsupported_format",
                "GPX workout routes carry locations, "
                "not events; the workout itself comes from export.xml",
            )
        raise QuarantineError("unsupported_format", "XML that is not an Apple Health export")
    if head.startswith("{"):
        return _jsonl(data)
    if head.split("\n", 1)[0].startswith("Id,"):
        return _fitbit_csv(text)
    raise QuarantineError("unsupported_format", "not a known wearables layout")


# ---- silver and gold ----------------------------------------------------------------------
_B = "bronze.wearable_events"

EVENTS = Table(
    layer="silver",
    name="wearable_events",
    modality="wearables",
    asset_key=("wearables", "events"),
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
    lineage={
        "research_key": (
            ("silver.device_use", "research_key"),
            (_B, "device_id"),
            (_B, "event_time"),
        ),
        **{
            c: ((_B, c),)
            for c in (
                "event_type",
                "event_time",
                "end_time",
                "value",
                "unit",
                "source_schema",
                "_source_sha256",
                "_source_locator",
            )
        },
        "event_date": ((_B, "event_time"),),
        "hours_late": ((_B, "event_time"), (_B, "received_at")),
    },
)

DAILY = Table(
    layer="gold",
    name="wearable_daily",
    modality="wearables",
    asset_key=("wearables", "daily_features"),
    primary_key=("research_key", "day"),
    partition_column="day",
    description="Daily activity per patient with rolling 7- and 28-day windows.",
    columns=(
        RK,
        Column("day", "DATE", "Calendar day.", "phi", "hipaa", nullable=False),
        Column(
            "resting_hr",
            "DOUBLE",
            "10th percentile of the day's heart rate (bpm).",
            "sensitive",
            "hipaa",
            min_value=25,
            max_value=200,
        ),
        Column("hr_readings", "INTEGER", "Heart-rate readings that day.", "none", min_value=0),
        Column(
            "steps",
            "DOUBLE",
            "Steps that day.",
            "sensitive",
            "hipaa",
            min_value=0,
            max_value=100_000,
        ),
        Column(
            "active_minutes",
            "DOUBLE",
            "Minutes in intervals at ≥ 40 steps/min.",
            "sensitive",
            "hipaa",
            min_value=0,
            max_value=1440,
        ),
        Column(
            "sleep_minutes",
            "DOUBLE",
            "Minutes asleep in sessions starting that day.",
            "sensitive",
            "hipaa",
            min_value=0,
            max_value=1440,
        ),
        Column(
            "steps_7d",
            "DOUBLE",
            "Mean daily steps over the 7 days ending that day.",
            "sensitive",
            "hipaa",
            min_value=0,
        ),
        Column(
            "steps_28d",
            "DOUBLE",
            "Mean daily steps over the 28 days ending that day.",
            "sensitive",
            "hipaa",
            min_value=0,
        ),
        Column(
            "resting_hr_7d", "DOUBLE", "Mean resting heart rate over 7 days.", "sensitive", "hipaa"
        ),
        Column(
            "resting_hr_28d",
            "DOUBLE",
            "Mean resting heart rate over 28 days.",
            "sensitive",
            "hipaa",
        ),
        Column(
            "days_covered_28d",
            "INTEGER",
            "Days with data in the 28-day window.",
            "none",
            min_value=0,
            max_value=28,
        ),
        Column("_run_id", "VARCHAR", "Dagster run that wrote this row.", "none"),
    ),
    lineage={
        "research_key": (("silver.wearable_events", "research_key"),),
        "day": (("silver.wearable_events", "event_date"),),
        **{
            c: (("silver.wearable_events", "value"), ("silver.wearable_events", "event_type"))
            for c in (
                "resting_hr",
                "hr_readings",
                "steps",
                "active_minutes",
                "sleep_minutes",
                "steps_7d",
                "steps_28d",
                "resting_hr_7d",
                "resting_hr_28d",
            )
        },
        "days_covered_28d": (("silver.wearable_events", "event_date"),),
    },
)

FEATURES = Table(
    layer="gold",
    name="wearables_features",
    modality="wearables",
    asset_key=("wearables", "wearables_features"),
    primary_key=("research_key",),
    description="One row per patient: wearable activity in the 28 days before the index date.",
    columns=(
        RK,
        Column(
            "has_wearables",
            "BOOLEAN",
            "Any wearable day in the 28 days before index.",
            "none",
            nullable=False,
        ),
        Column(
            "coverage_days_28d",
            "INTEGER",
            "Days with data in the 28 days before index.",
            "none",
            nullable=False,
            min_value=0,
            max_value=28,
        ),
        Column(
            "steps_mean_7d",
            "DOUBLE",
            "Mean daily steps, 7 days before index.",
            "sensitive",
            "hipaa",
            min_value=0,
        ),
        Column(
            "steps_mean_28d",
            "DOUBLE",
            "Mean daily steps, 28 days before index.",
            "sensitive",
            "hipaa",
            min_value=0,
        ),
        Column(
            "steps_slope_28d",
            "DOUBLE",
            "Trend of daily steps (steps/day per day).",
            "sensitive",
            "hipaa",
        ),
        Column(
            "resting_hr_mean_7d",
            "DOUBLE",
            "Mean resting HR, 7 days before index.",
            "sensitive",
            "hipaa",
        ),
        Column(
            "resting_hr_mean_28d",
            "DOUBLE",
            "Mean resting HR, 28 days before index.",
            "sensitive",
            "hipaa",
        ),
        Column(
            "sleep_mean_28d",
            "DOUBLE",
            "Mean minutes asleep, 28 days before index.",
            "sensitive",
            "hipaa",
        ),
        Column(
            "wearables_data_through",
            "DATE",
            "Latest wearable day any feature of this row used (the point-in-time guard).",
            "phi",
            "hipaa",
        ),
        Column("_run_id", "VARCHAR", "Dagster run that wrote this row.", "none"),
    ),
    lineage={
        "research_key": (("gold.clinical_features", "research_key"),),
        **{
            c: (("gold.wearable_daily", "day"), ("gold.clinical_features", "index_date"))
            for c in ("has_wearables", "coverage_days_28d")
        },
        **{
            c: (("gold.wearable_daily", "steps"), ("gold.clinical_features", "index_date"))
            for c in ("steps_mean_7d", "steps_mean_28d", "steps_slope_28d")
        },
        **{
            c: (("gold.wearable_daily", "resting_hr"), ("gold.clinical_features", "index_date"))
            for c in ("resting_hr_mean_7d", "resting_hr_mean_28d")
        },
        "sleep_mean_28d": (
            ("gold.wearable_daily", "sleep_minutes"),
            ("gold.clinical_features", "index_date"),
        ),
        "wearables_data_through": (("gold.wearable_daily", "day"),),
    },
)

TABLES = (WEARABLE_EVENTS, EVENTS, DAILY, FEATURES)

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

# Events kept in bronze but not published: no device-use link, or later than the horizon.
EVENT_COVERAGE_SQL = f"""
SELECT
  (SELECT count(*) FROM bronze.wearable_events) AS bronze_events,
  (SELECT count(*) {_LINKED}) AS linked_events,
  (SELECT count(*) {_LINKED} WHERE NOT ({_ON_TIME})) AS beyond_lateness_horizon
"""

DAILY_SQL = """
WITH days AS (
    SELECT research_key, event_date AS day,
           quantile_cont(value, 0.1) FILTER (event_type = 'heart_rate') AS resting_hr,
           count(*) FILTER (event_type = 'heart_rate') AS hr_readings,
           sum(value) FILTER (event_type = 'steps') AS steps,
           coalesce(sum(date_diff('minute', event_time, end_time)) FILTER (
               event_type = 'steps'
               AND value >= 40 * date_diff('minute', event_time, end_time)), 0)
               AS active_minutes,
           sum(value) FILTER (event_type = 'sleep') AS sleep_minutes
    FROM silver.wearable_events
    GROUP BY ALL
)
SELECT research_key, day, resting_hr, CAST(hr_readings AS INTEGER) AS hr_readings, steps,
       active_minutes, sleep_minutes,
       avg(steps) OVER w7 AS steps_7d, avg(steps) OVER w28 AS steps_28d,
       avg(resting_hr) OVER w7 AS resting_hr_7d, avg(resting_hr) OVER w28 AS resting_hr_28d,
       CAST(count(*) OVER w28 AS INTEGER) AS days_covered_28d,
       $run_id AS _run_id
FROM days
WINDOW w7 AS (PARTITION BY research_key ORDER BY day
              RANGE BETWEEN INTERVAL 6 DAY PRECEDING AND CURRENT ROW),
       w28 AS (PARTITION BY research_key ORDER BY day
               RANGE BETWEEN INTERVAL 27 DAY PRECEDING AND CURRENT ROW)
"""

FEATURES_SQL = """
SELECT c.research_key,
       count(d.day) > 0 AS has_wearables,
       CAST(count(d.day) AS INTEGER) AS coverage_days_28d,
       avg(d.steps) FILTER (d.day >= c.index_date - INTERVAL 7 DAY) AS steps_mean_7d,
       avg(d.steps) AS steps_mean_28d,
       regr_slope(d.steps, date_diff('day', c.index_date, d.day)) AS steps_slope_28d,
       avg(d.resting_hr) FILTER (d.day >= c.index_date - INTERVAL 7 DAY) AS resting_hr_mean_7d,
       avg(d.resting_hr) AS resting_hr_mean_28d,
       avg(d.sleep_minutes) AS sleep_mean_28d,
       max(d.day) AS wearables_data_through,
       $run_id AS _run_id
FROM gold.clinical_features c
LEFT JOIN gold.wearable_daily d
  ON d.research_key = c.research_key AND d.day < c.index_date
 AND d.day >= c.index_date - INTERVAL 28 DAY
GROUP BY c.research_key
"""
