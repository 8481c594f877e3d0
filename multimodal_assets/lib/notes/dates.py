"""Dates in note text: absolute dates in the common US and ISO spellings, and relative ones
("three weeks ago") anchored to the note's date."""

from __future__ import annotations

import re
from datetime import date, timedelta

_MONTHS = {
    m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())
}
_DATE_PATTERNS = (
    (re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})\b"), "mdy"),
    (re.compile(r"\b(\d{1,2})-(\d{1,2})-(\d{4}|\d{2})\b"), "mdy"),  # "dated 4-2-04"
    (re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b"), "ymd"),
    (
        re.compile(
            r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.? (\d{1,2}),? (\d{4})\b",
            re.I,
        ),
        "mon_d_y",
    ),
    (
        re.compile(
            # "20Feb1999", "10 Aug 2009", "02-May-2014"
            r"\b(\d{1,2})[ -]?(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
            r"[ -]?(\d{4})\b",
            re.I,
        ),
        "d_mon_y",
    ),
)
_NUMBERS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "a": 1,
    "an": 1,
}
_RELATIVE = re.compile(
    r"\b(\d+|one|two|three|four|five|six|seven|eight|nine|ten|a|an) (day|week|month|year)s? ago\b",
    re.I,
)
_UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}


def _date(kind: str, groups: tuple) -> date | None:
    try:
        if kind == "mdy":
            month, day, year = int(groups[0]), int(groups[1]), int(groups[2])
            year = year + (2000 if year < 50 else 1900) if year < 100 else year
            return date(year, month, day)
        if kind == "ymd":
            return date(int(groups[0]), int(groups[1]), int(groups[2]))
        if kind == "mon_d_y":
            return date(int(groups[2]), _MONTHS[groups[0][:3].lower()], int(groups[1]))
        return date(int(groups[2]), _MONTHS[groups[1][:3].lower()], int(groups[0]))
    except (ValueError, KeyError):
        return None


def date_mentions(text: str, note_date: date | None) -> list[tuple[int, int, date, str]]:
    """(start, end, date, 'absolute'|'relative') for each date expression the text allows."""
    found = []
    for pattern, kind in _DATE_PATTERNS:
        for m in pattern.finditer(text):
            day = _date(kind, m.groups())
            if day:
                found.append((m.start(), m.end(), day, "absolute"))
    if note_date:
        for m in _RELATIVE.finditer(text):
            count = _NUMBERS.get(m.group(1).lower()) or int(m.group(1))
            delta = timedelta(days=count * _UNIT_DAYS[m.group(2).lower()])
            found.append((m.start(), m.end(), note_date - delta, "relative"))
    return sorted(found)
