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
    return conn.execute(f"SELECT count(*) FROM {qualified}{where}", params or []).fetchall()[0][0]


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


def publish_changed_slices(conn: duckdb.DuckDBPyConnection, table: Table, source: str) -> int:
    """Replace only the slices (values of the partition column) whose content changed.

    A slice's fingerprint is its row count and the sum of row hashes over every column but
    `_run_id` (doubles rounded to 9 decimals), so re-running over the same data rewrites nothing, and a late event rewrites
    exactly the slices it changes. All replaced slices are published in one transaction.
    Returns the number of slices replaced.
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
    conn.execute(table.ddl())

    def fingerprints(relation: str) -> str:
        return (
            f"SELECT {part} AS slice, count(*) AS n, sum(hash({hashed})::HUGEINT) AS h "
            f"FROM {relation} GROUP BY ALL"
        )

    conn.execute(
        f"""CREATE OR REPLACE TEMP TABLE _changed_slices AS
            SELECT coalesce(a.slice, b.slice) AS slice
            FROM ({fingerprints(source)}) a FULL OUTER JOIN ({fingerprints(table.fqn)}) b
              ON a.slice = b.slice
            WHERE a.n IS DISTINCT FROM b.n OR a.h IS DISTINCT FROM b.h"""
    )
    changed = conn.execute("SELECT count(*) FROM _changed_slices").fetchone()[0]
    if changed:
        conn.execute("BEGIN TRANSACTION")
        try:
            conn.execute(
                f"DELETE FROM {table.fqn} WHERE {part} IN (SELECT slice FROM _changed_slices)"
            )
            conn.execute(
                _insert_select(
                    table,
                    f"(SELECT * FROM {source} WHERE {part} IN (SELECT slice FROM _changed_slices))",
                )
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    conn.execute("DROP TABLE _changed_slices")
    return changed
