"""Audit of staged tables before publish: classification coverage and Great Expectations suites.

Outcomes carry counts and column names only, never values: they end up in Dagster metadata.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import duckdb

from . import warehouse
from .tables import Expectation, Table, expectations

CLASSIFIED_CHECK = "columns_classified"


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    blocking: bool
    description: str
    metadata: dict = field(default_factory=dict)


def classification_outcome(
    conn: duckdb.DuckDBPyConnection, table: Table, staged: str
) -> CheckOutcome:
    """Every staged column must be declared (hence classified), and every declared one present."""
    actual = warehouse.table_columns(conn, staged)
    declared = set(table.column_names)
    unclassified = [c for c in actual if c not in declared]
    missing = [c for c in table.column_names if c not in set(actual)]
    return CheckOutcome(
        CLASSIFIED_CHECK,
        passed=not unclassified and not missing,
        blocking=True,
        description="Every column is declared with a classification tag.",
        metadata={
            "columns": len(actual),
            "unclassified_columns": ", ".join(unclassified) or "none",
            "missing_declared_columns": ", ".join(missing) or "none",
        },
    )


def _gx_expectation(gx, exp: Expectation):
    meta = {"check_name": exp.check_name}
    if exp.kind == "not_null":
        return gx.expectations.ExpectColumnValuesToNotBeNull(column=exp.column, meta=meta)
    if exp.kind == "unique" and "columns" in exp.params:
        return gx.expectations.ExpectCompoundColumnsToBeUnique(
            column_list=list(exp.params["columns"]), meta=meta
        )
    if exp.kind == "unique":
        return gx.expectations.ExpectColumnValuesToBeUnique(column=exp.column, meta=meta)
    if exp.kind == "in_set":
        return gx.expectations.ExpectColumnValuesToBeInSet(
            column=exp.column, value_set=list(exp.params["values"]), meta=meta
        )
    if exp.kind == "between":
        return gx.expectations.ExpectColumnValuesToBeBetween(
            column=exp.column, min_value=exp.params["min"], max_value=exp.params["max"], meta=meta
        )
    raise ValueError(f"unknown expectation kind {exp.kind!r}")


def _gx():
    # Imported here: Great Expectations takes seconds to import and must not slow the code
    # location; its usage analytics would try the network.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # GX probes Spark Connect whenever pyspark is installed (for the Spark path); pyspark 4.3's
    # Spark Connect calls sys.exit(0) on import in a process whose __main__ has no file — every
    # step process Dagster's multiprocess executor forks from its forkserver, i.e. every run
    # launched from the UI — because it takes that for a doctest run without its gRPC extras.
    # Nothing here uses Spark Connect (the Spark path runs in its own process): GX is told it is
    # absent, as it would be without pyspark.
    for module in ("pyspark.sql.connect.dataframe", "pyspark.sql.connect.session"):
        sys.modules.setdefault(module, None)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return gx, context


def expectation_outcomes(
    conn: duckdb.DuckDBPyConnection,
    table: Table,
    staged: str,
    rules: list[Expectation] | None = None,
) -> list[CheckOutcome]:
    """Run the declaration's expectations on the staged rows with Great Expectations."""
    rules = expectations(table) if rules is None else rules
    if not rules:
        return []
    gx, context = _gx()
    # Only the columns the rules read: GX validates pandas in memory (its SQL datasource could
    # not introspect DuckDB 2.0 through duckdb-engine here), so narrow frames matter.
    present = set(warehouse.table_columns(conn, staged))
    needed = sorted(
        {c for rule in rules for c in rule.params.get("columns", (rule.column,))} & present
    )
    columns = ", ".join(f'"{c}"' for c in needed) or "1 AS _none"
    frame = conn.sql(f"SELECT {columns} FROM {staged}").df()
    source = context.data_sources.add_pandas(f"staged_{table.layer}_{table.name}")
    batch = (
        source.add_dataframe_asset(table.name)
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = gx.ExpectationSuite(name=f"{table.fqn}_declared")
    for rule in rules:
        suite.add_expectation(_gx_expectation(gx, rule))
    result = batch.validate(suite, result_format="SUMMARY")
    by_name = {r.expectation_config.meta["check_name"]: r for r in result.results}
    outcomes = []
    for rule in rules:
        res = by_name[rule.check_name]
        raised = _raised(res.exception_info)
        summary = res.result or {}
        outcomes.append(
            CheckOutcome(
                rule.check_name,
                passed=bool(res.success) and not raised,
                blocking=rule.blocking,
                description=f"Great Expectations: {res.expectation_config.type} on {rule.column}.",
                metadata={
                    "rows": int(summary.get("element_count", len(frame))),
                    "unexpected_count": int(summary.get("unexpected_count") or 0),
                    "unexpected_percent": float(summary.get("unexpected_percent") or 0.0),
                    "evaluation_error": raised,
                },
            )
        )
    return outcomes


def _raised(info) -> bool:
    """GX reports evaluation errors either flat or keyed by metric."""
    if not isinstance(info, dict):
        return False
    if "raised_exception" in info:
        return bool(info["raised_exception"])
    return any(isinstance(v, dict) and v.get("raised_exception") for v in info.values())


def audit(conn: duckdb.DuckDBPyConnection, table: Table, staged: str) -> list[CheckOutcome]:
    """All pre-publish checks of a staged table; blocking failures must stop the publish."""
    return [classification_outcome(conn, table, staged), *expectation_outcomes(conn, table, staged)]
