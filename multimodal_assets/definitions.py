"""The multimodal_assets code location: every definition in `multimodal_assets/defs/`, found by
Dagster's defs-folder loader (the `[tool.dg]` project in pyproject.toml)."""

from pathlib import Path

import dagster as dg

defs = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
