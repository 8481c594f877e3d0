"""The main job (the whole graph, tumor-board packets included) over one generated cohort: in
this process (the default executor) against on 1 and 2 Celery workers (MM_EXECUTOR=celery,
scripts/celery_workers.sh with its own Redis), each from the same landed files into a fresh
lakehouse; the best of `--repeats` runs each.

Usage: python benchmarks/celery_executor.py [--patients 300] [--repeats 1]

On this 2-core machine the workers share the cores the in-process run uses; the speed-up of 2
workers over 1 is what running independent steps (one modality's while another's) at once buys,
and the gain over in-process the room left for more machines.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main_job(landed: Path, workers: int) -> float:
    """Seconds of `mma run` over a copy of `landed` (0 workers: in process)."""
    from multimodal_assets.lib.platform.celery_workers import celery_workers

    data = Path(tempfile.mkdtemp(prefix=f"celery-{workers}-"))
    for folder in ("landing", "truth"):
        shutil.copytree(landed / folder, data / folder)
    settings = {**os.environ, "MM_DATA_DIR": str(data), "DAGSTER_HOME": str(data / "dagster_home")}

    def run(env) -> float:
        started = time.perf_counter()
        subprocess.run(
            [Path(sys.executable).parent / "mma", "run"], env=env, check=True, capture_output=True
        )
        return time.perf_counter() - started

    try:
        if workers == 0:
            return run(settings)
        with celery_workers(settings, workers) as env:
            return run(env)
    finally:
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from multimodal_assets.lib.synthetic.writer import generate

    landed = Path(tempfile.mkdtemp(prefix="celery-cohort-"))
    generate(args.patients, 7, landed / "landing", progress=False)
    seconds = {}
    for label, workers in (("in-process", 0), ("1 Celery worker", 1), ("2 Celery workers", 2)):
        seconds[label] = min(main_job(landed, workers) for _ in range(args.repeats))
        print(f"{label}: {seconds[label]:.1f} s", flush=True)
    print(
        f"speed-up of 2 workers over 1: {seconds['1 Celery worker'] / seconds['2 Celery workers']:.2f}; "
        f"2 workers against in-process: {seconds['in-process'] / seconds['2 Celery workers']:.2f}"
    )
    shutil.rmtree(landed, ignore_errors=True)


if __name__ == "__main__":
    main()
