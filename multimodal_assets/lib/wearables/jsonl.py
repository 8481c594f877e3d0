"""The vendor's JSONL exports (schema v1 and v2), read by Arrow's JSON reader and mapped by DuckDB."""

from __future__ import annotations

import functools
import io

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from ..platform.ingest import PartlyRead, QuarantineError, mostly_bad

# ---- vendor JSONL ---------------------------------------------------------------------------
# Read by Arrow's JSON reader and mapped by DuckDB: tens of millions of events a run do not go
# through Python objects.
_V1 = ("device", "id", "ts", "type", "end", "bpm", "count", "minutes")
_V2 = (
    "schema_version",
    "device_id",
    "event_id",
    "timestamp",
    "kind",
    "end_timestamp",
    "value",
    "unit",
)
_TIME_FIELDS = ("ts", "end", "timestamp", "end_timestamp")
_JSONL_SCHEMA = pa.schema(
    [(f, pa.timestamp("us", tz="UTC")) for f in _TIME_FIELDS]
    + [(f, pa.string()) for f in ("device", "id", "type", "device_id", "event_id", "kind", "unit")]
    + [(f, pa.float64()) for f in ("bpm", "count", "minutes", "value")]
)
_V1_SQL = """
SELECT device AS device_id, id AS event_id,
       CASE type WHEN 'hr' THEN 'heart_rate' ELSE type END AS event_type,
       ts AS event_time, "end" AS end_time,
       CASE type WHEN 'hr' THEN bpm WHEN 'steps' THEN "count" WHEN 'sleep' THEN minutes END
           AS value,
       CASE type WHEN 'hr' THEN 'count/min' WHEN 'steps' THEN 'count' WHEN 'sleep' THEN 'min'
       END AS unit,
       'v1' AS source_schema, {extra} AS extra
FROM raw
"""
_V2_SQL = """
SELECT device_id, event_id, kind AS event_type, "timestamp" AS event_time,
       end_timestamp AS end_time,
       CASE WHEN kind = 'sleep' AND unit = 's' THEN value / 60 ELSE value END AS value,
       CASE WHEN kind = 'sleep' THEN 'min' ELSE unit END AS unit,
       'v2' AS source_schema, {extra} AS extra
FROM raw
"""


@functools.cache
def _mapper() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB per process for mapping batches (a new one costs ~40 ms)."""
    return duckdb.connect()


# pyarrow's JSON reader recurses without a limit: a line nested ~10,000 deep crashes the
# process (SIGSEGV), taking the run with it. Vendor exports nest 2 or 3 levels.
MAX_JSON_NESTING = 64


def _max_nesting(data: bytes, chunk: int = 1 << 22) -> int:
    """An upper bound on the bracket nesting of JSON text (brackets inside strings count too),
    with whole-array operations, chunk by chunk."""
    import numpy as np

    depth = deepest = 0
    for start in range(0, len(data), chunk):
        codes = np.frombuffer(
            data, dtype=np.uint8, count=min(chunk, len(data) - start), offset=start
        )
        steps = np.isin(codes, (0x5B, 0x7B)).astype(np.int32) - np.isin(codes, (0x5D, 0x7D))
        running = depth + np.cumsum(steps)
        if running.size:
            deepest, depth = max(deepest, int(running.max())), int(running[-1])
    return deepest


def _read_events(data: bytes) -> pa.Table:
    return pa_json.read_json(
        io.BytesIO(data),
        parse_options=pa_json.ParseOptions(
            explicit_schema=_JSONL_SCHEMA, unexpected_field_behavior="infer"
        ),
    )


def _refuse_mostly_bad(rejected: list[tuple[int, str, str]], lines: int) -> None:
    if mostly_bad(len(rejected), lines):
        first, code, _ = min(rejected)
        raise QuarantineError(
            code, f"{len(rejected)} of {lines} lines are not valid events (the first: {first})"
        )


def _events_by_line(data: bytes) -> tuple[pa.Table, list[int], list[tuple[int, str, str]]]:
    """The events of the lines Arrow's reader accepts, their line numbers, and the lines it
    refuses: halves of a failing range are read again until each bad line stands alone (a few
    bad lines among millions cost a few dozen reads, not one per line)."""
    lines = [(n, line) for n, line in enumerate(data.split(b"\n"), 1) if line.strip()]
    last_line = lines[-1][0] if lines else 0
    good: list[tuple[list[int], pa.Table]] = []
    bad: list[tuple[int, str, str]] = []

    def sort_out(chunk: list[tuple[int, bytes]]) -> None:
        try:
            good.append(
                ([n for n, _ in chunk], _read_events(b"\n".join(line for _, line in chunk)))
            )
        except pa.ArrowInvalid:
            if len(chunk) == 1 and chunk[0][0] == last_line and not data.endswith(b"\n"):
                bad.append((last_line, "truncated", "the file ends inside this event (cut short)"))
            elif len(chunk) == 1:
                bad.append((chunk[0][0], "invalid_json", "not a valid JSON event"))
            else:
                sort_out(chunk[: len(chunk) // 2])
                sort_out(chunk[len(chunk) // 2 :])

    sort_out(lines)
    _refuse_mostly_bad(bad, len(lines))
    try:
        table = pa.concat_tables([t for _, t in good], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a field's type differs between lines
        raise QuarantineError(
            "invalid_json", "an extra field has a different JSON type on different lines"
        ) from None
    return table, [n for numbers, _ in good for n in numbers], bad


def _jsonl(data: bytes) -> pa.Table | PartlyRead:
    """Vendor JSONL events. Each line is an event of its own: a line that is not valid JSON or
    lacks a required field is quarantined with its number, and the other lines are ingested."""
    if _max_nesting(data) > MAX_JSON_NESTING:
        raise QuarantineError(
            "json_too_deep",
            f"JSON nested deeper than {MAX_JSON_NESTING} levels: refused before the native "
            "reader, which crashes on deep nesting",
        )
    line_numbers, rejected = None, []
    try:
        raw = _read_events(data)
    except pa.ArrowInvalid:
        raw, line_numbers, rejected = _events_by_line(data)
    columns = set(raw.column_names)
    v2 = "device_id" in columns and raw.column("device_id").null_count < raw.num_rows
    known = set(_V2 if v2 else _V1) | set(_JSONL_SCHEMA.names)
    required = (
        ("device_id", "event_id", "timestamp", "kind") if v2 else ("device", "id", "ts", "type")
    )
    absent = [f for f in required if f not in columns or raw.column(f).null_count == raw.num_rows]
    if absent:
        raise QuarantineError("invalid_event", f"events lack {', '.join(absent)}")
    if any(raw.column(f).null_count for f in required):
        if line_numbers is None:
            raw, line_numbers, rejected = _events_by_line(data)
        complete = functools.reduce(pc.and_, [pc.is_valid(raw.column(f)) for f in required])
        lacking = f"the event lacks one of {', '.join(required)}"
        rejected += [
            (n, "invalid_event", lacking)
            for n, ok in zip(line_numbers, complete.to_pylist(), strict=True)
            if not ok
        ]
        _refuse_mostly_bad(rejected, len(rejected) + pc.sum(complete).as_py())
        raw = raw.filter(complete)
    for name in _TIME_FIELDS:  # UTC instants → naive UTC timestamps, the warehouse convention
        if name in columns:
            raw = raw.set_column(
                raw.schema.get_field_index(name), name, raw.column(name).cast(pa.timestamp("us"))
            )
    unknown = sorted(columns - known)
    extra = (
        "to_json(struct_pack(" + ", ".join(f'"{c}" := "{c}"' for c in unknown) + "))"
        if unknown
        else "CAST(NULL AS JSON)"
    )
    conn = _mapper()
    conn.register("raw", raw)
    try:
        mapped = conn.sql((_V2_SQL if v2 else _V1_SQL).format(extra=extra)).to_arrow_table()
    finally:
        conn.unregister("raw")
    locator = pc.binary_join_element_wise(
        mapped.column("device_id"), mapped.column("event_id"), "/"
    )
    events = mapped.append_column("_source_locator", locator)
    return PartlyRead.join(events, sorted(rejected))
