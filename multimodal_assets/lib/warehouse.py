"""DuckDB warehouse primitives: serialized connections, staging and transactional publish."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from .tables import Table

SCHEMAS = ("bronze", "silver", "gold", "governance", "audit", "ml", "staging")


@contextmanager
def _exclusive_lock(db_path: Path) -> Iterator[None]:
    # DuckDB allows one process per file (even read-only opens conflict with a writer), so
    # every process that opens the warehouse queues on this OS lock instead of failing with
    # "Could not set lock on file". The kernel releases it if the process dies.
    lock_path = db_path.with_name(db_path.name + ".lock")
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def connect(
    db_path: str | os.PathLike, config: dict | None = None, read_only: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse under the cross-process lock; always closes, also when the body raises."""
    path = Path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(path):
        conn = duckdb.connect(str(path), read_only=read_only, config=config or {})
        try:
            if not read_only:
                ensure_schemas(conn)
            yield conn
        finally:
            conn.close()


def ensure_schemas(conn: duckdb.DuckDBPyConnection) -> None:
    for schema in SCHEMAS:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")


def ensure_table(conn: duckdb.DuckDBPyConnection, table: Table) -> None:
    conn.execute(table.ddl())


def staging_name(table: Table) -> str:
    return f"staging.{table.layer}__{table.name}"


def stage(
    conn: duckdb.DuckDBPyConnection,
    table: Table,
    select_sql: str,
    params: list | dict | None = None,
) -> str:
    """Write the candidate rows to a staging table (shape as produced, not as declared)."""
    name = staging_name(table)
    conn.execute(f"CREATE OR REPLACE TABLE {name} AS {select_sql}", params or [])
    return name


def table_columns(conn: duckdb.DuckDBPyConnection, qualified: str) -> list[str]:
    schema, name = qualified.split(".", 1)
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [schema, name],
    ).fetchall()
    return [r[0] for r in rows]


def _insert_select(table: Table, source: str) -> str:
    cols = ", ".join(f'"{c}"' for c in table.column_names)
    casts = ", ".join(f'CAST("{c.name}" AS {c.type})' for c in table.columns)
    return f"INSERT INTO {table.fqn} ({cols}) SELECT {casts} FROM {source}"


def publish(
    conn: duckdb.DuckDBPyConnection,
    table: Table,
    source: str,
    slice_predicate: str | None = None,
    slice_params: list | None = None,
) -> int:
    """Replace the table (or one slice of it) with the staged rows in a single transaction.

    A failure anywhere rolls back, so readers see either the old or the new table, never a mix.
    """
    conn.execute("BEGIN TRANSACTION")
    try:
        if slice_predicate is None:
            # A full replace also picks up declaration changes (new columns, types).
            conn.execute(f"DROP TABLE IF EXISTS {table.fqn}")
            conn.execute(table.ddl())
        else:
            conn.execute(table.ddl())
            conn.execute(f"DELETE FROM {table.fqn} WHERE {slice_predicate}", slice_params or [])
        conn.execute(_insert_select(table, source))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return row_count(conn, table.fqn, slice_predicate, slice_params)


def append(conn: duckdb.DuckDBPyConnection, table: Table, source: str) -> None:
    """Append staged rows (bronze is append-only); the caller owns the transaction."""
    conn.execute(table.ddl())
    conn.execute(_insert_select(table, source))


def row_count(conn, qualified: str, predicate: str | None = None, params=None) -> int:
    where = f" WHERE {predicate}" if predicate else ""
    return conn.execute(f"SELECT count(*) FROM {qualified}{where}", params or []).fetchone()[0]


def stage_rows(conn: duckdb.DuckDBPyConnection, table: Table, rows: list[dict]) -> str:
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
