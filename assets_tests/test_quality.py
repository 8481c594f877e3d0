"""Checks: GX suites fail on bad data, and a failed blocking check stops the publish."""

import dagster as dg

from assets_tests.conftest import pipeline_resources
from multimodal_assets.defs.governed import governed_table_asset
from multimodal_assets.lib.platform import quality, warehouse
from multimodal_assets.lib.platform.tables import Column, Expectation, Table

SCORES = Table(
    layer="gold",
    name="scores",
    modality="test",
    description="Scores for the quality tests.",
    primary_key=("id",),
    columns=(
        Column("id", "INTEGER", "Row id.", "none", nullable=False),
        Column("grade", "VARCHAR", "Grade.", "none", allowed=("a", "b")),
        Column("score", "DOUBLE", "Score.", "sensitive", min_value=0, max_value=1),
    ),
)
GOOD = "SELECT 1 AS id, 'a' AS grade, 0.5 AS score UNION ALL SELECT 2, 'b', 0.9"


def _outcomes(tmp_path, select_sql):
    with warehouse.connect(tmp_path / "lakehouse") as conn:
        staged = warehouse.stage(conn, SCORES, select_sql)
        return {o.name: o for o in quality.audit(conn, SCORES, staged)}


def test_clean_table_passes_every_check(tmp_path):
    outcomes = _outcomes(tmp_path, GOOD)
    assert set(outcomes) == {
        "columns_classified",
        "not_null__id",
        "unique__id",
        "in_set__grade",
        "between__score",
    }
    assert all(o.passed for o in outcomes.values())


def test_gx_checks_fail_on_a_deliberately_bad_table(tmp_path):
    bad = (
        "SELECT 1 AS id, 'a' AS grade, 0.5 AS score UNION ALL SELECT 1, 'z', 7.0 "
        "UNION ALL SELECT NULL, 'b', -1.0"
    )
    outcomes = _outcomes(tmp_path, bad)
    for name, unexpected in (
        ("not_null__id", 1),
        ("unique__id", 2),
        ("in_set__grade", 1),
        ("between__score", 2),
    ):
        assert not outcomes[name].passed, name
        assert outcomes[name].metadata["unexpected_count"] == unexpected, name
    assert outcomes["columns_classified"].passed


BAD = (
    "SELECT 1 AS id, 'a' AS grade, 0.5 AS score UNION ALL SELECT 1, 'z', 7.0 "
    "UNION ALL SELECT NULL, 'b', -1.0 UNION ALL SELECT 4, NULL, NULL"
)


def test_checks_over_batches_count_what_one_batch_counts(tmp_path):
    with warehouse.connect(tmp_path / "lakehouse") as conn:
        staged = warehouse.stage(conn, SCORES, BAD)
        whole, batched = (
            {o.name: o.metadata for o in quality.expectation_outcomes(conn, SCORES, staged, **k)}
            for k in ({}, {"batch_rows": 1})
        )
    assert whole == batched
    assert whole["in_set__grade"]["unexpected_count"] == 1
    assert whole["in_set__grade"]["unexpected_percent"] == 100 / 3  # of the non-NULL grades


def test_uniqueness_in_duckdb_counts_what_great_expectations_counts(tmp_path):
    """Repeated keys, keys with a NULL part, and rows whose whole key is NULL (which GX ignores)."""
    import great_expectations as gx

    keyed = Table(
        layer="gold",
        name="keyed",
        modality="test",
        description="Compound keys for the uniqueness test.",
        primary_key=("a", "b"),
        columns=(
            Column("a", "INTEGER", "Key part.", "none"),
            Column("b", "VARCHAR", "Key part.", "none"),
        ),
    )
    rows = [(1, "x"), (1, "x"), (1, None), (1, None), (None, None), (None, None), (2, "y")]
    values = " UNION ALL ".join(
        f"SELECT {a if a is not None else 'NULL'}::INTEGER AS a, "
        f"{repr(b) if b is not None else 'NULL'}::VARCHAR AS b"
        for a, b in rows
    )
    with warehouse.connect(tmp_path / "lakehouse") as conn:
        staged = warehouse.stage(conn, keyed, values)
        frame = conn.sql(f"SELECT * FROM {staged}").df()
        ours = {o.name: o.metadata for o in quality.expectation_outcomes(conn, keyed, staged)}
        single = quality.expectation_outcomes(
            conn, keyed, staged, rules=[Expectation("unique", "a", blocking=True)]
        )
    _, context = quality._gx()
    batch = (
        context.data_sources.add_pandas("frame")
        .add_dataframe_asset("keyed")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    compound = batch.validate(
        gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=["a", "b"])
    )
    column = batch.validate(gx.expectations.ExpectColumnValuesToBeUnique(column="a"))
    assert ours["unique__a__b"]["unexpected_count"] == compound.result["unexpected_count"] == 4
    assert single[0].metadata["unexpected_count"] == column.result["unexpected_count"] == 4


def test_unclassified_or_missing_columns_fail_classification(tmp_path):
    outcome = _outcomes(tmp_path, "SELECT 1 AS id, 'a' AS grade, 0.5 AS score, 'x' AS surprise")[
        "columns_classified"
    ]
    assert not outcome.passed and outcome.metadata["unclassified_columns"] == "surprise"
    outcome = _outcomes(tmp_path, "SELECT 1 AS id, 'a' AS grade")["columns_classified"]
    assert not outcome.passed and outcome.metadata["missing_declared_columns"] == "score"


def test_failed_blocking_check_leaves_the_published_table_unchanged(tmp_path):
    source = {"sql": GOOD}

    def build(conn, run_id):
        warehouse.stage(conn, SCORES, source["sql"])
        return {}

    asset = governed_table_asset(SCORES, build=build)
    resources = pipeline_resources(tmp_path / "lakehouse")
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([asset], resources=resources, instance=instance).success
    with warehouse.connect(tmp_path / "lakehouse") as conn:
        published_version = conn.versions["gold.scores"]

    source["sql"] = "SELECT 1 AS id, 'a' AS grade, 0.1 AS score UNION ALL SELECT 1, 'b', 0.2"
    result = dg.materialize([asset], resources=resources, instance=instance, raise_on_error=False)
    assert not result.success
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert failed == {"unique__id"}
    assert result.get_asset_materialization_events() == []
    with warehouse.connect(tmp_path / "lakehouse") as conn:
        assert conn.execute("SELECT sum(score) FROM gold.scores").fetchone()[0] == 1.4
        # Nothing was committed: the table is still at the version the first run published.
        assert conn.versions["gold.scores"] == published_version


def test_non_blocking_failure_still_publishes_and_warns(tmp_path):
    def build(conn, run_id):
        warehouse.stage(conn, SCORES, "SELECT 1 AS id, 'q' AS grade, 0.5 AS score")
        return {}

    result = dg.materialize(
        [governed_table_asset(SCORES, build=build)],
        resources=pipeline_resources(tmp_path / "lakehouse"),
    )
    (warned,) = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert warned.check_name == "in_set__grade" and warned.severity == dg.AssetCheckSeverity.WARN
    assert len(result.get_asset_materialization_events()) == 1


def test_a_build_that_reads_a_table_it_does_not_depend_on_fails(tmp_path):
    from multimodal_assets.lib.governance import catalog

    root = tmp_path / "lakehouse"
    with warehouse.connect(root) as conn:
        warehouse.ensure_table(conn, catalog.PATIENT_FEATURES)  # any other declared table

    def build(conn, run_id):
        # Read (here only counted) a table the asset does not declare, then stage.
        conn.execute("SELECT count(*) FROM gold.patient_features").fetchall()
        warehouse.stage(conn, SCORES, GOOD)
        return {}

    resources = pipeline_resources(root)
    result = dg.materialize(
        [governed_table_asset(SCORES, build=build)], resources=resources, raise_on_error=False
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "read gold.patient_features, which the asset does not depend on" in str(
        failure.step_failure_data.user_failure_data.description
    )
    declared = governed_table_asset(SCORES, build=build, reads=[catalog.PATIENT_FEATURES])
    assert dg.materialize([declared], resources=resources).success


def test_an_sql_build_depends_on_what_its_sql_reads_and_declares_no_lineage_by_hand():
    from dataclasses import replace

    import pytest

    from multimodal_assets.defs.governed import asset_key
    from multimodal_assets.lib.governance import catalog

    sql = "SELECT research_key AS id, 'a' AS grade, 0.5 AS score FROM gold.patient_features"
    asset = governed_table_asset(replace(SCORES, build_sql=sql))
    assert asset.asset_deps[asset.key] == {asset_key(catalog.PATIENT_FEATURES)}
    # Its lineage comes from the SQL: a hand-written one could name what the SQL does not read.
    with pytest.raises(ValueError, match="lineage is derived from its SQL"):
        replace(SCORES, build_sql=sql, lineage={"score": (("silver.patients", "sex"),)})


def test_checks_run_in_a_process_whose_main_module_has_no_file():
    """Dagster's multiprocess executor forks step processes from a forkserver whose __main__ has
    no file (every UI-launched run); pyspark's Spark Connect, which GX imports, exits such a
    process with status 0 on import. `python -c` gives the same __main__."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "assert getattr(sys.modules['__main__'], '__file__', None) is None\n"
        "from multimodal_assets.lib.platform import quality\n"
        "quality._gx()\n"
        "print('validated')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "validated"
