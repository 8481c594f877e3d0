"""Tamper-evident audit log: a keyed hash chain of every request, materialization and export.

Each row's hash is an HMAC-SHA256, under a secret only the service account holds, of its
fields and the previous row's hash: without the key nobody can recompute the chain after an
edit or a deletion (an unkeyed SHA-256 chain could simply be recomputed). The newest (sequence,
hash) is also written in the commit that adds the row and beside the lakehouse, so truncation is
detectable too. A gateway request is logged twice: `received` before it runs (a request killed
while running still leaves a row), then its outcome.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..platform import lakehouse, permissions, warehouse
from ..platform.tables import Column, Table

GENESIS = "0" * 64
ACTIONS = (
    "query",
    "materialize",
    "export",
    "lineage",
    "patient_similarity",
    "similarity_search",
    "tumor_board_packet",
    "tumor_board_packets",
    "authenticate",
)
DECISIONS = ("received", "allow", "deny")
AUDIT_KEY_ENV = "MM_AUDIT_KEY"
# An append-only file outside the lakehouse that every append records its head in (on Linux,
# `chattr +a` by root: the service account can add lines, nobody can rewrite or truncate it; or
# a file a log shipper forwards to another host). It is what catches the attack the key alone
# cannot: the newest events cut from a rewritten table, with the head file beside it rewritten.
AUDIT_HEAD_SINK_ENV = "MM_AUDIT_HEAD_SINK"

ACCESS_LOG = Table(
    layer="audit",
    name="access_log",
    modality="governance",
    primary_key=("event_seq",),
    description="Hash-chained log of every gateway request, materialization and export.",
    columns=(
        Column("event_seq", "BIGINT", "Position in the chain (1, 2, …).", "none", nullable=False),
        Column("event_id", "VARCHAR", "Unique event id.", "none", nullable=False),
        Column("event_time", "TIMESTAMP", "When it happened (UTC).", "none", nullable=False),
        Column(
            "user_name", "VARCHAR", "Who asked (a staff account, not a patient).", "pii", "gdpr"
        ),
        Column("role", "VARCHAR", "Role the request was made under.", "none"),
        Column(
            "action",
            "VARCHAR",
            "query, materialize, export or lineage.",
            "none",
            nullable=False,
            allowed=ACTIONS,
        ),
        Column("tables", "VARCHAR", "Tables touched, comma-separated.", "none"),
        Column("columns", "VARCHAR", "Columns touched, comma-separated.", "none"),
        Column("filters", "VARCHAR", "Row filters applied.", "none"),
        Column("masks", "VARCHAR", "Column masks applied (column=mask).", "none"),
        Column("rows_returned", "BIGINT", "Rows returned or written.", "none"),
        # The descriptions are those the table was created with: an append whose field
        # metadata differs is refused by Delta, and this table is never rebuilt. `decision` is
        # also `received` (logged before a request runs); `row_hash` is an HMAC-SHA256.
        Column("decision", "VARCHAR", "allow or deny.", "none", nullable=False, allowed=DECISIONS),
        Column("reason", "VARCHAR", "Why (names objects, never values).", "none"),
        Column(
            "query_hash", "VARCHAR", "SHA-256 of the request text (the text is not kept).", "none"
        ),
        Column("run_id", "VARCHAR", "Dagster run, when there is one.", "none"),
        Column("prev_hash", "VARCHAR", "row_hash of the previous event.", "none", nullable=False),
        Column(
            "row_hash",
            "VARCHAR",
            "SHA-256 over this row's fields and prev_hash.",
            "none",
            nullable=False,
        ),
    ),
)
_HASHED = [c for c in ACCESS_LOG.column_names if c != "row_hash"]


@dataclass(frozen=True)
class AuditEvent:
    action: str
    decision: str
    user_name: str | None = None
    role: str | None = None
    tables: str = ""
    columns: str = ""
    filters: str = ""
    masks: str = ""
    rows_returned: int | None = None
    reason: str = ""
    query_hash: str | None = None
    run_id: str | None = None


def query_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def audit_key(root: str) -> bytes:
    """The chain's secret: MM_AUDIT_KEY (hex, from a secret store), or else the key file beside
    the lakehouse (created on first use, mode 0600: readable by the service account only)."""
    if os.environ.get(AUDIT_KEY_ENV):
        return bytes.fromhex(os.environ[AUDIT_KEY_ENV])
    path = Path(lakehouse.lease_dir(root).parent) / "_audit.key"
    try:
        text = path.read_text()
    except FileNotFoundError:
        # Published whole: a process that read the file while another was still writing it got
        # an empty key and hashed its event with it, which then read as a modified event.
        text = permissions.create_private_file_once(path, secrets.token_hex(32).encode()).decode()
    key = bytes.fromhex(text.strip())
    if len(key) < 32:  # fail closed: a short key would chain events that anyone could forge
        raise ValueError(f"the audit key at {path} is {len(key)} bytes; 32 are required")
    return key


def _row_hash(row: dict, key: bytes) -> str:
    canonical = json.dumps({k: _plain(row[k]) for k in _HASHED}, sort_keys=True)
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def _plain(value):
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    return value


def head_path(root: str) -> Path:
    """The copy of the chain's newest (sequence, hash) kept beside the lakehouse's tables."""
    return Path(lakehouse.lease_dir(root).parent) / "_audit_head.json"


_HEAD_KEY = "audit_head"  # commit metadata of every audit append: "<event_seq>:<row_hash>"
# Every append is one small file; readers open the table's every file, so the chain is compacted
# in place every this many appends (a gateway writes one per request, thousands a day).
COMPACT_EVERY = 500


def _chain_head(root: str) -> tuple[int, str]:
    """(sequence, hash) of the newest event; read from the newest commit when it is an audit
    append, else (after compaction) from the table."""
    newest = lakehouse.history(root, ACCESS_LOG.fqn, 1)
    commit = newest[0] if newest else {}
    if _HEAD_KEY in commit:
        seq, row_hash = commit[_HEAD_KEY].split(":", 1)
        return int(seq), row_hash
    snap = lakehouse.snapshot(root, ACCESS_LOG.fqn)
    if snap is None or not snap.files:
        return 0, GENESIS
    import duckdb

    with duckdb.connect() as scan:
        last = scan.execute(
            "SELECT event_seq, row_hash FROM read_parquet(?) ORDER BY event_seq DESC LIMIT 1",
            [list(snap.files)],
        ).fetchone()
    return (last[0], last[1]) if last else (0, GENESIS)


def append(root: str, event: AuditEvent) -> dict:
    """Append one event to the chain: one Delta commit, serialized by the audit table's lease so
    that concurrent processes extend one chain."""
    key = audit_key(root)
    with lakehouse.lease(root, ACCESS_LOG.fqn):
        seq, prev = _chain_head(root)
        row = {
            "event_seq": seq + 1,
            "event_id": str(uuid.uuid4()),
            "event_time": datetime.now(UTC).replace(tzinfo=None),
            **{k: getattr(event, k) for k in AuditEvent.__dataclass_fields__},
            "prev_hash": prev,
        }
        row["row_hash"] = _row_hash(row, key)
        head = f"{row['event_seq']}:{row['row_hash']}"
        version = warehouse.append_rows(root, ACCESS_LOG, [row], commit_metadata={_HEAD_KEY: head})
        if version % COMPACT_EVERY == 0:
            lakehouse.compact(root, ACCESS_LOG.fqn)
        head = json.dumps({"event_seq": row["event_seq"], "row_hash": row["row_hash"]})
        head_path(root).write_text(head)
        _record_in_sink(head)
    return row


def _sink() -> Path | None:
    configured = os.environ.get(AUDIT_HEAD_SINK_ENV)
    return Path(configured) if configured else None


def _record_in_sink(head: str) -> None:
    """One line per append, flushed to disk before the request's answer leaves the service."""
    sink = _sink()
    if sink is None:
        return
    descriptor = os.open(sink, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, (head + "\n").encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sink_heads() -> tuple[Path | None, list[dict] | None]:
    """(the sink, the heads it recorded — None when its file is missing); (None, None) without
    a sink. Read under the audit lease, so that they and the rows are read at one point."""
    sink = _sink()
    if sink is None or not sink.exists():
        return sink, None
    return sink, [json.loads(line) for line in sink.read_text().splitlines() if line.strip()]


def _sink_problems(
    sink: Path | None, recorded: list[dict] | None, hashes: dict[int, str], newest: int
) -> list[str]:
    """Every head the sink recorded must be a row of the chain with the same hash, and none
    newer than the chain's newest row."""
    if sink is None:
        return []
    if recorded is None:
        return [f"the audit head sink {sink} is missing"]
    problems = []
    beyond = [r["event_seq"] for r in recorded if r["event_seq"] > newest]
    if beyond:
        problems.append(
            f"events {newest + 1} to {max(beyond)} were removed (the head sink recorded them)"
        )
    changed = [
        r["event_seq"]
        for r in recorded
        if r["event_seq"] in hashes and hashes[r["event_seq"]] != r["row_hash"]
    ]
    if changed:
        problems.append(f"{len(changed)} events differ from the heads the sink recorded")
    return problems


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    rows: int
    problems: tuple[str, ...]


# Commits that leave the rows as they were: appends, and maintenance that rewrites files.
_KEEPING_OPERATIONS = {"CREATE TABLE", "OPTIMIZE", "VACUUM START", "VACUUM END"}


def _rewrites(root: str) -> list[str]:
    """Commits of the audit table that could have changed or removed rows (the Delta log keeps
    every commit, so a DELETE, UPDATE, MERGE or overwrite stays visible)."""
    found = []
    for commit in lakehouse.history(root, ACCESS_LOG.fqn):
        operation = commit.get("operation", "")
        mode = (commit.get("operationParameters") or {}).get("mode", "")
        if operation in _KEEPING_OPERATIONS or (operation == "WRITE" and mode == "Append"):
            continue
        found.append(f"version {commit.get('version')} rewrote the audit table ({operation})")
    return found


def verify_audit_chain(conn, root: str) -> ChainReport:
    """Recompute the chain with its key: any edited, deleted, inserted or truncated row, and a
    chain recomputed without the key, is reported; with a head sink, also any recorded event
    the table no longer holds as recorded."""
    # The rows and the head are read at one point of the chain: appends wait on the lease, and
    # the connection's view moves to the newest version. (Read apart, an append in between made
    # the head run ahead of the rows, which reads as truncation.)
    with lakehouse.lease(root, ACCESS_LOG.fqn):
        conn.refresh(ACCESS_LOG.fqn)
        # No table at all is an empty chain: the head file and the sink say whether it was.
        rows = (
            conn.execute(
                f"SELECT {', '.join(ACCESS_LOG.column_names)} FROM audit.access_log "
                "ORDER BY event_seq"
            ).fetchall()
            if conn.has_table(ACCESS_LOG.fqn)
            else []
        )
        head = json.loads(head_path(root).read_text()) if head_path(root).exists() else None
        sink, recorded = _sink_heads()
    key = audit_key(root)
    names = ACCESS_LOG.column_names
    problems: list[str] = []
    prev, expected_seq, count = GENESIS, 1, 0
    for values in rows:
        row = dict(zip(names, values, strict=True))
        count += 1
        if row["event_seq"] != expected_seq:
            problems.append(f"sequence gap before event {row['event_seq']}")
        if row["prev_hash"] != prev:
            problems.append(f"event {row['event_seq']} does not follow its predecessor")
        if not hmac.compare_digest(_row_hash(row, key), row["row_hash"]):
            problems.append(f"event {row['event_seq']} was modified")
        prev, expected_seq = row["row_hash"], row["event_seq"] + 1
    problems.extend(_rewrites(root))
    hashes = {values[names.index("event_seq")]: values[names.index("row_hash")] for values in rows}
    problems.extend(_sink_problems(sink, recorded, hashes, expected_seq - 1))
    if head is not None:
        if head["event_seq"] != expected_seq - 1 or head["row_hash"] != prev:
            problems.append("the newest events were removed (chain head does not match)")
    elif count:
        problems.append("the chain head beside the lakehouse is missing (truncation hidden?)")
    return ChainReport(not problems, count, tuple(problems))
