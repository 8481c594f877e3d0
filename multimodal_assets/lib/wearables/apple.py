"""Apple Health `export.xml` and `export.zip`, of every export version."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from datetime import UTC, datetime
from xml.etree import ElementTree

from ..platform.ingest import QuarantineError
from .bronze import CANONICAL_UNITS, _event

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
