"""The main job: generate the default cohort if landing is empty, materialize every asset into
the Delta Lake lakehouse, and print what was built (`mma run`)."""

import argparse
import logging
import os
import resource
import time
from collections import Counter
from dataclasses import dataclass

from multimodal_assets.cli.synthetic import DEFAULT_PATIENTS, DEFAULT_SEED
from multimodal_assets.lib.platform import config


def _has_landed_files() -> bool:
    landing = config.landing_dir()
    return landing.exists() and any(p.is_file() for p in landing.rglob("*"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=DEFAULT_PATIENTS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--ct-slices", type=int, default=16, help="slices per synthetic CT series (16-64)"
    )
    parser.add_argument(
        "--ct-matrix", type=int, default=128, help="rows and columns of each CT slice"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    # One console handler for warnings: without it, the first library to call logging.warning()
    # installs a catch-all handler and every library's INFO chatter reaches the console.
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    logging.getLogger().addHandler(console)
    data = config.data_dir()
    from multimodal_assets.lib.platform.permissions import make_private, private_umask

    # Landing, truth, the lakehouse and the serving files hold PHI: owner only, new and old.
    private_umask()
    make_private(data)
    # Runs land in a persistent instance so `dagster dev` shows them afterwards.
    os.environ.setdefault("DAGSTER_HOME", str(data / "dagster_home"))
    from pathlib import Path

    from multimodal_assets.instance_setup import prepare

    prepare(Path(os.environ["DAGSTER_HOME"]))

    legacy = config.legacy_warehouse_path()
    if legacy.exists():
        # The first round's single DuckDB file is not read any more; landing is the source of
        # truth, so this run rebuilds every table from it into the lakehouse.
        print(
            f"note: {legacy} is the old single-file warehouse and is no longer used; every table "
            f"is rebuilt from landing into {config.lakehouse_root()}. Delete the old file once "
            "you no longer need it."
        )
    if _has_landed_files():
        print(f"landing already holds files: {config.landing_dir()} (not regenerating)")
    else:
        from multimodal_assets.lib.synthetic.writer import generate

        summary = generate(
            args.patients,
            args.seed,
            config.landing_dir(),
            ct_slices=args.ct_slices,
            ct_matrix=args.ct_matrix,
        )
        print(
            f"generated {summary.patients} synthetic patients, {summary.files} files "
            f"into {config.landing_dir()}"
        )

    import dagster as dg

    from multimodal_assets.definitions import defs
    from multimodal_assets.defs.deliveries import register_delivery_batches

    everything = defs.resolve_implicit_global_asset_job_def().asset_layer.executable_asset_keys

    from multimodal_assets.cli.progress import RunProgress

    with dg.DagsterInstance.get() as instance, RunProgress(instance, len(everything)):
        # Step-level DEBUG events stay in the run's event log (see the UI); the console gets
        # progress, warnings and the summary below. One run covers every delivery.
        result = _runner(instance)(list(everything), tags=register_delivery_batches(instance))
    checks = Counter()
    failed_checks = []
    for event in result.events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            checks["passed" if evaluation.passed else "failed"] += 1
            if not evaluation.passed:
                failed_checks.append(
                    f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
                )
    from multimodal_assets.lib.synthetic.planted import classify_failures, read_planted

    success = result.success
    failures = classify_failures(failed_checks, read_planted(config.truth_dir()))
    _print_summary(success, checks, failures, started)
    # Planted faults found are the demo working; a failed step or a failure nothing planted
    # is a broken pipeline.
    return 0 if success and not failures.unexpected else 1


@dataclass(frozen=True)
class _RunOutcome:
    success: bool
    events: list


def _runner(instance):
    """run(asset keys, tags) → _RunOutcome: every step in this process, or with
    MM_EXECUTOR=celery one run whose steps go to the Celery workers (the executor the code location
    declares), as `dagster dev` would launch it."""
    import dagster as dg

    from multimodal_assets.definitions import defs, global_asset_job

    job = defs.resolve_implicit_global_asset_job_def()
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

    def in_process(selection, tags) -> _RunOutcome:
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config=quiet,
            tags=tags,
            asset_selection=selection,
        )
        return _RunOutcome(result.success, result.all_events)

    def on_executor(selection, tags) -> _RunOutcome:
        with dg.execute_job(
            global_asset_job(),
            instance,
            run_config=quiet,
            tags=tags,
            asset_selection=selection,
        ) as result:
            return _RunOutcome(result.success, list(result.all_events))

    return on_executor if config.executor() == "celery" else in_process


def _print_summary(success: bool, checks: Counter, failures, started: float):
    from multimodal_assets.lib.platform import warehouse

    print()
    print(
        f"run {'succeeded' if success else 'FAILED'}; asset checks: {checks['passed']} passed, "
        f"{checks['failed']} failed: {len(failures.found)} planted faults found, "
        f"{len(failures.unexpected)} unexpected"
    )
    for fault in failures.found:
        print(f"  planted fault found ({fault.modality}): {fault.what}  [{fault.flagged_by}]")
    for fault in failures.unflagged:  # e.g. drift in a cohort too small to be significant
        print(
            f"  planted fault not flagged ({fault.modality}): {fault.what}  "
            f"[{fault.flagged_by} passed]"
        )
    for name in failures.unexpected:
        print(f"  UNEXPECTED failed check: {name}  (see the check's page in the UI)")
    with warehouse.connect(config.lakehouse_root()) as conn:
        print(f"\nlakehouse {config.lakehouse_root()} (Delta Lake tables)")
        for name, version in sorted(conn.versions.items()):
            count = conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
            print(f"  {name:<34} {count:>10,} rows  v{version}")
        statuses = conn.execute(
            "SELECT status, count(*) FROM bronze.files GROUP BY 1 ORDER BY 1"
        ).fetchall()
        print("  landed files: " + ", ".join(f"{n} {s}" for s, n in statuses))
    truth = config.truth_dir()
    if (truth / "patients.parquet").exists():
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        patients = pq.read_table(truth / "patients.parquet", columns=["n_conditions"])
        print(
            f"  generator truth: {patients.num_rows:,} patients, "
            f"{pc.sum(patients.column('n_conditions')).as_py():,} conditions"
        )
        if (truth / "wearable_events.parquet").exists():
            events = pq.read_table(truth / "wearable_events.parquet", columns=["beyond_horizon"])
            late = pc.sum(events.column("beyond_horizon")).as_py() or 0
            print(
                f"  generator truth: {events.num_rows:,} wearable events, "
                f"{events.num_rows - late:,} within the lateness horizon"
            )
    from multimodal_assets.defs.models import registry

    published = registry().current()
    if published:
        report = config.data_dir() / "reports" / "models" / published["version"] / "report.md"
        print(f"\nmodel {published['version']} published; evaluation report: {report}")
    boards = config.data_dir() / "reports" / "tumor_board"
    for meeting in sorted(p.name for p in boards.iterdir()) if boards.exists() else []:
        print(
            f"tumor board {meeting}: {boards / meeting / 'identified' / 'index.html'} "
            "(restricted; open a packet with mma packet)"
        )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nwall time {time.perf_counter() - started:.1f} s, peak memory {peak_mib:.0f} MiB")
    print(
        "open the UI:  DAGSTER_HOME="
        + os.environ["DAGSTER_HOME"]
        + " .venv/bin/dagster dev -w workspace.yaml   (then http://localhost:3000)"
    )
    print(
        "query:        .venv/bin/mma query --in-process --role data_engineer --user carol "
        '"SELECT count(*) FROM gold.clinical_features"   (others: through the gateway service, '
        "see README)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
