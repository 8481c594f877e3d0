"""The multimodal_assets code location."""

import dagster as dg

from multimodal_assets.defs import (
    automation,
    clinical,
    fusion,
    genomics,
    governance,
    imaging,
    models,
    notes,
    wearables,
)
from multimodal_assets.defs.resources import default_resources

defs = dg.Definitions(
    assets=[
        *clinical.assets,
        *wearables.assets,
        *genomics.assets,
        *imaging.assets,
        *notes.assets,
        *fusion.assets,
        *models.assets,
        *governance.assets,
    ],
    sensors=[*automation.sensors, *models.sensors],
    schedules=[*governance.schedules, *models.schedules],
    resources=default_resources(),
)
