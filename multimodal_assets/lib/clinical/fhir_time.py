"""FHIR date and dateTime strings to Python values (partial dates anchor to the first day)."""

from __future__ import annotations

from datetime import UTC, date, datetime


def parse_datetime(value: str | None) -> datetime | None:
    """A FHIR date/dateTime as a naive UTC datetime; None when absent or unparseable."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if len(text) == 4:
            return datetime(int(text), 1, 1)
        if len(text) == 7:
            return datetime(int(text[:4]), int(text[5:7]), 1)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def parse_date(value: str | None) -> date | None:
    """The calendar date as written (a dateTime's local date, not shifted to UTC)."""
    if not value or not isinstance(value, str):
        return None
    parsed = parse_datetime(value.strip()[:10])
    return parsed.date() if parsed else None
