"""Imaging: DICOM headers ingested or quarantined with a reason, Annex E de-identification that a
scan can verify, pixels decoded with the installed codecs, gold lesion features against the
generator's truth, and a similarity search that is exact and respects the access policy."""

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pydicom.data
import pydicom.encaps
import pytest

from assets_tests.conftest import KEY, audit_rows, copy_lakehouse, date_shift_days, research_key
from assets_tests.test_governance import _allowed_keys
from multimodal_assets.lib import imaging
from multimodal_assets.lib.governance.policy import Denied
from multimodal_assets.lib.imaging import deid as dicom_deid
from multimodal_assets.lib.ml.similarity import similar_cases
from multimodal_assets.lib.platform import ingest
from multimodal_assets.lib.platform.ingest import QuarantineError
from multimodal_assets.lib.synthetic.cohort import draw_cohort
from multimodal_assets.lib.synthetic.imaging import render_imaging

FIXTURES = Path(__file__).parent / "fixtures" / "dicom"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "dicom"
# The MANIFEST's expected failure, and pydicom's own damaged and non-DICOM test files.
EXPECTED_QUARANTINE = {
    "emri_small_jpeg_2k_lossless_too_short.dcm": "truncated",
    "MR_truncated.dcm": "truncated",
    # CT_small.dcm without its File Meta, cut one byte early: the dataset starts at byte 1.
    "no_meta.dcm": "not_dicom",
}
# pydicom's bundled test files (get_testdata_file would try to download the others).
PYDICOM_DIR = Path(pydicom.data.__file__).parent / "test_files"
PYDICOM_FILES = sorted(p for p in PYDICOM_DIR.rglob("*") if p.is_file())


def _outcome(data: bytes) -> tuple[str, dict | None]:
    try:
        (row,) = imaging.parse_dicom_file(data)
        return "ingested", row
    except QuarantineError as err:
        assert err.code and err.message, "a quarantine needs a code and a reason"
        return err.code, None


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """A small generated imaging landing and its truth."""
    root = tmp_path_factory.mktemp("imaging") / "imaging"
    deliveries, truth = render_imaging(draw_cohort(12, 5), 5, root, slices=16, matrix=64)
    return root, pd.DataFrame(deliveries), pd.DataFrame(truth)


def test_generated_series_carry_realistic_geometry_phi_and_rle(rendered):
    root, deliveries, truth = rendered
    first = deliveries[deliveries.kind == "instance"].iloc[0]
    ds = pydicom.dcmread(root.parent / first.path)
    assert ds.SOPClassUID == imaging.CT_IMAGE_STORAGE and ds.Modality == "CT"
    assert ds.PatientID == first.mrn and str(ds.PatientName) and ds.AccessionNumber
    assert ds.PixelRepresentation == 1 and ds.BitsAllocated == 16
    assert len(ds.ImagePositionPatient) == 3 and float(ds.SliceThickness) == 5.0
    assert any(element.tag.is_private for element in ds)
    hu = pydicom.pixels.apply_modality_lut(ds.pixel_array, ds)
    assert hu.min() >= -1024 and hu.max() <= 3071
    kinds = set(deliveries.kind)
    assert {"instance", "truncated_pixels", "resend", "noise"} <= kinds
    assert truth.rle.any() and (~truth.rle).any()
    # Re-delivered bytes are identical: the registry sees duplicates, not new instances.
    first_time = {
        (root.parent / p).read_bytes() for p in deliveries[deliveries.kind == "instance"].path
    }
    assert all(
        (root.parent / p).read_bytes() in first_time
        for p in deliveries[deliveries.kind == "resend"].path
    )


def test_generated_accidents_are_quarantined_or_ingested_as_expected(rendered):
    root, deliveries, _ = rendered
    for row in deliveries.itertuples():
        outcome, _ = _outcome((root.parent / row.path).read_bytes())
        if row.kind == "noise":
            assert outcome == "not_dicom"
        elif row.kind == "truncated_pixels":
            assert outcome == "truncated"
        else:
            assert outcome == "ingested", row.path


def test_gzip_wrapped_and_preamble_less_files_are_read(rendered):
    root, deliveries, _ = rendered
    data = (root.parent / deliveries[deliveries.kind == "instance"].iloc[0].path).read_bytes()
    plain = _outcome(data)[1]
    assert _outcome(gzip.compress(data))[1]["sop_instance_uid"] == plain["sop_instance_uid"]
    # Without preamble and file meta: a raw dataset, as old ACR-NEMA-style exports write.
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.file_meta, ds.preamble = pydicom.dataset.FileMetaDataset(), None
    raw = io.BytesIO()
    pydicom.dcmwrite(raw, ds, enforce_file_format=False, implicit_vr=True, little_endian=True)
    headless = raw.getvalue()
    assert headless[128:132] != b"DICM"
    assert _outcome(headless)[1]["sop_instance_uid"] == plain["sop_instance_uid"]
    assert _outcome(b"")[0] == "empty_file"
    assert _outcome(gzip.compress(data)[:100])[0] == "corrupt_gzip"


def test_bundled_real_files_ingest_or_quarantine_with_a_reason():
    outcomes = {
        p.name: _outcome(p.read_bytes())[0] for p in FIXTURES.iterdir() if p.name != "NOTICE.md"
    }
    assert outcomes == {
        "ct_image.dcm": "ingested",
        "sm_annotations.dcm": "ingested",
        "JLSL_16_15_1_1F.dcm": "ingested",
        "report_dfl": "ingested",
        "emri_small_jpeg_2k_lossless_too_short.dcm": "truncated",
    }


def _check_every_file(paths) -> dict[str, str]:
    outcomes = {}
    for path in paths:
        outcome, row = _outcome(path.read_bytes())
        outcomes[path.name] = outcome
        if path.name in EXPECTED_QUARANTINE:
            assert outcome == EXPECTED_QUARANTINE[path.name], path.name
        if row is not None:
            assert row["sop_instance_uid"] and row["sop_class_uid"] and row["header"]
    return outcomes


def test_every_file_pydicom_ships_ingests_or_is_quarantined():
    outcomes = _check_every_file(PYDICOM_FILES)
    assert sum(o == "ingested" for o in outcomes.values()) > 150
    assert set(outcomes.values()) <= {"ingested", "not_dicom", "truncated", "unreadable_header"}


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/realdata/dicom is not on this machine")
def test_every_shared_real_file_ingests_or_is_quarantined():
    outcomes = _check_every_file(sorted(p for p in SHARED.rglob("*") if p.is_file()))
    assert outcomes.pop("emri_small_jpeg_2k_lossless_too_short.dcm") == "truncated"
    assert set(outcomes.values()) == {"ingested"}


# Pixels of every compressed transfer syntax decode with the pinned codecs (pydicom's files).
CODEC_FILES = {
    "JPEG Baseline (Process 1)": "SC_rgb_jpeg_dcmtk.dcm",
    "JPEG-LS Lossless Image Compression": "MR_small_jpeg_ls_lossless.dcm",
    "JPEG-LS Lossy (Near-Lossless) Image Compression": "JPEGLSNearLossless_16.dcm",
    "JPEG 2000 Image Compression (Lossless Only)": "MR_small_jp2klossless.dcm",
    "JPEG 2000 Image Compression": "JPEG2000.dcm",
    "RLE Lossless": "MR_small_RLE.dcm",
    "Deflated Explicit VR Little Endian": "image_dfl.dcm",
}


@pytest.mark.parametrize("syntax, name", CODEC_FILES.items())
def test_compressed_pixels_decode(syntax, name):
    data = (PYDICOM_DIR / name).read_bytes()
    ds, _, _ = imaging.read_dicom(data)
    assert imaging._syntax_name(ds.file_meta.TransferSyntaxUID) == syntax
    values, _, _, _ = imaging.decode_instance(data)
    assert values.ndim == 3 and values.size > 0 and np.isfinite(values).all()


def test_a_jpeg_the_codecs_reject_keeps_its_metadata_with_a_reason():
    data = (PYDICOM_DIR / "JPEG-lossy.dcm").read_bytes()  # 12-bit JPEG libjpeg refuses
    assert _outcome(data)[0] == "ingested"
    with pytest.raises(imaging.PixelError, match=r"^pixels not decodable \(JPEG Extended"):
        imaging.decode_instance(data)


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/realdata/dicom is not on this machine")
def test_shared_compressed_pixels_decode_or_keep_metadata_with_a_reason():
    decoded, reasons = 0, {}
    for path in sorted(p for p in SHARED.rglob("*") if p.is_file()):
        if _outcome(path.read_bytes())[0] != "ingested":
            continue
        try:
            imaging.decode_instance(path.read_bytes())
            decoded += 1
        except imaging.PixelError as err:
            reasons[path.name] = str(err)
    # Pixel-less objects say so; everything else decodes with the pinned codecs (HTJ2K, JPEG
    # 2000, JPEG-LS, JPEG lossless and 12-bit, RLE, big endian, float, deflated frames).
    assert set(reasons.values()) == {"the instance has no pixel data"}, reasons
    assert decoded == 24


def test_undecodable_pixels_get_a_reason_and_keep_the_series(rendered, tmp_path):
    root, deliveries, _ = rendered
    paths = [root.parent / p for p in deliveries[deliveries.kind == "instance"].path[:16]]
    broken = tmp_path / "broken.dcm"
    ds = pydicom.dcmread(paths[0])
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.50"  # claims JPEG, holds raw bytes
    ds["PixelData"].value = pydicom.encaps.encapsulate([b"\x00" * 64])
    ds.save_as(broken)
    files = [{"path": str(p), "sha256": ingest.sha256_file(p)} for p in [*paths[1:], broken]]
    result = imaging.series_features(files, (5, 5.6, 5.6))
    assert result["pixel_status"] == "partial" and result["instances_failed"] == 1
    assert result["pixel_error"].startswith("pixels not decodable (JPEG Baseline")
    assert len(result["embedding"]) == imaging.EMBEDDING_DIM


def test_pixels_are_read_only_from_the_bytes_the_registry_holds(rendered, tmp_path):
    root, deliveries, _ = rendered
    paths = [root.parent / p for p in deliveries[deliveries.kind == "instance"].path[:8]]
    files = [{"path": str(p), "sha256": ingest.sha256_file(p)} for p in paths]
    changed = tmp_path / "changed.dcm"  # the last file, rewritten after it was registered
    ds = pydicom.dcmread(paths[-1])
    ds.InstanceNumber = 999
    ds.save_as(changed)
    files[-1]["path"] = str(changed)
    result = imaging.series_features(files, (5, 5.6, 5.6))
    assert (result["instances_decoded"], result["instances_failed"]) == (7, 1)
    assert result["pixel_error"] == imaging.CHANGED_SINCE_INGEST


# ---- de-identification ------------------------------------------------------------------


def _deidentified(path: Path, key: str = "rk_0123456789abcdef0123") -> tuple[dict, set]:
    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    originals = dicom_deid.identifying_values(ds)
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    dicom_deid.deidentify(ds, key, date_shift_days(key), KEY)
    return json.loads(dicom_deid.to_json(ds)), originals


def test_annex_e_removes_replaces_and_shifts(rendered):
    root, deliveries, _ = rendered
    path = root.parent / deliveries[deliveries.kind == "instance"].iloc[0].path
    source = pydicom.dcmread(path, stop_before_pixels=True)
    key = research_key(source.PatientID)
    out, originals = _deidentified(path, key)
    assert dicom_deid.phi_left(out, originals) == []
    assert source.PatientID in originals and str(source.AccessionNumber) in originals
    assert out["00100020"]["Value"] == [key]  # Patient ID → research key
    assert "Value" not in out["00100010"]  # Patient Name emptied
    assert "00080080" not in out  # Institution Name removed
    assert not any(int(tag, 16) >> 16 & 1 for tag in out)  # no private tag
    shifted = out["00080020"]["Value"][0]
    expected = pd.Timestamp(source.StudyDate) + pd.Timedelta(days=date_shift_days(key))
    assert shifted == expected.strftime("%Y%m%d")
    assert out["0020000E"]["Value"] == [dicom_deid.new_uid(source.SeriesInstanceUID, KEY)]
    assert out["00080016"]["Value"] == [imaging.CT_IMAGE_STORAGE]  # registered UIDs stay
    assert out["00120062"]["Value"] == ["YES"]


def test_the_scan_finds_what_de_identification_would_have_missed(rendered):
    root, deliveries, _ = rendered
    path = root.parent / deliveries[deliveries.kind == "instance"].iloc[0].path
    out, originals = _deidentified(path)
    source = pydicom.dcmread(path, stop_before_pixels=True)
    leaked = json.loads(json.dumps(out))
    leaked["00080080"] = {"vr": "LO", "Value": [str(source.InstitutionName)]}
    leaked["00091001"] = {"vr": "LO", "Value": ["x"]}
    leaked["00081030"] = {"vr": "LO", "Value": [source.PatientID]}
    problems = dicom_deid.phi_left(leaked, originals)
    assert "00080080: must be removed" in problems and "00091001: private tag" in problems
    assert any("original identifying value" in p for p in problems)
    assert all(source.PatientID not in p for p in problems)  # the report never quotes values


@pytest.mark.parametrize(
    "path",
    [p for p in sorted(FIXTURES.iterdir()) if p.name not in ("NOTICE.md",)]
    + [PYDICOM_DIR / n for n in ("MR_small.dcm", "CT_small.dcm", "rtplan.dcm")],
    ids=lambda p: p.name,
)
def test_real_headers_come_out_clean(path):
    out, originals = _deidentified(path)
    assert dicom_deid.phi_left(out, originals) == []


def test_uid_remapping_is_consistent_and_keyed():
    uid = "1.2.826.0.1.3680043.8.498.1"
    assert dicom_deid.new_uid(uid, b"k1") == dicom_deid.new_uid(uid, b"k1")
    assert dicom_deid.new_uid(uid, b"k1") != dicom_deid.new_uid(uid, b"k2")
    assert len(dicom_deid.new_uid(uid, b"k1")) <= 64
    assert dicom_deid.shift_date_text("20240229", 1) == "20240301"
    assert dicom_deid.shift_date_text("20240229101500.5", -1) == "20240228101500.5"
    assert dicom_deid.shift_date_text("garbage", 3) == ""


# ---- the materialized imaging group -------------------------------------------------------


def test_gold_lesion_size_follows_the_generators_truth(pipeline):
    truth = pd.read_parquet(pipeline.data_dir / "truth" / "imaging_series.parquet")
    with pipeline.connect() as conn:
        gold = conn.execute(
            "SELECT f.series_uid, f.lesion_diameter_mm, f.lesion_sd_hu, f.acquired_on "
            "FROM gold.imaging_series_features f WHERE f.modality = 'CT' AND f.lesion_found"
        ).df()
    truth["series_uid"] = [dicom_deid.new_uid(uid, KEY) for uid in truth.series_instance_uid]
    both = truth.merge(gold, on="series_uid")
    assert len(both) >= 0.95 * len(truth)
    assert np.corrcoef(both.lesion_diameter_mm_x, both.lesion_diameter_mm_y)[0, 1] > 0.98
    assert (both.lesion_diameter_mm_x - both.lesion_diameter_mm_y).abs().median() < 2.0
    assert np.corrcoef(both.lesion_texture, both.lesion_sd_hu)[0, 1] > 0.6
    # The true acquisition date comes back from the shifted silver date.
    assert (pd.to_datetime(both.acquired_on) == pd.to_datetime(both.study_date)).all()


def test_patient_features_use_only_series_acquired_by_the_index_date(pipeline):
    truth = pipeline.truth
    series = pd.read_parquet(pipeline.data_dir / "truth" / "imaging_series.parquet")
    before = set(series.loc[~series.after_index_date, "mrn"])
    with pipeline.connect() as conn:
        gold = conn.execute(
            "SELECT f.research_key, f.has_imaging, f.imaging_data_through, c.index_date "
            "FROM gold.imaging_features f JOIN gold.clinical_features c USING (research_key)"
        ).df()
        (patients,) = conn.execute("SELECT count(*) FROM gold.clinical_features").fetchall()[0]
    expected = {research_key(m) for m in truth.mrn if m in before}
    assert set(gold.research_key[gold.has_imaging]) == expected
    assert len(gold) == patients  # every patient has a row; missing imaging is a value
    imaged = gold[gold.has_imaging]
    assert (imaged.imaging_data_through <= imaged.index_date).all()
    assert gold.loc[~gold.has_imaging, "imaging_data_through"].isna().all()


def test_no_identifier_reaches_silver_or_gold_imaging(pipeline):
    truth = pipeline.truth
    text = pipeline.published_text(
        "silver.imaging_instances", "silver.imaging_series", "gold.imaging_series_features"
    )
    with pipeline.connect() as conn:
        original_uids = [
            r[0]
            for r in conn.execute(
                "SELECT study_instance_uid FROM bronze.dicom_instances "
                "WHERE study_instance_uid IS NOT NULL UNION "
                "SELECT sop_instance_uid FROM bronze.dicom_instances"
            ).fetchall()
        ]
    for mrn, family in zip(truth.mrn, truth.family_name, strict=True):
        assert mrn not in text
        assert f"{family}^" not in text
    assert not any(uid in text for uid in original_uids)
    check = pipeline.check("no_phi_left")
    assert check.passed and check.metadata["instances_scanned"].value > 100


def test_imaging_checks_pass_and_quarantine_is_explained(pipeline):
    results = {
        c.check_name: c
        for c in pipeline.result.get_asset_check_evaluations()
        if tuple(c.asset_key.path) in {t.asset_key for t in imaging.TABLES}
    }
    assert results["one_embedding_per_series"].passed
    assert results["ct_intensities_in_hu_range"].passed
    # The generator's cut file leaves its series one slice short: the geometry check sees it.
    assert not results["geometry_sane"].passed
    assert results["geometry_sane"].metadata["offending_rows"].value == 1
    with pipeline.connect() as conn:
        reasons = dict(
            conn.execute(
                "SELECT error_code, count(*) FROM bronze.files WHERE modality = 'imaging' "
                "AND status = 'quarantined' GROUP BY 1"
            ).fetchall()
        )
    assert set(reasons) == {"truncated", "not_dicom"}


def _exact_neighbours(conn, probe: str, visible: set[str] | None, k: int) -> list[str]:
    rows = conn.execute(
        "SELECT series_uid, research_key, embedding FROM gold.imaging_series_features "
        "WHERE embedding IS NOT NULL"
    ).fetchall()
    by_uid = {uid: (key, np.array(vec)) for uid, key, vec in rows}
    probe_key, probe_vec = by_uid[probe]
    scored = []
    for uid, (key, vec) in by_uid.items():
        if key == probe_key or (visible is not None and key not in visible):
            continue
        distance = 1 - vec @ probe_vec / (np.linalg.norm(vec) * np.linalg.norm(probe_vec))
        scored.append((distance, uid))
    return [uid for _, uid in sorted(scored)[:k]]


def test_similarity_search_is_exact_and_governed(pipeline, tmp_path):
    db = copy_lakehouse(pipeline.lakehouse, tmp_path / "lakehouse")
    allowed = _allowed_keys(pipeline)["researcher"]
    with pipeline.connect() as conn:
        probe = conn.execute(
            "SELECT series_uid FROM gold.imaging_series_features WHERE lesion_found AND "
            "research_key IN (SELECT unnest($keys)) ORDER BY series_uid LIMIT 1",
            {"keys": sorted(allowed)},
        ).fetchall()[0][0]
        everything = _exact_neighbours(conn, probe, None, 10)
        consented = _exact_neighbours(conn, probe, allowed, 10)
    engineer = similar_cases(user="carol", role="data_engineer", series_uid=probe, k=10, root=db)
    assert engineer.column("series_uid").to_pylist() == everything
    researcher = similar_cases(user="alice", role="researcher", series_uid=probe, k=10, root=db)
    assert researcher.column("series_uid").to_pylist() == consented
    assert set(researcher.column("research_key").to_pylist()) <= allowed
    with pytest.raises(Denied):
        similar_cases(user="erin", role="auditor", series_uid=probe, root=db)
    with pytest.raises(Denied):
        similar_cases(user="alice", role="researcher", series_uid="1' OR 1=1 --", root=db)
    audit = audit_rows(db)
    searches = audit[audit.action == "similarity_search"]
    assert list(searches.decision) == ["allow", "allow", "deny", "deny"]
    assert searches.iloc[1].user_name == "alice"


def test_a_header_that_cannot_be_deidentified_is_left_out_not_fatal(rendered):
    from multimodal_assets.lib.platform.parallel import map_items_in_processes

    root, deliveries, _ = rendered
    (good,) = imaging.parse_dicom_file(
        (root.parent / deliveries[deliveries.kind == "instance"].iloc[0].path).read_bytes()
    )
    good["_source_sha256"] = "0" * 64
    broken = {k: v for k, v in good.items() if k != "header"}  # any failure inside de-id
    out = map_items_in_processes(imaging.deidentified_instance, [broken, good], ({}, b"test-key"))
    assert out[0] is None and out[1]["instance_uid"] == dicom_deid.new_uid(
        good["sop_instance_uid"], b"test-key"
    )


def _without_transfer_syntax(data: bytes) -> bytes:
    """A Part 10 file with the Transfer Syntax UID element cut out of its File Meta (explicit VR
    little endian, as the standard writes it) and the group length corrected."""
    meta_end = 144 + int.from_bytes(data[140:144], "little")
    at = data.index(b"\x02\x00\x10\x00UI", 144, meta_end)
    length = 8 + int.from_bytes(data[at + 6 : at + 8], "little")
    shorter = (meta_end - 144 - length).to_bytes(4, "little")
    return data[:140] + shorter + data[144:at] + data[at + length :]


def test_a_file_meta_without_transfer_syntax_is_read_with_the_encoding_that_fits():
    original = (PYDICOM_DIR / "CT_small.dcm").read_bytes()
    (expected,) = imaging.parse_dicom_file(original)
    (row,) = imaging.parse_dicom_file(_without_transfer_syntax(original))
    assert row["transfer_syntax_uid"] == "1.2.840.10008.1.2.1"  # inferred: explicit VR LE
    for key in ("sop_instance_uid", "sop_class_uid", "patient_id", "rows", "has_pixel_data"):
        assert row[key] == expected[key], key


@pytest.mark.parametrize(
    "name, reason",
    [
        ("meta_missing_tsyntax.dcm", "lacks its Transfer Syntax UID (0002,0010)"),
        ("no_meta.dcm", "does not start at byte 0: a group 0008 data element starts at byte 1"),
    ],
)
def test_quarantine_reasons_say_what_is_missing(name, reason):
    with pytest.raises(QuarantineError) as raised:
        imaging.parse_dicom_file((PYDICOM_DIR / name).read_bytes())
    assert raised.value.code == "not_dicom" and reason in raised.value.message


CHARSET_DIR = Path(pydicom.data.__file__).parent / "charset_files"


@pytest.mark.parametrize(
    "name", sorted(p.name for p in CHARSET_DIR.glob("chr*.dcm")), ids=lambda n: n
)
def test_names_in_every_character_set_are_decoded_for_the_phi_gate(name):
    # pydicom's character-set files: ISO 2022 escapes (Japanese, Korean), UTF-8, GB18030,
    # Latin-1, Cyrillic, Greek, Arabic, Hebrew. Each group of a person name (alphabetic,
    # ideographic, phonetic) is decoded and counted as an identifier, 2-character CJK names too.
    ds = pydicom.dcmread(CHARSET_DIR / name)
    originals = dicom_deid.identifying_values(ds)
    names = [c for c in (ds.PatientName.components if "PatientName" in ds else ()) if c]
    assert all(c in originals for c in names), name
    if names:  # the original header itself, as DICOM JSON, is flagged
        leaked = dicom_deid.phi_left(json.loads(dicom_deid.to_json(ds)), originals)
        assert any("identifying value" in p for p in leaked)
    clean = dicom_deid.deidentify(ds, "rk_test", 10, b"test-key")
    assert dicom_deid.phi_left(json.loads(dicom_deid.to_json(clean)), originals) == []


def _corrupt_rle_variants(count: int = 40) -> list[bytes]:
    """pydicom's MR_small_RLE.dcm with a few bytes of its first RLE fragment changed (seeded)."""
    import random

    data = (PYDICOM_DIR / "MR_small_RLE.dcm").read_bytes()
    first_item = data.find(b"\xfe\xff\x00\xe0", data.find(b"\xe0\x7f\x10\x00"))
    fragment = data.find(b"\xfe\xff\x00\xe0", first_item + 8) + 8
    rng, out = random.Random(1), []
    for _ in range(count):
        bad = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            bad[fragment + rng.randint(0, 200)] = rng.randint(0, 255)
        out.append(bytes(bad))
    return out


def test_a_codec_panic_on_corrupt_rle_pixels_costs_that_instance_only():
    import io

    variants = _corrupt_rle_variants()
    panics = 0
    for data in variants:  # the poison is real: the codec itself panics on some of them
        try:
            assert pydicom.dcmread(io.BytesIO(data)).pixel_array is not None
        except Exception:  # noqa: BLE001
            pass
        except BaseException as err:  # noqa: BLE001
            assert type(err).__name__ == "PanicException"
            panics += 1
    assert panics > 0
    for data in variants:
        try:
            imaging.decode_instance(data)
        except imaging.PixelError as err:
            assert "not decodable" in str(err)


def test_an_element_declaring_2_gb_is_quarantined_not_cut_short():
    data = bytearray((PYDICOM_DIR / "MR_small_implicit.dcm").read_bytes())  # implicit VR
    at = data.find(b"\x10\x00\x10\x00")  # (0010,0010) Patient's Name: tag, then 4-byte length
    data[at + 4 : at + 8] = (0x7FFFFFF0).to_bytes(4, "little")
    with pytest.raises(QuarantineError) as raised:
        imaging.parse_dicom_file(bytes(data))
    assert raised.value.code == "truncated" and "(0010,0010) declares" in raised.value.message
