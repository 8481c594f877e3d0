"""Property-based fuzzing of the parsers: real files mutated (cut short, bytes flipped, headers
spliced from another file, NUL bytes, huge declared lengths, deep nesting, another encoding)
give rows or a QuarantineError with a code and a reason, never another exception and never a
hang. The parsers that run inside the ingest process (FHIR, notes and CDA, DICOM headers, FIT,
TCX and Apple Health) are called directly; the native readers of genomics (htslib, which can
take a process down rather than raise) are fuzzed through ingest, where they run isolated.
`MM_FUZZ_EXAMPLES` raises the number of examples for a longer run.
"""

import os
import signal
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multimodal_assets.lib import imaging, notes, wearables
from multimodal_assets.lib.clinical import fhir
from multimodal_assets.lib.platform.ingest import PartlyRead, QuarantineError

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = int(os.environ.get("MM_FUZZ_EXAMPLES", "40"))
SECONDS_PER_FILE = 10


def _seeds(*patterns: str, limit: int = 200_000) -> list[bytes]:
    files = sorted(p for pattern in patterns for p in FIXTURES.glob(pattern))
    return [p.read_bytes() for p in files if p.stat().st_size <= limit]


PARSERS = {
    "fhir": (fhir.parse_fhir_file, _seeds("fhir/*.json", "fhir_releases/stu3*.json")),
    "notes": (notes.parse_note_file, _seeds("notes/*.txt", "notes/*.xml", "notes_cda/*.xml")),
    "dicom": (imaging.parse_dicom_file, _seeds("dicom/*.dcm")),
    "wearables": (
        wearables.parse_wearables_file,
        _seeds(
            "wearables_devices/*.fit", "wearables_devices/*.tcx", "wearables/*.xml", limit=60_000
        ),
    ),
}


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    kind = draw(
        st.sampled_from(["cut", "flip", "splice", "nul", "huge_length", "nest", "encoding"])
    )
    at = draw(st.integers(0, max(len(data) - 1, 0)))
    if kind == "cut":
        del data[at:]
    elif kind == "flip":
        for offset in draw(st.lists(st.integers(0, max(len(data) - 1, 0)), max_size=16)):
            if data:
                data[offset] ^= draw(st.integers(1, 255))
    elif kind == "splice":  # the head of another file on this one's tail
        other = draw(st.sampled_from(seeds))
        data = bytearray(other[: draw(st.integers(0, len(other)))]) + data[at:]
    elif kind == "nul":
        data[at:at] = b"\x00" * draw(st.integers(1, 64))
    elif kind == "huge_length":  # a 4-byte length field (DICOM, or any binary) set near 2^32
        data[at : at + 4] = draw(st.sampled_from([b"\xf0\xff\xff\xff", b"\xff\xff\xff\x7f"]))
    elif kind == "nest":
        depth = draw(st.integers(100, 20_000))
        data[at:at] = b"[" * depth + b"{" * 3 + b"<a>" * min(depth, 3000)
    else:
        data = bytearray(bytes(data).decode("latin-1").encode("utf-16"))
    return bytes(data)


def _alarm(signum, frame):
    raise TimeoutError("the parser hung")


@pytest.mark.parametrize("fmt", sorted(PARSERS))
def test_mutated_real_files_give_rows_or_a_reason(fmt):
    parse, seeds = PARSERS[fmt]
    assert seeds, f"no {fmt} fixtures to mutate"

    @settings(
        max_examples=EXAMPLES,
        deadline=None,  # the alarm below bounds each file; hypothesis would only report late
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=mutated(seeds))
    def check(data: bytes) -> None:
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(SECONDS_PER_FILE)
        try:
            rows = parse(data)
        except QuarantineError as err:
            assert err.code and err.message
        else:
            if isinstance(rows, PartlyRead):
                assert rows.rejected and all(
                    n > 0 and code and why for n, code, why in rows.rejected
                )
                rows = rows.records
            assert isinstance(rows, list | pa.Table)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)

    check()


def test_a_batch_of_mutated_files_is_registered_whole_and_changes_nothing_ingested(tmp_path):
    from multimodal_assets.lib.platform import ingest, warehouse

    parse, seeds = PARSERS["notes"]
    landing = tmp_path / "landing"
    good = landing / "notes" / "good"
    good.mkdir(parents=True)
    for i, seed in enumerate(seeds):
        (good / f"seed-{i}.txt").write_bytes(seed)
    root = tmp_path / "lakehouse"

    def run(run_id: str):
        with warehouse.connect(root) as conn:
            files = ingest.scan_landing(landing, "notes")
            ingest.ingest(conn, "notes", files, parse, notes.NOTE_TEXTS, run_id)
            return (
                conn.execute("SELECT path, status FROM bronze.files ORDER BY 1").fetchall(),
                conn.execute(
                    "SELECT * EXCLUDE (_run_id) FROM bronze.note_texts ORDER BY note_id"
                ).fetchall(),
            )

    _, before = run("first")
    counter = iter(range(1_000_000))

    @settings(max_examples=max(5, EXAMPLES // 4), deadline=None, derandomize=True)
    @given(batch=st.lists(mutated(seeds), min_size=1, max_size=4))
    def check(batch: list[bytes]) -> None:
        folder = landing / "notes" / f"batch-{next(counter)}"
        folder.mkdir()
        for i, data in enumerate(batch):
            (folder / f"file-{i}.txt").write_bytes(data)
        registry, rows = run(folder.name)
        registered = {path for path, _ in registry}
        assert {f"notes/{folder.name}/file-{i}.txt" for i in range(len(batch))} <= registered
        assert {status for _, status in registry} <= {"ingested", "quarantined", "duplicate"}
        kept = {row[0] for row in before}
        assert [row for row in rows if row[0] in kept] == before

    check()


def test_mutated_genomics_files_are_each_registered_though_the_native_reader_may_crash(tmp_path):
    from multimodal_assets.lib import genomics
    from multimodal_assets.lib.platform import ingest, warehouse

    seeds = _seeds("vcf/*.vcf", "vcf/*.bcf", "vcf/*.vcf.gz", "genomics_edge/*.vcf")
    root, landing = tmp_path / "lakehouse", tmp_path / "landing"
    counter = iter(range(1_000_000))

    @settings(max_examples=max(3, EXAMPLES // 10), deadline=None, derandomize=True)
    @given(batch=st.lists(mutated(seeds), min_size=1, max_size=6))
    def check(batch: list[bytes]) -> None:
        folder = landing / "genomics" / f"batch-{next(counter)}"
        folder.mkdir(parents=True)
        for i, data in enumerate(batch):
            (folder / f"file-{i}.vcf").write_bytes(data)
        with warehouse.connect(root) as conn:
            files = ingest.scan_landing(landing, "genomics", batches=[folder.name])
            ingest.ingest(
                conn,
                "genomics",
                files,
                genomics.parse_genomics_file,
                genomics.BRONZE_TABLES,
                folder.name,
                with_path=True,
                isolated=True,
            )
            registry = conn.execute(
                "SELECT path, status, error FROM bronze.files WHERE path LIKE ?",
                [f"genomics/{folder.name}/%"],
            ).fetchall()
        assert {path for path, _, _ in registry} == {
            f"genomics/{folder.name}/file-{i}.vcf" for i in range(len(batch))
        }
        for _, status, reason in registry:
            assert status in {"ingested", "quarantined", "duplicate"}
            assert status != "quarantined" or reason

    check()
