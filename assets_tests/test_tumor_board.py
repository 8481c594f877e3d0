"""Tumor-board packets: board lists, a packet rendered in headless Chromium with provenance on
every fact and no network request, the de-identified variant's scan, and who opens what."""

import re
import shutil
from pathlib import Path

import dagster as dg
import pytest

from multimodal_assets.lib.governance import catalog
from multimodal_assets.lib.governance.policy import Denied
from multimodal_assets.lib.oncology import board_list as board
from multimodal_assets.lib.oncology.meeting import meetings_dir, open_packet
from multimodal_assets.lib.oncology.packet import SECTIONS

from .conftest import BROWSER_FLAGS, CHROMIUM, NO_CHROMIUM, audit_rows


def test_board_lists_are_read_or_refused_with_the_row_named(tmp_path):
    good = tmp_path / "2024-09-26.csv"
    good.write_text("patient,site\nMRN10000001,site_a\nrk_0123456789abcdef0123,site_b\n")
    listed = board.read_board_list(good)
    assert listed.meeting.isoformat() == "2024-09-26" and len(listed.entries) == 2
    missing_site = tmp_path / "2024-09-27.csv"
    missing_site.write_text("patient,site\nMRN10000001,site_a\nMRN10000002,\n")
    with pytest.raises(board.BoardListError, match="row 3 needs a patient and a site") as err:
        board.read_board_list(missing_site)
    assert "MRN10000002" not in str(err.value)
    with pytest.raises(board.BoardListError, match="meeting date"):
        board.read_board_list(tmp_path.joinpath("board.csv"))


def test_packets_are_private_below_the_reports_folder_and_nothing_above_changes(tmp_path):
    from multimodal_assets.lib.oncology.meeting import write_private

    outer = tmp_path / "outer"
    outer.mkdir()
    outer.chmod(0o755)
    written = write_private(outer / "reports", "2024-09-26/identified/site_a/rk_x.html", "<p>")
    assert written == 3
    assert outer.stat().st_mode & 0o777 == 0o755
    folder = outer / "reports"
    for part in ("", "2024-09-26", "2024-09-26/identified", "2024-09-26/identified/site_a"):
        assert (folder / part).stat().st_mode & 0o777 == 0o700
    assert (folder / "2024-09-26/identified/site_a/rk_x.html").stat().st_mode & 0o777 == 0o600


def _meeting(pipeline) -> Path:
    (folder,) = sorted(meetings_dir(pipeline.data_dir).iterdir())
    return folder


def _record_exists(conn, sha256: str, locator: str) -> bool:
    """Whether a lakehouse table with provenance holds a row of that file at that locator."""
    for table in catalog.ALL_TABLES:
        if {"_source_sha256", "_source_locator"} <= set(table.column_names):
            try:
                (n,) = conn.execute(
                    f"SELECT count(*) FROM {table.fqn} WHERE _source_sha256 = $s "
                    "AND _source_locator = $l",
                    {"s": sha256, "l": locator},
                ).fetchall()[0]
            except Exception:  # noqa: BLE001 - a table this cohort did not produce
                continue
            if n:
                return True
    return False


def test_the_meeting_built_packets_for_every_listed_patient(pipeline):
    meta = pipeline.metadata("oncology/tumor_board_packets")
    assert meta["meetings"] == 1
    (meeting,) = meta["per_meeting"].values()
    assert meta["patients_listed"] == meta["packets_identified"] == 6
    assert meeting["patients_listed"] == meeting["packets_identified"] == 6
    assert meta["board_lists_sha256"].keys() == meta["per_meeting"].keys()
    assert meta["patients_not_found"] == 0 and meta["packets_deidentified"] >= 1
    folder = _meeting(pipeline)
    identified = sorted((folder / "identified").glob("site_*/rk_*.html"))
    assert len(identified) == 6
    assert (folder / "identified").stat().st_mode & 0o077 == 0
    assert all(p.stat().st_mode & 0o077 == 0 for p in identified)


@NO_CHROMIUM
def test_a_packet_renders_with_every_section_and_every_fact_traceable(pipeline, tmp_path):
    from playwright.sync_api import sync_playwright

    packet = next(
        p
        for p in sorted((_meeting(pipeline) / "identified").glob("site_*/rk_*.html"))
        if 'id="molecular"' in p.read_text() and "data:image/png" in p.read_text()
    )
    requested = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_FLAGS)
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.on("request", lambda r: requested.append(r.url))
        page.goto(packet.as_uri())
        page.screenshot(path=str(tmp_path / "packet.png"), full_page=True)
        sections = page.eval_on_selector_all("section", "els => els.map(e => e.id)")
        facts = page.eval_on_selector_all(
            "[data-fact]",
            "els => els.map(e => [e.dataset.sourceSha256, e.dataset.sourceLocator])",
        )
        image_loaded = page.eval_on_selector("img", "img => img.naturalWidth")
        browser.close()
    assert (tmp_path / "packet.png").stat().st_size > 10_000
    assert requested == [packet.as_uri()]  # styles, image and data are inline
    assert sections == list(SECTIONS)
    assert image_loaded == 256
    assert len(facts) > 20
    assert all(sha and locator for sha, locator in facts)
    with pipeline.connect() as conn:
        ingested = {
            r[0]
            for r in conn.execute(
                "SELECT sha256 FROM bronze.files WHERE status = 'ingested'"
            ).fetchall()
        }
        assert {sha for sha, _ in facts} <= ingested
        unresolved = [f for f in {tuple(f) for f in facts} if not _record_exists(conn, *f)]
    assert unresolved == []
    assert "recommends nothing" in packet.read_text()


def test_the_deidentified_packets_hold_no_identifier(pipeline):
    truth = pipeline.truth
    folder = _meeting(pipeline) / "deidentified"
    packets = sorted(folder.glob("rk_*.html"))
    assert packets
    identifiers = set(truth.mrn) | set(truth.family_name) | set(truth.phone)
    identifiers |= set(truth.address_line) | {d.isoformat() for d in truth.birth_date}
    pattern = re.compile(
        "|".join(
            re.escape(v) for v in sorted(identifiers, key=len, reverse=True) if v and len(v) >= 4
        )
    )
    for path in [*packets, folder / "index.html"]:
        # The thumbnail's base64 is pixels, not text: left out of the scan.
        text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", path.read_text())
        assert len(pattern.findall(text)) == 0, path.name  # count only: never print PHI
        identified = next((_meeting(pipeline) / "identified").glob(f"site_*/{path.name}"), None)
        if identified is not None:
            true_dates = set(
                re.findall(r'class="date">(\d{4}-\d{2}-\d{2})<', identified.read_text())
            )
            leaked = len(true_dates & set(re.findall(r"\d{4}-\d{2}-\d{2}", text)))
            assert true_dates and leaked == 0
            labelled, mrn_shown = "Research key" in text, "MRN" in text
            assert labelled and not mrn_shown


def test_opening_a_packet_follows_the_policy_and_is_audited(pipeline, warehouse_copy):
    folder = _meeting(pipeline)
    meeting = folder.name

    def open_as(user: str, role: str, research_key: str):
        return open_packet(
            user=user,
            role=role,
            meeting=meeting,
            research_key=research_key,
            data_dir=pipeline.data_dir,
            root=warehouse_copy,
        )

    clinicians = {"site_a": "bob", "site_b": "frank"}  # the policy's clinicians and sites
    mine = next(
        p
        for p in sorted((folder / "identified").glob("site_*/rk_*.html"))
        if p.parent.name in clinicians
    )
    key, site = mine.stem, mine.parent.name
    other = next(u for s, u in clinicians.items() if s != site)
    opened = open_as(clinicians[site], "clinician", key)
    assert opened == mine
    with pytest.raises(Denied, match="not visible"):
        open_as(other, "clinician", key)
    deidentified = sorted((folder / "deidentified").glob("rk_*.html"))
    consented = {p.stem for p in deidentified}
    for path in sorted((folder / "identified").glob("site_*/rk_*.html")):
        if path.stem in consented:
            assert open_as("alice", "researcher", path.stem).parent.name == "deidentified"
        else:
            with pytest.raises(Denied):
                open_as("alice", "researcher", path.stem)
    with pytest.raises(Denied, match="receives no tumor-board packets"):
        open_as("carol", "data_engineer", key)
    log = audit_rows(warehouse_copy)
    opens = log[log.action == "tumor_board_packet"]
    assert len(opens) == 3 + 6 and set(opens.decision) == {"allow", "deny"}
    written = audit_rows(pipeline.lakehouse)
    assert (written.action == "tumor_board_packets").sum() == 1


def test_a_new_or_changed_board_list_requests_the_packets(tmp_path, monkeypatch):
    from multimodal_assets.defs.oncology import tumor_board_sensor

    monkeypatch.setenv("MM_DATA_DIR", str(tmp_path))
    lists = tmp_path / "landing" / "tumor_board"
    lists.mkdir(parents=True)
    (lists / "2024-10-03.csv").write_text("patient,site\nMRN10000001,site_a\n")
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance)
        first = tumor_board_sensor(context)
        assert first.tags["meetings"] == "2024-10-03"
        again = tumor_board_sensor(
            dg.build_sensor_context(instance=instance, cursor=context.cursor)
        )
        assert isinstance(again, dg.SkipReason)
        shutil.copy(lists / "2024-10-03.csv", lists / "2024-10-10.csv")
        later = tumor_board_sensor(
            dg.build_sensor_context(instance=instance, cursor=context.cursor)
        )
        assert later.tags["meetings"] == "2024-10-10" and later.run_key != first.run_key


def test_the_first_tick_skips_the_lists_the_packets_were_built_from(tmp_path, monkeypatch):
    """Opening the UI after the main job must not rebuild the packets it built."""
    import hashlib

    from multimodal_assets.defs.oncology import BOARD_LISTS_KEY, PACKETS_KEY, tumor_board_sensor

    monkeypatch.setenv("MM_DATA_DIR", str(tmp_path))
    lists = tmp_path / "landing" / "tumor_board"
    lists.mkdir(parents=True)
    built = lists / "2024-10-03.csv"
    built.write_text("patient,site\nMRN10000001,site_a\n")
    with dg.instance_for_test() as instance:
        sha = hashlib.sha256(built.read_bytes()).hexdigest()
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                PACKETS_KEY, metadata={BOARD_LISTS_KEY: dg.MetadataValue.json({"2024-10-03": sha})}
            )
        )
        assert isinstance(
            tumor_board_sensor(dg.build_sensor_context(instance=instance)), dg.SkipReason
        )
        (lists / "2024-10-10.csv").write_text("patient,site\nMRN10000002,site_b\n")
        request = tumor_board_sensor(dg.build_sensor_context(instance=instance))
        assert request.tags["meetings"] == "2024-10-10"
