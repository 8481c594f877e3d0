"""Notes assets: note files → bronze raw text (restricted) → silver entities with assertions and
de-identified text → gold timelines and per-patient features; evaluation assets measure the
pipeline on generated truth and on the real ConText reference sentences."""

import os
import re
from collections import Counter
from pathlib import Path

import dagster as dg

from multimodal_assets.lib import notes
from multimodal_assets.lib.notes import (
    FEATURES,
    NOTE_ENTITIES,
    NOTE_TEXTS,
    NOTES_DEIDENTIFIED,
    PATIENT_TIMELINE,
)
from multimodal_assets.lib.notes import evaluation as notes_evaluation
from multimodal_assets.lib.platform import config, warehouse
from multimodal_assets.lib.platform.parallel import map_query_in_chunks

from .governed import (
    asset_key,
    bronze_ingest_asset,
    file_asset_spec_kwargs,
    governed_table_asset,
)
from .resources import LakehouseResource

note_texts = bronze_ingest_asset(NOTE_TEXTS, notes.parse_note_file, kinds={"duckdb", "text"})

_IDENTITY = ("mrn", "family_name", "given_name", "phone", "address_line", "city", "postal_code")


# Notes are analyzed and de-identified this many at a time: the cohort's texts and entities
# never sit in memory at once.
NOTES_PER_CHUNK = 20_000
_BRONZE_NOTES = (
    "SELECT note_id, mrn, note_date, note_type, text, document_identity::VARCHAR AS "
    "document_identity, _source_sha256 FROM bronze.note_texts ORDER BY note_id"
)


def _mapped_notes(conn, function, shared: tuple):
    """(bronze notes, `function` of each) per chunk of notes, in worker processes."""
    return map_query_in_chunks(
        conn, _BRONZE_NOTES, function, shared, config.pixel_workers(), NOTES_PER_CHUNK, 64
    )


def _identities(conn) -> dict[str, dict]:
    names = ", ".join(("research_key", *_IDENTITY))
    return {
        row["mrn"]: row
        for row in conn.sql(f"SELECT {names} FROM silver.patients").to_arrow_table().to_pylist()
    }


def _build_entities(conn, run_id: str) -> dict:
    keys = {mrn: row["research_key"] for mrn, row in _identities(conn).items()}
    counts = Counter()

    def chunks():
        for bronze, results in _mapped_notes(conn, notes.entity_rows_of, (keys,)):
            # A note the pipeline cannot read stays in bronze and is counted.
            rows = [{**row, "_run_id": run_id} for found in results if found for row in found]
            counts["notes"] += len(bronze)
            counts["notes_linked_to_patients"] += sum(1 for n in bronze if n["mrn"] in keys)
            counts["notes_not_analyzed"] += results.count(None)
            counts["entities"] += len(rows)
            yield rows

    warehouse.stage_row_batches(conn, NOTE_ENTITIES, chunks())
    return {
        name: counts[name]
        for name in ("notes", "notes_linked_to_patients", "notes_not_analyzed", "entities")
    }


note_entities = governed_table_asset(
    NOTE_ENTITIES, build=_build_entities, kinds={"duckdb", "spacy"}
)


def _build_deidentified(conn, run_id: str, key: bytes) -> dict:
    from multimodal_assets.lib.notes.deid import deidentified_note

    identities = _identities(conn)
    counts = Counter()

    def chunks():
        for _, results in _mapped_notes(conn, deidentified_note, (identities, key)):
            if None in results:  # a note left out here would be a note missing from silver
                raise RuntimeError(f"{results.count(None)} note(s) could not be de-identified")
            counts["notes"] += len(results)
            counts["identifiers_replaced"] += sum(r["identifiers_replaced"] for r in results)
            yield [{**row, "_run_id": run_id} for row in results]

    warehouse.stage_row_batches(conn, NOTES_DEIDENTIFIED, chunks())
    return {"notes": counts["notes"], "identifiers_replaced": counts["identifiers_replaced"]}


_PLACEHOLDER = re.compile(r"\[(?:DATE \d{4}-\d{2}-\d{2}|[A-Z]+)\]")


def _no_identifier_left(conn, staged: str) -> dg.AssetCheckResult:
    """Re-scan the staged text (placeholders removed) with the detector and the patient's own
    identifiers: any hit means an identifier survived."""
    from multimodal_assets.lib.notes.deid import find_identifiers, merged_identity

    identities = _identities(conn)
    texts = conn.execute(
        f"SELECT s.deidentified_text, b.mrn, b.document_identity::VARCHAR FROM {staged} s "
        "JOIN bronze.note_texts b USING (note_id)"
    ).fetchall()
    left: dict[str, int] = {}
    for text, mrn, document in texts:
        identity = merged_identity(identities.get(mrn), document)
        for span in find_identifiers(_PLACEHOLDER.sub(" ", text or ""), identity):
            left[span.category] = left.get(span.category, 0) + 1
    return dg.AssetCheckResult(
        asset_key=asset_key(NOTES_DEIDENTIFIED),
        check_name="no_identifier_left",
        passed=not left,
        metadata={"notes_scanned": len(texts), **{f"left: {k}": v for k, v in left.items()}},
    )


notes_deidentified = governed_table_asset(
    NOTES_DEIDENTIFIED,
    build=_build_deidentified,
    pseudonymizes=True,
    kinds={"duckdb", "python"},
    gates=[
        (
            dg.AssetCheckSpec(
                "no_identifier_left",
                asset=asset_key(NOTES_DEIDENTIFIED),
                blocking=True,
                description="No identifier the detector, the patient's EHR identity or the "
                "note's document header finds is left in the de-identified text (categories and "
                "counts only).",
            ),
            _no_identifier_left,
        )
    ],
)

patient_timeline = governed_table_asset(PATIENT_TIMELINE, kinds={"duckdb", "sql"})

notes_features = governed_table_asset(FEATURES, kinds={"duckdb", "sql"})


def _evaluation(name: str, description: str) -> dict:
    # Numbers only: no note text or identifier reaches the metadata.
    return file_asset_spec_kwargs(
        "notes",
        name,
        layer="evaluation",
        kinds={"python"},
        restricted=False,
        description=description,
    )


def _truth(name: str):
    """The generator's truth table, if this warehouse was built from a generated cohort."""
    import pandas as pd

    path = config.truth_dir() / name
    return pd.read_parquet(path) if path.exists() else None


def _note_ids(conn) -> dict[str, str]:
    """Landed path → note id (text files hold one note)."""
    return dict(
        conn.execute(
            "SELECT f.path, n.note_id FROM bronze.files f JOIN bronze.note_texts n "
            "ON n._source_sha256 = f.sha256 WHERE n.note_id LIKE '%-0'"
        ).fetchall()
    )


@dg.asset(
    **_evaluation(
        "entity_evaluation",
        "Entity precision/recall/F1 and assertion accuracy on the generated notes.",
    ),
    deps=[note_entities],
)
def entity_evaluation(lakehouse: LakehouseResource) -> dg.MaterializeResult:
    truth = _truth("notes_entities.parquet")
    if truth is None:
        return dg.MaterializeResult(metadata={"evaluated": False, "why": "no generator truth"})
    with lakehouse.get_connection() as conn:
        ids = _note_ids(conn)
        found = conn.execute(
            "SELECT note_id AS note, start_char AS start, end_char AS end, label, negated, "
            "historical, family, hypothetical, uncertain FROM silver.note_entities"
        ).df()
    truth = truth.assign(note=truth.path.map(ids)).dropna(subset=["note"])
    metrics = notes_evaluation.evaluate_entities(
        found[found.note.isin(set(truth.note))].to_dict("records"), truth.to_dict("records")
    )
    return dg.MaterializeResult(
        metadata={"evaluated": True, "notes": truth.note.nunique(), **metrics}
    )


def _context_corpus() -> Path:
    # ../shared next to the checkout, where this machine keeps the real files.
    default = Path(__file__).resolve().parents[3] / "shared" / "realdata" / "notes" / "negex"
    return Path(os.environ.get("MM_CONTEXT_CORPUS", default / notes_evaluation.CONTEXT_CORPUS))


@dg.asset(
    **_evaluation(
        "context_evaluation",
        "Negation, temporality and experiencer on the real ConText reference sentences (read "
        "from ../shared or MM_CONTEXT_CORPUS; not redistributed), against the majority class.",
    )
)
def context_evaluation() -> dg.MaterializeResult:
    path = _context_corpus()
    if not path.exists():
        return dg.MaterializeResult(
            metadata={"evaluated": False, "why": "the ConText corpus is not on this machine"}
        )
    metrics = notes_evaluation.evaluate_context(notes_evaluation.read_context_corpus(path))
    return dg.MaterializeResult(metadata={"evaluated": True, **metrics})


@dg.asset(
    **_evaluation(
        "deidentification_evaluation",
        "De-identification recall per Safe Harbor category and precision on the generated "
        "notes, with and without the patient's EHR identifiers.",
    ),
    deps=[note_texts, notes_deidentified],
)
def deidentification_evaluation(lakehouse: LakehouseResource) -> dg.MaterializeResult:
    truth = _truth("notes_identifiers.parquet")
    if truth is None:
        return dg.MaterializeResult(metadata={"evaluated": False, "why": "no generator truth"})
    with lakehouse.get_connection() as conn:
        ids = _note_ids(conn)
        texts = {
            note_id: (mrn, text)
            for note_id, mrn, text in conn.execute(
                "SELECT note_id, mrn, text FROM bronze.note_texts"
            ).fetchall()
        }
        identities = _identities(conn)
    by_note = truth.assign(note=truth.path.map(ids)).dropna(subset=["note"]).groupby("note")
    cases = [
        (texts[note][1], identities.get(texts[note][0]), spans.to_dict("records"))
        for note, spans in by_note
    ]
    metrics = notes_evaluation.evaluate_deidentification(cases)
    return dg.MaterializeResult(metadata={"evaluated": True, "notes": len(cases), **metrics})


assets = [
    note_texts,
    note_entities,
    notes_deidentified,
    patient_timeline,
    notes_features,
    entity_evaluation,
    context_evaluation,
    deidentification_evaluation,
]
