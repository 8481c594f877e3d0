#!/usr/bin/env bash
# Celery workers on this machine for MM_EXECUTOR=celery: a Redis server (the broker and result
# backend) on 127.0.0.1:MM_REDIS_PORT (default 6379) and WORKERS (default 2) Celery workers that
# each execute one Dagster step at a time; in the foreground until Ctrl-C or SIGTERM.
#   ./scripts/celery_workers.sh [WORKERS]
# Workers run the steps of Dagster runs, so they need the runs' settings: start this with the
# same MM_DATA_DIR / MM_LAKEHOUSE / MM_PSEUDONYM_KEY / DAGSTER_HOME as `mma run` and the UI.
source "$(dirname "$0")/bootstrap.sh"
debian_package redis-server redis-server
workers="${1:-2}"
port="${MM_REDIS_PORT:-6379}"
export MM_CELERY_BROKER="${MM_CELERY_BROKER:-redis://127.0.0.1:$port/0}"
export PATH="$PWD/.venv/bin:$PATH"
umask 077  # the steps write PHI: files private to this account, as `mma run` makes them
scratch="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null; wait; rm -rf "$scratch"' EXIT INT TERM
# The instance the runs use (its storage made before any worker opens it) and the workers'
# Celery settings, from the same function the code location's executor reads.
export DAGSTER_HOME="$(python -m multimodal_assets.defs.executor "$scratch/celery.yaml")"
redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
  >"$scratch/redis.log" 2>&1 &
for i in $(seq 1 "$workers"); do
  # solo pool: the worker process runs the step itself, and keeps the imported code location
  # between steps.
  dagster-celery worker start -A dagster_celery.app -y "$scratch/celery.yaml" -n "worker$i" \
    -l WARNING -- --pool solo >"$scratch/worker$i.log" 2>&1 &
done
echo "celery: broker $MM_CELERY_BROKER, $workers workers (logs in $scratch)"
wait
