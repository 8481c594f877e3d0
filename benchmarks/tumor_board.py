"""Tumor-board packets of a 20-patient meeting from a materialized lakehouse.

Usage: MM_DATA_DIR=data python benchmarks/tumor_board.py [--patients 20] [--repeats 3]

Lists the first N cohort patients of `truth/patients.parquet` (stage III/IV first) for a meeting
dated after every index date, builds the packets into a scratch copy of the reports folder and
prints the best time of `--repeats` isolated runs, seconds per packet, packet sizes and peak
memory. Baseline in the same run: rendering one packet's HTML from data already gathered.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from measure import best_of, peak_mib  # noqa: E402


def build(patients: int) -> tuple[float, dict, float, float]:
    import pandas as pd

    from multimodal_assets.lib.governance.pseudonym import pseudonym_key
    from multimodal_assets.lib.oncology.board_list import read_board_list
    from multimodal_assets.lib.oncology.board_sections import gather
    from multimodal_assets.lib.oncology.meeting import build_meeting, locator_salt
    from multimodal_assets.lib.oncology.packet import render
    from multimodal_assets.lib.oncology.similarity import Profiles
    from multimodal_assets.lib.platform import config, warehouse
    from multimodal_assets.lib.synthetic.writer import write_board_list

    cohort = pd.read_parquet(config.truth_dir() / "patients.parquet")
    scratch = Path(tempfile.mkdtemp(prefix="board-"))
    board = read_board_list(write_board_list(cohort, scratch / "lists", patients))
    key = pseudonym_key()
    with warehouse.connect(config.lakehouse_root(), read_only=True) as conn:
        started = time.perf_counter()
        summary = build_meeting(conn, board, scratch / "reports", config.landing_dir(), key)
        elapsed = time.perf_counter() - started
        (first, *_), profiles = board.entries, Profiles.read(conn)
        rk = conn.execute(
            "SELECT research_key FROM silver.patients WHERE mrn = ?", [first.patient]
        ).fetchall()[0][0]
        packet = gather(conn, rk, board.meeting, config.landing_dir(), profiles)
    started = time.perf_counter()
    render(packet, identified=True, shift_days=0, salt=locator_salt(key))
    return elapsed, summary, time.perf_counter() - started, peak_mib()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    seconds, summary, render_only, peak = best_of(args.repeats, build, args.patients)
    packets = summary["packets_identified"] + summary["packets_deidentified"]
    print(
        f"meeting of {summary['patients_listed']} patients: {packets} packets "
        f"({summary['packets_identified']} identified, {summary['packets_deidentified']} "
        f"de-identified) in {seconds:.1f} s, {seconds / summary['patients_listed']:.2f} s a "
        f"patient; rendering one packet's HTML alone {render_only * 1000:.1f} ms"
    )
    print(
        f"packet size: mean {summary['packet_kib_mean']} KiB, max "
        f"{summary['packet_kib_max']} KiB; peak memory {peak:.0f} MiB"
    )


if __name__ == "__main__":
    main()
