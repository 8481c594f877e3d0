"""Tumor-board packet CLI: `mma packet --role R --meeting YYYY-MM-DD --patient RK [--out FILE]`
saves the packet the role may open (identified for the clinicians of the patient's site,
de-identified for researchers of consented patients) to a file only you can read, through the
gateway service with your token, and prints its path; `--in-process --user U` prints the
packet's own path instead. Every request is audited."""

import argparse
import sys
from pathlib import Path

from multimodal_assets.cli.access import add_access_arguments, gateway_client
from multimodal_assets.lib.governance.policy import Denied
from multimodal_assets.lib.oncology.meeting import open_packet
from multimodal_assets.lib.platform import config
from multimodal_assets.lib.platform.permissions import write_private_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_access_arguments(parser)
    parser.add_argument("--meeting", required=True, help="meeting date, YYYY-MM-DD")
    parser.add_argument("--patient", required=True, help="research key")
    parser.add_argument("--out", type=Path, help="where to save it (default ./<patient>.html)")
    args = parser.parse_args(argv)
    try:
        client = gateway_client(args)
        if client is None:
            path = open_packet(
                user=args.user,
                role=args.role,
                meeting=args.meeting,
                research_key=args.patient,
                data_dir=config.data_dir(),
                root=config.lakehouse_root(),
            )
        else:
            html = client.tumor_board_packet(args.role, args.meeting, args.patient)
            path = args.out or Path(f"{args.patient}.html")
            write_private_file(path, html.encode())
    except Denied as denied:
        print(f"denied: {denied.reason}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
