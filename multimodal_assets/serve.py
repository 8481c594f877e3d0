"""The gateway service: `python -m multimodal_assets.serve [--location grpc://127.0.0.1:8815]`.

One long-lived process serves governed requests over Arrow Flight to authenticated clients (the
`mma query | similar | lineage` command lines, or any Flight client with a token); tokens are
issued with `mma token create --user U`. Stop it with Ctrl-C or SIGTERM.
"""

import argparse

from multimodal_assets.lib.platform import config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--location",
        default=config.gateway_location(),
        help="grpc://host:port to listen on (port 0: any free port, printed at start)",
    )
    args = parser.parse_args(argv)
    from multimodal_assets.lib.governance.service import serve
    from multimodal_assets.lib.platform.permissions import make_private, private_umask

    # The service's files (tokens, audit rows, leases) are its account's alone.
    private_umask()
    service = config.service_dir()
    service.mkdir(parents=True, exist_ok=True)
    make_private(service)
    serve(args.location, config.lakehouse_root(), service)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
