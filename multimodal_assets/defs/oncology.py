"""Oncology assets (decision support): patient profiles, trial screening and candidates, their
evaluations against the generator's truth, and the sensor that re-screens on a catalog change."""

import hashlib
import json
from pathlib import Path

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

from .governed import (
    asset_key,
    file_asset_spec_kwargs,
    governed_table_asset,
)
from .resources import LakehouseResource, PseudonymKey

PACKETS_KEY = dg.AssetKey(["oncology", "tumor_board_packets"])
BOARD_LISTS_KEY = "board_lists_sha256"  # packets metadata: meeting → hash of its board list

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


def _evaluation(name: str, description: str, upstream) -> dict:
    """An evaluation against the generator's truth, refreshed when its table changes."""
    return dict(
        **file_asset_spec_kwargs(
            "oncology",
            name,
            layer="evaluation",
            kinds={"python"},
            restricted=False,
            description=description,
        ),
        deps=[asset_key(upstream)],
        automation_condition=dg.AutomationCondition.eager(),
    )


@dg.asset(
    **_evaluation(
        "screening_evaluation",
        "Trial screening against the latent truth: criterion accuracy by evidence source "
        "(unknown from missing data apart from wrong), eligibility precision/recall.",
        TRIAL_CANDIDATES,
    )
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
    **_evaluation(
        "similarity_evaluation",
        "Whether similar patients are similar in the latent state: recall@10 of latent "
        "neighbours by multimodal, imaging-only and random search, and outcome agreement.",
        PATIENT_PROFILES,
    )
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
        profiles = Profiles.read(conn)
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


def board_lists() -> dict[str, Path]:
    """Meeting date -> its landed board list."""
    from multimodal_assets.lib.oncology.board_list import MEETING_FILE

    folder = config.landing_dir("tumor_board")
    files = sorted(folder.glob("*.csv")) if folder.exists() else []
    return {m.group(1): p for p in files if (m := MEETING_FILE.fullmatch(p.name))}


@dg.asset(
    **file_asset_spec_kwargs(
        "oncology",
        "tumor_board_packets",
        layer="gold",
        kinds={"html"},
        restricted=True,
        description="For every landed board list (landing/tumor_board/<meeting-date>.csv), one "
        "self-contained HTML packet per listed patient (identified for the patient's site, "
        "de-identified when consented), every statement linked to its record.",
    ),
    deps=[
        asset_key(TRIAL_CANDIDATES),
        asset_key(PATIENT_PROFILES),
        dg.AssetKey(["gold", "risk_scores"]),
        dg.AssetKey(["gold", "imaging_series_features"]),
        dg.AssetKey(["gold", "genomics_features"]),
        dg.AssetKey(["gold", "clinical_outcomes"]),
        dg.AssetKey(["silver", "note_entities"]),
        dg.AssetKey(["silver", "procedures"]),
    ],
)
def tumor_board_packets(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource, pseudonym: PseudonymKey
) -> dg.MaterializeResult:
    # Not partitioned by meeting: a partitions definition of its own would keep the UI's
    # "Materialize all" from reaching it (a backfill anchored on the delivery partitions).
    from multimodal_assets.lib.governance import audit
    from multimodal_assets.lib.oncology.board_list import read_board_list
    from multimodal_assets.lib.oncology.meeting import build_meeting, meetings_dir

    per_meeting, hashes = {}, {}
    with lakehouse.get_connection() as conn:
        for meeting, path in sorted(board_lists().items()):
            hashes[meeting] = hashlib.sha256(path.read_bytes()).hexdigest()
            per_meeting[meeting] = summary = build_meeting(
                conn,
                read_board_list(path),
                meetings_dir(config.data_dir()),
                config.landing_dir(),
                pseudonym.value(),
            )
            audit.append(
                lakehouse.root,
                audit.AuditEvent(
                    action="tumor_board_packets",
                    decision="allow",
                    user_name="dagster",
                    role="pipeline",
                    tables="gold.trial_screening,gold.risk_scores,gold.patient_profiles,silver.*",
                    rows_returned=summary["packets_identified"] + summary["packets_deidentified"],
                    reason=f"packets written for meeting {meeting}",
                    run_id=context.run_id,
                ),
            )
    totals = {
        key: sum(s[key] for s in per_meeting.values())
        for key in (
            "patients_listed",
            "patients_not_found",
            "packets_identified",
            "packets_deidentified",
        )
    }
    metadata = {
        "meetings": len(per_meeting),
        **totals,
        "per_meeting": dg.MetadataValue.json(per_meeting),
        BOARD_LISTS_KEY: dg.MetadataValue.json(hashes),
    }
    if per_meeting:  # the newest meeting's index, to open from the UI
        newest = meetings_dir(config.data_dir()) / max(per_meeting) / "identified" / "index.html"
        metadata["index"] = dg.MetadataValue.path(str(newest))
    return dg.MaterializeResult(metadata=metadata)


@dg.sensor(
    name="tumor_board_sensor",
    description="A new or changed board list in landing/tumor_board/<meeting-date>.csv builds "
    "the packets (run key = the lists' hashes).",
    asset_selection=[PACKETS_KEY],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def tumor_board_sensor(context: dg.SensorEvaluationContext):
    current = {m: hashlib.sha256(p.read_bytes()).hexdigest() for m, p in board_lists().items()}
    # First tick (e.g. when the UI first opens after the main job): the lists the latest
    # packets were built from count as seen.
    seen = json.loads(context.cursor) if context.cursor else _packets_built_from(context.instance)
    context.update_cursor(json.dumps(current, sort_keys=True))
    changed = sorted(m for m, sha in current.items() if seen.get(m) != sha)
    if not changed:
        return dg.SkipReason("no new or changed board list")
    run_key = hashlib.sha256(json.dumps(current, sort_keys=True).encode()).hexdigest()[:16]
    return dg.RunRequest(run_key=f"board-lists-{run_key}", tags={"meetings": ",".join(changed)})


def _packets_built_from(instance: dg.DagsterInstance) -> dict[str, str]:
    """Meeting → hash of the board list the latest packets were built from."""
    latest = instance.get_latest_materialization_event(PACKETS_KEY)
    metadata = latest.asset_materialization.metadata if latest else {}
    return metadata[BOARD_LISTS_KEY].value if BOARD_LISTS_KEY in metadata else {}


assets = [
    patient_profiles,
    trial_screening,
    trial_candidates,
    screening_evaluation,
    similarity_evaluation,
    tumor_board_packets,
]
sensors = [trial_catalog_sensor, tumor_board_sensor]
