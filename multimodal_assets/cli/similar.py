"""Similar prior cases CLI: `mma similar --user U --role R
(--series UID | --patient RESEARCH_KEY) [-k 10]` — governed and audited like any query."""

import argparse
import sys

from multimodal_assets.lib.governance.policy import Denied
from multimodal_assets.lib.ml.similarity import similar_cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    probe = parser.add_mutually_exclusive_group(required=True)
    probe.add_argument("--series", help="de-identified series UID to search from")
    probe.add_argument("--patient", help="research key: search from the patient's latest series")
    parser.add_argument("-k", type=int, default=10, help="cases to return")
    parser.add_argument("--role", required=True)
    parser.add_argument("--user", required=True)
    args = parser.parse_args(argv)
    try:
        found = similar_cases(
            user=args.user,
            role=args.role,
            series_uid=args.series,
            research_key=args.patient,
            k=args.k,
        )
    except Denied as denied:
        print(f"denied: {denied.reason}", file=sys.stderr)
        return 2
    print(found.to_pandas().to_string())
    print(f"({found.num_rows} similar series)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
