"""Wearables: table declarations, readers for every delivered layout, and the feature SQL.

Layouts: the vendor's JSONL exports (schema v1 and v2), Fitbit/Fitabase CSV exports (heart
rate seconds, minute steps narrow and wide, hourly steps, daily activity, sleep, weight), Apple
Health `export.xml`/`export.zip`, Garmin TCX and Garmin FIT. All map to one canonical event;
fields we do not know are kept in `extra`, never dropped. FIT is read with fitdecode; the others
with the standard library and Arrow, since each is a few columns and no maintained library
reads them all.

Modules: `bronze` (the canonical event and its table), `jsonl` (vendor JSONL v1/v2), `fitbit`
(Fitbit/Fitabase CSV), `apple` (Apple Health export), `tcx` (Garmin TCX), `fit` (Garmin FIT),
`formats` (which reader a landed file goes to), `silver` (silver events and their SQL), `gold`
(gold daily and patient features and their SQL).
"""

from .bronze import CANONICAL_UNITS, LATENESS_HORIZON_DAYS, WEARABLE_EVENTS
from .formats import parse_wearables_file
from .gold import DAILY, FEATURES
from .jsonl import MAX_JSON_NESTING
from .silver import EVENT_COVERAGE_SQL, EVENTS

TABLES = (WEARABLE_EVENTS, EVENTS, DAILY, FEATURES)

__all__ = [
    "CANONICAL_UNITS",
    "DAILY",
    "EVENTS",
    "EVENT_COVERAGE_SQL",
    "FEATURES",
    "LATENESS_HORIZON_DAYS",
    "MAX_JSON_NESTING",
    "TABLES",
    "WEARABLE_EVENTS",
    "parse_wearables_file",
]
