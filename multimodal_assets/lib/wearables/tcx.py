"""Garmin Training Center (TCX) files: heart rate per trackpoint and one workout per activity."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from xml.etree import ElementTree

from ..platform.ingest import QuarantineError
from .apple import _XML_INVALID, _number
from .bronze import _heart_rate, _workout


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
