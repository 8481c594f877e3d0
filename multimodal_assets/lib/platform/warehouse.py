"""DuckDB over the lakehouse: snapshot connections, staging and write-audit-publish commits.

A connection is a scratch DuckDB database in which every Delta table of the lakehouse is a
view `schema.table` over the Parquet files of the version resolved when the connection opened,
so the SQL in `lib/` reads tables as before and sees one consistent snapshot. Nothing is locked
for reading: writers commit new Delta versions beside the files readers are scanning. Staging
tables live in the connection's scratch database, removed when it closes.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import pyarrow as pa

from . import lakehouse
from .tables import Table

SCHEMAS = ("bronze", "silver", "gold", "governance", "audit", "ml", "staging")
# Rows per Arrow batch streamed from DuckDB into a Delta commit: bounded memory per commit.
_BATCH_ROWS = 256_000


class PublishError(Exception):
    """Rows that could not be written (the message names the table and the kind of error,
    never a value); the table keeps its previous version."""


class LakehouseConnection:
    """A DuckDB connection whose `schema.table` views read one snapshot of the lakehouse.

    Every DuckDB method is available on it (`execute`, `sql`, `register`, …); `versions` records
    the Delta version of each table it resolved, and writes through `commit` refresh the view.
    While `recording_reads` is on, `reads` collects the lakehouse tables each SQL text passed to
    `execute` or `sql` reads, so that a build can be held to the tables it declares.
    """

    def __init__(self, root: str, duck: duckdb.DuckDBPyConnection, as_of: dict[str, int]):
        self.root = root
        self.duckdb = duck
        self.versions: dict[str, int] = {}
        self._as_of = dict(as_of)
        self.recording_reads = False
        self.reads: set[str] = set()

    def __getattr__(self, name):
        return getattr(self.duckdb, name)

    def execute(self, query, *args, **kwargs):
        self._note_reads(query)
        return self.duckdb.execute(query, *args, **kwargs)

    def sql(self, query, *args, **kwargs):
        self._note_reads(query)
        return self.duckdb.sql(query, *args, **kwargs)

    def stream(self, query: str, batch_rows: int, params: list | None = None):
        """The rows of `query` as Arrow record batches of at most `batch_rows`, read on a cursor
        of this connection so that this connection stays free for writes (bounded memory: a
        cohort's rows never sit in Python at once)."""
        self._note_reads(query)
        reader = self.duckdb.cursor()
        try:
            yield from reader.sql(query, params=params).to_arrow_reader(batch_rows)
        finally:
            reader.close()

    def _note_reads(self, query) -> None:
        if self.recording_reads and isinstance(query, str):
            from .sql_reads import tables_read

            self.reads |= tables_read(query)

    def open_views(self) -> None:
        for schema in SCHEMAS:
            self.duckdb.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for fqn in sorted(set(lakehouse.list_tables(self.root)) | set(self._as_of)):
            self.refresh(fqn, self._as_of.get(fqn))

    def refresh(self, fqn: str, version: int | None = None) -> None:
        """Point the view of `fqn` at its newest version (or the given one)."""
        snap = lakehouse.snapshot(self.root, fqn, version)
        if snap is None or self.versions.get(fqn) == snap.version:
            return
        self.duckdb.execute(f"CREATE OR REPLACE VIEW {fqn} AS {_scan_sql(snap)}")
        self.versions[fqn] = snap.version

    def has_table(self, fqn: str) -> bool:
        return fqn in self.versions

    def commit(
        self,
        table: Table,
        select_sql: str,
        *,
        mode: str,
        predicate: str | None = None,
        params=None,
        commit_metadata: dict[str, str] | None = None,
    ) -> int:
        """Commit the rows of `select_sql` (declared columns) to the table; returns rows written."""
        relation = self.duckdb.sql(_storage_select(table, select_sql), params=params)
        reader = relation.to_arrow_reader(_BATCH_ROWS)
        schema = _storage_schema(table, reader.schema)
        written, failure = 0, None

        def batches():
            nonlocal written, failure
            try:
                for batch in reader:
                    written += batch.num_rows
                    yield pa.RecordBatch.from_arrays(batch.columns, schema=schema)
            except Exception as err:
                failure = err  # e.g. a value that does not cast to its declared type
                raise

        try:
            lakehouse.write(
                self.root,
                table.fqn,
                pa.RecordBatchReader.from_batches(schema, batches()),
                mode=mode,
                predicate=predicate,
                commit_metadata=commit_metadata,
            )
        except Exception:
            if failure is not None:
                # DuckDB's message quotes the offending value: name the kind of error only
                # ("Conversion Error"), or the exception type when there is no such prefix.
                prefix = re.match(r"([A-Z][A-Za-z ]{0,40} Error):", str(failure))
                kind = prefix.group(1) if prefix else type(failure).__name__
                raise PublishError(f"{table.fqn} was not written: {kind} in its rows") from None
            raise
        self.refresh(table.fqn)
        return written


def _scan_sql(snap: lakehouse.Snapshot) -> str:
    """The SELECT that reads a snapshot with its declared column types."""
    if not snap.files:
        columns = ", ".join(f'CAST(NULL AS {t}) AS "{n}"' for n, t in snap.columns)
        return f"SELECT {columns} WHERE false"
    columns = ", ".join(f'CAST("{n}" AS {t}) AS "{n}"' for n, t in snap.columns)
    files = ", ".join("'" + f.replace("'", "''") + "'" for f in snap.files)
    return f"SELECT {columns} FROM read_parquet([{files}], union_by_name = true)"


def _storage_type(declared: str) -> str:
    """What a declared DuckDB type is stored as in Delta (which has no JSON or fixed-size array)."""
    if declared == "JSON":
        return "VARCHAR"
    if declared.endswith("]") and not declared.endswith("[]"):
        return declared[: declared.rindex("[")] + "[]"
    return declared


def _storage_select(table: Table, source_sql: str) -> str:
    casts = ", ".join(
        f'CAST("{c.name}" AS {_storage_type(c.type)}) AS "{c.name}"' for c in table.columns
    )
    return f"SELECT {casts} FROM ({source_sql}) _rows"


def _column_metadata(column) -> dict[str, str]:
    # Kept as Delta field metadata: the table itself says what every column is (declared type,
    # classification) to any engine that reads it.
    return {
        "duckdb_type": column.type,
        "classification": column.classification,
        "regulatory": column.regulatory,
        "description": column.description,
    }


def _storage_schema(table: Table, schema: pa.Schema) -> pa.Schema:
    """The Arrow schema with each column's declaration as field metadata."""
    return pa.schema(
        [field.with_metadata(_column_metadata(table.column(field.name))) for field in schema]
    )


_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "JSON": pa.string(),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us"),
    "BLOB": pa.binary(),
}


def append_rows(root: str, table: Table, rows: list[dict], **commit) -> int:
    """Append Python rows straight to the Delta table, without a DuckDB connection (for small
    writes such as one audit row); only scalar column types."""
    schema = pa.schema(
        [
            pa.field(c.name, _ARROW_TYPES[c.type], metadata=_column_metadata(c))
            for c in table.columns
        ]
    )
    data = pa.Table.from_pylist([{c: r.get(c) for c in table.column_names} for r in rows], schema)
    return lakehouse.write(root, table.fqn, data, mode="append", **commit)


@contextmanager
def connect(
    root: str | os.PathLike,
    read_only: bool = False,
    as_of: dict[str, int] | None = None,
    memory_limit: str | None = None,
) -> Iterator[LakehouseConnection]:
    """A connection over the lakehouse's newest snapshot (or the versions in `as_of`).

    With `read_only`, once the views exist, file access is limited to the lakehouse's own files
    and the configuration is locked. Nothing waits for a writer. `memory_limit` (e.g. '2GB')
    bounds DuckDB's memory, beyond which it spills to the connection's scratch folder."""
    root = str(root)
    scratch = tempfile.mkdtemp(prefix="mm-duckdb-")
    settings = {
        **({"memory_limit": memory_limit} if memory_limit else {}),
        "temp_directory": scratch,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    # Writers stage in a scratch database file, which DuckDB's buffer manager can page out (in
    # memory, staging 10M wearable events peaked at 5.2 GiB, in a file at 2.0 GiB); readers
    # stage nothing and keep the faster in-memory catalog.
    database = ":memory:" if read_only else os.path.join(scratch, "session.duckdb")
    duck = duckdb.connect(database, config=settings)
    conn = LakehouseConnection(root, duck, as_of or {})
    try:
        conn.open_views()
        if read_only:
            path = lakehouse.local_path(root)
            if path is not None:
                allowed = os.path.abspath(path).rstrip("/") + "/"
                duck.execute(
                    f"SET allowed_directories = ['{allowed.replace(chr(39), chr(39) * 2)}']"
                )
            duck.execute("SET enable_external_access = false")
            duck.execute("SET lock_configuration = true")
        yield conn
    finally:
        duck.close()
        shutil.rmtree(scratch, ignore_errors=True)


def staging_name(table: Table) -> str:
    return f"staging.{table.layer}__{table.name}"


def stage(
    conn: LakehouseConnection,
    table: Table,
    select_sql: str,
    params: list | dict | None = None,
) -> str:
    """Write the candidate rows to a staging table (shape as produced, not as declared)."""
    name = staging_name(table)
    conn.execute(f"CREATE OR REPLACE TABLE {name} AS {select_sql}", params or [])
    return name


def table_columns(conn, qualified: str) -> list[str]:
    schema, name = qualified.split(".", 1)
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [schema, name],
    ).fetchall()
    return [r[0] for r in rows]


def _declared_select(table: Table, source: str) -> str:
    casts = ", ".join(f'CAST("{c.name}" AS {c.type}) AS "{c.name}"' for c in table.columns)
    return f"SELECT {casts} FROM {source}"


def publish(conn: LakehouseConnection, table: Table, source: str) -> int:
    """Replace the table with the staged rows in one Delta commit; returns the rows published.

    The rows are cast to the declared types before anything is written: a value that does not
    fit fails the publish, and readers keep seeing the previous version."""
    return conn.commit(table, _declared_select(table, source), mode="overwrite")


def append(conn: LakehouseConnection, table: Table, source: str) -> int:
    """Append rows to the table in one commit (bronze is append-only); returns rows added."""
    return conn.commit(table, _declared_select(table, source), mode="append")


def ensure_table(conn: LakehouseConnection, table: Table) -> None:
    """Create the table, empty, if the lakehouse does not have it yet."""
    if conn.has_table(table.fqn):
        return
    conn.refresh(table.fqn)  # another process may have created it since this one opened
    if not conn.has_table(table.fqn):
        empty = ", ".join(f'CAST(NULL AS {c.type}) AS "{c.name}"' for c in table.columns)
        rows = conn.duckdb.sql(_storage_select(table, f"SELECT {empty} WHERE false"))
        arrow = rows.to_arrow_table()
        # A table, not a stream: when two processes create it at once, the commit that loses
        # is retried as an (empty) append, which a consumed stream could not be.
        lakehouse.write(
            conn.root,
            table.fqn,
            pa.Table.from_batches([], _storage_schema(table, arrow.schema)),
            mode="append",
        )
        conn.refresh(table.fqn)


def row_count(conn, qualified: str, predicate: str | None = None, params=None) -> int:
    where = f" WHERE {predicate}" if predicate else ""
    return conn.execute(f"SELECT count(*) FROM {qualified}{where}", params or []).fetchall()[0][0]


def stage_rows(conn: LakehouseConnection, table: Table, rows: list[dict]) -> str:
    """Stage Python rows; columns are the declared ones plus any extra key the rows carry."""
    name = staging_name(table)
    if not rows:
        conn.execute(f"DROP TABLE IF EXISTS {name}")
        conn.execute(table.ddl(name))
        return name
    extra = sorted({k for row in rows for k in row} - set(table.column_names))
    columns = table.column_names + extra
    arrow = pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows])
    conn.register("_staged_rows", arrow)
    try:
        conn.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _staged_rows")
    finally:
        conn.unregister("_staged_rows")
    return name


def stage_row_batches(conn: LakehouseConnection, table: Table, batches) -> str:
    """Stage Python rows that arrive in batches (lists of dicts) into the declared shape, one
    batch in memory at a time; a key the declaration lacks is refused."""
    name = staging_name(table)
    # Declared types without NOT NULL: a missing value is the not-null check's to report.
    columns = ", ".join(f'"{c.name}" {c.type}' for c in table.columns)
    conn.execute(f"CREATE OR REPLACE TABLE {name} ({columns})")
    for rows in batches:
        if not rows:
            continue
        undeclared = sorted({k for row in rows for k in row} - set(table.column_names))
        if undeclared:
            raise ValueError(f"{table.fqn}: undeclared columns {', '.join(undeclared)}")
        conn.register("_staged_rows", pa.Table.from_pylist(rows))
        try:
            conn.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _staged_rows")
        finally:
            conn.unregister("_staged_rows")
    return name


def _sql_literal(value) -> str:
    """A literal of a slice value for a delta-rs predicate (dates and strings quoted)."""
    if value is None:
        raise ValueError("a slice value cannot be NULL")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def publish_changed_slices(conn: LakehouseConnection, table: Table, source: str) -> int:
    """Replace only the slices (values of the partition column) whose content changed.

    A slice's fingerprint is its row count and the sum of row hashes over every column but
    `_run_id` (doubles rounded to 9 decimals), so re-running over the same data rewrites nothing,
    and a late event rewrites exactly the slices it changes. All replaced slices are published
    in one Delta commit (a predicate overwrite). Returns the number of slices replaced.
    """
    part = f'"{table.partition_column}"'
    # Parallel float aggregation can differ in the last bits between runs; rounding the
    # fingerprint's doubles keeps an unchanged slice unchanged.
    # Both sides are cast to the declared types first: staged rows carry the types the SQL
    # produced (a BIGINT sum, say), the published table the declared ones.
    hashed = ", ".join(
        f'round(CAST("{c.name}" AS DOUBLE), 9)'
        if c.type == "DOUBLE"
        else f'CAST("{c.name}" AS {c.type})'
        for c in table.columns
        if c.name != "_run_id"
    )
    ensure_table(conn, table)

    def fingerprints(relation: str) -> str:
        return (
            f"SELECT {part} AS slice, count(*) AS n, sum(hash({hashed})::HUGEINT) AS h "
            f"FROM {relation} GROUP BY ALL"
        )

    changed = [
        row[0]
        for row in conn.execute(
            f"""SELECT coalesce(a.slice, b.slice) AS slice
                FROM ({fingerprints(source)}) a FULL OUTER JOIN ({fingerprints(table.fqn)}) b
                  ON a.slice = b.slice
                WHERE a.n IS DISTINCT FROM b.n OR a.h IS DISTINCT FROM b.h
                ORDER BY 1"""
        ).fetchall()
    ]
    if changed:
        conn.register("_changed_slices", pa.table({"slice": changed}))
        try:
            conn.commit(
                table,
                _declared_select(
                    table, f"{source} WHERE {part} IN (SELECT slice FROM _changed_slices)"
                ),
                mode="overwrite",
                predicate=f"{part} IN ({', '.join(_sql_literal(v) for v in changed)})",
            )
        finally:
            conn.unregister("_changed_slices")
    return len(changed)


# A table's log folder whose mtime is older than this cannot gain a commit with the same mtime:
# file times advance in clock ticks (milliseconds), so two commits within a tick share one.
_SETTLED_NS = 2_000_000_000


class SharedReader:
    """One long-lived read-only connection over the lakehouse's newest snapshot, for a server
    that answers many requests: each request reads through its own cursor, after the views of
    the tables with new commits (and of new tables) are repointed. Opening a connection resolves
    every table (~80 ms for 45 tables); the check before each request is a stat per table, and a
    version lookup for tables whose log changed recently or that are not on local disk."""

    def __init__(self, root: str | os.PathLike):
        self.root = str(root)
        self._opened = connect(self.root, read_only=True)
        self._conn = self._opened.__enter__()
        self._lock = threading.Lock()
        self._settled: dict[str, int | None] = {}  # table → log mtime known to hold no new commit

    def close(self) -> None:
        self._opened.__exit__(None, None, None)

    @contextmanager
    def cursor(self) -> Iterator[LakehouseConnection]:
        """A connection on the newest snapshot that shares this reader's views."""
        with self._lock:
            self._refresh_changed()
            reader = LakehouseConnection(self.root, self._conn.duckdb.cursor(), {})
            reader.versions = dict(self._conn.versions)
        try:
            yield reader
        finally:
            reader.duckdb.close()

    def _refresh_changed(self) -> None:
        for fqn in lakehouse.list_tables(self.root):
            # Read before the refresh: a commit after this look changes the mtime again.
            mtime, looked = lakehouse.log_mtime(self.root, fqn), time.time_ns()
            if mtime is not None and self._settled.get(fqn) == mtime:
                continue
            self._conn.refresh(fqn)
            settled = mtime is not None and looked - mtime > _SETTLED_NS
            self._settled[fqn] = mtime if settled else None
