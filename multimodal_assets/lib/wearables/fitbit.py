"""Fitbit and Fitabase CSV exports, also re-saved by a spreadsheet (date order decided per file)."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta

from ..platform.ingest import QuarantineError
from .apple import _number
from .bronze import _event

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
