"""Sensors: landing folders trigger bronze ingest; automation conditions drive everything after."""

from collections import Counter

import dagster as dg

from multimodal_assets.lib import clinical, genomics, imaging, notes, wearables
from multimodal_assets.lib.platform import config, ingest, landing_watch

from .deliveries import DELIVERIES


def _keys(*tables) -> list[dg.AssetKey]:
    return [dg.AssetKey(list(t.asset_key)) for t in tables]


# Every bronze asset: a new delivery partition is ingested by all of them at once (most find no
# files of theirs in it), so that no bronze table is left with a delivery it never ran for —
# which would hold back the eager automation of its silver tables for good.
ALL_BRONZE = _keys(
    clinical.FHIR_RESOURCES,
    wearables.WEARABLE_EVENTS,
    *genomics.BRONZE_TABLES,
    imaging.DICOM_INSTANCES,
    notes.NOTE_TEXTS,
)


def landing_sensor(modality: str, *targets: dg.AssetKey) -> dg.SensorDefinition:
    """A sensor that requests an ingest run for the new files in landing/<modality>, one per
    delivery batch they belong to: of this modality's bronze for a known delivery, of every
    bronze table for a new one, which it adds as a delivery partition."""

    @dg.sensor(
        name=f"{modality}_landing_sensor",
        description=f"New files in landing/{modality} that the registry does not hold start "
        "an ingest run (run key = hash of their names, sizes and times); a new delivery is "
        "ingested by every bronze table.",
        asset_selection=ALL_BRONZE,
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
        per_batch = Counter(ingest.delivery_batch(p.relative_to(folder)) for p in found.paths)
        new_batches = [
            b
            for b in sorted(per_batch)
            if not context.instance.has_dynamic_partition(DELIVERIES.name, b)
        ]
        return dg.SensorResult(
            run_requests=[
                _ingest_request(
                    modality,
                    f"{found.batch_key}:{batch}",
                    n,
                    batch,
                    ALL_BRONZE if batch in new_batches else list(targets),
                )
                for batch, n in sorted(per_batch.items())
            ],
            dynamic_partitions_requests=[DELIVERIES.build_add_request(new_batches)]
            if new_batches
            else [],
            cursor=found.cursor,
        )

    return _sensor


def _ingest_request(
    modality: str, run_key: str, files: int, partition_key: str, assets: list[dg.AssetKey]
) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key,
        partition_key=partition_key,
        asset_selection=assets,
        tags={"landing/modality": modality, "landing/new_files": str(files)},
    )


automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_condition_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Evaluates the eager automation conditions of silver, gold and governance assets.",
)

sensors = [
    landing_sensor("clinical", *_keys(clinical.FHIR_RESOURCES)),
    landing_sensor("wearables", *_keys(wearables.WEARABLE_EVENTS)),
    landing_sensor("genomics", *_keys(*genomics.BRONZE_TABLES)),
    landing_sensor("imaging", *_keys(imaging.DICOM_INSTANCES)),
    landing_sensor("notes", *_keys(notes.NOTE_TEXTS)),
    automation_sensor,
]
