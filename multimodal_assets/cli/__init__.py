"""`mma <command>`: the product's command lines under one command (`mma --help` lists them)."""

from __future__ import annotations

import importlib
import sys

# command → (module in this package, what it does)
COMMANDS = {
    "run": ("run", "generate the default cohort if landing is empty, materialize the whole graph"),
    "generate": ("synthetic", "write a synthetic cohort's landing files and truth"),
    "query": ("query", "run SQL through the governance gateway as a role (your token)"),
    "similar": ("similar", "find patients similar across modalities (or series), governed"),
    "packet": ("packet", "save a tumor-board packet your role may open (your token), audited"),
    "export": ("export", "save your role's serving file from the gateway service, audited"),
    "lineage": ("lineage", "trace a feature back to its source files and records"),
    "token": ("token", "issue, list and revoke the gateway service's tokens (administrator)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        print("usage: mma <command> [options]   (mma <command> --help for its options)\n")
        for name, (_, about) in COMMANDS.items():
            print(f"  {name:<{width}}  {about}")
        return 0 if argv[:1] in (["--help"], ["-h"]) else 2
    module = importlib.import_module(f"{__name__}.{COMMANDS[argv[0]][0]}")
    sys.argv[0] = f"mma {argv[0]}"  # argparse's usage line names the sub-command
    return module.main(argv[1:]) or 0
