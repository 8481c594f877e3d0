"""Notes gold: per-patient timelines and note features as of the index date."""

from __future__ import annotations

from ..platform.tables import RESEARCH_KEY, RUN_ID, Column, Table
from .silver import _NOTE_ID, ENTITY_LABELS

# ---- gold --------------------------------------------------------------------------------------


TIMELINE_SQL = """
SELECT research_key, coalesce(entity_date, note_date) AS event_date,
       coalesce(date_source, 'note_date') AS date_source, label, concept, code, historical,
       note_id, start_char, end_char, section, $run_id AS _run_id
FROM silver.note_entities
WHERE research_key IS NOT NULL AND coalesce(entity_date, note_date) IS NOT NULL
  AND NOT (negated OR family OR hypothetical OR uncertain)
"""


PATIENT_TIMELINE = Table(
    layer="gold",
    name="patient_timeline",
    modality="notes",
    primary_key=("note_id", "start_char", "label"),
    description="Dated clinical events from notes (affirmed, the patient's own, not hypothetical "
    "or uncertain), each with the note span that supports it.",
    columns=(
        RESEARCH_KEY,
        Column(
            "event_date",
            "DATE",
            "When the event happened, as the note dates it.",
            "phi",
            "hipaa",
            nullable=False,
        ),
        Column(
            "date_source",
            "VARCHAR",
            "absolute, relative or note_date (no date in the sentence).",
            "none",
            nullable=False,
            allowed=("absolute", "relative", "note_date"),
        ),
        Column("label", "VARCHAR", "Event type.", "none", nullable=False, allowed=ENTITY_LABELS),
        Column("concept", "VARCHAR", "Normalized concept.", "sensitive", nullable=False),
        Column("code", "VARCHAR", "ICD-10-CM code where one maps.", "sensitive"),
        Column("historical", "BOOLEAN", "Told as history.", "sensitive", nullable=False),
        _NOTE_ID,
        Column("start_char", "INTEGER", "Supporting span start.", "none", nullable=False),
        Column("end_char", "INTEGER", "Supporting span end.", "none", nullable=False),
        Column("section", "VARCHAR", "Section of the span.", "none"),
        RUN_ID,
    ),
    build_sql=TIMELINE_SQL,
)

_AS_OF = "n.research_key = c.research_key AND n.note_date <= c.index_date"

_OWN = "NOT (n.family OR n.hypothetical OR n.uncertain)"
FEATURES_SQL = f"""
WITH notes AS (
    SELECT n.* FROM silver.note_entities n JOIN gold.clinical_features c ON {_AS_OF}
),
latest AS (
    SELECT research_key, label, arg_max(concept, note_date) AS concept
    FROM notes n WHERE label IN ('ECOG', 'SMOKING') AND {_OWN} AND NOT n.negated
    GROUP BY 1, 2
),
per_patient AS (
    SELECT research_key, count(DISTINCT note_id) AS notes_count, max(note_date) AS data_through,
        count(DISTINCT concept) FILTER (WHERE label = 'SYMPTOM' AND {_OWN} AND NOT negated
                                        AND NOT historical) AS symptoms,
        count(DISTINCT concept) FILTER (WHERE label = 'SYMPTOM' AND {_OWN} AND negated)
            AS denied,
        count(DISTINCT concept) FILTER (WHERE label = 'TREATMENT' AND {_OWN} AND NOT negated
                                        AND historical) AS treatments,
        bool_or(concept = 'metastasis' AND {_OWN} AND NOT negated) AS metastatic,
        bool_or(concept LIKE 'EGFR%' AND {_OWN} AND NOT negated) AS egfr,
        bool_or(concept LIKE 'KRAS%' AND {_OWN} AND NOT negated) AS kras,
        bool_or(concept = 'ALK' AND {_OWN} AND NOT negated) AS alk
    FROM notes n GROUP BY 1
)
SELECT c.research_key, p.research_key IS NOT NULL AS has_notes,
       coalesce(p.notes_count, 0)::INTEGER AS notes_count,
       TRY_CAST(e.concept AS INTEGER) AS notes_ecog,
       s.concept = 'current' AS notes_current_smoker, s.concept = 'never' AS notes_never_smoker,
       p.symptoms::INTEGER AS notes_symptom_count,
       p.denied::INTEGER AS notes_negated_symptom_count,
       p.treatments::INTEGER AS notes_prior_treatments,
       p.metastatic AS notes_metastatic, p.egfr AS notes_egfr_positive,
       p.kras AS notes_kras_positive, p.alk AS notes_alk_positive,
       p.data_through AS notes_data_through, $run_id AS _run_id
FROM gold.clinical_features c
LEFT JOIN per_patient p USING (research_key)
LEFT JOIN latest e ON e.research_key = c.research_key AND e.label = 'ECOG'
LEFT JOIN latest s ON s.research_key = c.research_key AND s.label = 'SMOKING'
"""


FEATURES = Table(
    layer="gold",
    name="notes_features",
    modality="notes",
    primary_key=("research_key",),
    description="One row per patient from notes dated by the index date: ECOG, smoking, symptom "
    "burden, prior treatments, biomarker mentions; NULL (unknown) without notes.",
    columns=(
        RESEARCH_KEY,
        Column("has_notes", "BOOLEAN", "A note dated by the index date.", "none", nullable=False),
        Column("notes_count", "INTEGER", "Notes by the index date.", "none", min_value=0),
        Column(
            "notes_ecog",
            "INTEGER",
            "Latest ECOG stated in a note.",
            "sensitive",
            min_value=0,
            max_value=4,
        ),
        Column(
            "notes_current_smoker", "BOOLEAN", "Latest smoking mention says current.", "sensitive"
        ),
        Column("notes_never_smoker", "BOOLEAN", "Latest smoking mention says never.", "sensitive"),
        Column(
            "notes_symptom_count",
            "INTEGER",
            "Distinct symptoms affirmed (not historical).",
            "sensitive",
            min_value=0,
        ),
        Column(
            "notes_negated_symptom_count",
            "INTEGER",
            "Distinct symptoms explicitly denied.",
            "sensitive",
            min_value=0,
        ),
        Column(
            "notes_prior_treatments",
            "INTEGER",
            "Distinct treatments told as history.",
            "sensitive",
            min_value=0,
        ),
        Column("notes_metastatic", "BOOLEAN", "Metastatic disease affirmed.", "sensitive"),
        Column("notes_egfr_positive", "BOOLEAN", "An EGFR alteration affirmed.", "sensitive"),
        Column("notes_kras_positive", "BOOLEAN", "A KRAS alteration affirmed.", "sensitive"),
        Column("notes_alk_positive", "BOOLEAN", "An ALK rearrangement affirmed.", "sensitive"),
        Column(
            "notes_data_through",
            "DATE",
            "Latest note date used (point-in-time guard).",
            "phi",
            "hipaa",
        ),
        RUN_ID,
    ),
    build_sql=FEATURES_SQL,
)
