#!/usr/bin/env bash
# Generate the default synthetic cohort (if landing is empty) and materialize every asset.
source "$(dirname "$0")/bootstrap.sh"
exec .venv/bin/mma run "$@"
