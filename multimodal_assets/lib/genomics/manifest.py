"""The sample manifest of a delivery: which sample is which patient's tumor or normal."""

from __future__ import annotations

import csv
import io

from ..platform.ingest import QuarantineError
from .bronze import MANIFEST_COLUMNS, SAMPLE_TYPES


def parse_manifest(data: bytes) -> list[dict]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise QuarantineError("invalid_manifest", "manifest is not UTF-8") from err
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in MANIFEST_COLUMNS[:3] if c not in (reader.fieldnames or [])]
    if missing:
        raise QuarantineError("invalid_manifest", f"manifest lacks columns {missing}")
    rows = []
    for line, row in enumerate(reader, start=2):
        if not row["sample_id"] or not row["mrn"] or row["sample_type"] not in SAMPLE_TYPES:
            raise QuarantineError(
                "invalid_manifest", f"line {line}: sample_id, mrn or sample_type is invalid"
            )
        rows.append(
            {**{c: row.get(c) or None for c in MANIFEST_COLUMNS}, "_source_locator": f"line {line}"}
        )
    return rows
