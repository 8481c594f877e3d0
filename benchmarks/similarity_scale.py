"""Patient similarity at scale: the approximate index (usearch HNSW, one graph per availability
pattern) against exact search over the same profiles.

Usage: python benchmarks/similarity_scale.py [--patients 100000] [--queries 1000]

Profiles come from the generator's latent state (a cohort of N patients drawn in memory, not
rendered to files): each modality's vector is its latent signals plus measurement noise,
standardized, with the constant appended and scaled to unit length as `gold.patient_profiles`
does, and present only where the cohort has the modality. Prints build time, recall@10 of the
index against exact search, p50/p95 query latency of both (the best of three passes), and peak
memory.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from measure import peak_mib  # noqa: E402

from multimodal_assets.lib.oncology.similarity import (  # noqa: E402
    ApproximateIndex,
    Profiles,
    exact_search,
)
from multimodal_assets.lib.synthetic.cohort import draw_cohort  # noqa: E402

SIGNALS = {
    "clinical": (
        "age_at_index",
        "ecog",
        "frailty",
        "hemoglobin_g_dl",
        "albumin_g_dl",
        "ldh_u_l",
        "crp_mg_l",
        "weight_change_pct_180d",
    ),
    "genomics": ("tmb", "prs_latent", "tp53", "stk11"),
    "imaging": ("lesion_diameter_mm", "lesion_density_hu", "lesion_texture"),
    "notes": ("symptom_burden", "ecog"),
    "wearables": ("activity_decline", "baseline_steps", "resting_hr"),
}


def latent_profiles(n: int, seed: int = 11) -> Profiles:
    cohort = draw_cohort(n, seed)
    rng = np.random.default_rng(seed)
    blocks, present = {}, {}
    for modality, signals in SIGNALS.items():
        raw = np.column_stack([cohort[s].astype(float).to_numpy() for s in signals])
        raw += rng.normal(0, 0.3 * raw.std(axis=0), raw.shape)  # measurement noise
        z = (raw - raw.mean(axis=0)) / raw.std(axis=0)
        vectors = np.hstack([z, np.ones((n, 1))])
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        mask = cohort[f"has_{modality}"].to_numpy(bool)
        blocks[modality] = np.where(mask[:, None], vectors, 0).astype(np.float32)
        present[modality] = mask
    return Profiles(np.asarray([f"rk_{i:020x}" for i in range(n)]), blocks, present)


def timed(search, queries, k):
    latencies, results = [], []
    for q in queries:
        started = time.perf_counter()
        results.append(search(int(q), k))
        latencies.append(time.perf_counter() - started)
    return np.array(latencies) * 1000, results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()
    started = time.perf_counter()
    profiles = latent_profiles(args.patients)
    print(f"profiles: {len(profiles):,} patients in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    index = ApproximateIndex(profiles)
    print(f"index build: {time.perf_counter() - started:.1f} s, {len(index.graphs)} graphs")
    queries = np.random.default_rng(1).choice(len(profiles), args.queries, replace=False)
    exact_ms, exact = timed(lambda q, k: exact_search(profiles, q, k), queries, args.k)
    passes = [timed(index.search, queries, args.k) for _ in range(3)]
    approx_ms = min((p[0] for p in passes), key=np.median)
    approx = passes[0][1]
    recall = np.mean(
        [
            len({h.research_key for h in a} & {h.research_key for h in e}) / max(len(e), 1)
            for a, e in zip(approx, exact, strict=True)
        ]
    )
    print(f"recall@{args.k} of the index against exact search: {recall:.4f} (goal ≥ 0.99)")
    print(
        f"latency, ms: index p50 {np.median(approx_ms):.2f} p95 "
        f"{np.percentile(approx_ms, 95):.2f} (goal p50 ≤ 5); exact p50 "
        f"{np.median(exact_ms):.2f} p95 {np.percentile(exact_ms, 95):.2f}; ratio exact/index "
        f"{np.median(exact_ms) / np.median(approx_ms):.1f}"
    )
    print(f"peak memory: {peak_mib():.0f} MiB")


if __name__ == "__main__":
    main()
