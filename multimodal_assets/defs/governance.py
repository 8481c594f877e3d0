"""Governance assets: the column catalog and its coverage check."""

import dagster as dg

from multimodal_assets.lib import catalog, tables, warehouse
from multimodal_assets.lib.catalog import COLUMN_CATALOG

from .governed import asset_key, asset_spec_kwargs, table_metadata
from .resources import WarehouseResource

_GOVERNED = [t for t in catalog.ALL_TABLES if t.layer in catalog.GOVERNED_LAYERS]


@dg.asset(
    **asset_spec_kwargs(COLUMN_CATALOG, {"duckdb"}),
    metadata=table_metadata(COLUMN_CATALOG),
    deps=[asset_key(t) for t in _GOVERNED],
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
def column_catalog(context: dg.AssetExecutionContext, lakehouse: WarehouseResource):
    """Classification of every declared column, and coverage of the warehouse's silver and gold."""
    rows = tables.catalog_rows(catalog.ALL_TABLES)
    with lakehouse.get_connection() as conn:
        warehouse.stage_rows(conn, COLUMN_CATALOG, rows)
        published = warehouse.publish(conn, COLUMN_CATALOG, warehouse.staging_name(COLUMN_CATALOG))
        conn.execute(f"DROP TABLE {warehouse.staging_name(COLUMN_CATALOG)}")
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


assets = [column_catalog]
