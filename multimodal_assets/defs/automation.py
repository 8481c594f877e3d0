"""Sensors: landing folders trigger bronze ingest; automation conditions drive everything after."""

from collections import Counter

import dagster as dg

from multimodal_assets.lib import clinical, genomics, imaging, notes, wearables
from multimodal_assets.lib.platform import config, ingest, landing_watch

from .genomics import DELIVERY_BATCHES


def landing_sensor(
    modality: str, *targets: dg.AssetKey, batches: dg.DynamicPartitionsDefinition | None = None
) -> dg.SensorDefinition:
    """A sensor that requests an ingest run for the new files in landing/<modality>: one run, or
    with `batches` one run per delivery batch they belong to, adding the batch as a partition."""

    @dg.sensor(
        name=f"{modality}_landing_sensor",
        description=f"New files in landing/{modality} that the registry does not hold start "
        "an ingest run (run key = hash of their names, sizes and times).",
        asset_selection=list(targets),
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _sensor(context: dg.SensorEvaluationContext):
        folder = config.landing_dir(modality)
        prefix = f"{modality}/"
        registered = {
            p[len(prefix) :]: versions
            for p, versions in ingest.registered_paths(config.lakehouse_root(), modality).items()
            if p.startswith(prefix)
        }
        found = landing_watch.new_files(folder, context.cursor, registered)
        if found is None or not found.paths:
            if found is not None:  # only files the registry already holds: move past them
                context.update_cursor(found.cursor)
            return dg.SkipReason(f"no unregistered new files in landing/{modality}")
        # Same bytes delivered again give the same run key, which Dagster runs only once.
        if batches is None:
            return dg.SensorResult(
                run_requests=[_ingest_request(modality, found.batch_key, len(found.paths))],
                cursor=found.cursor,
            )
        per_batch = Counter(ingest.delivery_batch(p.relative_to(folder)) for p in found.paths)
        new_batches = [
            b
            for b in sorted(per_batch)
            if not context.instance.has_dynamic_partition(batches.name, b)
        ]
        return dg.SensorResult(
            run_requests=[
                _ingest_request(modality, f"{found.batch_key}:{batch}", n, partition_key=batch)
                for batch, n in sorted(per_batch.items())
            ],
            dynamic_partitions_requests=[batches.build_add_request(new_batches)]
            if new_batches
            else [],
            cursor=found.cursor,
        )

    return _sensor


def _ingest_request(modality: str, run_key: str, files: int, partition_key=None) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key,
        partition_key=partition_key,
        tags={"landing/modality": modality, "landing/new_files": str(files)},
    )


automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_condition_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Evaluates the eager automation conditions of silver, gold and governance assets.",
)

sensors = [
    landing_sensor("clinical", dg.AssetKey(list(clinical.FHIR_RESOURCES.asset_key))),
    landing_sensor("wearables", dg.AssetKey(list(wearables.WEARABLE_EVENTS.asset_key))),
    landing_sensor(
        "genomics",
        *(dg.AssetKey(list(t.asset_key)) for t in genomics.BRONZE_TABLES),
        batches=DELIVERY_BATCHES,
    ),
    landing_sensor("imaging", dg.AssetKey(list(imaging.DICOM_INSTANCES.asset_key))),
    landing_sensor("notes", dg.AssetKey(list(notes.NOTE_TEXTS.asset_key))),
    automation_sensor,
]
