"""Delivery partitions: every modality's bronze is partitioned by delivery batch, the top folder
under landing/<modality> (the generator and most senders use the Monday of the delivery week).

One partitions definition for all five modalities, not one per modality: a delivery week is one
key across the graph (the UI shows what each delivery brought to each bronze table), and the
lineage page's "Materialize all" can launch every partition of every bronze table in one
backfill (assets with different partitions definitions cannot share one). A modality that has no
folder for a delivery simply ingests nothing for it.
"""

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from multimodal_assets.lib.platform import config, ingest

DELIVERIES = dg.DynamicPartitionsDefinition(name="delivery")
BRONZE_MODALITIES = ("clinical", "genomics", "imaging", "notes", "wearables")


def landed_deliveries() -> list[str]:
    """Every delivery batch in landing, of any modality (and the batch of files put directly in
    landing/<modality>, so there is always one), oldest first."""
    landed = {
        batch
        for modality in BRONZE_MODALITIES
        for batch in ingest.landed_batches(config.landing_dir(), modality)
    }
    return [ingest.UNBATCHED, *sorted(landed - {ingest.UNBATCHED})]


def register_delivery_batches(instance: dg.DagsterInstance) -> dict[str, str]:
    """Adds a partition for each landed delivery the instance does not know, and returns the
    tags of one run over every delivery partition (in the order they were added)."""
    known = set(instance.get_dynamic_partitions(DELIVERIES.name))
    new = [batch for batch in landed_deliveries() if batch not in known]
    if new:
        instance.add_dynamic_partitions(DELIVERIES.name, new)
    deliveries = instance.get_dynamic_partitions(DELIVERIES.name)
    return {
        ASSET_PARTITION_RANGE_START_TAG: deliveries[0],
        ASSET_PARTITION_RANGE_END_TAG: deliveries[-1],
    }
