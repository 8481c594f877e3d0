"""The pattern every governed table follows: declared schema and tags, stage → audit → publish."""

import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import dagster as dg

from multimodal_assets.lib.governance import audit, catalog
from multimodal_assets.lib.platform import config, ingest, quality, tables, warehouse
from multimodal_assets.lib.platform.tables import Table

from .deliveries import DELIVERIES
from .resources import OWNERS, LakehouseResource, PseudonymKey

# build(conn, run_id) stages the candidate rows and returns extra (non-PHI) metadata; a build
# that pseudonymizes takes the key too: build(conn, run_id, key).
Build = Callable[..., dict]
# A non-blocking check on a published table: its spec and how to evaluate it.
Monitor = tuple[dg.AssetCheckSpec, Callable[[warehouse.LakehouseConnection], dg.AssetCheckResult]]
# A blocking check on the staged rows (spec, evaluate(conn, staged table name)): when it fails,
# nothing is published.
Gate = tuple[dg.AssetCheckSpec, Callable[[warehouse.LakehouseConnection, str], dg.AssetCheckResult]]


def asset_key(table: Table) -> dg.AssetKey:
    return dg.AssetKey(list(table.asset_key))


def _tags(modality: str, layer: str, contains_phi: bool, restricted: bool) -> dict[str, str]:
    return {
        "modality": modality,
        "layer": layer,
        "contains_phi": "true" if contains_phi else "false",
        # Restricted: for the pipeline and privileged roles only (raw identified data, model
        # artifacts); governed: served to roles through the gateway's policy.
        "access": "restricted" if restricted else "governed",
    }


def asset_tags(table: Table) -> dict[str, str]:
    return _tags(table.modality, table.layer, table.contains_phi, table.restricted)


def file_asset_spec_kwargs(
    group: str,
    name: str,
    *,
    layer: str,
    kinds: set[str],
    restricted: bool,
    description: str | None = None,
    modality: str | None = None,
) -> dict:
    """The arguments every asset that is not a table shares (model artifacts, evaluation
    reports, serving files, maintenance): key `group/name`, group, owners and the tables' tags.
    None of them holds PHI: they carry research keys, figures or masked data."""
    return dict(
        key=dg.AssetKey([group, name]),
        group_name=group,
        kinds=kinds,
        owners=OWNERS,
        tags=_tags(modality or group, layer, False, restricted),
        description=description,
    )


def table_schema(table: Table) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=c.name,
                type=c.type,
                description=c.description,
                constraints=dg.TableColumnConstraints(
                    nullable=c.nullable, unique=(c.name,) == table.primary_key
                ),
                tags={"classification": c.classification, "regulatory": c.regulatory},
            )
            for c in table.columns
        ]
    )


def rule_monitor(table: Table, rule: tables.RuleCheck) -> Monitor:
    """A non-blocking check that passes when the rule's SQL (one count) returns 0."""

    def evaluate(conn) -> dg.AssetCheckResult:
        (count,) = conn.execute(rule.sql).fetchall()[0]
        return dg.AssetCheckResult(
            asset_key=asset_key(table),
            check_name=rule.name,
            passed=count == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"offending_rows": count},
        )

    spec = dg.AssetCheckSpec(rule.name, asset=asset_key(table), description=rule.description)
    return spec, evaluate


def sql_build(table: Table, select_sql: str) -> Build:
    """A build that stages one SQL query (with `$run_id` bound to the run)."""

    def build(conn, run_id: str) -> dict:
        warehouse.stage(conn, table, select_sql, {"run_id": run_id})
        return {}

    return build


def upstream_tables(table: Table, reads: Sequence[str] = ()) -> list[Table]:
    """The tables this one's hand-declared column lineage reads from, and the other tables its
    build reads (`reads`: fully qualified names, e.g. those its SQL reads)."""
    lineage = {fqn for deps in table.lineage.values() for fqn, _ in deps}
    return [catalog.table(fqn) for fqn in sorted((lineage | set(reads)) - {table.fqn})]


def column_lineage(lineage: dict) -> dg.TableColumnLineage:
    return dg.TableColumnLineage(
        deps_by_column={
            column: [
                dg.TableColumnDep(asset_key=asset_key(catalog.table(fqn)), column_name=name)
                for fqn, name in deps
            ]
            for column, deps in lineage.items()
        }
    )


def table_metadata(table: Table, *, derive_lineage: bool = False) -> dict:
    """Schema, name, key and column lineage. Lineage derived from SQL (~0.1 s a table with
    sqlglot) is attached to materializations only, to keep the code location's load fast."""
    meta = {
        "dagster/column_schema": table_schema(table),
        "dagster/table_name": table.fqn,
        "primary_key": ", ".join(table.primary_key) or "none",
    }
    lineage = catalog.column_lineage(table) if derive_lineage else table.lineage
    if lineage:
        meta["dagster/column_lineage"] = column_lineage(lineage)
    return meta


def record_materialization(
    root: str, table: Table, run_id: str, rows: int | None, published: bool, reason: str
) -> None:
    """One audit row per materialization attempt, published or refused."""
    audit.append(
        root,
        audit.AuditEvent(
            action="materialize",
            decision="allow" if published else "deny",
            user_name="dagster",
            role="pipeline",
            tables=table.fqn,
            rows_returned=rows,
            reason=reason,
            run_id=run_id,
        ),
    )


def asset_spec_kwargs(table: Table, kinds: set[str]) -> dict:
    """The arguments every table asset shares: key, group, description, owners, tags, schema."""
    return dict(
        key=asset_key(table),
        group_name=table.modality,
        description=table.description,
        kinds=kinds,
        owners=OWNERS,
        tags=asset_tags(table),
    )


def _check_result(table: Table, outcome: quality.CheckOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset_key(table),
        check_name=outcome.name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR if outcome.blocking else dg.AssetCheckSeverity.WARN,
        metadata=outcome.metadata,
    )


def governed_table_asset(
    table: Table,
    *,
    build: Build | None = None,
    reads: Sequence[Table] = (),
    pseudonymizes: bool = False,
    kinds: set[str] | None = None,
    freshness_policy: dg.FreshnessPolicy | None = None,
    extra_deps: Sequence[dg.AssetKey] = (),
    monitors: Sequence[Monitor] = (),
    gates: Sequence[Gate] = (),
) -> dg.AssetsDefinition:
    """A silver/gold asset that publishes only what passed its blocking checks (write-audit-publish).

    The build is the declaration's SQL (`table.build_sql`, whose tables read become the asset's
    deps, found by parsing it) or a Python `build` that reads the tables of its column lineage
    and `reads` (a Python build may stage the declaration's SQL and add metadata). A build that
    reads a lakehouse table it does not depend on fails: the graph would not order it after
    that table. `gates` are extra blocking checks on the staged rows (e.g. a PHI scan);
    `monitors` are non-blocking checks evaluated on the published table (e.g. drift), besides
    the declaration's own rule checks;
    `extra_deps` are assets that are not tables (a model, the landed pixels). A build that
    `pseudonymizes` is given the `pseudonym` resource's key as its third argument."""
    from multimodal_assets.lib.platform.sql_reads import tables_read

    if build is None and not table.build_sql:
        raise ValueError(f"{table.fqn}: declare its build SQL or give a Python build")
    sql_reads = tables_read(table.build_sql) if table.build_sql else frozenset()
    declared_reads = sorted({t.fqn for t in reads} | sql_reads)
    build = build or sql_build(table, table.build_sql)
    monitors = [*(rule_monitor(table, rule) for rule in table.checks), *monitors]
    upstream = upstream_tables(table, declared_reads)
    allowed = {t.fqn for t in upstream} | {table.fqn}
    if any(t.layer == "bronze" for t in upstream):
        # The registry is written by every bronze ingest with its records (registry last).
        allowed |= {ingest.FILES.fqn, ingest.QUARANTINE.fqn}
    rules = tables.expectations(table)
    check_specs = [
        dg.AssetCheckSpec(
            quality.CLASSIFIED_CHECK,
            asset=asset_key(table),
            blocking=True,
            description="Every column is declared with a classification tag.",
        ),
        *[
            dg.AssetCheckSpec(
                rule.check_name,
                asset=asset_key(table),
                blocking=rule.blocking,
                description=f"{quality.engine_of(rule)}: {rule.kind} on {rule.column}.",
            )
            for rule in rules
        ],
        *[spec for spec, _ in gates],
        *[spec for spec, _ in monitors],
    ]

    @dg.asset(
        **asset_spec_kwargs(table, kinds or {"duckdb", "python"}),
        deps=[*(asset_key(t) for t in upstream), *extra_deps],
        metadata=table_metadata(table),
        check_specs=check_specs,
        automation_condition=dg.AutomationCondition.eager(),
        freshness_policy=freshness_policy,
    )
    def _governed(
        context: dg.AssetExecutionContext, lakehouse: LakehouseResource, pseudonym: PseudonymKey
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        with lakehouse.get_connection() as conn:
            conn.recording_reads = True
            key = (pseudonym.value(),) if pseudonymizes else ()
            extra = build(conn, context.run_id, *key)
            conn.recording_reads = False
            undeclared = sorted(conn.reads - allowed)
            if undeclared:
                raise dg.Failure(
                    description=f"{table.fqn}: the build read {', '.join(undeclared)}, which "
                    "the asset does not depend on; declare it (reads=) so the graph orders them",
                    allow_retries=False,
                )
            staged = warehouse.staging_name(table)
            outcomes = quality.audit(conn, table, staged)
            gated = [evaluate(conn, staged) for _, evaluate in gates]
            blocked = [o.name for o in outcomes if o.blocking and not o.passed]
            blocked += [g.check_name for g in gated if not g.passed]
            rows = slices = None
            if not blocked and table.partition_column:
                slices = warehouse.publish_changed_slices(conn, table, staged)
                rows = warehouse.row_count(conn, table.fqn)
            elif not blocked:
                rows = warehouse.publish(conn, table, staged)
            conn.execute(f"DROP TABLE IF EXISTS {staged}")
            reason = (
                f"blocking checks failed: {', '.join(blocked)}"
                if blocked
                else "published after checks"
            )
            record_materialization(lakehouse.root, table, context.run_id, rows, not blocked, reason)
            monitored = [] if blocked else [evaluate(conn) for _, evaluate in monitors]
        check_results = [_check_result(table, o) for o in outcomes] + gated + monitored
        if blocked:
            yield from check_results
            raise dg.Failure(
                description=f"{table.fqn} was not published: {reason}; "
                "the previous version stays in place.",
                allow_retries=False,
            )
        yield dg.MaterializeResult(
            metadata={
                **table_metadata(table, derive_lineage=True),
                "dagster/row_count": rows,
                **({"slices_republished": slices} if slices is not None else {}),
                **extra,
            },
            check_results=check_results,
        )

    return _governed


def _ingest_landing(
    context,
    lakehouse,
    modality: str,
    parse,
    tables: list[Table],
    observe=None,
    with_path=False,
    workers=1,
    batches=None,
    isolated=False,
    landed=None,
):
    """Ingest new files of landing/<modality> (of the given delivery batches, or all; or the
    `landed` files given, scanned already) into `tables`; (summary, row totals per table,
    observed metadata, check results)."""
    if landed is None:
        landed = _new_landed_files(lakehouse, modality, batches)
    with lakehouse.get_connection() as conn:
        summary = ingest.ingest(
            conn,
            modality,
            landed,
            parse,
            tables,
            context.run_id,
            with_path=with_path,
            workers=workers,
            isolated=isolated,
        )
        totals = {t.fqn: warehouse.row_count(conn, t.fqn) for t in tables}
        for table in tables:
            record_materialization(
                lakehouse.root,
                table,
                context.run_id,
                summary.records,
                True,
                "appended new landed files",
            )
        observed, check_results = observe(conn, context.run_id) if observe else ({}, [])
    context.log.info(
        f"{modality} landing: {summary.new_files} new files, {summary.ingested} "
        f"ingested, {summary.quarantined} quarantined, {summary.duplicates} duplicates"
    )
    metadata = {"unregistered_landed_files": len(landed), **summary.as_metadata()}
    return metadata, totals, observed, check_results


def _new_landed_files(lakehouse, modality: str, batches) -> list:
    """Landed files of the modality (of those delivery batches, or all) the registry does not
    hold: left out here cheaply, by path; the ingest checks again under the modality's lease."""
    registered = ingest.registered_paths(lakehouse.root, modality)
    return ingest.scan_landing(config.landing_dir(), modality, batches, registered)


def _parse_on_spark(context, landed: list, parse, staging: Path):
    """Parse the `landed` files (hashed already) with `parse` in a Spark job launched through
    Dagster Pipes (`multimodal_assets.spark.parse_files`); (a parse that returns those staged
    rows, the job's reported figures)."""
    import json
    import sys

    landed = [f for f in landed if not f.refusal]
    completed = dg.PipesSubprocessClient().run(
        command=[sys.executable, "-m", "multimodal_assets.spark.parse_files"],
        context=context,
        extras={
            "files": [[str(f.absolute), f.sha256] for f in landed],
            "parser": f"{parse.__module__}:{parse.__name__}",
            "staging": str(staging),
            "master": config.spark_master(),
        },
    )
    figures = {"parse_engine": f"spark ({config.spark_master()})"}
    for message in completed.get_custom_messages():
        figures.update(message)
    outcomes = json.loads((staging / "outcomes.json").read_text())
    staged = {sha: ingest.staged_from_json(doc) for sha, doc in outcomes.items()}
    return ingest.ParsedElsewhere(staged), figures


def bronze_ingest_multi_asset(
    name: str,
    tables: list[Table],
    parse: Callable[[bytes, Path], dict],
    *,
    kinds: set[str],
) -> dg.AssetsDefinition:
    """Landing → several bronze tables filled from the same files (e.g. VCF sites and calls),
    partitioned by delivery; `parse(bytes, path)` also sees the path, for formats that span
    files of one batch (PLINK). Files are parsed in `config.ingest_workers()` worker processes
    (at least one: the native readers run isolated from the run's process); a run over several
    deliveries is one run."""
    specs = [
        dg.AssetSpec(**asset_spec_kwargs(table, kinds), metadata=table_metadata(table))
        for table in tables
    ]

    @dg.multi_asset(
        name=name,
        specs=specs,
        partitions_def=DELIVERIES,
        # One run over every selected delivery: the ingest is incremental, and one run per
        # delivery would repeat the per-run costs (registry scan, lease, commit) per week.
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def _bronze(context: dg.AssetExecutionContext, lakehouse: LakehouseResource):
        """Parse the new files of the run's delivery batches once into every table they feed;
        bad files are quarantined."""
        landed = _new_landed_files(lakehouse, tables[0].modality, context.partition_keys)
        with tempfile.TemporaryDirectory() as staging:
            if config.parse_engine() == "spark":
                # Hashed once here: the ingest that commits the staged rows reuses the hashes.
                landed = [f.hashed() for f in landed]
                parsed, engine = _parse_on_spark(context, landed, parse, Path(staging))
                workers, isolated = 1, False  # the rows are parsed already: read them back
            else:
                # htslib, bed-reader and bgen are native: a crash must cost one file, not the run.
                parsed, engine, workers, isolated = parse, {}, config.ingest_workers(), True
            summary, totals, _, _ = _ingest_landing(
                context,
                lakehouse,
                tables[0].modality,
                parsed,
                tables,
                with_path=True,
                workers=workers,
                batches=context.partition_keys,
                isolated=isolated,
                landed=landed,
            )
        for table in tables:
            yield dg.MaterializeResult(
                asset_key=asset_key(table),
                metadata={
                    **table_metadata(table),
                    "dagster/row_count": totals[table.fqn],
                    **summary,
                    **engine,
                },
            )

    return _bronze


# observe(conn, run_id) -> (metadata, check results) after an ingest, for modality-specific
# reporting such as schema changes.
Observe = Callable[[warehouse.LakehouseConnection, str], tuple[dict, list[dg.AssetCheckResult]]]


def bronze_ingest_asset(
    table: Table,
    parse: Callable[[bytes], list[dict]],
    *,
    kinds: set[str],
    check_specs: list[dg.AssetCheckSpec] | None = None,
    observe: Observe | None = None,
) -> dg.AssetsDefinition:
    """Landing → bronze for one modality, partitioned by delivery: the new files of the run's
    deliveries parsed and appended, bad ones quarantined."""

    @dg.asset(
        **asset_spec_kwargs(table, kinds),
        metadata=table_metadata(table),
        check_specs=check_specs or [],
        partitions_def=DELIVERIES,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def _bronze(context: dg.AssetExecutionContext, lakehouse: LakehouseResource):
        summary, totals, observed, check_results = _ingest_landing(
            context,
            lakehouse,
            table.modality,
            parse,
            [table],
            observe,
            batches=context.partition_keys,
        )
        return dg.MaterializeResult(
            metadata={
                **table_metadata(table, derive_lineage=True),
                "dagster/row_count": totals[table.fqn],
                **summary,
                **observed,
            },
            check_results=check_results,
        )

    return _bronze
