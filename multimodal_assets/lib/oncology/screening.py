"""Trial screening: every cohort patient against every open arm of the catalog, one row per
criterion with its evidence and source record, and one row per arm with the open questions.

Decision support only: `eligible` means every criterion the data can judge is met, for a
coordinator to confirm; nothing here enrols or excludes a patient.
"""

from __future__ import annotations

from ..platform.tables import RESEARCH_KEY, RUN_ID, Column, Table
from .criteria import MET, NOT_MET, UNKNOWN, arm_status, judge
from .facts import SOURCES, PatientFacts
from .trials import Trial

STATUSES = (MET, NOT_MET, UNKNOWN)
ARM_STATUSES = ("eligible", "potentially_eligible", "not_eligible")
_TRIAL = Column(
    "trial_id",
    "VARCHAR",
    "Protocol number of the trial (CTML protocol_no).",
    "none",
    nullable=False,
)
_ARM = Column("arm_id", "VARCHAR", "Arm code within the trial.", "none", nullable=False)
_SCREENED_ON = Column(
    "screening_date",
    "DATE",
    "The date screened as of (the index date): later data is not used.",
    "phi",
    "hipaa",
    nullable=False,
)

_TRIAL_SHA = Column(
    "trial_sha256",
    "VARCHAR",
    "SHA-256 of the trial file screened against.",
    "none",
    nullable=False,
)
# Where the evidence of each kind of criterion is read (lakehouse_facts); Dagster deps too.
_EVIDENCE = (
    ("silver.patients", "birth_date"),
    ("silver.patients", "sex"),
    ("silver.conditions", "snomed_code"),
    ("silver.conditions", "stage_group"),
    ("silver.observations", "value"),
    ("silver.genomic_samples", "sample_id"),
    ("bronze.file_samples", "sample_id"),
    ("silver.somatic_variants", "biomarker"),
    ("silver.somatic_variants", "gene"),
    ("gold.genomics_features", "tmb_per_mb"),
    ("silver.note_entities", "concept"),
    ("silver.note_entities", "negated"),
    ("gold.imaging_series_features", "lesion_diameter_mm"),
    ("silver.medications", "rxnorm_code"),
)
_DATES = (
    ("silver.conditions", "onset_date"),
    ("silver.observations", "effective_time"),
    ("silver.genomic_samples", "collected_on"),
    ("silver.note_entities", "entity_date"),
    ("gold.imaging_series_features", "acquired_on"),
    ("silver.medications", "authored_date"),
)
_RECORDS = (
    "silver.patients",
    "silver.conditions",
    "silver.observations",
    "bronze.file_samples",
    "silver.somatic_variants",
    "silver.note_entities",
    "silver.imaging_instances",
    "silver.medications",
)

TRIAL_SCREENING = Table(
    layer="gold",
    name="trial_screening",
    modality="oncology",
    primary_key=("research_key", "trial_id", "arm_id", "criterion_id"),
    description="Each cohort patient × trial arm × criterion: met, not_met or unknown (missing "
    "data is unknown, never not_met), with the evidence and the record it came from.",
    columns=(
        RESEARCH_KEY,
        _TRIAL,
        _ARM,
        Column(
            "criterion_id",
            "VARCHAR",
            "Readable criterion id (e.g. ecog_le_1).",
            "none",
            nullable=False,
        ),
        Column(
            "status",
            "VARCHAR",
            "met | not_met | unknown.",
            "sensitive",
            nullable=False,
            allowed=STATUSES,
        ),
        Column(
            "evidence_value",
            "VARCHAR",
            "What the criterion was judged on (e.g. ECOG 1).",
            "sensitive",
        ),
        Column("evidence_date", "DATE", "Date of the evidence.", "phi", "hipaa"),
        Column(
            "evidence_source",
            "VARCHAR",
            "structured_ehr | genomics | notes | imaging.",
            "none",
            allowed=SOURCES,
        ),
        Column("question", "VARCHAR", "For unknown: what a coordinator would ask.", "sensitive"),
        _SCREENED_ON,
        _TRIAL_SHA,
        Column(
            "_source_sha256",
            "VARCHAR",
            "SHA-256 of the landed file the evidence came from.",
            "none",
        ),
        Column(
            "_source_locator", "VARCHAR", "The evidence's record within that file.", "phi", "hipaa"
        ),
        RUN_ID,
    ),
    lineage={
        "research_key": (("gold.clinical_features", "research_key"),),
        "screening_date": (("gold.clinical_features", "index_date"),),
        "status": _EVIDENCE,
        "evidence_value": _EVIDENCE,
        "evidence_date": _DATES,
        "_source_sha256": tuple((t, "_source_sha256") for t in _RECORDS),
        "_source_locator": tuple((t, "_source_locator") for t in _RECORDS),
    },
)

CANDIDATES_SQL = """
SELECT research_key, trial_id, arm_id,
       CASE WHEN bool_or(status = 'not_met') THEN 'not_eligible'
            WHEN bool_or(status = 'unknown') THEN 'potentially_eligible'
            ELSE 'eligible' END AS status,
       CAST(count(*) FILTER (status = 'met') AS INTEGER) AS criteria_met,
       CAST(count(*) FILTER (status = 'unknown') AS INTEGER) AS criteria_unknown,
       CAST(count(*) FILTER (status = 'not_met') AS INTEGER) AS criteria_not_met,
       string_agg(criterion_id, ', ' ORDER BY criterion_id) FILTER (status = 'unknown')
           AS unknown_criteria,
       string_agg(DISTINCT question, '; ' ORDER BY question) FILTER (status = 'unknown')
           AS open_questions,
       min(screening_date) AS screening_date, min(trial_sha256) AS trial_sha256,
       $run_id AS _run_id
FROM gold.trial_screening
GROUP BY research_key, trial_id, arm_id
"""

TRIAL_CANDIDATES = Table(
    layer="gold",
    name="trial_candidates",
    modality="oncology",
    primary_key=("research_key", "trial_id", "arm_id"),
    description="Each cohort patient × trial arm: eligible, potentially_eligible (nothing "
    "failed, something unknown) or not_eligible, with the questions that remain open.",
    columns=(
        RESEARCH_KEY,
        _TRIAL,
        _ARM,
        Column(
            "status",
            "VARCHAR",
            "eligible | potentially_eligible | not_eligible.",
            "sensitive",
            nullable=False,
            allowed=ARM_STATUSES,
        ),
        Column(
            "criteria_met", "INTEGER", "Criteria met.", "sensitive", nullable=False, min_value=0
        ),
        Column(
            "criteria_unknown",
            "INTEGER",
            "Criteria the data cannot judge.",
            "sensitive",
            nullable=False,
            min_value=0,
        ),
        Column(
            "criteria_not_met",
            "INTEGER",
            "Criteria not met.",
            "sensitive",
            nullable=False,
            min_value=0,
        ),
        Column(
            "unknown_criteria",
            "VARCHAR",
            "The unknown criteria's ids, comma-separated.",
            "sensitive",
        ),
        Column(
            "open_questions",
            "VARCHAR",
            "What a coordinator would ask, one per unknown.",
            "sensitive",
        ),
        _SCREENED_ON,
        _TRIAL_SHA,
        RUN_ID,
    ),
    build_sql=CANDIDATES_SQL,
)
TABLES = (TRIAL_SCREENING, TRIAL_CANDIDATES)


def screen(
    trials: tuple[Trial, ...], facts: dict[str, PatientFacts], run_id: str = ""
) -> tuple[list[dict], list[dict]]:
    """(criterion rows, arm rows) for every patient × open arm of every trial."""
    criteria_rows, arm_rows = [], []
    for key in sorted(facts):
        patient = facts[key]
        for trial in trials:
            for arm in trial.arms:
                statuses, unknown, questions = [], [], []
                for criterion in arm.criteria:
                    verdict = judge(criterion.node, patient)
                    evidence = verdict.evidence
                    statuses.append(verdict.status)
                    if verdict.status == UNKNOWN:
                        unknown.append(criterion.criterion_id)
                        questions.append(verdict.question or criterion.criterion_id)
                    criteria_rows.append(
                        {
                            "research_key": key,
                            "trial_id": trial.trial_id,
                            "arm_id": arm.arm_id,
                            "criterion_id": criterion.criterion_id,
                            "status": verdict.status,
                            "evidence_value": evidence.value if evidence else None,
                            "evidence_date": evidence.on if evidence else None,
                            "evidence_source": evidence.source if evidence else None,
                            "question": verdict.question,
                            "screening_date": patient.screening_date,
                            "trial_sha256": trial.sha256,
                            "_source_sha256": evidence.sha256 if evidence else None,
                            "_source_locator": evidence.locator if evidence else None,
                            "_run_id": run_id,
                        }
                    )
                arm_rows.append(
                    {
                        "research_key": key,
                        "trial_id": trial.trial_id,
                        "arm_id": arm.arm_id,
                        "status": arm_status(statuses),
                        "criteria_met": statuses.count(MET),
                        "criteria_unknown": statuses.count(UNKNOWN),
                        "criteria_not_met": statuses.count(NOT_MET),
                        "unknown_criteria": ", ".join(unknown) or None,
                        "open_questions": "; ".join(dict.fromkeys(questions)) or None,
                        "screening_date": patient.screening_date,
                        "trial_sha256": trial.sha256,
                        "_run_id": run_id,
                    }
                )
    return criteria_rows, arm_rows
