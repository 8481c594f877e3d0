"""The registry of every declared table, and the governance tables built from it."""

from __future__ import annotations

from functools import lru_cache

from .. import clinical, genomics, imaging, notes, oncology, wearables
from ..ml import fusion
from ..platform import ingest
from ..platform.tables import RESEARCH_KEY as RK
from ..platform.tables import Column, Table
from . import audit

COLUMN_CATALOG = Table(
    layer="governance",
    name="column_catalog",
    modality="governance",
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

DATE_SHIFTS = Table(
    layer="governance",
    name="date_shifts",
    modality="governance",
    primary_key=("research_key",),
    restricted=True,
    description="Per-patient date shift (keyed, secret) used by every de-identified view.",
    columns=(
        RK,
        Column(
            "shift_days",
            "INTEGER",
            "Days added to every date of the patient (1 to 182 either way, never 0).",
            "phi",
            "hipaa",
            nullable=False,
            min_value=-182,
            max_value=182,
        ),
    ),
    lineage={
        "research_key": (("silver.patients", "research_key"),),
        "shift_days": (("silver.patients", "research_key"),),
    },
)

_CROSSWALK_COLUMNS = ("research_key", "mrn", "fhir_patient_id", "site")
KEY_CROSSWALK = Table(
    layer="governance",
    name="key_crosswalk",
    modality="governance",
    primary_key=("research_key",),
    restricted=True,
    description="Research key to MRN crosswalk, for the honest broker only.",
    # The same columns as in silver.patients, so they carry the same classification.
    columns=tuple(clinical.PATIENTS.column(c) for c in _CROSSWALK_COLUMNS),
    lineage={c: (("silver.patients", c),) for c in _CROSSWALK_COLUMNS},
)

POLICY_DECISIONS = Table(
    layer="governance",
    name="policy_decisions",
    modality="governance",
    primary_key=("role", "table_name", "column_name"),
    description="What the access policy decides for every role, table and column.",
    columns=(
        Column("role", "VARCHAR", "Role.", "none", nullable=False),
        Column("table_name", "VARCHAR", "Schema-qualified table.", "none", nullable=False),
        Column("column_name", "VARCHAR", "Column.", "none", nullable=False),
        Column("classification", "VARCHAR", "Column classification.", "none", nullable=False),
        Column(
            "decision",
            "VARCHAR",
            "allow or deny.",
            "none",
            nullable=False,
            allowed=("allow", "deny"),
        ),
        Column("mask", "VARCHAR", "Mask applied when allowed.", "none"),
        Column("row_filters", "VARCHAR", "Row filters applied when allowed.", "none"),
        Column("reason", "VARCHAR", "Why denied.", "none"),
    ),
)

ALL_TABLES: tuple[Table, ...] = (
    ingest.FILES,
    ingest.QUARANTINE,
    *clinical.TABLES,
    *wearables.TABLES,
    *genomics.TABLES,
    *imaging.TABLES,
    *notes.TABLES,
    COLUMN_CATALOG,
    DATE_SHIFTS,
    KEY_CROSSWALK,
    POLICY_DECISIONS,
    audit.ACCESS_LOG,
)
# The fused table is derived from the modality feature tables declared above.
PATIENT_FEATURES = fusion.fused_table(ALL_TABLES)
RISK_SCORES = fusion.risk_scores_table(PATIENT_FEATURES)
ALL_TABLES = (*ALL_TABLES, PATIENT_FEATURES, RISK_SCORES, *oncology.TABLES)
GOVERNED_LAYERS = ("silver", "gold")
_BY_FQN = {t.fqn: t for t in ALL_TABLES}


def table(fqn: str) -> Table:
    """The declaration of a table by schema-qualified name (KeyError if undeclared)."""
    return _BY_FQN[fqn]


def column_lineage(declared: Table) -> dict[str, tuple[tuple[str, str], ...]]:
    """A table's column lineage: derived from its SQL if SQL builds it, else as declared."""
    if not declared.build_sql:
        return declared.lineage
    return _derived_lineage(declared.build_sql, tuple(declared.column_names))


@lru_cache(maxsize=256)
def _derived_lineage(sql: str, columns: tuple[str, ...]) -> dict:
    from ..platform.sql_lineage import derive_column_lineage

    schema: dict = {}
    for declared in ALL_TABLES:
        schema.setdefault(declared.layer, {})[declared.name] = {
            c.name: c.type for c in declared.columns
        }
    return derive_column_lineage(sql, columns, schema)


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
