#!/usr/bin/env bash
# Lint, validate the Dagster definitions, and run the test suite.
source "$(dirname "$0")/bootstrap.sh"
# Headless Chromium for the tumor-board packet test, from Debian's package (as root with apt).
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get install -y -q chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
    || echo "chromium could not be installed: the browser test will skip and say so"
fi
.venv/bin/ruff check multimodal_assets assets_tests benchmarks
VIRTUAL_ENV="$PWD/.venv" .venv/bin/dg check defs
exec .venv/bin/python -m pytest "$@"
