"""Governed query CLI: `mma query --role R "SELECT …"` through the gateway service with your
token (MM_TOKEN or the token file), or `--in-process --user U` without it (not a boundary)."""

import argparse
import sys
from pathlib import Path

from multimodal_assets.cli.access import add_access_arguments, gateway_client
from multimodal_assets.lib.governance.policy import Denied
from multimodal_assets.lib.platform import config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sql")
    add_access_arguments(parser)
    parser.add_argument("--out", type=Path, help="write the result to a .csv or .parquet file")
    parser.add_argument("--max-rows", type=int, default=40, help="rows to print")
    parser.add_argument(
        "--as-of",
        action="append",
        default=[],
        metavar="TABLE=VERSION",
        help="read a table at an earlier Delta version (roles allowed to time-travel); repeatable",
    )
    args = parser.parse_args(argv)
    try:
        as_of = {}
        for pin in args.as_of:
            pinned, _, version = pin.partition("=")
            if not version.isdigit():
                raise Denied(f"--as-of wants TABLE=VERSION, got {pin!r}")
            as_of[pinned.lower()] = int(version)
        client = gateway_client(args)
        if client is not None:
            table = client.query(args.sql, args.role, as_of)
        else:
            from multimodal_assets.lib.governance.gateway import run_query

            table = run_query(
                args.sql,
                user=args.user,
                role=args.role,
                as_of=as_of or None,
                root=config.lakehouse_root(),
            ).table
    except Denied as denied:
        print(f"denied: {denied.reason}", file=sys.stderr)
        return 2
    if args.out:
        if args.out.suffix == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, args.out)
        else:
            import pyarrow.csv as pcsv

            pcsv.write_csv(table, args.out)
        print(f"{table.num_rows} rows written to {args.out}")
    else:
        print(table.to_pandas().to_string(max_rows=args.max_rows))
        print(f"({table.num_rows} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
