"""Gateway tokens (for the service's administrator): `mma token create --user U [--days 30]`,
`mma token list`, `mma token revoke TOKEN_ID`. A created token is printed once; only its salted
hash is kept."""

import argparse
import sys

from multimodal_assets.lib.governance.policy import load_policy
from multimodal_assets.lib.governance.tokens import DEFAULT_DAYS, TokenStore
from multimodal_assets.lib.platform import config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="issue a token for a user of the policy")
    create.add_argument("--user", required=True)
    create.add_argument("--days", type=int, default=DEFAULT_DAYS)
    commands.add_parser("list", help="tokens issued: id, user, dates (never the token)")
    revoke = commands.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id")
    args = parser.parse_args(argv)
    store = TokenStore(config.service_dir() / "tokens.json")
    if args.command == "create":
        if args.user not in load_policy().users:
            print(f"{args.user!r} is not a user of the access policy", file=sys.stderr)
            return 2
        print(store.create(args.user, args.days))
        print(
            f"(shown once; valid {args.days} days. The user keeps it in MM_TOKEN or in a file "
            "with mode 0600: ~/.config/multimodal_assets/token)",
            file=sys.stderr,
        )
    elif args.command == "list":
        for record in store.list():
            state = f"revoked {record.revoked_at}" if record.revoked_at else "active"
            print(
                f"{record.token_id}  {record.user:<10} created {record.created_at}  "
                f"expires {record.expires_at}  {state}"
            )
    elif not store.revoke(args.token_id):
        print(f"no token {args.token_id}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
