"""Audit of staged tables before publish: classification coverage and Great Expectations suites.

Outcomes carry counts and column names only, never values: they end up in Dagster metadata.
"""

from __future__ import annotations

import itertools
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


# GX validates pandas frames in memory, and a whole table's columns do not fit there (11.5 M
# wearable events at 10,000 patients made this the main job's largest allocation; GX's SQL
# engine cannot introspect DuckDB 2.0 through duckdb-engine). Row-wise expectations therefore run
# on batches of this many rows and their counts add up; uniqueness is a property of the whole
# column, so DuckDB counts the rows whose key repeats (its aggregation spills to disk) — the count
# GX reports, rows of every repeated key, NULL keys ignored.
GX_BATCH_ROWS = 500_000


def engine_of(rule: Expectation) -> str:
    """Which engine evaluates the rule (see GX_BATCH_ROWS)."""
    return "DuckDB" if rule.kind == "unique" else "Great Expectations"


@dataclass
class _Tally:
    rows: int = 0
    unexpected: int = 0
    nonmissing: int = 0
    success: bool = True
    raised: bool = False


def expectation_outcomes(
    conn: duckdb.DuckDBPyConnection,
    table: Table,
    staged: str,
    rules: list[Expectation] | None = None,
    batch_rows: int = GX_BATCH_ROWS,
) -> list[CheckOutcome]:
    """Run the declaration's expectations on the staged rows: Great Expectations for row-wise
    rules, batch by batch; DuckDB for uniqueness."""
    rules = expectations(table) if rules is None else rules
    present = set(warehouse.table_columns(conn, staged))
    unique = [r for r in rules if r.kind == "unique"]
    tallies = {r.check_name: _unique_tally(conn, staged, r, present) for r in unique}
    row_wise = [r for r in rules if r.kind != "unique"]
    if row_wise:
        tallies |= _gx_tallies(conn, table, staged, row_wise, present, batch_rows)
    outcomes = []
    for rule in rules:
        tally = tallies[rule.check_name]
        outcomes.append(
            CheckOutcome(
                rule.check_name,
                passed=tally.success and not tally.raised,
                blocking=rule.blocking,
                description=f"{engine_of(rule)}: {rule.kind} on {rule.column}.",
                metadata={
                    "rows": tally.rows,
                    "unexpected_count": tally.unexpected,
                    "unexpected_percent": (
                        100.0 * tally.unexpected / tally.nonmissing if tally.nonmissing else 0.0
                    ),
                    "evaluation_error": tally.raised,
                },
            )
        )
    return outcomes


def _unique_tally(conn, staged: str, rule: Expectation, present: set[str]) -> _Tally:
    """Rows whose key (one column, or several: rows with every key column NULL ignored) occurs
    more than once."""
    columns = list(rule.params.get("columns", (rule.column,)))
    if not set(columns) <= present:
        return _Tally(success=False, raised=True)
    keys = ", ".join(f'"{c}"' for c in columns)
    counted = " OR ".join(f'"{c}" IS NOT NULL' for c in columns)
    rows, nonmissing, unexpected = conn.execute(
        f"SELECT (SELECT count(*) FROM {staged}), coalesce(sum(n), 0), "
        "coalesce(sum(n) FILTER (WHERE n > 1), 0) "
        f"FROM (SELECT count(*) AS n FROM {staged} WHERE {counted} GROUP BY {keys})"
    ).fetchall()[0]
    return _Tally(int(rows), int(unexpected), int(nonmissing), success=unexpected == 0)


def _gx_tallies(conn, table: Table, staged: str, rules, present: set[str], batch_rows: int):
    gx, context = _gx()
    # Only the columns the rules read, so each batch stays narrow.
    needed = sorted({rule.column for rule in rules} & present)
    columns = ", ".join(f'"{c}"' for c in needed) or "1 AS _none"
    definition = (
        context.data_sources.add_pandas(f"staged_{table.layer}_{table.name}")
        .add_dataframe_asset(table.name)
        .add_batch_definition_whole_dataframe("all")
    )
    suite = gx.ExpectationSuite(name=f"{table.fqn}_declared")
    for rule in rules:
        suite.add_expectation(_gx_expectation(gx, rule))
    tallies = {rule.check_name: _Tally() for rule in rules}
    reader = conn.sql(f"SELECT {columns} FROM {staged}").to_arrow_reader(batch_rows)
    frames = (batch.to_pandas() for batch in reader)
    first = next(frames, None)
    if first is None:  # no rows: the suite still runs, on an empty frame of the same columns
        first = reader.schema.empty_table().to_pandas()
    for frame in itertools.chain([first], frames):
        batch = definition.get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(suite, result_format="SUMMARY")
        for res in result.results:
            tally = tallies[res.expectation_config.meta["check_name"]]
            summary = res.result or {}
            counted = int(summary.get("element_count", len(frame)))
            tally.rows += counted
            tally.unexpected += int(summary.get("unexpected_count") or 0)
            tally.nonmissing += counted - int(summary.get("missing_count") or 0)
            tally.success = tally.success and bool(res.success)
            tally.raised = tally.raised or _raised(res.exception_info)
    return tallies


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
