"""The governed query gateway: the supported way for people and notebooks to read the warehouse.

A request is parsed with sqlglot, refused unless it is a single read of tables the role may see,
rewritten so that every table reference becomes its row-filtered, column-masked form, run on a
read-only connection with external access disabled and configuration locked, and audited
whether it is allowed or denied.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow as pa
import sqlglot
from sqlglot import exp

from ..platform import warehouse
from ..platform.tables import Table
from . import audit, catalog
from .policy import Denied, Policy, PolicyError, TableAccess, load_policy
from .pseudonym import pseudonym_key

# sqlglot warns with fragments of the SQL, which may quote identifiers a user typed.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

_ALLOWED_ROOTS = (exp.Select, exp.Union, exp.Except, exp.Intersect)
_FORBIDDEN_NODES = tuple(
    getattr(exp, name)
    for name in (
        "Insert",
        "Update",
        "Delete",
        "Merge",
        "Create",
        "Drop",
        "Alter",
        "Command",
        "Set",
        "Copy",
        "Attach",
        "Detach",
        "Pragma",
        "Use",
        "Install",
        "Into",
        "Transaction",
        "Commit",
        "Rollback",
        "Describe",
        "Summarize",
        "TruncateTable",
        "LoadData",
        "Export",
    )
    if hasattr(exp, name)
)
# Functions that read files or the catalog, or reach the environment. The read-only connection
# with external access disabled stops file readers too; this list refuses them before they run.
_FORBIDDEN_FUNCTION_PREFIXES = (
    "read_",
    "duckdb_",
    "pragma_",
    "parquet_",
    "iceberg_",
    "delta_",
    "sqlite_",
    "postgres_",
    "mysql_",
    "json_execute",
)
_FORBIDDEN_FUNCTIONS = {
    "glob",
    "query",
    "query_table",
    "getenv",
    "current_setting",
    "sniff_csv",
    "which_secret",
    "load_extension",
    "sql_auto_complete",
    "checkpoint",
    "force_checkpoint",
    "test_all_types",
    "enable_profiling",
}
# Functions sqlglot does not model (parsed as anonymous calls) are refused unless listed here:
# an allow-list, since DuckDB keeps adding functions and some read below the query's rows —
# `stats(col)` answers from the storage statistics of the whole table, past the row filter.
_ALLOWED_UNMODELLED_FUNCTIONS = {
    "age",
    "array_cosine_distance",
    "array_cosine_similarity",
    "array_distance",
    "array_inner_product",
    "bar",
    "bit_count",
    "cardinality",
    "date_part",
    "date_sub",
    "epoch_us",
    "histogram",
    "list_cosine_similarity",
    "list_extract",
    "list_inner_product",
    "list_slice",
    "now",
    "prefix",
    "printf",
    "suffix",
    "to_years",
}
_WAREHOUSE_CATALOG = "lakehouse"
DATE_SHIFT_TABLE = "governance.date_shifts"


def access_audit_fields(accesses) -> dict[str, str]:
    """What an audit row records of the tables read: columns, row filters and masks applied."""
    masked = [f"{a.table.fqn}.{c}={m}" for a in accesses for c, m in a.masks.items() if m != "none"]
    return {
        "tables": ",".join(a.table.fqn for a in accesses),
        "columns": ",".join(f"{a.table.fqn}.{c}" for a in accesses for c in a.masks),
        "filters": ",".join(
            sorted({f"{a.table.fqn}:{f}" for a in accesses for f in a.row_filters})
        ),
        "masks": ",".join(masked),
    }


@dataclass(frozen=True)
class Plan:
    sql: str
    accesses: tuple[TableAccess, ...]

    def audit_fields(self) -> dict[str, str]:
        return access_audit_fields(self.accesses)


@dataclass(frozen=True)
class QueryResult:
    table: pa.Table
    plan: Plan


def _function_name(node: exp.Func) -> str:
    return (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()


def _validate(tree: exp.Expression) -> None:
    if not isinstance(tree, _ALLOWED_ROOTS):
        raise Denied(f"only SELECT queries are allowed (got {type(tree).__name__})")
    for node in tree.walk():
        if isinstance(node, _FORBIDDEN_NODES):
            raise Denied(f"{type(node).__name__} is not allowed")
        if isinstance(node, exp.Func):
            name = _function_name(node)
            if name in _FORBIDDEN_FUNCTIONS or name.startswith(_FORBIDDEN_FUNCTION_PREFIXES):
                raise Denied(f"function {name} is not allowed")
            if isinstance(node, exp.Anonymous) and name not in _ALLOWED_UNMODELLED_FUNCTIONS:
                raise Denied(f"function {name} is not on the gateway's list of allowed functions")


def _hash_salt() -> str:
    return hmac.new(pseudonym_key(), b"gateway-column-hash", hashlib.sha256).hexdigest()


def _masked_expression(column: str, mask: str, table: Table) -> str:
    ref = f'_t."{column}"'
    column_type = table.column(column).type
    if mask == "none":
        return ref
    if mask == "redact":
        return f"CAST(NULL AS {column_type})"
    if mask == "hash":
        return f"sha256('{_hash_salt()}' || CAST({ref} AS VARCHAR))"
    if mask == "shift_date":
        # No shift row means no date at all: a missing shift must not reveal the real date.
        return f"CAST({ref} + to_days(_s.shift_days) AS {column_type})"
    if mask == "zip3":
        return f"left(CAST({ref} AS VARCHAR), 3)"
    if mask == "age_90_plus":
        return f"CASE WHEN {ref} > 89 THEN 90 ELSE {ref} END"
    raise Denied(f"unknown mask {mask!r}")


def governed_select(access: TableAccess, policy: Policy, site: str | None) -> str:
    """The SELECT that exposes one table to a role: masked columns, filtered rows."""
    table = access.table
    columns = ", ".join(
        f'{_masked_expression(c, m, table)} AS "{c}"' for c, m in access.masks.items()
    )
    source = f"{table.fqn} AS _t"
    if "shift_date" in access.masks.values():
        if "research_key" not in table.column_names:
            raise Denied(f"{table.fqn} has dates to shift but no research_key")
        source += f" LEFT JOIN {DATE_SHIFT_TABLE} AS _s ON _s.research_key = _t.research_key"
    conditions = []
    for name in access.row_filters:
        keys_sql = policy.row_filters[name]
        if "$user_site" in keys_sql:
            if not site:
                raise Denied(f"row filter {name} needs a site for this user")
            keys_sql = keys_sql.replace("$user_site", exp.Literal.string(site).sql())
        conditions.append(f"_t.research_key IN ({keys_sql})")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"SELECT {columns} FROM {source}{where}"


def checked_access(conn, policy: Policy, role: str, table: Table | None, fqn: str) -> TableAccess:
    """The role's access to a table that exists and has no column the catalog does not know."""
    access = policy.table_access(role, table, fqn)
    physical = warehouse.table_columns(conn, fqn)
    if not physical:
        raise Denied(f"{fqn} does not exist in the lakehouse")
    undeclared = set(physical) - set(access.table.column_names)
    if undeclared:
        raise Denied(f"{fqn} has {len(undeclared)} unclassified column(s)")
    return access


def _cte_references(tree: exp.Expression) -> set[int]:
    """Ids of the table references that name a CTE in their own scope. A CTE's name is not
    exempt everywhere: inside its own body, or outside the WITH that defines it, the same name
    is a catalog object (`WITH duckdb_tables AS (SELECT * FROM duckdb_tables) …` read DuckDB's
    catalog), and must then pass the schema check like any table."""
    from sqlglot.errors import OptimizeError
    from sqlglot.optimizer.scope import Scope, traverse_scope

    try:
        scopes = traverse_scope(tree)
    except OptimizeError:
        raise Denied("the query's structure could not be resolved") from None
    return {
        id(table)
        for scope in scopes
        for table in scope.tables
        if not table.db and isinstance(scope.sources.get(table.alias_or_name), Scope)
    }


def plan_query(
    sql: str, policy: Policy, user: str, role: str, conn, tables: dict[str, Table] | None = None
) -> Plan:
    """Check a request against the policy and rewrite it; Denied if anything is not allowed."""
    account = policy.authorize(user, role)
    declared = tables or {t.fqn: t for t in catalog.ALL_TABLES}
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except sqlglot.errors.SqlglotError:
        raise Denied("the SQL could not be parsed") from None
    if len(statements) != 1:
        raise Denied("exactly one statement per request")
    tree = statements[0]
    _validate(tree)
    cte_references = _cte_references(tree)
    accesses: dict[str, TableAccess] = {}
    for node in list(tree.find_all(exp.Table)):
        if not isinstance(node.this, exp.Identifier):
            raise Denied("table functions are not allowed")
        name, db, catalog_name = node.name.lower(), node.db.lower(), node.catalog.lower()
        if not db:
            if id(node) in cte_references:
                continue
            raise Denied("table references must be schema-qualified (schema.table)")
        if catalog_name and catalog_name != _WAREHOUSE_CATALOG:
            raise Denied(f"catalog {catalog_name} is not allowed")
        fqn = f"{db}.{name}"
        access = accesses.get(fqn) or checked_access(conn, policy, role, declared.get(fqn), fqn)
        accesses[fqn] = access
        governed = sqlglot.parse_one(governed_select(access, policy, account.site), read="duckdb")
        node.replace(
            exp.Subquery(
                this=governed, alias=exp.TableAlias(this=exp.to_identifier(node.alias_or_name))
            )
        )
    if not accesses:
        raise Denied("the query reads no warehouse table")
    return Plan(tree.sql(dialect="duckdb"), tuple(accesses.values()))


def governed_request(
    action: str,
    text: str,
    work,
    *,
    user: str,
    role: str,
    root: str,
    policy: Policy | None = None,
    as_of: dict[str, int] | None = None,
):
    """Run `work(policy, conn)` for an authorized user on a locked-down read-only connection.

    The connection reads the lakehouse's newest snapshot, or for a role allowed to time-travel
    the table versions in `as_of`. `work` returns (result, audit fields). Every request leaves
    an audit row before it runs (`received`: a request killed while running is still logged)
    and one with its outcome, allowed or denied; a denial or engine error is raised as Denied
    with a reason that holds no values.
    """
    root = str(root)
    fields = {
        "user_name": user,
        "role": role,
        "query_hash": audit.query_hash(text),
        "action": action,
    }
    audit.append(root, audit.AuditEvent(decision="received", reason="request received", **fields))
    try:
        active = policy or load_policy()
        active.authorize(user, role)
        if as_of and not active.roles[role].time_travel:
            raise Denied(f"role {role} may not read earlier table versions")
        if as_of and not set(as_of) <= {t.fqn for t in catalog.ALL_TABLES}:
            # Only declared tables: a pinned name is also a path under the lakehouse root.
            raise Denied("a table pinned to a version is not a declared table")
        with _read_connection(root, as_of) as conn:
            with _time_limit(conn, active.limits.query_seconds):
                result, details = work(active, conn)
            if as_of:
                details = {**details, "filters": _as_of_note(details.get("filters", ""), as_of)}
    except (Denied, PolicyError) as err:
        reason = err.reason if isinstance(err, Denied) else f"policy unusable: {err}"
        audit.append(root, audit.AuditEvent(decision="deny", reason=reason, **fields))
        raise Denied(reason) from None
    except Exception as err:  # noqa: BLE001 - engine errors are audited, then re-raised cleanly
        # DuckDB's messages can quote literals from the query: keep the error type only.
        reason = f"request failed in the engine ({type(err).__name__})"
        audit.append(root, audit.AuditEvent(decision="deny", reason=reason, **fields))
        raise Denied(reason) from None
    audit.append(
        root, audit.AuditEvent(decision="allow", reason="allowed by policy", **details, **fields)
    )
    return result


# Lakehouse roots whose requests this process serves from one long-lived reader (the gateway
# service registers its root; other processes open a connection per request).
_SHARED_READERS: dict[str, warehouse.SharedReader] = {}


def share_reader(root: str) -> None:
    """Serve this process's requests on `root` from one long-lived connection, its views brought
    up to date before each request (a time-travel request still gets its own)."""
    if str(root) not in _SHARED_READERS:
        _SHARED_READERS[str(root)] = warehouse.SharedReader(root)


def _read_connection(root: str, as_of: dict[str, int] | None):
    shared = _SHARED_READERS.get(root)
    if shared is None or as_of:
        return warehouse.connect(root, read_only=True, as_of=as_of)
    return shared.cursor()


@contextmanager
def _time_limit(conn, seconds: float):
    """Interrupt the connection's query after `seconds`; Denied says the limit was reached."""
    expired = threading.Event()

    def interrupt():
        expired.set()
        conn.interrupt()

    timer = threading.Timer(seconds, interrupt)
    timer.start()
    try:
        yield
    except Exception:
        if expired.is_set():
            raise Denied(f"the request ran past the {seconds:g} s limit") from None
        raise
    finally:
        timer.cancel()


def _bounded_arrow(conn, sql: str, max_rows: int) -> pa.Table:
    """The result of `sql`, read in batches; Denied as soon as it passes `max_rows`."""
    reader = conn.sql(sql).fetch_arrow_reader(batch_size=65536)
    batches, rows = [], 0
    for batch in reader:
        rows += batch.num_rows
        if rows > max_rows:
            raise Denied(f"the result has more than {max_rows:,} rows: filter or aggregate")
        batches.append(batch)
    return pa.Table.from_batches(batches, schema=reader.schema)


def _as_of_note(filters: str, as_of: dict[str, int]) -> str:
    """The versions read, recorded with the filters in the audit row."""
    versions = ",".join(f"{fqn}@v{v}" for fqn, v in sorted(as_of.items()))
    return ",".join(x for x in (filters, f"as_of:{versions}") if x)


def run_query(
    sql: str,
    *,
    user: str,
    role: str,
    root: str,
    policy: Policy | None = None,
    action: str = "query",
    as_of: dict[str, int] | None = None,
) -> QueryResult:
    """Run one governed read of the lakehouse (`action` names the kind of request in the audit
    log, e.g. a similarity search built on it; `as_of` pins table versions, for roles allowed to
    time-travel)."""

    def work(active: Policy, conn):
        plan = plan_query(sql, active, user, role, conn)
        table = _bounded_arrow(conn, plan.sql, active.limits.max_rows)
        return QueryResult(table, plan), {**plan.audit_fields(), "rows_returned": table.num_rows}

    return governed_request(
        action, sql, work, user=user, role=role, root=root, policy=policy, as_of=as_of
    )
