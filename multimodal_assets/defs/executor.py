"""Where each run's steps execute, chosen by MM_EXECUTOR when the code location loads."""

import dagster as dg

from multimodal_assets.lib.platform import config


def celery_settings() -> dict:
    """The Celery executor's configuration: the broker and result backend, both Redis. Workers
    are started with the same settings (scripts/celery_workers.sh writes them for the workers)."""
    return {"broker": config.celery_broker(), "backend": config.celery_broker()}


@dg.definitions
def executor() -> dg.Definitions:
    """MM_EXECUTOR=celery: every step of a run is a Celery task, executed by whichever worker
    takes it (dagster-celery; each worker imports this code location with the same settings
    and reaches the same lakehouse and Dagster instance). Otherwise Dagster's default: one
    process per step on this machine."""
    if config.executor() != "celery":
        return dg.Definitions()
    from dagster_celery import celery_executor

    return dg.Definitions(executor=celery_executor.configured(celery_settings(), name="celery"))


if __name__ == "__main__":
    # scripts/celery_workers.sh: prepare the instance, write the workers' Celery settings to the
    # file named, and print the instance's folder.
    import os
    import sys
    from pathlib import Path

    import yaml

    from multimodal_assets.instance_setup import prepare

    home = Path(os.environ.get("DAGSTER_HOME") or config.data_dir() / "dagster_home")
    prepare(home)
    Path(sys.argv[1]).write_text(yaml.safe_dump({"execution": {"config": celery_settings()}}))
    print(home)
