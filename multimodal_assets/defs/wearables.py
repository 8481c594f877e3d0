"""Wearables assets: daily exports → bronze events (exactly once) → silver day slices →
daily features with rolling windows → per-patient features as of the index date."""

from datetime import timedelta

import dagster as dg

from multimodal_assets.lib import wearables
from multimodal_assets.lib.platform import warehouse
from multimodal_assets.lib.wearables import DAILY, EVENTS, FEATURES, WEARABLE_EVENTS

from .governed import asset_key, bronze_ingest_asset, governed_table_asset

KNOWN_SCHEMAS = ("v1", "v2")
SCHEMA_CHECK = "source_schemas"


def _observe_schemas(conn, run_id: str):
    """Report the layouts this run brought in, and warn when one was never seen before."""
    counts = dict(
        conn.execute(
            "SELECT source_schema, count(*) FROM bronze.wearable_events WHERE _run_id = ? "
            "GROUP BY 1",
            [run_id],
        ).fetchall()
    )
    earlier = {
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT source_schema FROM bronze.wearable_events WHERE _run_id <> ?", [run_id]
        ).fetchall()
    }
    new = (
        sorted(set(counts) - earlier - set(KNOWN_SCHEMAS))
        if earlier
        else sorted(set(counts) - set(KNOWN_SCHEMAS))
    )
    metadata = {f"events_schema_{k}": n for k, n in sorted(counts.items())}
    return metadata, [
        dg.AssetCheckResult(
            check_name=SCHEMA_CHECK,
            passed=not new,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "schemas_this_run": ", ".join(sorted(counts)) or "none",
                "new_schemas": ", ".join(new) or "none",
            },
        )
    ]


wearable_events = bronze_ingest_asset(
    WEARABLE_EVENTS,
    wearables.parse_wearables_file,
    kinds={"duckdb", "python"},
    check_specs=[
        dg.AssetCheckSpec(
            SCHEMA_CHECK,
            asset=asset_key(WEARABLE_EVENTS),
            description="Schema change detection: layouts other than the vendor's v1/v2 exports.",
        )
    ],
    observe=_observe_schemas,
)


def _build_events(conn, run_id: str) -> dict:
    warehouse.stage(conn, EVENTS, EVENTS.build_sql, {"run_id": run_id})
    bronze, linked, late = conn.execute(wearables.EVENT_COVERAGE_SQL).fetchone()
    # Kept in bronze, reported here: nothing is dropped silently.
    return {
        "bronze_events": bronze,
        "events_without_device_link": bronze - linked,
        "events_beyond_lateness_horizon": late,
        "lateness_horizon_days": wearables.LATENESS_HORIZON_DAYS,
    }


events = governed_table_asset(EVENTS, build=_build_events)
daily_features = governed_table_asset(
    DAILY,
    kinds={"duckdb", "sql"},
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=timedelta(days=2), warn_window=timedelta(days=1)
    ),
)
wearables_features = governed_table_asset(FEATURES, kinds={"duckdb", "sql"})

assets = [wearable_events, events, daily_features, wearables_features]
