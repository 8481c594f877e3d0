"""Which lakehouse tables a SQL text reads, found by parsing it (sqlglot), not by hand."""

from __future__ import annotations

import logging
from functools import lru_cache

# The schemas that hold lakehouse tables; `staging` holds a run's candidate rows.
LAKEHOUSE_SCHEMAS = frozenset(("bronze", "silver", "gold", "governance", "audit", "ml"))


@lru_cache(maxsize=4096)
def tables_read(sql: str) -> frozenset[str]:
    """The `schema.table` names of lakehouse tables the statements in `sql` read (common table
    expressions are not tables). DuckDB SQL; text sqlglot cannot parse gives no names."""
    import sqlglot
    from sqlglot import exp

    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # its warnings quote the SQL
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except sqlglot.errors.SqlglotError:
        return frozenset()
    found = set()
    for statement in statements:
        written = statement.this if isinstance(statement, exp.Create | exp.Insert) else None
        ctes = {cte.alias_or_name for cte in statement.find_all(exp.CTE)}
        for table in statement.find_all(exp.Table):
            if table is written or (isinstance(written, exp.Schema) and table is written.this):
                continue
            if table.db in LAKEHOUSE_SCHEMAS and table.name not in ctes:
                found.add(f"{table.db}.{table.name}")
    return frozenset(found)
