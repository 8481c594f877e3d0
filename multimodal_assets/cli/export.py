"""Serving-file CLI: `mma export --role R [--out FILE]` saves your role's serving file (a DuckDB
file of every table the role may read, already filtered and masked) from the gateway service,
with your token, to a file only you can read, and prints its path and size. Audited as an
export."""

import argparse
import sys
from pathlib import Path

from multimodal_assets.lib.governance.client import GatewayClient, client_token
from multimodal_assets.lib.governance.policy import Denied
from multimodal_assets.lib.platform import config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--role", required=True, help="the role to act in (one your user holds)")
    parser.add_argument("--out", type=Path, help="where to save it (default ./<role>.duckdb)")
    args = parser.parse_args(argv)
    out = args.out or Path(f"{args.role}.duckdb")
    try:
        client = GatewayClient(config.gateway_location(), client_token())
        size = client.serving_file(args.role, out)
    except Denied as denied:
        print(f"denied: {denied.reason}", file=sys.stderr)
        return 2
    print(f"{out}  ({size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
