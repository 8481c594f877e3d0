"""Landing → bronze: content-addressed file registry, quarantine, and append of parsed records."""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, TimeoutError
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.parquet as pq

from . import lakehouse, warehouse
from .tables import Column, Table

FILE_STATUSES = ("ingested", "quarantined", "duplicate")
Parsed = list[dict] | pa.Table

# Delivered file names can carry patient names (Synthea names files after the patient).
_PATH = Column(
    "path", "VARCHAR", "Path relative to the landing folder.", "phi", "hipaa", nullable=False
)
_SHA256 = Column("sha256", "VARCHAR", "SHA-256 of the file's bytes.", "none", nullable=False)
_MODALITY = Column("modality", "VARCHAR", "Landing modality folder.", "none", nullable=False)

FILES = Table(
    layer="bronze",
    name="files",
    modality="all",
    description="One row per version of a landed file (its path and the hash of its bytes): size, "
    "arrival and ingest outcome. A path whose bytes change gets a second row, quarantined.",
    primary_key=("path", "sha256"),
    restricted=True,
    columns=(
        _PATH,
        _SHA256,
        Column("bytes", "BIGINT", "File size in bytes.", "none", nullable=False),
        _MODALITY,
        Column(
            "received_at", "TIMESTAMP", "The version's modification time (UTC) when seen.", "none"
        ),
        Column(
            "status",
            "VARCHAR",
            "ingested, quarantined, or duplicate of an ingested file.",
            "none",
            nullable=False,
            allowed=FILE_STATUSES,
        ),
        Column("error_code", "VARCHAR", "Machine-readable reason when quarantined.", "none"),
        Column(
            "error",
            "VARCHAR",
            "Human-readable reason when quarantined (never holds values).",
            "none",
        ),
        Column("records", "BIGINT", "Records parsed from this file.", "none"),
        Column("run_id", "VARCHAR", "Dagster run that registered the file.", "none"),
        Column("registered_at", "TIMESTAMP", "When the file was registered (UTC).", "none"),
    ),
)

QUARANTINE = Table(
    layer="bronze",
    name="quarantine",
    modality="all",
    description="Files that could not be ingested, with the reason; their bytes stay in landing.",
    restricted=True,
    columns=(
        _PATH,
        _SHA256,
        _MODALITY,
        Column("error_code", "VARCHAR", "Machine-readable reason.", "none", nullable=False),
        Column("message", "VARCHAR", "Human-readable reason (never holds values).", "none"),
        Column("run_id", "VARCHAR", "Dagster run that quarantined the file.", "none"),
        Column("quarantined_at", "TIMESTAMP", "When the file was quarantined (UTC).", "none"),
    ),
)


class QuarantineError(Exception):
    """A file that cannot be ingested. The message must describe the problem, never the data."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class PartlyRead:
    """What a parser read from a file whose records stand alone (one JSON event a line), with
    the records it could not read as (line number, code, reason): those are quarantined one by
    one and the rest are ingested."""

    records: Parsed | dict[str, Parsed]
    rejected: list[tuple[int, str, str]]


# A file of standalone records with more bad records than this, or more bad than good, is not a
# file with a few damaged records: it is quarantined whole.
MAX_REJECTED_RECORDS = 1000


def mostly_bad(rejected: int, records: int) -> bool:
    return rejected > MAX_REJECTED_RECORDS or 2 * rejected > records


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


@dataclass
class IngestSummary:
    new_files: int = 0
    ingested: int = 0
    quarantined: int = 0
    duplicates: int = 0
    parsed: int = 0  # records read from the files
    records: int = 0  # records appended (fewer when an append-once table saw them before)
    records_quarantined: int = 0  # records of ingested files that could not be read
    error_codes: dict[str, int] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, int]:
        meta = {
            "new_files": self.new_files,
            "files_ingested": self.ingested,
            "files_quarantined": self.quarantined,
            "files_duplicate": self.duplicates,
            "records_parsed": self.parsed,
            "records_appended": self.records,
            "records_already_present": self.parsed - self.records,
            "records_quarantined": self.records_quarantined,
        }
        meta.update({f"quarantined_{code}": n for code, n in sorted(self.error_codes.items())})
        return meta


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


def ingest(
    conn,
    modality: str,
    files: list[LandedFile],
    parse: Callable[[bytes], Parsed | dict[str, Parsed]],
    target: Table | Sequence[Table],
    run_id: str,
    commit_every_bytes: int = 32 << 20,
    with_path: bool = False,
    workers: int = 1,
    isolated: bool = False,
) -> IngestSummary:
    """Parse new files into `target`, registering each in bronze.files; bad files are quarantined.

    With several targets, `parse` returns their rows keyed by table name (fqn); a file may fill
    any subset of them. `with_path` passes the landed file's path as a second argument, for
    formats that span several files (PLINK's .bed/.bim/.fam). `isolated` parses in worker
    processes, so that a parser that crashes or hangs costs its file only. With `workers` > 1
    files are parsed in that many processes, each writing its rows to staged Parquet that this process,
    the only writer, appends. Identical bytes are parsed once.

    Rows are committed in chunks, one Delta commit per table: the records first, then the
    quarantine rows, the registry rows last. A crash between two commits leaves records (or
    quarantine rows) of files the registry does not name; the next run deletes those orphans
    before it parses the files again, so every registered file is fully ingested exactly once.
    One run at a time per modality holds the modality's registry lease; other modalities and
    every reader go on.
    """
    targets = (target,) if isinstance(target, Table) else tuple(target)
    with lakehouse.lease(conn.root, f"{FILES.fqn}:{modality}"):
        for table in (FILES, QUARANTINE, *targets):
            conn.refresh(table.fqn)  # what other runs committed since this connection opened
            warehouse.ensure_table(conn, table)
        files = unregistered(conn, files)
        _delete_orphans(conn, modality, targets)
        return _ingest_unregistered(
            conn,
            modality,
            files,
            parse,
            targets,
            run_id,
            commit_every_bytes,
            with_path,
            workers,
            isolated,
        )


def _delete_orphans(conn, modality: str, targets: Sequence[Table]) -> None:
    """Remove rows a crashed run committed for files it never registered."""
    ingested = f"SELECT sha256 FROM {FILES.fqn} WHERE status = 'ingested'"
    for table in targets:
        orphans = [
            r[0]
            for r in conn.execute(
                f"SELECT DISTINCT _source_sha256 FROM {table.fqn} "
                f"WHERE _source_sha256 NOT IN ({ingested})"
            ).fetchall()
        ]
        if orphans:
            lakehouse.delete(conn.root, table.fqn, _in_list("_source_sha256", orphans))
            conn.refresh(table.fqn)
    stray = conn.execute(
        f"SELECT DISTINCT path, sha256 FROM {QUARANTINE.fqn} q WHERE modality = ? AND NOT EXISTS "
        f"(SELECT 1 FROM {FILES.fqn} f WHERE f.path = q.path AND f.sha256 = q.sha256)",
        [modality],
    ).fetchall()
    if stray:  # versions: a path's registered version keeps its quarantine row
        versions = " OR ".join(
            f"({_in_list('path', [path])} AND {_in_list('sha256', [sha])})" for path, sha in stray
        )
        lakehouse.delete(conn.root, QUARANTINE.fqn, versions)
        conn.refresh(QUARANTINE.fqn)


def _in_list(column: str, values: list[str]) -> str:
    quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    return f'"{column}" IN ({quoted})'


def _ingest_unregistered(
    conn, modality, files, parse, targets, run_id, commit_every_bytes, with_path, workers, isolated
) -> IngestSummary:
    # Only the new files' hashes are looked up: the registry may hold millions.
    hashes = pa.array(sorted({f.sha256 for f in files}), pa.string())
    conn.register("_new_hashes", pa.table({"sha256": hashes}))
    try:
        ingested_hashes = {
            row[0]
            for row in conn.execute(
                f"SELECT sha256 FROM {FILES.fqn} WHERE status = 'ingested' "
                "AND sha256 IN (SELECT sha256 FROM _new_hashes)"
            ).fetchall()
        }
    finally:
        conn.unregister("_new_hashes")
    summary = IngestSummary(new_files=len(files))
    now = datetime.now(UTC).replace(tzinfo=None)
    records: dict[str, list[pa.Table]] = {t.fqn: [] for t in targets}
    rows_by_table: dict[str, list[dict]] = {t.fqn: [] for t in targets}
    file_rows: list[dict] = []
    quarantine_rows: list[dict] = []
    pending_bytes = 0

    def flush():
        nonlocal records, rows_by_table, file_rows, quarantine_rows, pending_bytes
        for table in targets:
            batches = records[table.fqn]
            if rows_by_table[table.fqn]:  # per-row dicts become one Arrow batch here
                batches.append(_arrow(table, rows_by_table[table.fqn]))
            if batches:
                summary.records += _append(
                    conn, table, pa.concat_tables(batches, promote_options="permissive")
                )
        if quarantine_rows:
            _append(conn, QUARANTINE, _arrow(QUARANTINE, quarantine_rows))
        if file_rows:  # last: a file is registered only once its rows are committed
            _append(conn, FILES, _arrow(FILES, file_rows))
        records = {t.fqn: [] for t in targets}
        rows_by_table = {t.fqn: [] for t in targets}
        file_rows, quarantine_rows, pending_bytes = [], [], 0

    with _Parser(parse, with_path, workers, isolated) as parser:
        parser.submit([f for f in files if f.sha256 not in ingested_hashes and not f.refusal])
        for landed in files:
            row = {
                "path": landed.path,
                "sha256": landed.sha256,
                "bytes": landed.size,
                "modality": modality,
                "received_at": landed.received_at,
                "status": "ingested",
                "error_code": None,
                "error": None,
                "records": 0,
                "run_id": run_id,
                "registered_at": now,
            }
            if landed.refusal:
                _quarantine(row, quarantine_rows, summary, *landed.refusal)
            elif landed.sha256 in ingested_hashes:
                row["status"] = "duplicate"
                summary.duplicates += 1
            else:
                outcome = parser.result(landed)
                if isinstance(outcome, PartlyRead):
                    _quarantine_records(row, quarantine_rows, summary, outcome.rejected)
                    outcome = outcome.records
                if isinstance(outcome, QuarantineError):
                    _quarantine(row, quarantine_rows, summary, outcome.code, outcome.message)
                else:
                    by_table = outcome if isinstance(outcome, dict) else {targets[0].fqn: outcome}
                    for table in targets:
                        parsed = by_table.get(table.fqn, [])
                        if isinstance(parsed, pa.Table):
                            batch = _with_provenance(parsed, table, landed, run_id)
                            if batch.num_rows:
                                records[table.fqn].append(batch)
                            count = batch.num_rows
                        else:
                            # Rows as dicts (one per DICOM file, say) are collected and turned
                            # into Arrow once per commit: an Arrow table per file costs more
                            # than parsing a small file.
                            constants = _provenance(table, landed, run_id)
                            rows_by_table[table.fqn].extend({**r, **constants} for r in parsed)
                            count = len(parsed)
                        row["records"] += count
                        summary.parsed += count
                    summary.ingested += 1
                    ingested_hashes.add(landed.sha256)
            file_rows.append(row)
            pending_bytes += landed.size
            if pending_bytes >= commit_every_bytes:
                flush()
        flush()
    return summary


def _parse_file(parse, with_path: bool, path: Path):
    """The parsed rows, or the QuarantineError that says why there are none."""
    try:
        data = path.read_bytes()
        return parse(data, path) if with_path else parse(data)
    except QuarantineError as err:
        return err
    except Exception as err:  # noqa: BLE001 - a parser bug must not sink the batch
        # Exception text from third-party parsers can quote file content: keep the type only.
        return QuarantineError("parser_error", f"unexpected {type(err).__name__} while parsing")


def _parse_to_parquet(parse, with_path: bool, path: Path, staging: Path, key: str):
    """Worker side: parse one file and stage each table's rows as Parquet (paths returned, with
    the records that could not be read when there are some)."""
    outcome = _parse_file(parse, with_path, path)
    if isinstance(outcome, QuarantineError):
        return outcome.code, outcome.message
    rejected = outcome.rejected if isinstance(outcome, PartlyRead) else None
    if rejected:
        outcome = outcome.records
    by_table = outcome if isinstance(outcome, dict) else {None: outcome}
    staged = {}
    for i, (name, rows) in enumerate(by_table.items()):
        arrow = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows)
        staged[name] = str(staging / f"{key}-{i}.parquet")
        pq.write_table(arrow, staged[name])
    return PartlyRead(staged, rejected) if rejected else staged


PARSE_SECONDS = 600  # per-file budget of an isolated parser (a 1 GB VCF parses in ~2 minutes)


class _Parser:
    """Parses files in order in this process, or ahead of time in a process pool.

    `isolated` parsers (native readers that can take the process down: htslib, PLINK and BGEN
    readers) always run in pool workers. A worker that dies or overruns its time costs only
    its file: the file is parsed again alone in a process of its own, and if that one dies too
    (or hangs) the file is quarantined as parser_crashed (with the signal) or parser_timeout.
    """

    def __init__(self, parse, with_path: bool, workers: int, isolated: bool = False):
        self.parse, self.with_path, self.workers = parse, with_path, max(workers, 1)
        self.pooled = workers > 1 or isolated
        self.futures: dict[str, Future] = {}
        self.stack = contextlib.ExitStack()
        self.context = multiprocessing.get_context("forkserver")

    def __enter__(self):
        if self.pooled:
            self.staging = Path(self.stack.enter_context(tempfile.TemporaryDirectory()))
            self.pool = ProcessPoolExecutor(self.workers, mp_context=self.context)
            self.stack.callback(lambda: self.pool.shutdown(wait=True, cancel_futures=True))
        return self

    def __exit__(self, *exc):
        return self.stack.__exit__(*exc)

    def submit(self, files: list[LandedFile]) -> None:
        if not self.pooled:
            return
        for landed in files:  # identical bytes are parsed once, from their first path
            if landed.sha256 not in self.futures:
                self.futures[landed.sha256] = self.pool.submit(
                    _parse_to_parquet,
                    self.parse,
                    self.with_path,
                    landed.absolute,
                    self.staging,
                    landed.sha256,
                )

    def result(self, landed: LandedFile):
        if not self.pooled:
            return _parse_file(self.parse, self.with_path, landed.absolute)
        try:
            staged = self.futures[landed.sha256].result(timeout=PARSE_SECONDS)
        except TimeoutError:
            self._stop_pool()  # its worker is stuck: the files still queued run alone below
            staged = self._alone(landed)
        except (BrokenProcessPool, CancelledError):
            staged = self._alone(landed)
        if isinstance(staged, tuple):
            return QuarantineError(*staged)
        rejected = staged.rejected if isinstance(staged, PartlyRead) else None
        if rejected:
            staged = staged.records
        tables = {name: pq.read_table(path) for name, path in staged.items()}
        tables = tables[None] if None in tables else tables
        return PartlyRead(tables, rejected) if rejected else tables

    def _stop_pool(self) -> None:
        for process in list(getattr(self.pool, "_processes", {}).values()):
            process.kill()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _alone(self, landed: LandedFile):
        """Parse one file in a process of its own: its result, or why it has none."""
        receive, send = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=_parse_into_pipe,
            args=(send, self.parse, self.with_path, landed.absolute, self.staging, landed.sha256),
        )
        process.start()
        send.close()
        process.join(PARSE_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()
            return ("parser_timeout", f"the parser ran past {PARSE_SECONDS} s on this file")
        if process.exitcode != 0:
            import signal

            code = -process.exitcode if process.exitcode < 0 else None
            how = f"signal {signal.Signals(code).name}" if code else f"exit {process.exitcode}"
            return ("parser_crashed", f"the parser's process died on this file ({how})")
        return receive.recv()


def _parse_into_pipe(send, parse, with_path, path, staging, key) -> None:
    send.send(_parse_to_parquet(parse, with_path, path, staging, key))
    send.close()


def _quarantine_row(row: dict, code: str, message: str) -> dict:
    """A bronze.quarantine row for the file (or one record of it) behind a registry row."""
    return {
        "path": row["path"],
        "sha256": row["sha256"],
        "modality": row["modality"],
        "error_code": code,
        "message": message,
        "run_id": row["run_id"],
        "quarantined_at": row["registered_at"],
    }


def _quarantine(row, quarantine_rows, summary, code, message):
    row.update(status="quarantined", error_code=code, error=message)
    quarantine_rows.append(_quarantine_row(row, code, message))
    summary.quarantined += 1
    summary.error_codes[code] = summary.error_codes.get(code, 0) + 1


def _quarantine_records(row, quarantine_rows, summary, rejected) -> None:
    """Quarantine rows for the records of a file that could not be read, one per line; the file
    is ingested with the rest and its registry row says how many were left out."""
    quarantine_rows += [_quarantine_row(row, code, f"line {n}: {why}") for n, code, why in rejected]
    first = min(rejected)
    row.update(
        error_code="records_quarantined",
        error=f"{len(rejected)} record(s) could not be read and are in bronze.quarantine (the "
        f"first: line {first[0]}, {first[1]}); the other records were ingested",
    )
    summary.records_quarantined += len(rejected)


def _arrow(table: Table, rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist([{c: r.get(c) for c in table.column_names} for r in rows])


def _provenance(target: Table, landed: LandedFile, run_id: str) -> dict:
    """The file-level provenance every bronze row carries."""
    constants = {"_source_sha256": landed.sha256, "_run_id": run_id}
    if "received_at" in target.column_names:
        constants["received_at"] = landed.received_at
    return constants


def _with_provenance(parsed: pa.Table, target: Table, landed: LandedFile, run_id: str) -> pa.Table:
    """Parsed Arrow records with the file-level provenance, declared columns only."""
    constants = _provenance(target, landed, run_id)
    names = [c for c in target.column_names if c not in constants]
    # Staged Parquet may carry extra columns: keep only declared ones.
    batch = parsed.select([c for c in parsed.column_names if c in names])
    for name, value in constants.items():
        if name in batch.column_names:
            batch = batch.drop_columns([name])
        # Repeated in Arrow (C++): a Python list of millions of references was ~5% of a
        # genotype file's ingest.
        batch = batch.append_column(name, pa.repeat(value, batch.num_rows))
    return batch


def _append(conn, table: Table, arrow: pa.Table) -> int:
    """Append rows in one commit; for append-once tables only keys not seen before (the caller
    holds the modality's lease, the only writer of its tables). Returns rows added."""
    conn.register("_incoming_rows", arrow)
    try:
        if not table.append_once:
            return warehouse.append(conn, table, "_incoming_rows")
        keys = ", ".join(f'"{k}"' for k in table.primary_key)
        # Of several deliveries of one key, the earliest arrival is the one kept; between files
        # that arrived at once, the one whose hash sorts first, so that a re-run keeps the same.
        order = [c for c in ("received_at", "_source_sha256") if c in table.column_names]
        first = f"ORDER BY {', '.join(order)}" if order else ""
        match = " AND ".join(f't."{k}" = i."{k}"' for k in table.primary_key)
        return warehouse.append(
            conn,
            table,
            f"(SELECT * FROM _incoming_rows i WHERE NOT EXISTS "
            f"(SELECT 1 FROM {table.fqn} t WHERE {match}) "
            f"QUALIFY row_number() OVER (PARTITION BY {keys} {first}) = 1)",
        )
    finally:
        conn.unregister("_incoming_rows")
