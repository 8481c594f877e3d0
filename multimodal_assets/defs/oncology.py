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

MEETINGS = dg.DynamicPartitionsDefinition(name="tumor_board_meetings")
PACKETS_KEY = dg.AssetKey(["oncology", "tumor_board_packets"])

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


def register_meetings(instance: dg.DagsterInstance) -> list[str]:
    """Adds a partition for each landed board list; the meeting dates, oldest first."""
    known = set(instance.get_dynamic_partitions(MEETINGS.name))
    meetings = sorted(board_lists())
    new = [m for m in meetings if m not in known]
    if new:
        instance.add_dynamic_partitions(MEETINGS.name, new)
    return meetings


@dg.asset(
    **file_asset_spec_kwargs(
        "oncology",
        "tumor_board_packets",
        layer="gold",
        kinds={"html"},
        restricted=True,
        description="One self-contained HTML packet per listed patient (identified for the "
        "patient's site, de-identified when consented), every statement linked to its record.",
    ),
    partitions_def=MEETINGS,
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
    from multimodal_assets.lib.governance import audit
    from multimodal_assets.lib.oncology.board_list import read_board_list
    from multimodal_assets.lib.oncology.meeting import build_meeting, meetings_dir

    meeting = context.partition_key
    path = board_lists().get(meeting)
    if path is None:
        raise dg.Failure(f"no board list landing/tumor_board/{meeting}.csv", allow_retries=False)
    board = read_board_list(path)
    with lakehouse.get_connection() as conn:
        summary = build_meeting(
            conn, board, meetings_dir(config.data_dir()), config.landing_dir(), pseudonym.value()
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
    index = meetings_dir(config.data_dir()) / meeting / "identified" / "index.html"
    return dg.MaterializeResult(
        metadata={
            **summary,
            "index": dg.MetadataValue.path(str(index)),
            "board_list_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
    )


@dg.sensor(
    name="tumor_board_sensor",
    description="A new or changed board list in landing/tumor_board/<meeting-date>.csv adds "
    "the meeting as a partition and builds its packets (run key = the list's hash).",
    asset_selection=[PACKETS_KEY],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def tumor_board_sensor(context: dg.SensorEvaluationContext):
    seen = json.loads(context.cursor) if context.cursor else {}
    current = {m: hashlib.sha256(p.read_bytes()).hexdigest() for m, p in board_lists().items()}
    # A meeting the cursor has not seen (the sensor's first tick, e.g. when the UI first opens
    # after the main job) counts as built if its packets were built from this very list.
    seen |= {m: _packets_built_from(context.instance, m) for m in current if m not in seen}
    changed = sorted(m for m, sha in current.items() if seen.get(m) != sha)
    context.update_cursor(json.dumps(current, sort_keys=True))
    if not changed:
        return dg.SkipReason("no new or changed board list")
    new = [m for m in changed if not context.instance.has_dynamic_partition(MEETINGS.name, m)]
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(partition_key=m, run_key=f"{m}-{current[m][:16]}") for m in changed
        ],
        dynamic_partitions_requests=[MEETINGS.build_add_request(new)] if new else [],
    )


def _packets_built_from(instance: dg.DagsterInstance, meeting: str) -> str | None:
    """The board list hash the meeting's latest packets were built from, if any."""
    latest = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=PACKETS_KEY, asset_partitions=[meeting]), limit=1
    ).records
    metadata = latest[0].asset_materialization.metadata if latest else {}
    return metadata["board_list_sha256"].value if "board_list_sha256" in metadata else None


assets = [
    patient_profiles,
    trial_screening,
    trial_candidates,
    screening_evaluation,
    similarity_evaluation,
    tumor_board_packets,
]
sensors = [trial_catalog_sensor, tumor_board_sensor]
