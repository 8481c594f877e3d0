"""Which wearables reader a landed file goes to, from its first bytes."""

from __future__ import annotations

import re

import pyarrow as pa

from ..platform.ingest import QuarantineError
from .apple import _apple_xml, _apple_zip
from .fit import _fit, _is_fit
from .fitbit import _fitbit_csv
from .jsonl import _jsonl
from .tcx import _tcx


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
