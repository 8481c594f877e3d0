"""Model assets: the reproducible training set, the fusion models behind a not-worse publish gate,
their evaluation report, and the production scores with a drift monitor; plus the nightly
scoring and weekly retraining schedules and the sensors that alert on failed checks and
request retraining on drift errors."""

import json
from importlib.metadata import version

import dagster as dg

from multimodal_assets.lib import clinical
from multimodal_assets.lib.governance import catalog
from multimodal_assets.lib.governance.pseudonym import research_key
from multimodal_assets.lib.ml import evaluation, fusion, model_registry, scoring, training
from multimodal_assets.lib.ml import report as evaluation_report
from multimodal_assets.lib.platform import config, warehouse

from .governed import asset_key, file_asset_spec_kwargs, governed_table_asset
from .resources import LakehouseResource, PseudonymKey

SEED = 20261128
_NOT_WORSE = "not_worse_than_current"
_NO_LEAKAGE = "no_feature_after_index_date"
_DRIFT = "scoring_population_drift"


def registry() -> model_registry.ModelRegistry:
    """The model registry under <MM_DATA_DIR>/ml (read when asked: tests move MM_DATA_DIR)."""
    return model_registry.ModelRegistry(config.data_dir() / "ml")


def _code_version() -> str:
    return version("multimodal_assets")


@dg.asset(
    **file_asset_spec_kwargs(
        "models", "training_set", layer="ml", kinds={"parquet"}, restricted=True, modality="fusion"
    ),
    deps=[asset_key(catalog.PATIENT_FEATURES), asset_key(clinical.CLINICAL_OUTCOMES)],
    check_specs=[
        dg.AssetCheckSpec(
            _NO_LEAKAGE,
            asset=["models", "training_set"],
            blocking=True,
            description="No feature used data dated after the patient's index date (every "
            "modality declares <modality>_data_through; one that does not cannot be verified).",
        )
    ],
    automation_condition=dg.AutomationCondition.eager(),
)
def training_set(lakehouse: LakehouseResource) -> dg.MaterializeResult:
    """Immutable snapshot of fused features and labels, split by a hash of the research key."""
    with lakehouse.get_connection() as conn:
        leaked = conn.sql(fusion.leakage_sql(catalog.PATIENT_FEATURES)).to_arrow_table()
        leaked = {name: leaked.column(name)[0].as_py() for name in leaked.column_names}
        snapshot = training.build_training_set(
            conn, registry().training_sets, _code_version(), SEED
        )
    clean = all(count == 0 for count in leaked.values())
    if clean:  # a snapshot with leakage is written (its bytes are evidence) but never used
        registry().mark_latest_training_set(snapshot.version)
    counts = snapshot.manifest["counts"]
    return dg.MaterializeResult(
        metadata={
            "version": snapshot.version,
            "dagster/row_count": sum(counts.values()),
            **{f"rows_{k}": v for k, v in counts.items()},
            **{f"label_rate_{k}": v for k, v in snapshot.manifest["label_rate"].items()},
            "features": ", ".join(
                c for cols in snapshot.manifest["features"].values() for c in cols
            ),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=_NO_LEAKAGE,
                passed=clean,
                metadata={f"rows_after_index_{m}": n for m, n in leaked.items()},
            )
        ],
    )


@dg.asset(
    **file_asset_spec_kwargs(
        "models",
        "risk_models",
        layer="ml",
        kinds={"lightgbm", "python"},
        restricted=True,
        modality="fusion",
    ),
    deps=[training_set],
    check_specs=[
        # Not blocking: a refused version is simply not published, and everything downstream
        # (scores, serving files, the column catalog, the audit check) goes on with the current
        # one. As a blocking check it skipped them all, and a researcher's serving file kept a
        # patient whose consent had been withdrawn.
        dg.AssetCheckSpec(
            _NOT_WORSE,
            asset=["models", "risk_models"],
            description="A new version is published only if its late-fusion AUROC on the frozen "
            f"evaluation cohort is not below the current one's by more than "
            f"{model_registry.NOT_WORSE_TOLERANCE}; a refused one leaves the current one in use.",
        )
    ],
    automation_condition=dg.AutomationCondition.eager(),
)
def risk_models(context: dg.AssetExecutionContext):
    """Per-modality models and four fusion strategies, published behind a not-worse gate."""
    from multimodal_assets.lib.ml import fusion_models

    training_version, rows = registry().latest_training_set()
    models = fusion_models.fit(rows, SEED)
    if models is None:
        yield dg.MaterializeResult(
            metadata={"training_set": training_version, "modalities": "none"},
            check_results=[
                dg.AssetCheckResult(  # a warning: nothing new is published, nothing is blocked
                    check_name=_NOT_WORSE,
                    passed=False,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"reason": "too few labelled patients to train any model"},
                )
            ],
        )
        return
    model_version = model_registry.model_version(training_version, _code_version(), SEED)
    test = rows[rows.split == "test"]
    predicted = models.predict(test)
    y = test[training.LABEL].to_numpy(dtype=bool)
    test_metrics = {
        name: training.metrics(y, predicted[name].to_numpy())
        for name in (*fusion_models.STRATEGIES, "best_single")
    }
    registry().save_models(
        models,
        model_version,
        {
            "training_set": training_version,
            "code_version": _code_version(),
            "seed": SEED,
            "modalities": models.modalities,
            "test_metrics": test_metrics,
        },
    )
    incumbent = registry().current()
    gate = model_registry.compare_on_frozen_cohort(
        models,
        registry().load_models(incumbent["version"]) if incumbent else None,
        rows,
        registry().frozen_cohort(rows),
    )
    if gate["passed"]:
        registry().publish(model_version, training_version, gate["candidate_auroc"])
    context.log.info(
        f"model {model_version} on training set {training_version}: "
        f"{'published' if gate['passed'] else 'refused, the current version stays'}"
    )
    metadata = {
        "model_version": model_version,
        "training_set": training_version,
        "modalities": ", ".join(models.modalities),
        "modality_models": ", ".join(f"{m}: {k}" for m, k in models.model_kinds.items()),
        "published": gate["passed"],
    }
    for name, values in test_metrics.items():
        metadata.update({f"test_{name}_{k}": v for k, v in values.items() if v is not None})
    yield dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name=_NOT_WORSE,
                passed=gate["passed"],
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "frozen_cohort_patients": gate["patients"],
                    "candidate_auroc": gate["candidate_auroc"],
                    "current_auroc": gate["current_auroc"]
                    if gate["current_auroc"] is not None
                    else "no current model",
                    "current_version": incumbent["version"] if incumbent else "none",
                },
            )
        ],
    )


@dg.asset(
    **file_asset_spec_kwargs(
        "models", "evaluation", layer="ml", kinds={"python"}, restricted=False, modality="fusion"
    ),
    deps=[risk_models],
    automation_condition=dg.AutomationCondition.eager(),
)
def model_evaluation(
    context: dg.AssetExecutionContext, pseudonym: PseudonymKey
) -> dg.MaterializeResult:
    """Evaluation report of the published model, with plots, under data/reports/models."""
    import pandas as pd

    published = registry().current()
    if published is None:
        return dg.MaterializeResult(metadata={"model_version": "none published yet"})
    rows = registry().training_rows(published["training_set"])
    truth = None
    truth_file = config.truth_dir() / "patients.parquet"
    if truth_file.exists():  # only synthetic cohorts have a ceiling to compare with
        truth = pd.read_parquet(truth_file)
        truth = truth[["mrn", "true_probability", *truth.filter(like="true_logit_").columns]]
        key = pseudonym.value()
        truth["research_key"] = [research_key(mrn, key) for mrn in truth.mrn]
        truth = truth.drop(columns="mrn")
    from multimodal_assets.lib.ml import fusion_models

    # The comparison the evaluation reports: the same rows, trained with modality dropout.
    dropout_models = fusion_models.fit(rows, SEED, dropout=evaluation.TRAINING_DROPOUT)
    result = evaluation.evaluate(
        registry().load_models(published["version"]), rows, SEED, truth, dropout_models
    )
    folder = config.data_dir() / "reports" / "models" / published["version"]
    report_text = evaluation_report.write_report(
        result,
        folder,
        {
            "model version": published["version"],
            "training set": published["training_set"],
            "published at": published["published_at"],
        },
    )
    context.log.info(f"evaluation report written to {folder / 'report.md'}")
    numbers = {
        k: v for k, v in result.summary.items() if isinstance(v, (int, float)) and v is not None
    }
    gap = result.summary["largest_subgroup_gap"]
    if gap:
        numbers.update(
            {
                "largest_subgroup_gap": gap["gap"],
                "largest_subgroup_gap_ci_low": gap["ci_low"],
                "largest_subgroup_gap_ci_high": gap["ci_high"],
                "largest_subgroup_gap_attribute": gap["attribute"],
            }
        )
    return dg.MaterializeResult(
        metadata={
            "model_version": published["version"],
            "report": dg.MetadataValue.md(report_text),
            "report_path": dg.MetadataValue.path(str(folder / "report.md")),
            **{k: v for k, v in numbers.items() if v is not None},
        }
    )


def _score(conn, run_id: str) -> dict:
    published = registry().current()
    if published is None:  # nothing to score with yet: an empty, declared table
        warehouse.stage_rows(conn, catalog.RISK_SCORES, [])
        return {"model_version": "none published yet"}
    rows = training.as_model_frame(conn.sql(training.features_sql()).df())
    scores = scoring.score_frame(
        registry().load_models(published["version"]),
        rows,
        catalog.RISK_SCORES,
        published["version"],
        published["training_set"],
    )
    scores["_run_id"] = run_id
    conn.register("_scores", scores)
    try:
        staged = warehouse.staging_name(catalog.RISK_SCORES)
        conn.execute(f"CREATE OR REPLACE TABLE {staged} AS SELECT * FROM _scores")
    finally:
        conn.unregister("_scores")
    return {"model_version": published["version"]}


def _drift_check(conn) -> dg.AssetCheckResult:
    """Population drift of the newest scored patients against the model's training patients."""
    published = registry().current()
    if published is None:
        return dg.AssetCheckResult(
            asset_key=asset_key(catalog.RISK_SCORES),
            check_name=_DRIFT,
            passed=True,
            metadata={"status": "not assessed: no published model"},
        )
    models = registry().load_models(published["version"])
    reference, current = scoring.drift_populations(
        conn.sql("SELECT research_key, index_date FROM gold.patient_features").df(),
        registry().training_rows(published["training_set"]),
        training.as_model_frame(conn.sql(training.features_sql()).df()),
    )
    report = scoring.population_drift(models, reference, current)
    base = {
        "model_version": published["version"],
        "reference_patients": len(reference),
        "current_patients": len(current),
        "window_days": scoring.WINDOW_DAYS,
    }
    key = asset_key(catalog.RISK_SCORES)
    if report is None:
        return dg.AssetCheckResult(
            asset_key=key,
            check_name=_DRIFT,
            passed=True,
            metadata={**base, "status": "not assessed: too few patients on one side"},
        )
    severity = (
        dg.AssetCheckSeverity.ERROR if report.status == "error" else dg.AssetCheckSeverity.WARN
    )
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=_DRIFT,
        passed=report.status == "ok",
        severity=severity,
        metadata={
            **base,
            "status": report.status,
            "worst_psi": report.worst_psi,
            "flagged": ", ".join(report.flagged()) or "none",
            **{f"psi_{name}": v["psi"] for name, v in report.items.items()},
            **{f"ks_{name}": v["ks"] for name, v in report.items.items() if v["ks"] is not None},
        },
    )


risk_scores = governed_table_asset(
    catalog.RISK_SCORES,
    build=_score,
    kinds={"duckdb", "lightgbm"},
    extra_deps=[risk_models.key],
    monitors=[
        (
            dg.AssetCheckSpec(
                _DRIFT,
                asset=asset_key(catalog.RISK_SCORES),
                description="PSI/KS of availability flags, inputs and predictions: newest "
                f"{scoring.WINDOW_DAYS} days of patients against the model's training patients "
                "(WARN ≥ 0.1, ERROR ≥ 0.25, when significant).",
            ),
            _drift_check,
        )
    ],
)

assets = [training_set, risk_models, model_evaluation, risk_scores]

nightly_scoring = dg.ScheduleDefinition(
    name="nightly_scoring_and_drift",
    cron_schedule="0 2 * * *",
    target=dg.AssetSelection.assets(risk_scores),
    description="Rescore every cohort patient with the published model and check drift.",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
weekly_retraining = dg.ScheduleDefinition(
    name="weekly_retraining",
    cron_schedule="0 3 * * 0",
    target=dg.AssetSelection.assets(*assets),
    description="Rebuild the training snapshot, retrain, evaluate and publish if not worse.",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
schedules = [nightly_scoring, weekly_retraining]


def _failed_checks(instance, check_keys, after_id: int):
    """Latest failed evaluations newer than `after_id`: (record id, key, severity, metadata)."""
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(list(check_keys))
    failed = []
    for key, record in latest.items():
        if record.id <= after_id or record.event is None or record.event.dagster_event is None:
            continue
        evaluation_ = record.event.dagster_event.event_specific_data
        if getattr(evaluation_, "passed", True):
            continue
        failed.append((record.id, key, evaluation_.severity, record.run_id))
    return sorted(failed, key=lambda f: f[0])


@dg.sensor(
    name="failed_check_alert_sensor",
    description="Alerts on every newly failed asset check (written to data/alerts/checks.jsonl "
    "and the sensor log): check key, severity and run, never data values.",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def failed_check_alert_sensor(context: dg.SensorEvaluationContext):
    after = int(context.cursor or 0)
    failed = _failed_checks(
        context.instance, context.repository_def.asset_graph.asset_check_keys, after
    )
    if not failed:
        return dg.SkipReason("no newly failed checks")
    folder = config.data_dir() / "alerts"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "checks.jsonl").open("a") as log:
        for record_id, key, severity, run_id in failed:
            alert = {
                "check": key.to_user_string(),
                "severity": severity.value,
                "run_id": run_id,
                "record_id": record_id,
            }
            log.write(json.dumps(alert) + "\n")
            context.log.warning(f"asset check failed: {alert}")
    context.update_cursor(str(failed[-1][0]))
    return dg.SkipReason(f"alerted on {len(failed)} failed checks")


@dg.sensor(
    name="drift_retraining_sensor",
    description="Requests retraining (snapshot, models, evaluation, scores) when the scoring "
    "population's drift check fails with severity ERROR after the sensor started watching.",
    asset_selection=dg.AssetSelection.assets(*assets),
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def drift_retraining_sensor(context: dg.SensorEvaluationContext):
    drift_key = dg.AssetCheckKey(asset_key(catalog.RISK_SCORES), _DRIFT)
    if context.cursor is None:
        # First tick (e.g. the UI opened after the main job): drift found before the sensor ran
        # was reported by the run that found it and by the failed-check alert; retraining on it
        # is a user's decision or the weekly schedule's, not a side effect of opening the UI.
        latest = _failed_checks(context.instance, [drift_key], 0)
        context.update_cursor(str(latest[-1][0] if latest else 0))
        return dg.SkipReason("watching drift evaluations from now on")
    errors = [
        f
        for f in _failed_checks(context.instance, [drift_key], int(context.cursor))
        if f[2] == dg.AssetCheckSeverity.ERROR
    ]
    if not errors:
        return dg.SkipReason("no new drift error")
    record_id = errors[-1][0]
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"drift-retraining-{record_id}", tags={"retraining/reason": "drift"}
            )
        ],
        cursor=str(record_id),
    )


sensors = [failed_check_alert_sensor, drift_retraining_sensor]
