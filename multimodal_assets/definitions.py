"""The multimodal_assets code location: every definition in `multimodal_assets/defs/`, found by
Dagster's defs-folder loader (the `[tool.dg]` project in pyproject.toml)."""

from pathlib import Path

import dagster as dg

defs = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)


def global_asset_job():
    """The job over every asset, as processes other than the caller's (an executor's workers)
    rebuild it: from this module's `defs`."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    repository = ReconstructableRepository.for_module(__name__, "defs", str(Path.cwd()))
    return repository.get_reconstructable_job(defs.resolve_implicit_global_asset_job_def().name)
