"""Sensors: the landing sensor's run keys and cursor, and the declared automation sensor."""

import json
import os
import shutil
from pathlib import Path

import dagster as dg

from assets_tests.conftest import pipeline_resources
from multimodal_assets.definitions import defs
from multimodal_assets.defs import automation
from multimodal_assets.lib import genomics

REAL = Path(__file__).parent / "fixtures" / "fhir"


def _tick(cursor=None):
    sensor = automation.landing_sensor("clinical", dg.AssetKey(["bronze", "fhir_resources"]))
    # The instance knows no delivery partition yet: each request adds its delivery.
    return sensor(dg.build_sensor_context(cursor=cursor, instance=dg.DagsterInstance.ephemeral()))


def _drop(data_dir: Path, name: str, source: str = "bundle_urn_ref.json") -> Path:
    target = data_dir / "landing" / "clinical" / "inbox" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REAL / source, target)
    return target


def test_no_files_means_skip(data_dir):
    assert isinstance(_tick(), dg.SkipReason)


def test_new_batch_starts_one_run_keyed_by_content(data_dir):
    _drop(data_dir, "a.json")
    _drop(data_dir, "b.json", "observation_no_subject.json")
    result = _tick()
    (request,) = result.run_requests
    assert request.tags["landing/new_files"] == "2"
    cursor = json.loads(result.cursor)
    assert set(cursor) == {"ctime_ns", "paths_at_watermark"}
    # A second tick from the saved cursor sees nothing new: a restart neither repeats nor skips.
    assert isinstance(_tick(result.cursor), dg.SkipReason)
    _drop(data_dir, "c.json", "questionnaire_response.json")
    (later,) = _tick(result.cursor).run_requests
    assert later.tags["landing/new_files"] == "1"


def test_the_same_unregistered_delivery_gets_the_same_run_key(data_dir):
    # A sensor that lost its cursor asks again for the same files under the same key, which
    # Dagster runs only once; a changed file is a new request.
    target = _drop(data_dir, "a.json")
    first, again = _tick().run_requests[0].run_key, _tick().run_requests[0].run_key
    assert first == again
    target.write_bytes(target.read_bytes() + b"\n")
    assert _tick().run_requests[0].run_key != first


def test_files_the_registry_holds_start_no_run_and_are_not_read(data_dir):
    from multimodal_assets.lib import clinical
    from multimodal_assets.lib.clinical import fhir
    from multimodal_assets.lib.platform import ingest, warehouse

    target = _drop(data_dir, "a.json")
    with warehouse.connect(data_dir / "lakehouse") as conn:
        files = ingest.scan_landing(data_dir / "landing", "clinical")
        ingest.ingest(conn, "clinical", files, fhir.parse_fhir_file, clinical.FHIR_RESOURCES, "r")
    target.chmod(0)  # an open() would fail for anyone but root; stat() still works
    skip = _tick()  # no cursor, as when `dagster dev` starts after the main job
    assert isinstance(skip, dg.SkipReason) and "no unregistered" in skip.skip_message
    target.chmod(0o644)
    _drop(data_dir, "b.json", "observation_no_subject.json")
    (request,) = _tick().run_requests
    assert request.tags["landing/new_files"] == "1"


def test_back_dated_files_are_still_seen(data_dir):
    _drop(data_dir, "a.json")
    cursor = _tick().cursor
    late = _drop(data_dir, "late.json", "questionnaire_response.json")
    os.utime(late, (0, 0))  # a delivery tool that preserves an old mtime
    (request,) = _tick(cursor).run_requests
    assert request.tags["landing/new_files"] == "1"


def test_automation_condition_sensor_is_declared_and_running():
    sensor = defs.resolve_sensor_def("automation_condition_sensor")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    graph = defs.resolve_asset_graph()
    eager = [k for k in graph.get_all_asset_keys() if graph.get(k).automation_condition is not None]
    assert dg.AssetKey(["gold", "clinical_features"]) in eager


def test_deliveries_become_partitions_with_one_run_each(data_dir):
    genomics_sensor = defs.resolve_sensor_def("genomics_landing_sensor")
    vcf = Path(__file__).parent / "fixtures" / "vcf" / "test-hemi.vcf"
    for batch in ("2024-01-01", "2024-01-08"):
        (data_dir / "landing" / "genomics" / batch).mkdir(parents=True)
        shutil.copy(vcf, data_dir / "landing" / "genomics" / batch / "sample.vcf")
    with dg.instance_for_test() as instance:
        result = genomics_sensor(dg.build_sensor_context(instance=instance))
        assert [r.partition_key for r in result.run_requests] == ["2024-01-01", "2024-01-08"]
        (added,) = result.dynamic_partitions_requests
        assert list(added.partition_keys) == ["2024-01-01", "2024-01-08"]
        # The same bytes in two batches are two runs: each batch is its own delivery.
        assert len({r.run_key for r in result.run_requests}) == 2
        # A new delivery is ingested by every bronze table, so none misses a partition.
        assert all(
            set(r.asset_selection) == set(automation.ALL_BRONZE) for r in result.run_requests
        )
        instance.add_dynamic_partitions(added.partitions_def_name, list(added.partition_keys))
        (data_dir / "landing" / "genomics" / "2024-01-08" / "late.vcf").write_bytes(
            vcf.read_bytes()
        )
        later = genomics_sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor))
        assert [r.partition_key for r in later.run_requests] == ["2024-01-08"]
        # A known delivery's new files are genomics' alone.
        genomics_bronze = {dg.AssetKey(list(t.asset_key)) for t in genomics.BRONZE_TABLES}
        assert set(later.run_requests[0].asset_selection) == genomics_bronze
        assert later.dynamic_partitions_requests == []  # a known batch is not added again


def test_a_new_delivery_batch_brings_silver_genomics_up_to_date(pipeline, tmp_path):
    from assets_tests.conftest import ALL_ASSETS, copy_lakehouse

    # The batch run writes to a copy of the lakehouse; the shared instance only gains its run.
    lakehouse = copy_lakehouse(pipeline.lakehouse, tmp_path / "lakehouse")
    instance = pipeline.instance
    silver = dg.AssetKey(["silver", "genomic_samples"])
    start = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert silver not in _requested(start)  # the whole graph is up to date
    instance.add_dynamic_partitions("delivery", ["2099-01-01"])
    bronze = [dg.AssetKey(list(t.asset_key)) for t in genomics.BRONZE_TABLES]
    assert dg.materialize(
        ALL_ASSETS,
        resources=pipeline_resources(lakehouse),
        instance=instance,
        selection=bronze,
        partition_key="2099-01-01",
    ).success
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=start.cursor)
    assert silver in _requested(after)


def _requested(result) -> set[dg.AssetKey]:
    return {r.key for r in result.results if r.true_subset.size}
