"""Lineage: where a gold value comes from (columns, files, records), and what a file feeds."""

from __future__ import annotations

from dataclasses import dataclass

from . import catalog
from .gateway import governed_request
from .policy import Denied, Policy


@dataclass(frozen=True)
class ValueLineage:
    table: str
    column: str
    research_key: str
    derives_from: tuple[tuple[str, str], ...]  # every upstream (table, column), nearest first
    records: tuple[tuple[str, str, str], ...]  # (silver table, source sha256, source locator)

    @property
    def files(self) -> list[str]:
        return sorted({sha for _, sha, _ in self.records})


def column_sources(table_fqn: str, column: str) -> list[tuple[str, str]]:
    """All upstream (table, column) pairs of a column, breadth first, from the declarations
    (derived from the SQL of SQL-built tables)."""
    seen: list[tuple[str, str]] = []
    frontier = [(table_fqn, column)]
    while frontier:
        fqn, col = frontier.pop(0)
        for dep in catalog.column_lineage(catalog.table(fqn)).get(col, ()):
            if dep not in seen:
                seen.append(dep)
                frontier.append(dep)
    return seen


def _has_provenance(fqn: str) -> bool:
    return "_source_sha256" in catalog.table(fqn).column_names


def explain_value(conn, table_fqn: str, column: str, research_key: str) -> ValueLineage:
    """The columns, source files and source records behind one patient's value of a column."""
    sources = column_sources(table_fqn, column)
    filters = catalog.table(table_fqn).record_filters.get(column, {})
    records: list[tuple[str, str, str]] = []
    for upstream in dict.fromkeys(fqn for fqn, _ in sources):
        if catalog.table(upstream).layer != "silver" or not _has_provenance(upstream):
            continue
        predicate = filters.get(upstream)
        where = f" AND ({predicate})" if predicate else ""
        rows = conn.execute(
            f"SELECT DISTINCT _source_sha256, _source_locator FROM {upstream} "
            f"WHERE research_key = ?{where} ORDER BY 1, 2",
            [research_key],
        ).fetchall()
        records.extend((upstream, sha, locator) for sha, locator in rows)
    return ValueLineage(table_fqn, column, research_key, tuple(sources), tuple(records))


def dependents_of_file(conn, sha256: str) -> dict[str, int]:
    """Rows of every silver and gold table that depend on one landed file (by content hash)."""
    silver = [t for t in catalog.ALL_TABLES if t.layer == "silver" and _has_provenance(t.fqn)]
    existing = set(conn.versions)
    silver = [t for t in silver if t.fqn in existing]
    if not silver:
        return {}
    keys_sql = " UNION ".join(
        f"SELECT research_key FROM {t.fqn} WHERE _source_sha256 = $sha" for t in silver
    )
    out = {}
    for table in silver:
        out[table.fqn] = conn.execute(
            f"SELECT count(*) FROM {table.fqn} WHERE _source_sha256 = $sha", {"sha": sha256}
        ).fetchone()[0]
    for table in catalog.ALL_TABLES:
        if (
            table.layer == "gold"
            and "research_key" in table.column_names
            and (table.fqn in existing)
        ):
            out[table.fqn] = conn.execute(
                f"SELECT count(*) FROM {table.fqn} WHERE research_key IN ({keys_sql})",
                {"sha": sha256},
            ).fetchone()[0]
    return out


# Lineage exposes file hashes and record ids: only roles that may read the file registry get it.
LINEAGE_GRANT = "bronze.files"


def governed_lineage(
    kind: str,
    argument: str,
    *,
    user: str,
    role: str,
    root: str,
    research_key: str | None = None,
    policy: Policy | None = None,
):
    """`value` lineage of table.column for a research key, or the `file` dependents of a hash."""

    def work(active: Policy, conn):
        if not active.may_read(role, LINEAGE_GRANT):
            raise Denied(f"role {role!r} may not read lineage ({LINEAGE_GRANT})")
        if kind == "value":
            table_fqn, column = argument.rsplit(".", 1)
            if table_fqn not in {t.fqn for t in catalog.ALL_TABLES}:
                raise Denied(f"{table_fqn} is not a declared table")
            result = explain_value(conn, table_fqn, column, research_key or "")
            return result, {
                "tables": table_fqn,
                "columns": argument,
                "rows_returned": len(result.records),
            }
        if kind == "file":
            result = dependents_of_file(conn, argument)
            return result, {"tables": ",".join(result), "rows_returned": sum(result.values())}
        raise Denied(f"unknown lineage request {kind!r}")

    return governed_request(
        "lineage",
        f"{kind}:{argument}:{research_key}",
        work,
        user=user,
        role=role,
        root=root,
        policy=policy,
    )
