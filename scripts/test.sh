#!/usr/bin/env bash
# Lint, validate the Dagster definitions, and run the test suite.
source "$(dirname "$0")/bootstrap.sh"
.venv/bin/ruff check multimodal_assets assets_tests benchmarks
VIRTUAL_ENV="$PWD/.venv" .venv/bin/dg check defs
exec .venv/bin/python -m pytest "$@"
