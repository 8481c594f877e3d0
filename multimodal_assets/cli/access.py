"""How the governed command lines reach the data: through the gateway service with the caller's
token (the default), or in this process as a named user (`--in-process`, not a boundary)."""

import argparse
import sys

from multimodal_assets.lib.governance.policy import Denied
from multimodal_assets.lib.platform import config


def add_access_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--role", required=True, help="the role to act in (one your user holds)")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="read the lakehouse in this process as --user, without the service (tests, the "
        "data engineer's own scripts): NOT a security boundary — whoever can read the files can "
        "name any user",
    )
    parser.add_argument("--user", help="with --in-process only: the user to act as")


def gateway_client(args):
    """The gateway service's client for the caller's token, or None with --in-process."""
    if args.in_process:
        if not args.user:
            raise Denied("--in-process needs --user")
        print("in-process: not a security boundary (no authentication)", file=sys.stderr)
        return None
    if args.user:
        raise Denied(
            "--user is only for --in-process: the gateway takes your identity from your token"
        )
    from multimodal_assets.lib.governance.client import GatewayClient, client_token

    return GatewayClient(config.gateway_location(), client_token())
