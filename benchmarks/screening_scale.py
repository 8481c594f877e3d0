"""Trial screening at scale: N patients × the bundled catalog (12 trials, 15 open arms).

Usage: python benchmarks/screening_scale.py [--patients 10000] [--repeats 3]

The patients' facts come from the generator's latent state (a cohort drawn in memory), so this
times the judging of every criterion and the shaping of the rows, not the lakehouse reads that
gather the facts (those are SQL over silver tables, measured by the main job's step times).
The same run times, as a baseline, a bare loop that only builds one dict per criterion row.
Prints rows, best time of `--repeats` isolated runs, rows per second and peak memory.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from measure import best_of, peak_mib  # noqa: E402


def screen(patients: int) -> tuple[float, int, int, float, float]:
    from multimodal_assets.lib.oncology import facts, screening, trials
    from multimodal_assets.lib.synthetic.cohort import draw_cohort

    cohort = draw_cohort(patients, 5)
    catalog = trials.load_catalog()
    known = facts.latent_facts(cohort, list(cohort.mrn))
    started = time.perf_counter()
    rows, arms = screening.screen(catalog, known)
    elapsed = time.perf_counter() - started
    started = time.perf_counter()
    baseline = [
        {"key": key, "trial": t.trial_id, "arm": a.arm_id, "criterion": c.criterion_id}
        for key in known
        for t in catalog
        for a in t.arms
        for c in a.criteria
    ]
    floor = time.perf_counter() - started
    assert len(baseline) == len(rows)
    return elapsed, len(rows), len(arms), floor, peak_mib()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    seconds, rows, arms, floor, peak = best_of(args.repeats, screen, args.patients)
    print(f"{args.patients:,} patients × 12 trials: {rows:,} criterion rows, {arms:,} arm rows")
    print(
        f"screening: {seconds:.2f} s ({rows / seconds:,.0f} criterion rows/s); baseline loop "
        f"that only builds the rows: {floor:.2f} s (ratio {seconds / floor:.1f})"
    )
    print(f"peak memory (cohort, facts and rows in one process): {peak:.0f} MiB")


if __name__ == "__main__":
    main()
