"""The registry of every declared table, and the governance catalog built from it."""

from __future__ import annotations

from . import clinical, ingest
from .tables import Column, Table

COLUMN_CATALOG = Table(
    layer="governance",
    name="column_catalog",
    modality="governance",
    asset_key=("governance", "column_catalog"),
    primary_key=("table_name", "column_name"),
    description="Classification, regulation and description of every declared column.",
    columns=(
        Column("table_name", "VARCHAR", "Schema-qualified table name.", "none", nullable=False),
        Column("column_name", "VARCHAR", "Column name.", "none", nullable=False),
        Column("data_type", "VARCHAR", "Declared DuckDB type.", "none", nullable=False),
        Column(
            "classification",
            "VARCHAR",
            "phi, pii, quasi_identifier, sensitive or none.",
            "none",
            nullable=False,
        ),
        Column(
            "regulatory", "VARCHAR", "Regulation that governs the column.", "none", nullable=False
        ),
        Column("description", "VARCHAR", "What the column holds.", "none"),
    ),
)

ALL_TABLES: tuple[Table, ...] = (ingest.FILES, ingest.QUARANTINE, *clinical.TABLES, COLUMN_CATALOG)
GOVERNED_LAYERS = ("silver", "gold")


def undeclared_warehouse_columns(conn) -> list[str]:
    """Columns that exist in silver/gold tables of the warehouse but have no catalog row."""
    rows = conn.execute(
        """
        SELECT c.table_schema || '.' || c.table_name || '.' || c.column_name
        FROM information_schema.columns c
        LEFT JOIN governance.column_catalog k
          ON k.table_name = c.table_schema || '.' || c.table_name AND k.column_name = c.column_name
        WHERE c.table_schema IN ('silver', 'gold') AND k.column_name IS NULL
        ORDER BY 1
        """
    ).fetchall()
    return [r[0] for r in rows]
