"""The lakehouse: every declared table is a Delta Lake table (delta-rs) under one root URI.

No DuckDB here: this module resolves table snapshots (version, data files, schema), commits
Arrow data, takes per-table leases for read-modify-write commits, and maintains tables. Paths are
URIs (`<root>/<schema>/<table>`), joined as strings and never with `os.path`, so that the root can
become object storage; only the lease files need a local folder.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# Reader features this project's readers (DuckDB over the Parquet files the log lists) cannot
# honour: reading such a table file by file would return deleted rows or wrong columns.
_UNSUPPORTED_READER_FEATURES = {"deletionVectors", "columnMapping", "v2Checkpoint"}
# Set on every table this project creates: a commit's JSON stays, so time travel to a version
# a published model names keeps working after checkpoints (delta-rs deletes expired logs by
# default after 30 days).
TABLE_CONFIGURATION = {"delta.enableExpiredLogCleanup": "false"}
# Files that commit retention keeps for readers in flight and for time travel (Delta's default).
DEFAULT_RETENTION_HOURS = 168
COMMIT_ATTEMPTS = 5


class UnsupportedTable(Exception):
    """A Delta table written with a feature this project cannot read correctly."""


def table_uri(root: str, fqn: str) -> str:
    schema, name = fqn.split(".", 1)
    return f"{str(root).rstrip('/')}/{schema}/{name}"


def local_path(uri: str) -> str | None:
    """The local file system path of a URI, or None for object storage."""
    uri = str(uri)
    if uri.startswith("file://"):
        return uri[len("file://") :]
    return None if "://" in uri else uri


def log_mtime(root: str, fqn: str) -> int | None:
    """Modification time (ns) of a local table's log folder, which every commit changes; None
    for a table on object storage."""
    path = local_path(table_uri(root, fqn))
    if path is None:
        return None
    try:
        return os.stat(f"{path}/_delta_log").st_mtime_ns
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class Snapshot:
    """One version of one table: what a reader scans."""

    fqn: str
    uri: str
    version: int
    files: tuple[str, ...]
    # (name, DuckDB type) in table order: the declared type when the writer recorded it.
    columns: tuple[tuple[str, str], ...]


_cache: dict[str, tuple[object, tuple[int, int] | None]] = {}
_cache_lock = threading.Lock()


def _birth(uri: str) -> tuple[int, int] | None:
    """Which table lives at a local `uri`: the inode and time of its first commit (a table
    removed and created again has other ones — an inode alone is reused at once; None on object
    storage or once that commit is cleaned up)."""
    path = local_path(uri)
    if path is None:
        return None
    try:
        first = os.stat(os.path.join(path, "_delta_log", f"{0:020d}.json"))
    except FileNotFoundError:
        return None
    return first.st_ino, first.st_mtime_ns


def _latest(uri: str):
    """The table at its newest version; the handle is kept per process and brought up to date
    incrementally (reading only the commits since the last look)."""
    from deltalake import DeltaTable

    with _cache_lock:
        table, born = _cache.get(uri, (None, None))
        if table is not None and born == _birth(uri):
            try:
                table.update_incremental()
                return table
            except Exception:  # noqa: BLE001 - the table was removed or replaced: open anew
                pass
        _cache.pop(uri, None)
        if not DeltaTable.is_deltatable(uri):
            return None
        born = _birth(uri)
        table = DeltaTable(uri)
        _cache[uri] = (table, born)
        return table


def snapshot(root: str, fqn: str, version: int | None = None) -> Snapshot | None:
    """The table's newest snapshot (or the given version); None if the table does not exist."""
    from deltalake import DeltaTable

    uri = table_uri(root, fqn)
    if version is None:
        table = _latest(uri)
        if table is None:
            return None
    else:
        table = DeltaTable(uri, version=version)
    features = set(table.protocol().reader_features or ())
    unsupported = sorted(features & _UNSUPPORTED_READER_FEATURES)
    if unsupported:
        raise UnsupportedTable(f"{fqn} uses Delta reader features {', '.join(unsupported)}")
    columns = tuple(
        (field.name, (field.metadata or {}).get("duckdb_type") or _duckdb_type(field.type))
        for field in table.schema().fields
    )
    return Snapshot(fqn, uri, table.version(), tuple(table.file_uris()), columns)


_PRIMITIVES = {
    "string": "VARCHAR",
    "long": "BIGINT",
    "integer": "INTEGER",
    "short": "SMALLINT",
    "byte": "TINYINT",
    "double": "DOUBLE",
    "float": "FLOAT",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMPTZ",
    "timestamp_ntz": "TIMESTAMP",
    "binary": "BLOB",
}


def _duckdb_type(delta_type) -> str:
    """DuckDB type of a Delta column that another engine wrote (no declared type recorded)."""
    kind = getattr(delta_type, "type", None)
    if kind == "array":
        return f"{_duckdb_type(delta_type.element_type)}[]"
    if isinstance(kind, str) and kind.startswith("decimal"):
        return kind.upper()
    if kind in _PRIMITIVES:
        return _PRIMITIVES[kind]
    raise UnsupportedTable(f"Delta column type {delta_type} has no DuckDB mapping here")


def list_tables(root: str) -> list[str]:
    """Schema-qualified names of the Delta tables under the root (`<schema>/<table>/_delta_log`)."""
    import pyarrow.fs as pafs

    filesystem, base = pafs.FileSystem.from_uri(_absolute(root))
    found = []
    for schema in filesystem.get_file_info(pafs.FileSelector(base, allow_not_found=True)):
        if schema.type != pafs.FileType.Directory or schema.base_name.startswith(("_", ".")):
            continue
        for table in filesystem.get_file_info(pafs.FileSelector(schema.path)):
            log = filesystem.get_file_info(f"{table.path}/_delta_log")
            if log.type == pafs.FileType.Directory:
                found.append(f"{schema.base_name}.{table.base_name}")
    return sorted(found)


def _absolute(root: str) -> str:
    path = local_path(root)
    return str(Path(path).resolve()) if path is not None else root


def write(
    root: str,
    fqn: str,
    data,
    *,
    mode: str,
    predicate: str | None = None,
    commit_metadata: dict[str, str] | None = None,
) -> int:
    """Commit Arrow data (a table or a record batch reader) to the table; returns the version.

    `mode` is overwrite (the whole table, or with `predicate` only the rows it matches) or
    append. A commit that truly conflicts with a concurrent one (two overwrites of one table)
    is retried: the data is the complete new content of what it replaces, so the last writer
    wins, as one transaction after the other would.
    """
    from deltalake import CommitProperties, write_deltalake
    from deltalake.exceptions import CommitFailedError

    uri = table_uri(root, fqn)
    whole = mode == "overwrite" and predicate is None
    for attempt in range(COMMIT_ATTEMPTS):
        try:
            write_deltalake(
                uri,
                data,
                mode=mode,
                predicate=predicate,
                # A full replace takes the declaration as it is now (new columns, new types);
                # appends and slice replaces add new columns and keep the old ones.
                schema_mode="overwrite" if whole else "merge",
                configuration=TABLE_CONFIGURATION,
                commit_properties=CommitProperties(custom_metadata=commit_metadata or {}),
            )
            break
        except CommitFailedError:
            if attempt == COMMIT_ATTEMPTS - 1 or not _rewindable(data):
                raise
            time.sleep(0.05 * 2**attempt)
    table = _latest(uri)
    return table.version()


def _rewindable(data) -> bool:
    # A record batch reader is consumed by the first attempt; only a table can be sent again.
    import pyarrow as pa

    return isinstance(data, pa.Table)


def delete(root: str, fqn: str, predicate: str) -> int:
    """Delete the rows matching a SQL predicate (delta-rs syntax); returns the rows removed."""
    table = _latest(table_uri(root, fqn))
    if table is None:
        return 0
    metrics = table.delete(predicate)
    return int(metrics.get("num_deleted_rows", 0))


def history(root: str, fqn: str, limit: int | None = None) -> list[dict]:
    """The table's commits, newest first (operation, parameters, custom metadata); [] if none."""
    table = _latest(table_uri(root, fqn))
    return table.history(limit) if table is not None else []


def lease_dir(root: str) -> Path:
    """Where the lease files live: beside a local lakehouse, or MM_LEASE_DIR for object storage
    (a single-machine lock; several machines need a lock service, as delta-rs needs one on S3)."""
    override = os.environ.get("MM_LEASE_DIR")
    if override:
        return Path(override)
    path = local_path(root)
    if path is None:
        raise UnsupportedTable("an object-store lakehouse needs MM_LEASE_DIR for its leases")
    return Path(path) / "_leases"


@contextmanager
def lease(root: str, name: str) -> Iterator[None]:
    """Serialize the read-modify-write commits of one table (or one modality's registry rows):
    an append that must not repeat a key, the audit chain. Readers never take it, and writers of
    other tables never wait for it. The kernel releases it when the process dies."""
    folder = lease_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    safe = hashlib.sha256(name.encode()).hexdigest()[:16]
    with open(folder / f"{safe}.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def compact(root: str, fqn: str) -> None:
    """Rewrite the table's small files into few (the rows and their versions stay the same)."""
    table = _latest(table_uri(root, fqn))
    if table is not None:
        table.optimize.compact()


@dataclass(frozen=True)
class MaintenanceReport:
    fqn: str
    files_before: int
    files_after: int
    files_vacuumed: int
    version: int
    retention_hours: int


def maintain(root: str, fqn: str, keep_versions: set[int] = frozenset()) -> MaintenanceReport:
    """Compact small files, write a checkpoint and vacuum files no kept version needs.

    Vacuum keeps every file removed within the retention; the retention is stretched to reach
    back to the oldest version in `keep_versions` (those a published model's training set
    names), so those versions stay readable."""
    table = _latest(table_uri(root, fqn))
    before = len(table.file_uris())
    table.optimize.compact()
    table.create_checkpoint()
    retention = DEFAULT_RETENTION_HOURS
    if keep_versions:
        oldest = min(keep_versions)
        commit = next((c for c in table.history() if c.get("version") == oldest), None)
        if commit is not None:
            age_hours = (datetime.now(UTC).timestamp() * 1000 - commit["timestamp"]) / 3_600_000
            retention = max(retention, int(age_hours) + 1)
    vacuumed = table.vacuum(
        retention_hours=retention, dry_run=False, enforce_retention_duration=False
    )
    table.update_incremental()
    return MaintenanceReport(
        fqn, before, len(table.file_uris()), len(vacuumed), table.version(), retention
    )
