"""Landing → bronze: content-addressed file registry, quarantine, and append of parsed records.

Modules: `registry` (the file registry and quarantine tables, and what a reader returns), `landing`
(landing rules, scans, versions of a path), `isolation` (parsers in worker processes), `load`
(parse, quarantine and commit).
"""

from .isolation import PARSE_SECONDS, ParsedElsewhere, staged_from_json
from .landing import (
    UNBATCHED,
    LandedFile,
    RegisteredPath,
    delivery_batch,
    landed_batches,
    modified_at,
    registered_paths,
    scan_landing,
    sha256_file,
    unregistered,
    visible_files,
)
from .load import IngestSummary, ingest
from .registry import (
    FILE_STATUSES,
    FILES,
    MAX_REJECTED_RECORDS,
    QUARANTINE,
    Parsed,
    PartlyRead,
    QuarantineError,
    mostly_bad,
)

__all__ = [
    "ParsedElsewhere",
    "staged_from_json",
    "FILES",
    "FILE_STATUSES",
    "IngestSummary",
    "LandedFile",
    "MAX_REJECTED_RECORDS",
    "PARSE_SECONDS",
    "Parsed",
    "PartlyRead",
    "QUARANTINE",
    "QuarantineError",
    "RegisteredPath",
    "UNBATCHED",
    "delivery_batch",
    "ingest",
    "landed_batches",
    "modified_at",
    "mostly_bad",
    "registered_paths",
    "scan_landing",
    "sha256_file",
    "unregistered",
    "visible_files",
]
