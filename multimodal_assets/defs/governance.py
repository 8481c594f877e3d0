"""Governance assets: column catalog, date shifts, key crosswalk, policy decisions, serving
files and the audit log's integrity."""

import dagster as dg

from multimodal_assets.lib.governance import audit, catalog, policy, serving
from multimodal_assets.lib.governance.catalog import (
    COLUMN_CATALOG,
    DATE_SHIFTS,
    KEY_CROSSWALK,
    POLICY_DECISIONS,
)
from multimodal_assets.lib.governance.pseudonym import date_shift_days
from multimodal_assets.lib.platform import config, tables, warehouse
from multimodal_assets.lib.platform import lakehouse as lakehouse_lib

from .governed import (
    asset_key,
    asset_spec_kwargs,
    file_asset_spec_kwargs,
    governed_table_asset,
    record_materialization,
    table_metadata,
)
from .models import registry
from .resources import LakehouseResource

_GOVERNED = [t for t in catalog.ALL_TABLES if t.layer in catalog.GOVERNED_LAYERS]
# What the governance outputs wait for: the data, not the model. The risk scores sit behind the
# training set's leakage guard and the model gate, and a blocked or refused model skipped the
# serving files, the catalog and the audit check with them (a researcher's serving file kept a
# withdrawn patient). The scores are exported as they stand when the serving files are written.
_GOVERNED_DATA = [t for t in _GOVERNED if t.fqn != catalog.RISK_SCORES.fqn]


@dg.asset(
    **asset_spec_kwargs(COLUMN_CATALOG, {"duckdb"}),
    metadata=table_metadata(COLUMN_CATALOG),
    deps=[asset_key(t) for t in _GOVERNED_DATA],
    check_specs=[
        dg.AssetCheckSpec(
            "silver_gold_columns_classified",
            asset=asset_key(COLUMN_CATALOG),
            blocking=True,
            description="100% of silver and gold columns in the warehouse have a catalog row.",
        )
    ],
    automation_condition=dg.AutomationCondition.eager(),
)
def column_catalog(context: dg.AssetExecutionContext, lakehouse: LakehouseResource):
    """Classification of every declared column, and coverage of the warehouse's silver and gold."""
    rows = tables.catalog_rows(catalog.ALL_TABLES)
    with lakehouse.get_connection() as conn:
        warehouse.stage_rows(conn, COLUMN_CATALOG, rows)
        published = warehouse.publish(conn, COLUMN_CATALOG, warehouse.staging_name(COLUMN_CATALOG))
        conn.execute(f"DROP TABLE {warehouse.staging_name(COLUMN_CATALOG)}")
        record_materialization(
            lakehouse.root,
            COLUMN_CATALOG,
            context.run_id,
            published,
            True,
            "catalog rebuilt from declarations",
        )
        uncatalogued = catalog.undeclared_warehouse_columns(conn)
        governed_columns = conn.execute(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_schema IN ('silver', 'gold')"
        ).fetchone()[0]
    coverage = 1.0 if governed_columns == 0 else 1 - len(uncatalogued) / governed_columns
    return dg.MaterializeResult(
        metadata={
            **table_metadata(COLUMN_CATALOG),
            "dagster/row_count": published,
            "declared_tables": len(catalog.ALL_TABLES),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="silver_gold_columns_classified",
                passed=not uncatalogued,
                metadata={
                    "warehouse_columns": governed_columns,
                    "coverage": coverage,
                    "uncatalogued": ", ".join(uncatalogued[:50]) or "none",
                },
            )
        ],
    )


def _build_date_shifts(conn, run_id: str, key: bytes) -> dict:
    keys = [r[0] for r in conn.execute("SELECT research_key FROM silver.patients").fetchall()]
    warehouse.stage_rows(
        conn,
        DATE_SHIFTS,
        [{"research_key": k, "shift_days": date_shift_days(k, key)} for k in keys],
    )
    return {}


def _build_key_crosswalk(conn, run_id: str) -> dict:
    warehouse.stage(
        conn, KEY_CROSSWALK, f"SELECT {', '.join(KEY_CROSSWALK.column_names)} FROM silver.patients"
    )
    return {}


def _build_policy_decisions(conn, run_id: str) -> dict:
    active = policy.load_policy()
    rows = policy.decision_rows(active, catalog.ALL_TABLES)
    warehouse.stage_rows(conn, POLICY_DECISIONS, rows)
    return {
        "policy_source": active.source,
        "roles": len(active.roles),
        "denied_cells": sum(r["decision"] == "deny" for r in rows),
    }


date_shifts = governed_table_asset(DATE_SHIFTS, build=_build_date_shifts, pseudonymizes=True)
key_crosswalk = governed_table_asset(KEY_CROSSWALK, build=_build_key_crosswalk)
policy_decisions = governed_table_asset(
    POLICY_DECISIONS, build=_build_policy_decisions, kinds={"duckdb", "yaml"}
)


@dg.asset(
    **file_asset_spec_kwargs(
        "governance", "serving_files", layer="gold", kinds={"duckdb"}, restricted=False
    ),
    deps=[asset_key(t) for t in _GOVERNED_DATA] + [asset_key(DATE_SHIFTS), policy_decisions.key],
    automation_condition=dg.AutomationCondition.eager(),
)
def serving_files(context: dg.AssetExecutionContext, lakehouse: LakehouseResource):
    """Per-role DuckDB files, already filtered and masked, for BI tools and notebooks."""
    active = policy.load_policy()
    written = {}
    with lakehouse.get_connection() as conn:
        for role in sorted(r for r, spec in active.roles.items() if spec.serving):
            path = serving.serving_path(config.data_dir(), role)
            tables_written = serving.write_serving_file(conn, active, role, path, context.run_id)
            written[role] = tables_written
    return dg.MaterializeResult(
        metadata={f"{role}_tables": len(t) for role, t in written.items()}
        | {f"{role}_rows": sum(t.values()) for role, t in written.items()}
    )


@dg.asset(
    **asset_spec_kwargs(audit.ACCESS_LOG, {"duckdb"}),
    metadata=table_metadata(audit.ACCESS_LOG),
    deps=[column_catalog.key, serving_files.key],
    check_specs=[
        dg.AssetCheckSpec(
            "audit_chain_intact",
            asset=asset_key(audit.ACCESS_LOG),
            description="No audit row was edited, inserted or removed.",
        )
    ],
    automation_condition=dg.AutomationCondition.eager(),
)
def audit_log(lakehouse: LakehouseResource):
    """Hash-chained log of every gateway request, materialization and export, verified."""
    with lakehouse.get_connection() as conn:
        report = audit.verify_audit_chain(conn, lakehouse.root)
        counts = (
            conn.execute(
                "SELECT action || '_' || decision, count(*) FROM audit.access_log GROUP BY 1"
            ).fetchall()
            if conn.has_table(audit.ACCESS_LOG.fqn)
            else []
        )
    return dg.MaterializeResult(
        metadata={"dagster/row_count": report.rows, **{f"events_{k}": n for k, n in counts}},
        check_results=[
            dg.AssetCheckResult(
                check_name="audit_chain_intact",
                passed=report.ok,
                metadata={
                    "rows": report.rows,
                    "problems": "; ".join(report.problems[:20]) or "none",
                },
            )
        ],
    )


@dg.asset(
    **file_asset_spec_kwargs(
        "governance",
        "lakehouse_maintenance",
        layer="maintenance",
        kinds={"deltalake"},
        restricted=True,
    ),
    deps=[audit_log.key],
)
def lakehouse_maintenance(lakehouse: LakehouseResource) -> dg.MaterializeResult:
    """Compact, checkpoint and vacuum every Delta table, keeping the versions models name."""
    from deltalake.exceptions import CommitFailedError

    pinned = registry().pinned_table_versions()
    before = after = vacuumed = 0
    skipped = []
    per_table = {}
    for fqn in lakehouse_lib.list_tables(lakehouse.root):
        try:
            report = lakehouse_lib.maintain(lakehouse.root, fqn, pinned.get(fqn, set()))
        except CommitFailedError:  # a run wrote the table meanwhile: compact it next time
            skipped.append(fqn)
            continue
        before += report.files_before
        after += report.files_after
        vacuumed += report.files_vacuumed
        per_table[fqn] = report.files_after
    return dg.MaterializeResult(
        metadata={
            "tables": len(per_table),
            "files_before": before,
            "files_after": after,
            "files_vacuumed": vacuumed,
            "largest_file_count": max(per_table.values(), default=0),
            "pinned_versions": ", ".join(f"{fqn}@{sorted(v)}" for fqn, v in sorted(pinned.items()))
            or "none",
            "skipped_concurrent_write": ", ".join(skipped) or "none",
        }
    )


lakehouse_maintenance_schedule = dg.ScheduleDefinition(
    name="lakehouse_maintenance_schedule",
    target=dg.AssetSelection.assets(lakehouse_maintenance.key),
    cron_schedule="30 4 * * *",
    description="Nightly compaction, checkpoints and vacuum of the lakehouse's Delta tables.",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

audit_verification_schedule = dg.ScheduleDefinition(
    name="audit_verification_schedule",
    target=dg.AssetSelection.assets(audit_log.key),
    cron_schedule="0 * * * *",
    description="Hourly verification of the audit log's hash chain.",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

assets = [
    column_catalog,
    date_shifts,
    key_crosswalk,
    policy_decisions,
    serving_files,
    audit_log,
    lakehouse_maintenance,
]
schedules = [audit_verification_schedule, lakehouse_maintenance_schedule]
