"""The oncology figures on a cohort of N patients run through the real pipeline: screening
accuracy against the latent truth, latent-neighbour recall of the similarity search, and the
time and memory of screening itself on the resulting lakehouse.

Usage: python benchmarks/oncology_evaluation.py [--patients 5000] [--workdir DIR]

Runs `mma run` into a fresh MM_DATA_DIR (generation included), then reads the metadata of
`oncology/screening_evaluation` and `oncology/similarity_evaluation` from the run's Dagster
instance, and times, in a fresh process, gathering the facts from the lakehouse and judging
every criterion (the body of the `gold/trial_screening` asset).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from measure import isolated, peak_mib  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def screen_lakehouse(lakehouse: str) -> tuple[float, float, int, float]:
    from multimodal_assets.lib.oncology import facts, screening, trials
    from multimodal_assets.lib.platform import warehouse

    started = time.perf_counter()
    with warehouse.connect(lakehouse, read_only=True) as conn:
        known = facts.lakehouse_facts(conn)
    gathered = time.perf_counter() - started
    rows, _ = screening.screen(trials.load_catalog(), known)
    return gathered, time.perf_counter() - started - gathered, len(rows), peak_mib()


def metadata(dagster_home: Path, key: str) -> dict:
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    with dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(key.split("/")))
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="oncology-"))
    env = {**os.environ, "MM_DATA_DIR": str(work), "DAGSTER_HOME": str(work / "dagster_home")}
    started = time.perf_counter()
    subprocess.run(
        [str(ROOT / ".venv/bin/mma"), "run", "--patients", str(args.patients)],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    print(f"main job, {args.patients:,} patients: {time.perf_counter() - started:.0f} s")
    for key in ("oncology/screening_evaluation", "oncology/similarity_evaluation"):
        print(f"== {key}")
        for name, value in metadata(work / "dagster_home", key).items():
            print(f"  {name}: {value}")
    gathered, judged, rows, peak = isolated(screen_lakehouse, str(work / "lakehouse"))
    print(
        f"screening on the lakehouse: facts {gathered:.1f} s, judging {judged:.1f} s, "
        f"{rows:,} criterion rows, peak {peak:.0f} MiB"
    )


if __name__ == "__main__":
    main()
