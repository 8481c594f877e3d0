"""The whole graph at growing cohorts: wall time and peak memory per stage, files and rows.

Usage: python benchmarks/scale.py --patients 1000 10000 [--workdir DIR] [--keep]

For each cohort size, in a fresh data folder:
  1. generate   `mma generate` (the synthetic cohort into landing), in its own process
  2. main job   `mma run` on that landing, in its own process

Memory is the resident set of the whole process tree (the main job and the worker processes it
forks for pixels and de-identification), sampled every 0.2 s; the main job runs its steps one at
a time, so each sample belongs to the step that was running (from the run's step statistics in
the Dagster instance). Printed per size: every step over 2 % of the job with its wall time,
peak memory and rows; the totals; and, between consecutive sizes, the cost growth
time(bigger)/time(smaller) against the size ratio (goal: no step grows faster than the cohort).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

SAMPLE_SECONDS = 0.2


def _tree_rss(process) -> int:
    """Resident bytes of a process and all its descendants (0 for those already gone)."""
    import psutil

    total = 0
    for member in (process, *process.children(recursive=True)):
        try:
            total += member.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_sampled(command: list[str], env: dict) -> tuple[float, list[tuple[float, int]], int]:
    """Run `command`; (wall seconds, [(unix time, tree RSS bytes)], exit code)."""
    import psutil

    samples: list[tuple[float, int]] = []
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    watched = psutil.Process(child.pid)
    done = threading.Event()

    def sample():
        while not done.wait(SAMPLE_SECONDS):
            samples.append((time.time(), _tree_rss(watched)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = child.stdout.read().decode(errors="replace")
    code = child.wait()
    done.set()
    sampler.join()
    if code != 0:
        print(output[-3000:], file=sys.stderr)
    return time.perf_counter() - started, samples, code


def _step_table(dagster_home: Path, samples: list[tuple[float, int]]) -> list[dict]:
    """Per step of the runs in the instance: wall seconds, peak tree RSS and rows written."""
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    import dagster as dg

    steps = []
    with dg.DagsterInstance.get() as instance:
        for run in instance.get_runs():
            rows_by_step: dict[str, int] = {}
            for record in instance.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
            ).records:
                event = record.event_log_entry.dagster_event
                count = event.step_materialization_data.materialization.metadata.get(
                    "dagster/row_count"
                )
                if count is not None and count.value is not None:
                    # A partitioned bronze asset reports the whole table once per delivery.
                    rows_by_step[event.step_key] = max(
                        rows_by_step.get(event.step_key, 0), int(count.value)
                    )
            for stat in instance.get_run_step_stats(run.run_id):
                if stat.start_time is None or stat.end_time is None:
                    continue
                during = [rss for t, rss in samples if stat.start_time <= t <= stat.end_time]
                steps.append(
                    {
                        "step": stat.step_key,
                        "seconds": stat.end_time - stat.start_time,
                        "peak_mib": max(during, default=0) / 2**20,
                        "rows": rows_by_step.get(stat.step_key),
                        "status": stat.status.value if stat.status else "?",
                    }
                )
    return steps


def _files_and_bytes(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def measure(patients: int, workdir: Path, reuse_landing: bool) -> dict:
    data = workdir / f"data_{patients}"
    env = {**os.environ, "MM_DATA_DIR": str(data), "DAGSTER_HOME": str(data / "dagster_home")}
    mma = str(Path(sys.executable).with_name("mma"))
    if reuse_landing and (data / "landing").is_dir() and (data / "truth").is_dir():
        # A kept cohort: everything the main job wrote goes, landing and truth stay.
        for built in data.iterdir():
            if built.name not in ("landing", "truth"):
                shutil.rmtree(built) if built.is_dir() else built.unlink()
        generate_seconds, generate_samples = float("nan"), []
    else:
        shutil.rmtree(data, ignore_errors=True)
        generate_seconds, generate_samples, code = run_sampled(
            [mma, "generate", "--patients", str(patients), "--out", str(data / "landing")], env
        )
        if code != 0:
            raise SystemExit(f"generation of {patients} patients failed (exit {code})")
    files, landed_bytes = _files_and_bytes(data / "landing")
    job_seconds, job_samples, code = run_sampled([mma, "run"], env)
    steps = _step_table(data / "dagster_home", job_samples)
    return {
        "patients": patients,
        "generate_seconds": generate_seconds,
        "generate_peak_mib": max((r for _, r in generate_samples), default=0) / 2**20,
        "files": files,
        "landed_mib": landed_bytes / 2**20,
        "job_seconds": job_seconds,
        "job_exit": code,
        "job_peak_mib": max((r for _, r in job_samples), default=0) / 2**20,
        "steps": steps,
    }


def report(result: dict) -> None:
    print(
        f"\n== {result['patients']:,} patients: generate {result['generate_seconds']:.0f} s "
        f"(peak {result['generate_peak_mib']:,.0f} MiB), {result['files']:,} files, "
        f"{result['landed_mib']:,.0f} MiB landed; main job {result['job_seconds']:.0f} s "
        f"(peak {result['job_peak_mib']:,.0f} MiB, exit {result['job_exit']})"
    )
    total = sum(s["seconds"] for s in result["steps"]) or 1
    print(f"{'step':58} {'seconds':>8} {'peak MiB':>9} {'rows':>12}")
    for step in sorted(result["steps"], key=lambda s: -s["seconds"]):
        if step["seconds"] / total < 0.02 and step["peak_mib"] < result["job_peak_mib"] * 0.8:
            continue
        rows = f"{step['rows']:,}" if step["rows"] is not None else ""
        print(f"{step['step'][:58]:58} {step['seconds']:8.1f} {step['peak_mib']:9,.0f} {rows:>12}")


def growth(smaller: dict, bigger: dict) -> None:
    ratio = bigger["patients"] / smaller["patients"]
    print(
        f"\n== growth {smaller['patients']:,} → {bigger['patients']:,} patients ({ratio:.0f}×): "
        f"generate {bigger['generate_seconds'] / smaller['generate_seconds']:.1f}×, "
        f"main job {bigger['job_seconds'] / smaller['job_seconds']:.1f}×, "
        f"peak memory {bigger['job_peak_mib'] / max(smaller['job_peak_mib'], 1):.1f}×"
    )
    before = {s["step"]: s["seconds"] for s in smaller["steps"]}
    grown = [
        (s["seconds"] / before[s["step"]], s["step"], s["seconds"])
        for s in bigger["steps"]
        if before.get(s["step"], 0) > 0.5
    ]
    for factor, step, seconds in sorted(grown, reverse=True)[:8]:
        flag = "  <- grows faster than the cohort" if factor > ratio * 1.2 else ""
        print(f"  {step[:58]:58} {factor:6.1f}× ({seconds:.0f} s){flag}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mma_scale"))
    parser.add_argument("--keep", action="store_true", help="keep each size's data folder")
    parser.add_argument(
        "--reuse-landing",
        action="store_true",
        help="run the main job on a kept folder's landing instead of generating it again",
    )
    args = parser.parse_args()
    results = []
    for patients in args.patients:
        result = measure(patients, args.workdir, args.reuse_landing)
        report(result)
        if results:
            growth(results[-1], result)
        results.append(result)
        if not args.keep:
            shutil.rmtree(args.workdir / f"data_{patients}", ignore_errors=True)
    (args.workdir / "scale.json").write_text(json.dumps(results, indent=1))
    print(f"\nfigures in {args.workdir / 'scale.json'}")


if __name__ == "__main__":
    main()
