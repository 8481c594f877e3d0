"""Training snapshots, fusion strategies, the publish gate, scores, evaluation and the drift
sensors: reproducible, leak-free, and working for any availability pattern."""

import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from multimodal_assets.definitions import defs
from multimodal_assets.defs import models as model_defs
from multimodal_assets.lib.governance import catalog
from multimodal_assets.lib.ml import (
    evaluation,
    fusion,
    fusion_models,
    model_registry,
    scoring,
    training,
)


def _snapshot(pipeline):
    version = (pipeline.data_dir / "ml" / "training_sets" / "LATEST").read_text().strip()
    folder = pipeline.data_dir / "ml" / "training_sets" / version
    return folder, pd.read_parquet(folder / "rows.parquet")


@pytest.fixture(scope="module")
def fitted(pipeline):
    """All strategies on the test cohort, letting each modality train from a few patients."""
    _, rows = _snapshot(pipeline)
    return rows, fusion_models.fit(rows, seed=3, min_patients=5)


def test_training_set_is_split_by_patient_and_rebuilds_byte_identically(pipeline, tmp_path):
    folder, rows = _snapshot(pipeline)
    assert rows.research_key.is_unique
    assert set(rows.split) == {"train", "validation", "test"}
    assert all(
        training.split_of(k) == s for k, s in zip(rows.research_key, rows.split, strict=True)
    )
    with pipeline.connect() as conn:
        again = training.build_training_set(conn, tmp_path, "same-code", 1)
    assert again.version == folder.name
    assert again.path.read_bytes() == (folder / "rows.parquet").read_bytes()


def test_no_identifier_or_date_is_a_predictor():
    features = [c for cols in training.modality_features().values() for c in cols]
    fused = catalog.PATIENT_FEATURES
    assert features and "race" not in features and "index_date" not in features
    assert all(fused.column(c).classification != "phi" for c in features)
    assert set(training.modality_features()) == {
        "clinical",
        "genomics",
        "imaging",
        "notes",
        "wearables",
    }


def test_every_strategy_scores_every_patient_whatever_is_missing(fitted):
    rows, models = fitted
    assert models.modalities == ["clinical", "genomics", "imaging", "notes", "wearables"]
    for share in (0.0, 0.5, 1.0):
        masked = fusion_models.without_modalities(
            rows, ["wearables"], share, np.random.default_rng(0)
        )
        kept = masked.has_wearables.sum()
        assert kept == rows.has_wearables.sum() - round(share * rows.has_wearables.sum())
        assert masked.loc[~masked.has_wearables, "steps_mean_28d"].isna().all()
        predicted = models.predict(masked)
        for strategy in (*fusion_models.STRATEGIES, "best_single"):
            p = predicted[strategy].to_numpy()
            assert np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all(), (strategy, share)
        assert predicted.p_wearables[~masked.has_wearables].isna().all()


def test_modality_dropout_trains_the_combiners_on_rows_with_modalities_removed(fitted):
    rows, models = fitted
    again = fusion_models.fit(rows, seed=3, min_patients=5, dropout=0.0)
    test = rows[rows.split == "test"]
    # Without dropout the fit is the same fit; with it, per-modality models are untouched and
    # only the combiners change.
    pd.testing.assert_frame_equal(again.predict(test), models.predict(test))
    dropped = fusion_models.fit(rows, seed=3, min_patients=5, dropout=0.5)
    a, b = models.predict(test), dropped.predict(test)
    assert np.allclose(a.p_genomics, b.p_genomics, equal_nan=True)
    assert not np.allclose(a.late_fusion, b.late_fusion)


def test_each_modality_keeps_the_model_that_ranks_held_out_patients_better():
    rng = np.random.default_rng(0)

    def cohort(n, interaction):
        x = pd.DataFrame(rng.integers(0, 2, size=(n, 8)).astype(float), columns=list("abcdefgh"))
        logit = 4.0 * (x.a != x.b) - 2 if interaction else 0.5 * x.a - 0.5 * x.b + 0.3 * x.c
        return x, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)

    for interaction, expected in ((False, "logistic"), (True, "lightgbm")):
        (train, y_train), (check, y_check) = cohort(3000, interaction), cohort(3000, interaction)
        model, kind = fusion_models._modality_model(train, y_train, check, y_check, seed=1)
        assert kind == expected
    portable = (
        model.portable()
        if kind == "logistic"
        else fusion_models.RegularizedLogistic().fit(train, y_train).portable()
    )
    assert len(portable["coefficients"]) == len(portable["inputs"]) > 0


def test_late_fusion_is_a_sum_of_per_modality_contributions(fitted):
    rows, models = fitted
    baseline, contributions = models.late_contributions(rows)
    assert np.allclose(
        1 / (1 + np.exp(-(baseline + contributions.sum(axis=1)))),
        models.predict(rows).late_fusion,
    )
    without = ~rows.has_wearables.to_numpy()
    assert (contributions[without, models.modalities.index("wearables")] == 0).all()
    weights = models.attention_weights(rows)
    assert np.allclose(weights.sum(axis=1), 1)
    assert (weights[without, models.modalities.index("wearables")] == 0).all()


def test_metrics_match_scikit_learn_and_calibration_bins_cover_everyone():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.random(200) < 0.4
    p = np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1).round(2)  # ties included
    assert training.auroc(y, p) == pytest.approx(roc_auc_score(y, p))
    assert training.auroc(np.ones(5, bool), p[:5]) is None
    bins = training.calibration_bins(y.astype(int), p)
    assert sum(b["n"] for b in bins) == 200
    assert 0 <= training.expected_calibration_error(y.astype(int), p) <= 1


def test_the_publish_gate_refuses_a_worse_model(fitted):
    rows, models = fitted

    class Inverted:  # a candidate that ranks patients backwards
        def predict(self, frame):
            return 1 - models.predict(frame)

    keys = list(rows.research_key)
    good = model_registry.compare_on_frozen_cohort(models, None, rows, keys)
    assert good["passed"] and good["current_auroc"] is None
    worse = model_registry.compare_on_frozen_cohort(Inverted(), models, rows, keys)
    assert worse["candidate_auroc"] < worse["current_auroc"] - model_registry.NOT_WORSE_TOLERANCE
    assert not worse["passed"]
    same = model_registry.compare_on_frozen_cohort(models, models, rows, keys)
    assert same["passed"]


def test_models_are_published_and_the_gate_holds_back_nothing_downstream(pipeline):
    metadata = pipeline.metadata("models/risk_models")
    current = json.loads((pipeline.data_dir / "ml" / "models" / "current.json").read_text())
    assert metadata["published"] is True
    assert current["version"] == metadata["model_version"]
    folder = pipeline.data_dir / "ml" / "models" / current["version"]
    # A portable copy of each modality's model: LightGBM's text dump or the logistic's numbers.
    assert {p.stem for p in folder.glob("*.txt")} | {p.stem for p in folder.glob("*.json")} >= {
        *metadata["modalities"].split(", ")
    }
    assert (folder / "bundle.pkl").exists()
    gate = pipeline.check("not_worse_than_current")
    assert gate.passed
    risk_models = defs.resolve_asset_graph().get(dg.AssetKey(["models", "risk_models"]))
    (spec,) = [s for s in risk_models.assets_def.check_specs if s.name == gate.check_name]
    # A worse candidate is not published (the registry keeps the current one); the check does
    # not block, so scores, serving files and the audit check go on with the current version.
    assert not spec.blocking
    frozen = json.loads((pipeline.data_dir / "ml" / "evaluation_cohort.json").read_text())
    _, rows = _snapshot(pipeline)
    assert set(frozen["research_keys"]) == set(rows.research_key[rows.split == "test"])


def test_risk_scores_cover_the_cohort_with_contributions_that_add_up(pipeline):
    with pipeline.connect() as conn:
        scores = conn.sql("FROM gold.risk_scores").df()
        cohort = conn.sql("SELECT research_key, has_wearables FROM gold.patient_features").df()
    assert len(scores) == len(cohort) and set(scores.research_key) == set(cohort.research_key)
    assert set(scores.strategy) == {"late_fusion"}
    logit = scores.baseline_logit + scores.filter(like="contribution_").fillna(0).sum(axis=1)
    assert np.allclose(1 / (1 + np.exp(-logit)), scores.risk_score)
    merged = scores.merge(cohort, on="research_key")
    assert (merged.modalities_used.str.contains("wearables") == merged.has_wearables).all()
    assert catalog.RISK_SCORES.column("risk_score").classification == "sensitive"


def test_evaluation_report_is_written_with_plots_and_the_oracle(pipeline):
    metadata = pipeline.metadata("models/evaluation")
    folder = pipeline.data_dir / "reports" / "models" / metadata["model_version"]
    report = (folder / "report.md").read_text()
    assert "## Degradation" in report and "## Subgroups" in report
    assert (folder / "roc_calibration.png").stat().st_size > 1000
    assert "data:image/png;base64," in metadata["report"]
    assert 0.5 <= metadata["auroc_oracle"] <= 1.0
    # No research key (or any other identifier) is written into the report.
    _, rows = _snapshot(pipeline)
    assert not any(key in report or key in metadata["report"] for key in rows.research_key)


def test_evaluation_measures_degradation_subgroups_and_targets(fitted):
    rows, models = fitted
    truth = pd.DataFrame({"research_key": rows.research_key, "true_probability": rows.label * 0.8})
    result = evaluation.evaluate(models, rows, seed=1, truth=truth)
    shares = {(r["removed"], r["share"]) for r in result.degradation}
    removed = ("genomics", "imaging", "notes", "wearables", evaluation.ALL_OPTIONAL)
    assert shares == {(m, s) for m in removed for s in evaluation.SHARES}
    full = next(
        r
        for r in result.degradation
        if r["model"] == "late_fusion" and r["share"] == 0 and r["removed"] == "wearables"
    )
    assert full["auroc"] == pytest.approx(result.summary["auroc_late_fusion"])
    assert result.summary["auroc_oracle"] == 1.0  # the planted truth separates perfectly
    assert {r["attribute"] for r in result.subgroups} == set(evaluation.SUBGROUPS.values())
    assert set(result.contributions) == {"clinical", "genomics", "imaging", "notes", "wearables"}
    weights = result.summary["mean_attention_weight"]
    assert all(0 < w <= 1 for w in weights.values() if w is not None)


def test_every_metric_carries_an_interval_and_rankings_need_one(fitted):
    rows, models = fitted
    truth = pd.DataFrame(
        {
            "research_key": rows.research_key,
            "true_probability": rows.label * 0.8,
            "true_logit_clinical": rows.label.astype(float),  # a term that tells everything
        }
    )
    dropped = fusion_models.fit(rows, seed=3, min_patients=5, dropout=evaluation.TRAINING_DROPOUT)
    result = evaluation.evaluate(models, rows, seed=1, truth=truth, dropout_models=dropped)
    assert {(r["training"], r["share"], r["model"]) for r in result.dropout} == {
        (t, s, m)
        for t in ("none", "dropout 30%")
        for s in evaluation.SHARES
        for m in evaluation.DROPOUT_COMPARED
    }
    (clinical,) = result.signal  # the only modality the truth gives a term here
    assert clinical["modality"] == "clinical" and clinical["auroc_true_term"] == 1.0
    assert clinical["n"] == int((rows.split == "test").sum())
    assert clinical["share_captured"] == pytest.approx((clinical["auroc_our_model"] - 0.5) / 0.5)
    for row in result.strategies:
        for metric in evaluation.INTERVAL_METRICS:
            if row[metric] is not None:
                assert row[f"{metric}_ci_low"] <= row[metric] <= row[f"{metric}_ci_high"], row
    versus = {d["model"]: d for d in result.differences}
    assert set(versus) == {*evaluation.COMPARED, "oracle", "p_clinical"} - {"late_fusion"}
    oracle = versus["oracle"]  # the truth separates perfectly: the gap is 1 - late fusion's AUROC
    assert oracle["difference"] == pytest.approx(1.0 - result.summary["auroc_late_fusion"])
    assert oracle["ci_low"] <= oracle["difference"] <= oracle["ci_high"]
    assert result.summary["late_fusion_gap_to_oracle_ci_low"] == oracle["ci_low"]
    assert result.summary["strategy_for_production"] in evaluation.COMPARED
    # The test cohort is small: no availability pattern reaches the size needed to rank it.
    assert result.patterns and all(
        r["ranked"] == (r["n"] >= evaluation.MIN_PATTERN and 0 < r["events"] < r["n"])
        for r in result.patterns
    )
    assert all(
        r["auroc_ci_low"] <= r["auroc_ci_high"]
        for r in result.degradation
        if r["auroc_ci_low"] is not None
    )


def test_drift_monitor_is_quiet_on_the_same_population_and_fires_on_an_availability_shift(
    fitted,
):
    rows, models = fitted
    both = pd.concat([rows] * 6, ignore_index=True)  # enough patients to assess
    assert scoring.population_drift(models, both, both).status == "ok"
    # The same kind of patients, but 90% of them now wear a device.
    wearers, others = both[both.has_wearables], both[~both.has_wearables]
    shifted = pd.concat(
        [
            wearers.sample(round(0.9 * len(both)), replace=True, random_state=0),
            others.sample(round(0.1 * len(both)), random_state=0),
        ]
    )
    report = scoring.population_drift(models, both, shifted)
    assert report.status == "error" and "has_wearables" in report.flagged()
    assert scoring.population_drift(models, both.head(5), shifted) is None


def test_drift_check_runs_with_the_scores(pipeline):
    check = pipeline.check("scoring_population_drift")
    metadata = {k: v.value for k, v in check.metadata.items()}
    assert metadata["window_days"] == scoring.WINDOW_DAYS
    assert metadata["reference_patients"] >= 0 and metadata["current_patients"] >= 0


def _report_drift(instance, passed: bool, severity):
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey(["gold", "risk_scores"]),
            check_name="scoring_population_drift",
            passed=passed,
            severity=severity,
            metadata={"status": "test"},
        )
    )


def test_a_drift_error_requests_retraining_once_and_a_warning_does_not():
    instance = dg.DagsterInstance.ephemeral()
    sensor = model_defs.drift_retraining_sensor
    # A drift error found before the sensor first ran (the main job's) starts nothing.
    _report_drift(instance, False, dg.AssetCheckSeverity.ERROR)
    first = dg.build_sensor_context(instance=instance)
    assert isinstance(sensor(first), dg.SkipReason)
    _report_drift(instance, False, dg.AssetCheckSeverity.WARN)
    warned = dg.build_sensor_context(instance=instance, cursor=first.cursor)
    assert isinstance(sensor(warned), dg.SkipReason)
    _report_drift(instance, False, dg.AssetCheckSeverity.ERROR)
    result = sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    (request,) = result.run_requests
    assert request.run_key.startswith("drift-retraining-")
    again = sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor))
    assert isinstance(again, dg.SkipReason)
    assert {s.name for s in defs.schedules} >= {"nightly_scoring_and_drift", "weekly_retraining"}


def test_failed_checks_raise_an_alert_without_values(data_dir):
    instance = dg.DagsterInstance.ephemeral()
    _report_drift(instance, True, dg.AssetCheckSeverity.ERROR)
    context = dg.build_sensor_context(instance=instance, definitions=defs)
    assert isinstance(model_defs.failed_check_alert_sensor(context), dg.SkipReason)
    assert not (data_dir / "alerts" / "checks.jsonl").exists()
    _report_drift(instance, False, dg.AssetCheckSeverity.ERROR)
    context = dg.build_sensor_context(instance=instance, definitions=defs)
    model_defs.failed_check_alert_sensor(context)
    (line,) = (data_dir / "alerts" / "checks.jsonl").read_text().splitlines()
    assert json.loads(line).keys() == {"check", "severity", "run_id", "record_id"}
    assert json.loads(line)["check"] == "gold/risk_scores:scoring_population_drift"


def test_the_leakage_check_counts_features_dated_after_the_index_date(pipeline):
    import duckdb

    fused = catalog.PATIENT_FEATURES
    with pipeline.connect() as conn:
        assert conn.sql(fusion.leakage_sql(fused)).fetchall() == [(0, 0, 0, 0, 0)]
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA gold")
    conn.execute(
        "CREATE TABLE gold.patient_features AS SELECT * FROM (VALUES "
        "(DATE '2024-01-10', DATE '2024-01-10', NULL, DATE '2024-01-12', NULL, "
        "DATE '2024-01-09'), "
        "(DATE '2024-01-10', DATE '2024-01-11', DATE '2024-02-01', NULL, DATE '2024-01-10', NULL)) "
        "t(index_date, clinical_data_through, genomics_data_through, imaging_data_through, "
        "notes_data_through, wearables_data_through)"
    )
    assert conn.sql(fusion.leakage_sql(fused)).fetchall() == [(1, 1, 1, 0, 0)]
    check = pipeline.check("no_feature_after_index_date")
    assert check.passed and check.metadata["rows_after_index_wearables"].value == 0
