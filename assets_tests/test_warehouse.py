"""Lakehouse conventions: Delta tables, atomic publish, snapshot reads, concurrent writers."""

import dataclasses
import multiprocessing
import os

import duckdb
import pytest

from multimodal_assets.lib.governance import audit
from multimodal_assets.lib.platform import ingest, lakehouse, warehouse
from multimodal_assets.lib.platform.tables import Column, Table

DEMO = Table(
    layer="silver",
    name="demo",
    modality="test",
    description="demo",
    primary_key=("id",),
    partition_column="part",
    columns=(
        Column("id", "INTEGER", "id", "none", nullable=False),
        Column("value", "INTEGER", "value", "none"),
        Column("part", "DATE", "slice", "none"),
        Column("vector", "FLOAT[3]", "fixed-size array", "none"),
        Column("doc", "JSON", "json", "none"),
    ),
)
ROWS = (
    "SELECT range::INTEGER AS id, range::INTEGER AS value, DATE '2024-01-01' + (range % 3)::INT "
    "AS part, [1.0, 2.0, range]::FLOAT[3] AS vector, '{{\"a\": 1}}'::JSON AS doc FROM range({n})"
)


def test_every_published_table_is_delta_with_its_declared_types(tmp_path):
    root = tmp_path / "lakehouse"
    with warehouse.connect(root) as conn:
        staged = warehouse.stage(conn, DEMO, ROWS.format(n=5))
        assert warehouse.publish(conn, DEMO, staged) == 5
        types = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'demo'"
            ).fetchall()
        )
    assert (root / "silver" / "demo" / "_delta_log").is_dir()
    assert types == {
        "id": "INTEGER",
        "value": "INTEGER",
        "part": "DATE",
        "vector": "FLOAT[3]",
        "doc": "JSON",
    }
    from deltalake import DeltaTable

    fields = {f.name: f.metadata for f in DeltaTable(str(root / "silver" / "demo")).schema().fields}
    assert fields["vector"]["duckdb_type"] == "FLOAT[3]"
    assert fields["id"]["classification"] == "none"


def test_interrupted_publish_leaves_the_previous_table_intact(tmp_path):
    with warehouse.connect(tmp_path / "lakehouse") as conn:
        staged = warehouse.stage(conn, DEMO, ROWS.format(n=5))
        assert warehouse.publish(conn, DEMO, staged) == 5
        version = conn.versions[DEMO.fqn]
        # The second candidate fails mid-write: a value that cannot be cast to INTEGER.
        staged = warehouse.stage(
            conn,
            DEMO,
            "SELECT range AS id, CASE WHEN range = 70000 THEN 'x' ELSE '1' END AS value, "
            "DATE '2024-01-01' AS part, NULL AS vector, NULL AS doc FROM range(100000)",
        )
        with pytest.raises(warehouse.PublishError, match="Conversion Error") as raised:
            warehouse.publish(conn, DEMO, staged)
        assert "'x'" not in str(raised.value)  # the message never quotes a value
    with warehouse.connect(tmp_path / "lakehouse") as conn:
        assert conn.versions[DEMO.fqn] == version
        assert conn.execute("SELECT count(*), sum(value) FROM silver.demo").fetchone() == (5, 10)


def test_changed_slices_are_replaced_in_one_commit(tmp_path):
    with warehouse.connect(tmp_path / "lakehouse") as conn:
        staged = warehouse.stage(conn, DEMO, ROWS.format(n=6))
        assert warehouse.publish_changed_slices(conn, DEMO, staged) == 3
        version = conn.versions[DEMO.fqn]
        assert warehouse.publish_changed_slices(conn, DEMO, staged) == 0  # nothing changed
        assert conn.versions[DEMO.fqn] == version
        staged = warehouse.stage(
            conn,
            DEMO,
            f"SELECT * REPLACE (CASE WHEN id = 1 THEN 99 ELSE value END AS value) "
            f"FROM ({ROWS.format(n=6)})",
        )
        assert warehouse.publish_changed_slices(conn, DEMO, staged) == 1
        assert conn.versions[DEMO.fqn] == version + 1
        assert conn.execute("SELECT count(*), sum(value) FROM silver.demo").fetchone() == (6, 113)


def test_a_connection_reads_the_snapshot_it_opened_and_can_time_travel(tmp_path):
    root = tmp_path / "lakehouse"
    with warehouse.connect(root) as writer:
        warehouse.publish(writer, DEMO, warehouse.stage(writer, DEMO, ROWS.format(n=3)))
        first = writer.versions[DEMO.fqn]
        with warehouse.connect(root) as reader:
            warehouse.publish(writer, DEMO, warehouse.stage(writer, DEMO, ROWS.format(n=7)))
            # The reader keeps the version it resolved when it opened.
            assert reader.execute("SELECT count(*) FROM silver.demo").fetchone() == (3,)
            assert reader.versions[DEMO.fqn] == first
        assert writer.execute("SELECT count(*) FROM silver.demo").fetchone() == (7,)
    with warehouse.connect(root, as_of={DEMO.fqn: first}) as old:
        assert old.execute("SELECT count(*) FROM silver.demo").fetchone() == (3,)


def test_a_shared_reader_serves_every_commit_even_within_one_clock_tick(tmp_path):
    """The gateway service's long-lived reader: each cursor sees the newest version, including
    commits made in quick succession (they can share their log folder's mtime) and new tables;
    a cursor keeps the snapshot it started on; reads stay confined to the lakehouse."""
    root = tmp_path / "lakehouse"
    other = dataclasses.replace(DEMO, name="other", partition_column=None)
    with warehouse.connect(root) as writer:
        warehouse.publish(writer, DEMO, warehouse.stage(writer, DEMO, ROWS.format(n=3)))
        shared = warehouse.SharedReader(root)
        log = root / "silver" / "demo" / "_delta_log"
        try:
            looked = log.stat().st_mtime_ns
            with shared.cursor() as reader:
                assert reader.execute("SELECT count(*) FROM silver.demo").fetchone() == (3,)
                for n in (5, 7):
                    warehouse.publish(writer, DEMO, warehouse.stage(writer, DEMO, ROWS.format(n=n)))
                assert reader.execute("SELECT count(*) FROM silver.demo").fetchone() == (3,)
            # As if both commits had landed in the clock tick of the reader's look: the log
            # folder's mtime is the one the reader saw.
            os.utime(log, ns=(looked, looked))
            warehouse.publish(writer, other, warehouse.stage(writer, other, ROWS.format(n=2)))
            with shared.cursor() as reader:
                assert reader.execute("SELECT count(*) FROM silver.demo").fetchone() == (7,)
                assert reader.execute("SELECT count(*) FROM silver.other").fetchone() == (2,)
                assert reader.versions[DEMO.fqn] == writer.versions[DEMO.fqn]
                with pytest.raises(duckdb.PermissionException):
                    reader.execute(f"SELECT * FROM read_csv('{tmp_path / 'x.csv'}')")
        finally:
            shared.close()


def test_read_only_connections_reach_only_lakehouse_files(tmp_path):
    outside = tmp_path / "outside.csv"
    outside.write_text("a\n1\n")
    root = tmp_path / "lakehouse"
    with warehouse.connect(root) as conn:
        warehouse.publish(conn, DEMO, warehouse.stage(conn, DEMO, ROWS.format(n=3)))
    with warehouse.connect(root, read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM silver.demo").fetchone() == (3,)
        with pytest.raises(duckdb.PermissionException):
            conn.execute(f"SELECT * FROM read_csv('{outside}')")
        with pytest.raises(duckdb.Error):
            conn.execute("SET enable_external_access = true")


def test_connection_is_closed_when_the_body_raises(tmp_path):
    with pytest.raises(RuntimeError):
        with warehouse.connect(tmp_path / "lakehouse") as conn:
            raise RuntimeError("boom")
    with pytest.raises(duckdb.ConnectionException):
        conn.execute("SELECT 1")


def _in_four_processes(target, arguments) -> None:
    """Run `target(*arguments(worker))` in four processes at once; each must exit cleanly."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=target, args=arguments(w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]


def _appender(root: str, worker: int) -> None:
    for i in range(10):
        audit.append(root, audit.AuditEvent(action="query", decision="allow", reason=f"{worker}"))
        with warehouse.connect(root) as conn:
            conn.register(
                "_one",
                conn.sql(
                    f"SELECT {worker}::INTEGER AS id, {i}::INTEGER AS value, "
                    "NULL::DATE AS part, NULL::FLOAT[3] AS vector, "
                    "NULL::JSON AS doc"
                ).to_arrow_table(),
            )
            warehouse.append(conn, DEMO, "_one")


def test_four_writer_processes_keep_one_audit_chain_and_every_row(tmp_path):
    root = str(tmp_path / "lakehouse")
    _in_four_processes(_appender, lambda worker: (root, worker))
    with warehouse.connect(root) as conn:
        assert conn.execute("SELECT count(*) FROM silver.demo").fetchone() == (40,)
        report = audit.verify_audit_chain(conn, root)
        assert report.ok and report.rows == 40, report.problems


def test_verifying_the_chain_while_others_append_reports_no_problem(tmp_path):
    """The hourly check runs while the service appends: rows read from the connection's older
    snapshot and a head written since must not read as truncation."""
    root = str(tmp_path / "lakehouse")
    event = audit.AuditEvent(action="query", decision="allow", user_name="alice", role="x")
    audit.append(root, event)
    with warehouse.connect(root, read_only=True) as conn:  # opened before the next appends
        for _ in range(3):
            audit.append(root, event)
        report = audit.verify_audit_chain(conn, root)
    assert report.ok and report.rows == 4, report.problems


def _ingester(root: str, landing: str) -> None:
    from pathlib import Path

    from multimodal_assets.lib import clinical
    from multimodal_assets.lib.clinical import fhir

    with warehouse.connect(root) as conn:
        files = ingest.scan_landing(Path(landing), "clinical")
        ingest.ingest(conn, "clinical", files, fhir.parse_fhir_file, clinical.FHIR_RESOURCES, "r")


def test_the_registry_holds_each_file_once_when_four_processes_ingest_it(tmp_path):
    import shutil
    from pathlib import Path

    fixtures = Path(__file__).parent / "fixtures" / "fhir"
    landing = tmp_path / "landing"
    for i, name in enumerate(("bundle_urn_ref.json", "observation_decimal_bundle.json")):
        (landing / "clinical" / f"w{i}").mkdir(parents=True)
        shutil.copy(fixtures / name, landing / "clinical" / f"w{i}" / name)
        shutil.copy(fixtures / name, landing / "clinical" / f"w{i}" / f"copy-{name}")
    root = str(tmp_path / "lakehouse")
    _in_four_processes(_ingester, lambda worker: (root, str(landing)))
    with warehouse.connect(root) as conn:
        paths = conn.execute("SELECT path, count(*) FROM bronze.files GROUP BY 1").fetchall()
        assert len(paths) == 4 and {n for _, n in paths} == {1}
        assert conn.execute(
            "SELECT count(DISTINCT sha256), count(*) FROM bronze.files WHERE status = 'ingested'"
        ).fetchone() == (2, 2)
        assert conn.execute(
            "SELECT count(DISTINCT _source_sha256) FROM bronze.fhir_resources"
        ).fetchone() == (2,)


def test_maintenance_compacts_and_keeps_pinned_versions_readable(tmp_path):
    root = str(tmp_path / "lakehouse")
    with warehouse.connect(root) as conn:
        for _ in range(20):
            conn.register("_one", conn.sql(ROWS.format(n=1)).to_arrow_table())
            warehouse.append(conn, DEMO, "_one")
        pinned = conn.versions[DEMO.fqn] - 10
    before = lakehouse.snapshot(root, DEMO.fqn)
    report = lakehouse.maintain(root, DEMO.fqn, {pinned})
    assert report.files_before == len(before.files) == 20
    assert report.files_after == 1
    with warehouse.connect(root, as_of={DEMO.fqn: pinned}) as old:
        assert old.execute("SELECT count(*) FROM silver.demo").fetchone() == (pinned + 1,)


def test_the_audit_chain_compacts_itself_and_stays_verifiable(tmp_path, monkeypatch):
    monkeypatch.setattr(audit, "COMPACT_EVERY", 10)
    root = str(tmp_path / "lakehouse")
    for i in range(35):
        audit.append(root, audit.AuditEvent(action="query", decision="allow", reason=str(i)))
    assert len(lakehouse.snapshot(root, audit.ACCESS_LOG.fqn).files) < 10
    with warehouse.connect(root) as conn:
        report = audit.verify_audit_chain(conn, root)
    assert report.ok and report.rows == 35, report.problems


def _creator(root: str) -> None:
    with warehouse.connect(root) as conn:
        warehouse.ensure_table(conn, ingest.FILES)


def test_four_processes_creating_one_table_at_once_all_succeed(tmp_path):
    # Two first commits of a new table conflict; the loser retries as an empty append (before,
    # its already-consumed stream could not be sent again: 1 failure in 5 rounds here).
    for attempt in range(3):
        root = str(tmp_path / f"lakehouse-{attempt}")
        _in_four_processes(_creator, lambda worker, root=root: (root,))
        assert lakehouse.snapshot(root, ingest.FILES.fqn) is not None


def test_a_short_audit_key_is_refused_rather_than_used(tmp_path):
    root = str(tmp_path / "lakehouse")
    key_file = audit.lakehouse.lease_dir(root).parent / "_audit.key"
    key_file.parent.mkdir(parents=True)
    key_file.write_text("")  # what a reader saw while another process was still writing it
    with pytest.raises(ValueError, match="0 bytes; 32 are required"):
        audit.append(root, audit.AuditEvent(action="query", decision="allow"))


def test_rows_stream_in_batches_while_the_connection_stages_them(tmp_path):
    with warehouse.connect(tmp_path / "lakehouse", memory_limit="256MB") as conn:
        warehouse.publish(conn, DEMO, warehouse.stage(conn, DEMO, ROWS.format(n=10)))
        conn.recording_reads = True
        batches = (
            [
                {"id": row["id"], "value": row["value"] * 2, "doc": '{"b": 2}'}
                for row in b.to_pylist()
            ]
            for b in conn.stream("SELECT id, value FROM silver.demo ORDER BY id", 4)
        )
        staged = warehouse.stage_row_batches(conn, DEMO, batches)
        assert conn.reads == {"silver.demo"}
        assert conn.execute(f"SELECT count(*), sum(value) FROM {staged}").fetchall() == [(10, 90)]
        assert (
            conn.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] == "244.1 MiB"
        )
        # A NULL key is staged for the not-null check to report; an undeclared key is refused.
        warehouse.stage_row_batches(conn, DEMO, [[{"id": None}]])
        with pytest.raises(ValueError, match="undeclared columns colour"):
            warehouse.stage_row_batches(conn, DEMO, [[{"id": 1, "colour": "red"}]])


def _cut_newest(root: str, keep: int) -> None:
    """What a holder of the key could do without a sink: rewrite the audit table from scratch
    with its first `keep` events (valid hashes all) and the head file to match."""
    import json
    import shutil

    with warehouse.connect(root) as conn:
        rows = (
            conn.sql(
                f"SELECT {', '.join(audit.ACCESS_LOG.column_names)} FROM audit.access_log "
                f"WHERE event_seq <= {keep} ORDER BY event_seq"
            )
            .to_arrow_table()
            .to_pylist()
        )
    shutil.rmtree(os.path.join(lakehouse.local_path(root), "audit", "access_log"))
    if rows:
        warehouse.append_rows(root, audit.ACCESS_LOG, rows)
        head = {"event_seq": rows[-1]["event_seq"], "row_hash": rows[-1]["row_hash"]}
        audit.head_path(root).write_text(json.dumps(head))
    else:
        audit.head_path(root).unlink()


@pytest.mark.parametrize("keep", [3, 0])
def test_the_head_sink_catches_newest_events_cut_with_the_head_rewritten(
    tmp_path, monkeypatch, keep
):
    import shutil

    root = str(tmp_path / "lakehouse")
    event = audit.AuditEvent(action="query", decision="allow", user_name="alice", role="x")
    for sink in (None, tmp_path / "heads.jsonl"):
        if sink is not None:
            monkeypatch.setenv(audit.AUDIT_HEAD_SINK_ENV, str(sink))
        for _ in range(5):
            audit.append(root, event)
        _cut_newest(root, keep)
        with warehouse.connect(root) as conn:
            report = audit.verify_audit_chain(conn, root)
        if sink is None:  # the hole the sink closes: the cut chain verifies
            assert report.ok and report.rows == keep
            shutil.rmtree(tmp_path / "lakehouse")  # a new chain for the second half
        else:
            assert not report.ok
            assert f"events {keep + 1} to 5 were removed" in " ".join(report.problems)


@pytest.mark.skipif(os.geteuid() != 0, reason="chattr +a needs root")
def test_an_append_only_sink_takes_heads_and_refuses_rewrites(tmp_path, monkeypatch):
    import subprocess

    sink = tmp_path / "heads.jsonl"
    sink.touch()
    if subprocess.run(["chattr", "+a", str(sink)], capture_output=True).returncode != 0:
        pytest.skip("the file system here has no append-only attribute")
    try:
        monkeypatch.setenv(audit.AUDIT_HEAD_SINK_ENV, str(sink))
        root = str(tmp_path / "lakehouse")
        for _ in range(2):
            audit.append(root, audit.AuditEvent(action="query", decision="allow"))
        assert len(sink.read_text().splitlines()) == 2
        with pytest.raises(PermissionError):
            sink.write_text("")
        with warehouse.connect(root) as conn:
            assert audit.verify_audit_chain(conn, root).ok
    finally:
        subprocess.run(["chattr", "-a", str(sink)], check=True)


def test_a_table_removed_and_created_again_is_read_anew_in_the_same_process(tmp_path):
    import shutil

    root = tmp_path / "lakehouse"
    for rows in (3, 2):
        with warehouse.connect(root) as conn:
            warehouse.publish(conn, DEMO, warehouse.stage(conn, DEMO, ROWS.format(n=rows)))
            assert conn.execute("SELECT count(*) FROM silver.demo").fetchall() == [(rows,)]
        shutil.rmtree(root / "silver" / "demo")  # the same version numbers, other files
