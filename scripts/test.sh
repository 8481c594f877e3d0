#!/usr/bin/env bash
# Lint, validate the Dagster definitions, and run the test suite.
source "$(dirname "$0")/bootstrap.sh"
.venv/bin/ruff check multimodal_assets assets_tests benchmarks
.venv/bin/dagster definitions validate -m multimodal_assets.definitions
exec .venv/bin/python -m pytest "$@"
