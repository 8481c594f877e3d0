"""Tumor-board packet CLI: `mma packet --user U --role R --meeting YYYY-MM-DD --patient RK`
prints the path of the packet the role may open (identified for the clinicians of the patient's
site, de-identified for researchers of consented patients) and audits the request."""

import argparse
import sys

from multimodal_assets.lib.governance.policy import Denied
from multimodal_assets.lib.oncology.meeting import open_packet
from multimodal_assets.lib.platform import config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--meeting", required=True, help="meeting date, YYYY-MM-DD")
    parser.add_argument("--patient", required=True, help="research key")
    parser.add_argument("--role", required=True)
    parser.add_argument("--user", required=True)
    args = parser.parse_args(argv)
    try:
        path = open_packet(
            user=args.user,
            role=args.role,
            meeting=args.meeting,
            research_key=args.patient,
            data_dir=config.data_dir(),
            root=config.lakehouse_root(),
        )
    except Denied as denied:
        print(f"denied: {denied.reason}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
