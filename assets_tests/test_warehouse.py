"""Warehouse conventions: atomic publish, serialized writers, connections closed on error."""

import multiprocessing

import duckdb
import pytest

from multimodal_assets.lib import warehouse
from multimodal_assets.lib.tables import Column, Table

DEMO = Table(
    layer="silver",
    name="demo",
    modality="test",
    description="demo",
    primary_key=("id",),
    columns=(
        Column("id", "INTEGER", "id", "none", nullable=False),
        Column("value", "INTEGER", "value", "none"),
    ),
)


def test_interrupted_publish_leaves_the_previous_table_intact(tmp_path):
    db = tmp_path / "w.duckdb"
    with warehouse.connect(db) as conn:
        staged = warehouse.stage(conn, DEMO, "SELECT range AS id, range AS value FROM range(5)")
        assert warehouse.publish(conn, DEMO, staged) == 5
        # The second candidate fails mid-insert: a value that cannot be cast to INTEGER.
        staged = warehouse.stage(
            conn,
            DEMO,
            "SELECT range AS id, CASE WHEN range = 7 THEN 'x' ELSE '1' END AS value FROM range(10)",
        )
        with pytest.raises(duckdb.ConversionException):
            warehouse.publish(conn, DEMO, staged)
        assert conn.execute("SELECT count(*), sum(value) FROM silver.demo").fetchone() == (5, 10)


def test_slice_publish_replaces_only_its_slice(tmp_path):
    with warehouse.connect(tmp_path / "w.duckdb") as conn:
        staged = warehouse.stage(conn, DEMO, "SELECT range AS id, 0 AS value FROM range(6)")
        warehouse.publish(conn, DEMO, staged)
        staged = warehouse.stage(conn, DEMO, "SELECT 1 AS id, 9 AS value")
        assert warehouse.publish(conn, DEMO, staged, "id % 2 = ?", [1]) == 1
        assert conn.execute("SELECT count(*), sum(value) FROM silver.demo").fetchone() == (4, 9)


def test_connection_is_closed_when_the_body_raises(tmp_path):
    with pytest.raises(RuntimeError):
        with warehouse.connect(tmp_path / "w.duckdb") as conn:
            raise RuntimeError("boom")
    with pytest.raises(duckdb.ConnectionException):
        conn.execute("SELECT 1")


def _writer(db: str, worker: int) -> None:
    for i in range(15):
        with warehouse.connect(db) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS bronze.t (worker INTEGER, i INTEGER)")
            conn.execute("INSERT INTO bronze.t VALUES (?, ?)", [worker, i])


def test_concurrent_writer_processes_are_serialized(tmp_path):
    db = str(tmp_path / "w.duckdb")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(db, w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    with warehouse.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM bronze.t").fetchone() == (45,)
