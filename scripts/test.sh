#!/usr/bin/env bash
# Lint, validate the Dagster definitions, and run the test suite.
source "$(dirname "$0")/bootstrap.sh"
# Debian packages some tests need (as root with apt): headless Chromium for the tumor-board
# packet test, Java 17 for the Spark parse path. Without them those tests skip and say so.
debian_package() {  # command, package
  if ! command -v "$1" >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get install -y -q "$2" >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "$2" >/dev/null 2>&1; } \
      || echo "$2 could not be installed: the tests that need it will skip and say so"
  fi
}
debian_package chromium chromium
debian_package java openjdk-17-jre-headless
.venv/bin/ruff check multimodal_assets assets_tests benchmarks
VIRTUAL_ENV="$PWD/.venv" .venv/bin/dg check defs
exec .venv/bin/python -m pytest "$@"
