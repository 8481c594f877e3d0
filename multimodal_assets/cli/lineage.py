"""Lineage CLI (through the gateway service with your token, or --in-process --user U).

mma lineage --role data_engineer value gold.clinical_features.hemoglobin_g_dl rk_…
mma lineage --role data_engineer file <sha256>
"""

import argparse
import json
import sys

from multimodal_assets.cli.access import add_access_arguments, gateway_client
from multimodal_assets.lib.governance.lineage import ValueLineage, governed_lineage
from multimodal_assets.lib.governance.policy import Denied
from multimodal_assets.lib.platform import config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_access_arguments(parser)
    parser.add_argument("kind", choices=["value", "file"])
    parser.add_argument("target", help="table.column (value) or a file's sha256 (file)")
    parser.add_argument("research_key", nargs="?", help="patient, for `value`")
    args = parser.parse_args(argv)
    try:
        client = gateway_client(args)
        if client is not None:
            result = client.lineage(args.role, args.kind, args.target, args.research_key)
            result = ValueLineage(**result) if args.kind == "value" else result
        else:
            result = governed_lineage(
                args.kind,
                args.target,
                user=args.user,
                role=args.role,
                research_key=args.research_key,
                root=config.lakehouse_root(),
            )
    except Denied as denied:
        print(f"denied: {denied.reason}", file=sys.stderr)
        return 2
    if args.kind == "value":
        print(
            json.dumps(
                {
                    "value": f"{result.table}.{result.column}",
                    "derives_from": [f"{t}.{c}" for t, c in result.derives_from],
                    "source_files_sha256": result.files,
                    "source_records": [
                        {"table": t, "sha256": s, "locator": loc} for t, s, loc in result.records
                    ],
                },
                indent=2,
            )
        )
    else:
        print(json.dumps({"dependent_rows": result}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
