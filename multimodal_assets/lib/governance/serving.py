"""Per-role serving files: already filtered and masked copies for tools that cannot use the
gateway (BI, notebooks). What a role may not read never enters its file."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from . import audit, catalog
from .gateway import access_audit_fields, checked_access, governed_request, governed_select
from .policy import Denied, Policy


def serving_path(data_dir: Path, role: str) -> Path:
    return data_dir / "serving" / f"{role}.duckdb"


def write_serving_file(
    conn, policy: Policy, role: str, out_path: Path, run_id: str
) -> dict[str, int]:
    """Write every table the role may read, governed, to `out_path` atomically; audit each."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    partial.unlink(missing_ok=True)
    written: dict[str, int] = {}

    def export(**fields) -> None:
        audit.append(
            conn.root,
            audit.AuditEvent(
                action="export", user_name="dagster", role=role, run_id=run_id, **fields
            ),
        )

    conn.execute(f"ATTACH '{partial}' AS serving_out")
    try:
        for table in catalog.ALL_TABLES:
            if not policy.may_read(role, table.fqn):
                continue
            try:
                access = checked_access(conn, policy, role, table, table.fqn)
            except Denied as denied:
                export(decision="deny", tables=table.fqn, reason=denied.reason)
                continue
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS serving_out.{table.layer}")
            conn.execute(
                f"CREATE TABLE serving_out.{table.fqn} AS "
                f"{governed_select(access, policy, site=None)}"
            )
            rows = conn.execute(f"SELECT count(*) FROM serving_out.{table.fqn}").fetchall()[0][0]
            written[table.fqn] = rows
            export(
                decision="allow",
                rows_returned=rows,
                reason=f"serving file for role {role}",
                **access_audit_fields((access,)),
            )
    finally:
        conn.execute("DETACH serving_out")
    os.replace(partial, out_path)
    return written


def export_serving_file(
    *, user: str, role: str, root: str, data_dir: Path, chunk_bytes: int, policy: Policy | None
) -> pa.Table:
    """The serving file written for `role`, to a user who holds the role, as binary chunks
    (audited as an export naming the tables it holds)."""

    def work(active: Policy, conn):  # the request's user holds the role (checked before)
        path = serving_path(data_dir, role)
        if not path.exists():
            raise Denied(f"no serving file for role {role} (materialize governance/serving_files)")
        data = path.read_bytes()
        chunks = [data[i : i + chunk_bytes] for i in range(0, len(data), chunk_bytes)]
        tables = sorted(t.fqn for t in catalog.ALL_TABLES if active.may_read(role, t.fqn))
        fields = {"tables": ",".join(tables), "rows_returned": len(chunks)}
        return pa.table({"chunk": pa.array(chunks, pa.binary())}), fields

    return governed_request(
        "export",
        f"serving_file role={role!r}",
        work,
        user=user,
        role=role,
        root=root,
        policy=policy,
    )
