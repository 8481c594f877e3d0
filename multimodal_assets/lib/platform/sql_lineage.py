"""Column lineage of a SQL-built table, derived from its SELECT by sqlglot, not written by hand."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from .sql_reads import LAKEHOUSE_SCHEMAS

Schema = Mapping[str, Mapping[str, Mapping[str, str]]]


def derive_column_lineage(
    sql: str, columns: Iterable[str], schema: Schema
) -> dict[str, tuple[tuple[str, str], ...]]:
    """For each output column, the lakehouse (table, column) pairs its values come from.

    `schema` is {schema: {table: {column: type}}}: it lets `*` expand and unqualified columns
    resolve. Lineage follows values (sqlglot's lineage), with one addition: a value looked up
    in a bundled reference list (a join to a `VALUES` table, e.g. gene by position) derives from
    the columns the lookup joins on. Columns used only to filter rows are not included, and a
    value computed from constants or `count(*)` has none."""
    import sqlglot
    from sqlglot.optimizer.qualify import qualify

    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # its warnings quote the SQL
    tree = qualify(
        sqlglot.parse_one(sql, read="duckdb"),
        schema=schema,
        dialect="duckdb",
        validate_qualify_columns=False,
    )
    derived = {}
    for column in columns:
        sources = _sources_of(column, tree, schema)
        if sources:
            derived[column] = tuple(sorted(sources))
    return derived


def _sources_of(column: str, query, schema: Schema) -> set[tuple[str, str]]:
    from sqlglot.lineage import lineage

    root = lineage(column, query, schema=schema, dialect="duckdb", trim_selects=False, copy=False)
    return _walk(root, query, schema)


def _walk(node, query, schema: Schema) -> set[tuple[str, str]]:
    from sqlglot import exp

    if isinstance(node.expression, exp.Table):
        if node.expression.db not in LAKEHOUSE_SCHEMAS:
            return set()
        return {(f"{node.expression.db}.{node.expression.name}", _bare(node.name))}
    found = set()
    for child in node.downstream:
        if isinstance(child.source, exp.Values) or _from_values(child):
            found |= _lookup_keys(node.source, child.name.split(".")[0], query, schema)
        else:
            found |= _walk(child, query, schema)
    return found


def _from_values(node) -> bool:
    """Whether every path below `node` ends in a VALUES list (a bundled reference table)."""
    from sqlglot import exp

    if not node.downstream:
        return isinstance(node.source, exp.Values)
    return all(_from_values(child) for child in node.downstream)


def _lookup_keys(select, alias: str, query, schema: Schema) -> set[tuple[str, str]]:
    """Sources of the columns that `select` joins the reference list `alias` on."""
    from sqlglot import exp

    joins = [j for j in select.args.get("joins") or () if j.alias_or_name == alias]
    keys = [
        c
        for j in joins
        for c in (j.args.get("on") or exp.true()).find_all(exp.Column)
        if c.table != alias
    ]
    if not keys:
        return set()
    probe = select.copy()
    probe.set("expressions", [k.copy().as_(f"_key{i}") for i, k in enumerate(keys)])
    if select is not query and query.args.get("with"):
        probe.set("with", query.args["with"].copy())
    found = set()
    for i in range(len(keys)):
        found |= _sources_of(f"_key{i}", probe, schema)
    return found


def _bare(name: str) -> str:
    return name.rsplit(".", 1)[-1].strip('"')
