"""Bronze ingest: quarantine without loss, content addressing, idempotent re-runs."""

import shutil
from pathlib import Path

from multimodal_assets.lib import clinical
from multimodal_assets.lib.clinical import fhir
from multimodal_assets.lib.platform import ingest, warehouse

REAL = Path(__file__).parent / "fixtures" / "fhir"


def _ingest(root: Path, db: Path, run_id: str) -> ingest.IngestSummary:
    with warehouse.connect(db) as conn:
        new = ingest.unregistered(conn, ingest.scan_landing(root, "clinical"))
        return ingest.ingest(
            conn, "clinical", new, fhir.parse_fhir_file, clinical.FHIR_RESOURCES, run_id
        )


def _rows(db: Path, sql: str):
    with warehouse.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_corrupt_file_is_quarantined_and_the_rest_of_the_batch_ingests(tmp_path):
    batch = tmp_path / "landing" / "clinical" / "2024-01-01"
    batch.mkdir(parents=True)
    shutil.copy(REAL / "bundle_urn_ref.json", batch / "a.json")
    shutil.copy(REAL / "observation_decimal_bundle.json", batch / "b.json")
    (batch / "c.json").write_bytes((REAL / "bundle_relative_ref.json").read_bytes()[:500])
    summary = _ingest(tmp_path / "landing", tmp_path / "lakehouse", "run-1")
    assert (summary.ingested, summary.quarantined, summary.records) == (2, 1, 6)
    quarantined = _rows(
        tmp_path / "lakehouse", "SELECT path, error_code, message, sha256 FROM bronze.quarantine"
    )
    assert [(q[0], q[1]) for q in quarantined] == [("clinical/2024-01-01/c.json", "invalid_json")]
    assert quarantined[0][3] == ingest.sha256_file(batch / "c.json")
    # The landing bytes stay where they were.
    assert (batch / "c.json").exists()


def test_rerun_over_the_same_landing_is_a_no_op(tmp_path):
    batch = tmp_path / "landing" / "clinical" / "2024-01-01"
    batch.mkdir(parents=True)
    shutil.copy(REAL / "bundle_urn_ref.json", batch / "a.json")
    db = tmp_path / "lakehouse"
    _ingest(tmp_path / "landing", db, "run-1")
    before = _rows(db, "SELECT count(*) FROM bronze.fhir_resources")
    second = _ingest(tmp_path / "landing", db, "run-2")
    assert second.new_files == 0
    assert _rows(db, "SELECT count(*) FROM bronze.fhir_resources") == before
    assert _rows(db, "SELECT count(*) FROM bronze.files") == [(1,)]


def test_same_bytes_under_a_new_name_are_recorded_once(tmp_path):
    landing = tmp_path / "landing" / "clinical"
    (landing / "w1").mkdir(parents=True)
    (landing / "w2").mkdir(parents=True)
    shutil.copy(REAL / "bundle_urn_ref.json", landing / "w1" / "a.json")
    db = tmp_path / "lakehouse"
    _ingest(tmp_path / "landing", db, "run-1")
    shutil.copy(REAL / "bundle_urn_ref.json", landing / "w2" / "a-resend.json")
    summary = _ingest(tmp_path / "landing", db, "run-2")
    assert summary.duplicates == 1 and summary.records == 0
    assert _rows(db, "SELECT status FROM bronze.files ORDER BY path") == [
        ("ingested",),
        ("duplicate",),
    ]
    assert _rows(db, "SELECT count(*) FROM bronze.fhir_resources") == [(2,)]


def test_unexpected_parser_errors_quarantine_without_quoting_content(tmp_path):
    batch = tmp_path / "landing" / "clinical"
    batch.mkdir(parents=True)
    (batch / "x.json").write_text("secret-value")

    def explode(data: bytes):
        raise ValueError(data.decode())

    with warehouse.connect(tmp_path / "lakehouse") as conn:
        files = ingest.scan_landing(tmp_path / "landing", "clinical")
        summary = ingest.ingest(conn, "clinical", files, explode, clinical.FHIR_RESOURCES, "r")
        message = conn.execute("SELECT message FROM bronze.quarantine").fetchone()[0]
    assert summary.error_codes == {"parser_error": 1}
    assert "secret-value" not in message and "ValueError" in message


def test_landing_rules_symlinks_and_delivery_folder_names(tmp_path):
    landing = tmp_path / "landing"
    inbox = landing / "clinical" / "2024-01-01"
    inbox.mkdir(parents=True)
    shutil.copy(REAL / "bundle_urn_ref.json", inbox / "a.json")
    outside = tmp_path / "secret.json"
    shutil.copy(REAL / "observation_decimal_bundle.json", outside)
    (inbox / "outside.json").symlink_to(outside)  # e.g. a system file linked into landing
    (inbox / "inside.json").symlink_to(inbox / "a.json")
    bad = landing / "clinical" / "week\nof March"
    bad.mkdir()
    shutil.copy(REAL / "bundle_relative_ref.json", bad / "b.json")
    summary = _ingest(landing, tmp_path / "lakehouse", "run-1")
    rows = dict(
        (path, (status, code))
        for path, status, code in _rows(
            tmp_path / "lakehouse", "SELECT path, status, error_code FROM bronze.files"
        )
    )
    assert rows["clinical/2024-01-01/a.json"] == ("ingested", None)
    assert rows["clinical/2024-01-01/inside.json"] == ("duplicate", None)  # same bytes
    assert rows["clinical/2024-01-01/outside.json"] == ("quarantined", "symlink_not_followed")
    assert rows["clinical/week\nof March/b.json"] == ("quarantined", "invalid_delivery_folder")
    assert summary.records == 2  # only a.json's resources: nothing was read through the link
    assert ingest.landed_batches(landing, "clinical") == ["2024-01-01", ingest.UNBATCHED]


def _native_like_parse(data: bytes) -> list[dict]:
    """A parser that dies like a native reader on one file and hangs on another."""
    import os
    import signal
    import time

    if b"CRASH" in data:
        os.kill(os.getpid(), signal.SIGSEGV)
    if b"HANG" in data:
        time.sleep(60)
    return fhir.parse_fhir_file(data)


def test_an_isolated_parser_that_crashes_or_hangs_costs_its_file_only(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest.isolation, "PARSE_SECONDS", 5)
    batch = tmp_path / "landing" / "clinical" / "2024-01-01"
    batch.mkdir(parents=True)
    shutil.copy(REAL / "bundle_urn_ref.json", batch / "a.json")
    (batch / "b.json").write_bytes(b"CRASH")
    (batch / "c.json").write_bytes(b"HANG")
    shutil.copy(REAL / "observation_decimal_bundle.json", batch / "d.json")
    with warehouse.connect(tmp_path / "lakehouse") as conn:
        files = ingest.scan_landing(tmp_path / "landing", "clinical")
        summary = ingest.ingest(
            conn,
            "clinical",
            files,
            _native_like_parse,
            clinical.FHIR_RESOURCES,
            "r",
            isolated=True,
        )
        rows = dict(conn.execute("SELECT path, error_code FROM bronze.files").fetchall())
        messages = [r[0] for r in conn.execute("SELECT message FROM bronze.quarantine").fetchall()]
    assert (summary.ingested, summary.quarantined, summary.records) == (2, 2, 6)
    assert rows["clinical/2024-01-01/b.json"] == "parser_crashed"
    assert rows["clinical/2024-01-01/c.json"] == "parser_timeout"
    assert any("SIGSEGV" in m for m in messages)


def test_changed_bytes_under_a_registered_path_are_a_new_version_quarantined(tmp_path):
    import os

    from multimodal_assets.lib.platform import landing_watch

    landing, db = tmp_path / "landing", tmp_path / "lakehouse"
    inbox = landing / "clinical" / "2024-01-01"
    inbox.mkdir(parents=True)
    target = inbox / "a.json"
    shutil.copy(REAL / "bundle_urn_ref.json", target)
    _ingest(landing, db, "run-1")
    first = _rows(db, "SELECT * EXCLUDE (_run_id) FROM bronze.fhir_resources ORDER BY ALL")
    watched = {
        p.split("/", 1)[1]: known
        for p, known in ingest.registered_paths(str(db), "clinical").items()
    }
    assert landing_watch.new_files(landing / "clinical", None, watched).paths == []

    # Touched, not changed: nothing new is registered.
    os.utime(target, (1_700_000_000, 1_700_000_000))
    assert _ingest(landing, db, "run-2").new_files == 0

    shutil.copy(REAL / "observation_decimal_bundle.json", target)  # rewritten in place
    assert landing_watch.new_files(landing / "clinical", None, watched).paths == [target]
    summary = _ingest(landing, db, "run-3")
    assert (summary.new_files, summary.quarantined, summary.records) == (1, 1, 0)
    versions = _rows(db, "SELECT sha256, status, error_code FROM bronze.files ORDER BY run_id")
    assert [v[1:] for v in versions] == [
        ("ingested", None),
        ("quarantined", "changed_after_registration"),
    ]
    assert versions[1][0] == ingest.sha256_file(target)
    assert _rows(db, "SELECT sha256 FROM bronze.quarantine") == [(versions[1][0],)]
    # The first version's rows stay; the next run finds nothing new.
    assert _rows(db, "SELECT * EXCLUDE (_run_id) FROM bronze.fhir_resources ORDER BY ALL") == first
    assert _ingest(landing, db, "run-4").new_files == 0


def test_a_quarantined_file_delivered_again_under_its_name_is_parsed_again(tmp_path):
    landing, db = tmp_path / "landing", tmp_path / "lakehouse"
    inbox = landing / "clinical" / "2024-01-01"
    inbox.mkdir(parents=True)
    target = inbox / "a.json"
    target.write_bytes((REAL / "bundle_urn_ref.json").read_bytes()[:300])  # cut short
    assert _ingest(landing, db, "run-1").quarantined == 1
    shutil.copy(REAL / "bundle_urn_ref.json", target)  # the whole file, re-delivered
    assert (_ingest(landing, db, "run-2").ingested, _ingest(landing, db, "run-3").new_files) == (
        1,
        0,
    )
    assert _rows(db, "SELECT status FROM bronze.files ORDER BY run_id") == [
        ("quarantined",),
        ("ingested",),
    ]
