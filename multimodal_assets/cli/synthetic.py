"""Command line: `mma generate --patients N --seed S --out DIR`."""

import argparse
import time
from pathlib import Path

from multimodal_assets.lib.synthetic.writer import RENDERED_MODALITIES, generate

DEFAULT_PATIENTS = 300
DEFAULT_SEED = 20261128


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=DEFAULT_PATIENTS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("data/landing"),
        help="landing folder; ground truth goes to OUT/../truth",
    )
    parser.add_argument(
        "--modalities",
        default=",".join(RENDERED_MODALITIES),
        help="comma-separated modalities to render (clinical is always rendered); wearables "
        "write ~4,000 events per wearing patient, ~118 million at 100,000 patients",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    modalities = tuple({"clinical", *args.modalities.split(",")} & set(RENDERED_MODALITIES))
    summary = generate(args.patients, args.seed, args.out, modalities=modalities)
    print(
        f"generated {summary.patients} patients, {summary.files} files into {args.out} "
        f"(truth in {summary.truth_dir}) in {time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
