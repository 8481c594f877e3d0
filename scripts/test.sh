#!/usr/bin/env bash
# Lint, validate the Dagster definitions, and run the test suite.
source "$(dirname "$0")/bootstrap.sh"
# Debian packages some tests need: headless Chromium for the tumor-board packet test, Java 17
# for the Spark parse path, Redis for the Celery executor. Without them those tests skip and say so.
debian_package chromium chromium
debian_package java openjdk-17-jre-headless
debian_package redis-server redis-server
.venv/bin/ruff check multimodal_assets assets_tests benchmarks
VIRTUAL_ENV="$PWD/.venv" .venv/bin/dg check defs
exec .venv/bin/python -m pytest "$@"
