"""Oncology assets (decision support): patient profiles, trial screening and candidates, their
evaluations against the generator's truth, and the sensor that re-screens on a catalog change."""

import dagster as dg

from multimodal_assets.lib.governance.pseudonym import research_key
from multimodal_assets.lib.oncology import (
    PATIENT_PROFILES,
    TRIAL_CANDIDATES,
    TRIAL_SCREENING,
    facts,
    screening,
    trials,
)
from multimodal_assets.lib.platform import config, warehouse

from .governed import asset_key, file_asset_spec_kwargs, governed_table_asset
from .resources import LakehouseResource, PseudonymKey

patient_profiles = governed_table_asset(PATIENT_PROFILES, kinds={"duckdb", "sql"})


def _build_screening(conn, run_id: str) -> dict:
    catalog_trials = trials.load_catalog()
    rows, arms = screening.screen(catalog_trials, facts.lakehouse_facts(conn), run_id)
    warehouse.stage_rows(conn, TRIAL_SCREENING, rows)
    statuses = [r["status"] for r in rows]
    return {
        "trials": len(catalog_trials),
        "arms": sum(len(t.arms) for t in catalog_trials),
        "catalog_version": trials.catalog_version(),
        "patients": len({r["research_key"] for r in rows}),
        **{f"criteria_{s}": statuses.count(s) for s in screening.STATUSES},
        **{f"arms_{s}": sum(a["status"] == s for a in arms) for s in screening.ARM_STATUSES},
    }


trial_screening = governed_table_asset(
    TRIAL_SCREENING, build=_build_screening, kinds={"duckdb", "python"}
)
trial_candidates = governed_table_asset(TRIAL_CANDIDATES, kinds={"duckdb", "sql"})


def _truth_cohort(pseudonym: PseudonymKey):
    """The generator's latent cohort keyed by research key, if this lakehouse was generated."""
    import pandas as pd

    path = config.truth_dir() / "patients.parquet"
    if not path.exists():
        return None
    cohort = pd.read_parquet(path)
    key = pseudonym.value()
    return cohort.assign(research_key=[research_key(mrn, key) for mrn in cohort.mrn])


@dg.asset(
    **file_asset_spec_kwargs(
        "oncology",
        "screening_evaluation",
        layer="evaluation",
        kinds={"python"},
        restricted=False,
        description="Trial screening against the latent truth: criterion accuracy by evidence "
        "source (unknown from missing data apart from wrong), eligibility precision/recall.",
    ),
    deps=[asset_key(TRIAL_CANDIDATES)],
    automation_condition=dg.AutomationCondition.eager(),
)
def screening_evaluation(
    lakehouse: LakehouseResource, pseudonym: PseudonymKey
) -> dg.MaterializeResult:
    from multimodal_assets.lib.oncology import evaluation

    cohort = _truth_cohort(pseudonym)
    if cohort is None:
        return dg.MaterializeResult(metadata={"evaluated": False, "why": "no generator truth"})
    with lakehouse.get_connection() as conn:
        found = conn.sql(f"SELECT * FROM {TRIAL_SCREENING.fqn}").df()
        found_arms = conn.sql(f"SELECT * FROM {TRIAL_CANDIDATES.fqn}").df()
    cohort = cohort[cohort.research_key.isin(set(found.research_key))]
    catalog_trials = trials.load_catalog()
    truth, truth_arms = evaluation.truth_screening(
        catalog_trials, cohort, list(cohort.research_key)
    )
    metrics = evaluation.screening_accuracy(found, truth, found_arms, truth_arms, catalog_trials)
    return dg.MaterializeResult(
        metadata={"evaluated": True, "patients": int(found.research_key.nunique()), **metrics}
    )


@dg.asset(
    **file_asset_spec_kwargs(
        "oncology",
        "similarity_evaluation",
        layer="evaluation",
        kinds={"python"},
        restricted=False,
        description="Whether similar patients are similar in the latent state: recall@10 of "
        "latent neighbours by multimodal, imaging-only and random search, and outcome agreement.",
    ),
    deps=[asset_key(PATIENT_PROFILES)],
    automation_condition=dg.AutomationCondition.eager(),
)
def similarity_evaluation(
    lakehouse: LakehouseResource, pseudonym: PseudonymKey
) -> dg.MaterializeResult:
    from multimodal_assets.lib.oncology import evaluation
    from multimodal_assets.lib.oncology.similarity import Profiles

    cohort = _truth_cohort(pseudonym)
    if cohort is None:
        return dg.MaterializeResult(metadata={"evaluated": False, "why": "no generator truth"})
    with lakehouse.get_connection() as conn:
        profiles = Profiles.from_arrow(
            conn.sql(f"SELECT * FROM {PATIENT_PROFILES.fqn}").to_arrow_table()
        )
    if len(profiles) <= 2 * evaluation.NEIGHBOURS:
        return dg.MaterializeResult(metadata={"evaluated": False, "why": "too few patients"})
    aligned = cohort.set_index("research_key").loc[list(profiles.keys)]
    metrics = evaluation.similarity_against_latent(
        profiles, evaluation.latent_space(aligned), aligned.label.to_numpy(bool)
    )
    return dg.MaterializeResult(metadata={"evaluated": True, "patients": len(profiles), **metrics})


@dg.sensor(
    name="trial_catalog_sensor",
    description="A new or changed CTML file in the trial catalog re-screens every patient "
    "(cursor: the catalog's hash; no code change or reload needed).",
    asset_selection=[asset_key(TRIAL_SCREENING), asset_key(TRIAL_CANDIDATES)],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def trial_catalog_sensor(context: dg.SensorEvaluationContext):
    version = trials.catalog_version()
    if context.cursor == version:
        return dg.SkipReason("the trial catalog has not changed")
    first_look = context.cursor is None
    context.update_cursor(version)
    if first_look:  # the main job screened against this catalog already
        return dg.SkipReason("catalog version recorded")
    return dg.RunRequest(run_key=f"trial-catalog-{version}")


assets = [
    patient_profiles,
    trial_screening,
    trial_candidates,
    screening_evaluation,
    similarity_evaluation,
]
sensors = [trial_catalog_sensor]
