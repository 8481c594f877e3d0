"""Garmin FIT activity and monitoring files, read with fitdecode."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, timedelta

from ..platform.ingest import QuarantineError
from .bronze import _event, _heart_rate, _workout

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
