"""Governed query CLI: `mma query --role R --user U "SELECT …"`."""

import argparse
import sys
from pathlib import Path

from multimodal_assets.lib.governance.gateway import run_query
from multimodal_assets.lib.governance.policy import Denied
from multimodal_assets.lib.platform import config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sql")
    parser.add_argument("--role", required=True)
    parser.add_argument("--user", required=True)
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
            table, _, version = pin.partition("=")
            if not version.isdigit():
                raise Denied(f"--as-of wants TABLE=VERSION, got {pin!r}")
            as_of[table.lower()] = int(version)
        result = run_query(
            args.sql,
            user=args.user,
            role=args.role,
            as_of=as_of or None,
            root=config.lakehouse_root(),
        )
    except Denied as denied:
        print(f"denied: {denied.reason}", file=sys.stderr)
        return 2
    if args.out:
        if args.out.suffix == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(result.table, args.out)
        else:
            import pyarrow.csv as pcsv

            pcsv.write_csv(result.table, args.out)
        print(f"{result.table.num_rows} rows written to {args.out}")
    else:
        print(result.table.to_pandas().to_string(max_rows=args.max_rows))
        print(f"({result.table.num_rows} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
