"""Sensors: landing folders trigger bronze ingest; automation conditions drive everything after."""

import dagster as dg

from multimodal_assets.lib import config, genomics, imaging, landing_watch, notes


def landing_sensor(modality: str, *targets: dg.AssetKey) -> dg.SensorDefinition:
    """A sensor that requests one ingest run per batch of new files in landing/<modality>."""

    @dg.sensor(
        name=f"{modality}_landing_sensor",
        description=f"New files in landing/{modality} start an ingest run "
        "(run key = content hash of the batch).",
        asset_selection=list(targets),
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _sensor(context: dg.SensorEvaluationContext):
        found = landing_watch.new_files(config.landing_dir(modality), context.cursor)
        if found is None:
            return dg.SkipReason(f"no new files in landing/{modality}")
        # Same bytes delivered again give the same run key, which Dagster runs only once.
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=found.batch_key,
                    tags={"landing/modality": modality, "landing/new_files": str(len(found.paths))},
                )
            ],
            cursor=found.cursor,
        )

    return _sensor


automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_condition_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Evaluates the eager automation conditions of silver, gold and governance assets.",
)

sensors = [
    landing_sensor("clinical", dg.AssetKey(["clinical", "fhir_resources"])),
    landing_sensor("wearables", dg.AssetKey(["wearables", "wearable_events"])),
    landing_sensor("genomics", *(dg.AssetKey(list(t.asset_key)) for t in genomics.BRONZE_TABLES)),
    landing_sensor("imaging", dg.AssetKey(list(imaging.DICOM_INSTANCES.asset_key))),
    landing_sensor("notes", dg.AssetKey(list(notes.NOTE_TEXTS.asset_key))),
    automation_sensor,
]
