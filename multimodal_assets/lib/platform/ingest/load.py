"""Parse new files into their bronze tables and commit: the records first, the quarantine rows, the registry rows last."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa

from .. import lakehouse, warehouse
from ..tables import Table
from .isolation import _Parser
from .landing import LandedFile, unregistered
from .registry import FILES, QUARANTINE, Parsed, PartlyRead, QuarantineError


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
                outcome, rejected = PartlyRead.split(parser.result(landed))
                if rejected:
                    _quarantine_records(row, quarantine_rows, summary, rejected)
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
