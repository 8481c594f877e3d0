"""What is in landing and what the registry holds of it: landing rules (hidden files, symlinks, delivery folder names), scans by stat only, and the versions of a registered path."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath

from .. import lakehouse
from .registry import FILES


@dataclass(frozen=True)
class RegisteredPath:
    """What the registry holds of one landed path: the newest version's size and modification
    time, the hash of every version registered under it, and whether one was accepted
    (ingested, or a duplicate of ingested bytes) rather than quarantined."""

    size: int
    received_at: datetime
    versions: frozenset[str]
    accepted: bool

    def unchanged(self, size: int, received_at: datetime) -> bool:
        return (size, received_at) == (self.size, self.received_at)


@dataclass(frozen=True)
class LandedFile:
    path: str  # relative to the landing root, posix separators
    absolute: Path
    size: int
    received_at: datetime
    sha256: str | None = None  # read only for files the registry does not have yet
    # (code, reason) when landing rules refuse the file before it is read.
    refusal: tuple[str, str] | None = None

    def hashed(self) -> LandedFile:
        if self.sha256:
            return self
        if self.refusal:  # never opened: the hash is the link's or the name's, not content
            return replace(self, sha256=hashlib.sha256(self.path.encode()).hexdigest())
        return replace(self, sha256=sha256_file(self.absolute))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


UNBATCHED = "unbatched"  # the delivery batch of files put directly in landing/<modality>
_EPOCH = datetime(1970, 1, 1)


def modified_at(stat: os.stat_result) -> datetime:
    """A file's modification time (UTC, naive) to the microsecond the registry keeps, computed
    from the integer nanoseconds so that the same file always gives the same value."""
    return _EPOCH + timedelta(microseconds=stat.st_mtime_ns // 1000)


# A delivery folder becomes a Dagster partition key shown in the UI: letters, digits, - _ . only.
_BATCH_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def delivery_batch(relative: str | Path) -> str:
    """The delivery batch of a file (path relative to landing/<modality>): its top folder, as
    deliveries arrive one folder each (e.g. `2019-01-21/`). A folder whose name cannot be a
    partition key belongs to `unbatched`, whose run quarantines its files."""
    parts = PurePosixPath(relative).parts
    return parts[0] if len(parts) > 1 and _BATCH_NAME.match(parts[0]) else UNBATCHED


def _landing_refusal(relative: str, entry: os.DirEntry, root: Path):
    """Why landing rules refuse a file before it is read, or None."""
    parts = PurePosixPath(relative).parts
    if len(parts) > 1 and not _BATCH_NAME.match(parts[0]):
        return (
            "invalid_delivery_folder",
            "the delivery folder's name is not a valid batch name (letters, digits, - _ . only)",
        )
    if entry.is_symlink():
        target = os.path.realpath(entry.path)
        inside = target.startswith(os.path.realpath(root) + os.sep)
        if not inside or not os.path.isfile(target):
            return (
                "symlink_not_followed",
                "a symbolic link to something outside landing (or not a file) is not followed",
            )
    return None


def visible_files(folder: Path) -> Iterator[tuple[str, os.DirEntry]]:
    """(path relative to folder, posix; directory entry) of each regular file, in path order;
    hidden files and folders (e.g. `.DS_Store`, `.partial/`) are skipped. One `scandir` per
    folder and no `Path` per file: a sensor lists a landing of 250k files in about a second."""

    def walk(directory: str, prefix: str):
        with os.scandir(directory) as listing:
            entries = sorted(listing, key=lambda e: e.name)
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_symlink():  # yielded, never descended: scan_landing decides
                yield prefix + entry.name, entry
            elif entry.is_dir(follow_symlinks=False):
                yield from walk(entry.path, f"{prefix}{entry.name}/")
            elif entry.is_file(follow_symlinks=False):
                yield prefix + entry.name, entry

    yield from walk(str(folder), "")


def landed_batches(root: Path, modality: str) -> list[str]:
    """The delivery batches present in landing/<modality>, sorted (no file is read)."""
    folder = root / modality
    if not folder.exists():
        return []
    return sorted({delivery_batch(relative) for relative, _ in visible_files(folder)})


def scan_landing(
    root: Path,
    modality: str,
    batches: Iterable[str] | None = None,
    registered: Mapping[str, RegisteredPath] | None = None,
) -> list[LandedFile]:
    """Every visible regular file under landing/<modality> (only those of `batches` when given,
    none of the `registered` paths whose size and time are unchanged), in a stable order, with
    its size and modification time; nothing is read (hashes come later, for the files the
    registry does not have)."""
    registered = registered or {}
    folder = root / modality
    if not folder.exists():
        return []
    wanted = None if batches is None else set(batches)
    out = []
    for relative, entry in visible_files(folder):
        if wanted is not None and delivery_batch(relative) not in wanted:
            continue
        refusal = _landing_refusal(relative, entry, root)
        stat = entry.stat(follow_symlinks=refusal is None)
        path, received_at = f"{modality}/{relative}", modified_at(stat)
        known = registered.get(path)
        if known is not None and known.unchanged(stat.st_size, received_at):
            continue
        out.append(LandedFile(path, Path(entry.path), stat.st_size, received_at, refusal=refusal))
    return out


def registered_paths(root: str, modality: str | None = None) -> dict[str, RegisteredPath]:
    """Each path (relative to landing) in the newest registry, of one modality or all, with its
    versions: four columns of one table are read, no landed file."""
    import duckdb

    snap = lakehouse.snapshot(root, FILES.fqn)
    if snap is None or not snap.files:
        return {}
    where, params = ("WHERE modality = ?", [modality]) if modality else ("", [])
    with duckdb.connect() as scan:
        rows = scan.execute(
            "SELECT path, arg_max(bytes, registered_at), arg_max(received_at, registered_at), "
            "list(sha256), bool_or(status <> 'quarantined') "
            f"FROM read_parquet(?, union_by_name = true) {where} GROUP BY path",
            [list(snap.files), *params],
        ).fetchall()
    return {
        path: RegisteredPath(size, at, frozenset(hashes), accepted)
        for path, size, at, hashes, accepted in rows
    }


def unregistered(conn, files: Iterable[LandedFile]) -> list[LandedFile]:
    """The files the registry does not hold, hashed: new paths, and new versions of registered
    paths. A new version of a path whose bytes were accepted is refused (landing is append-only:
    a correction arrives as a new file); one of a path only ever quarantined is parsed, as a
    re-delivery. A registered file whose size and time are unchanged is not read again; one
    whose bytes are those of a registered version (touched, not changed) is left alone."""
    known = registered_paths(conn.root)
    out = []
    for landed in files:
        registered = known.get(landed.path)
        if registered is not None and registered.unchanged(landed.size, landed.received_at):
            continue
        landed = landed.hashed()
        if registered is not None and landed.sha256 in registered.versions:
            continue  # touched, not changed
        if registered is None or landed.refusal or not registered.accepted:
            out.append(landed)
        else:
            out.append(replace(landed, refusal=_changed_bytes(registered)))
    return out


def _changed_bytes(registered: RegisteredPath) -> tuple[str, str]:
    return (
        "changed_after_registration",
        f"the bytes under this path changed after it was registered ({len(registered.versions)} "
        "earlier version(s)); the rows of the first version stay, a correction must arrive as a "
        "new file",
    )
