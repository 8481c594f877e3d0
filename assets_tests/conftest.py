"""Shared fixtures: a small generated cohort plus real FHIR, VCF and DICOM files, materialized
once."""

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from multimodal_assets.definitions import defs
from multimodal_assets.defs.deliveries import register_delivery_batches
from multimodal_assets.defs.resources import LakehouseResource, PseudonymKey
from multimodal_assets.lib.governance import pseudonym
from multimodal_assets.lib.platform import warehouse
from multimodal_assets.lib.synthetic.writer import generate

FIXTURES = Path(__file__).parent / "fixtures"
REAL_FHIR = FIXTURES / "fhir"
REAL_VCF = FIXTURES / "vcf"
REAL_WEARABLES = FIXTURES / "wearables"
REAL_DICOM = FIXTURES / "dicom"
REAL_NOTES = FIXTURES / "notes"
ALL_ASSETS = list(defs.assets)  # the code location's assets, with the tests' resources
TEST_PATIENTS = 60
CHROMIUM = Path("/usr/bin/chromium")
BROWSER_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NO_CHROMIUM = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed (scripts/test.sh installs it when it can run "
    "apt-get)",
)
TEST_SEED = 11


@dataclass
class Pipeline:
    data_dir: Path
    lakehouse: Path
    truth: pd.DataFrame
    result: dg.ExecuteInProcessResult
    instance: dg.DagsterInstance

    def connect(self):
        return warehouse.connect(self.lakehouse)

    def check(self, name: str) -> dg.AssetCheckEvaluation:
        """The run's one evaluation of the asset check called `name`."""
        (found,) = [c for c in self.result.get_asset_check_evaluations() if c.check_name == name]
        return found

    def metadata(self, key: str) -> dict:
        """The metadata values of the run's materialization of the asset `key` (e.g.
        `gold/clinical_features`). A partitioned asset records one materialization per delivery
        of the run, all with the same metadata: one run, one result."""
        found = [
            {k: v.value for k, v in m.materialization.metadata.items()}
            for m in self.result.get_asset_materialization_events()
            if m.asset_key.to_user_string() == key
        ]
        assert found and all(f == found[0] for f in found), key
        return found[0]

    def published_text(self, *tables: str) -> str:
        """Every value of the given tables as one string, for scanning for identifiers."""
        with self.connect() as conn:
            return " ".join(
                conn.execute(f"SELECT string_agg(t::VARCHAR, ' ') FROM {t} t").fetchall()[0][0]
                for t in tables
            )


def copy_lakehouse(source: Path, target: Path) -> Path:
    """A private copy of a lakehouse (tables, audit head, leases) that a test may alter."""
    shutil.copytree(source, target)
    return target


@pytest.fixture
def warehouse_copy(pipeline, tmp_path) -> Path:
    """A private copy of the session lakehouse (with its audit head) that a test may alter."""
    return copy_lakehouse(pipeline.lakehouse, tmp_path / "lakehouse")


def audit_rows(root: Path, received: bool = False) -> pd.DataFrame:
    """The audit log of a lakehouse, in order: the outcome rows, and with `received` also the
    row each gateway request leaves before it runs."""
    with warehouse.connect(root) as conn:
        log = conn.execute("SELECT * FROM audit.access_log ORDER BY event_seq").df()
    return log if received else log[log.decision != "received"].reset_index(drop=True)


# Columns that name the run that wrote a row, not the data.
RUN_COLUMNS = {"_run_id", "run_id", "registered_at", "quarantined_at"}


def table_rows(root, table: str) -> list[tuple]:
    """A table's rows without its run columns, sorted: what two runs over the same files share."""
    with warehouse.connect(root) as conn:
        columns = [c for c in warehouse.table_columns(conn, table) if c not in RUN_COLUMNS]
        names = ", ".join(f'"{c}"' for c in columns)
        return conn.execute(f"SELECT {names} FROM {table} ORDER BY ALL").fetchall()


def overwrite_table(root: Path, fqn: str, select_sql: str) -> None:
    """Replace a table's rows with `select_sql` in a new Delta commit, as someone with write
    access to the files could (the pipeline never rewrites a table this way)."""
    from multimodal_assets.lib.platform import lakehouse, warehouse

    with warehouse.connect(root) as conn:
        rows = conn.sql(select_sql).to_arrow_table()
    lakehouse.write(str(root), fqn, rows, mode="overwrite")


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """An empty MM_DATA_DIR for one test."""
    monkeypatch.setenv("MM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MM_LAKEHOUSE", raising=False)
    return tmp_path


# The key the pipeline uses in the tests: MM_PSEUDONYM_KEY, or the public development key.
KEY = pseudonym.pseudonym_key()


def research_key(mrn: str) -> str:
    """The research key the pipeline gives this MRN in the tests."""
    return pseudonym.research_key(mrn, KEY)


def date_shift_days(key_of_patient: str) -> int:
    """The date shift the pipeline gives this patient in the tests."""
    return pseudonym.date_shift_days(key_of_patient, KEY)


def pipeline_resources(lakehouse: Path) -> dict:
    """The resources governed assets need: the lakehouse at `lakehouse`, the tests' key."""
    return {
        "lakehouse": LakehouseResource(root=str(lakehouse)),
        "pseudonym": PseudonymKey(secret=KEY.decode()),
    }


def materialize(
    data: Path,
    instance: dg.DagsterInstance | None = None,
    selection=None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """Materialize the graph in-process against the lakehouse under `data`, every genomics
    delivery batch in one run (as the main job does)."""
    instance = instance or dg.DagsterInstance.ephemeral()
    return dg.materialize(
        ALL_ASSETS,
        resources=pipeline_resources(data / "lakehouse"),
        instance=instance,
        selection=selection or dg.AssetSelection.all(),
        raise_on_error=raise_on_error,
        tags=register_delivery_batches(instance),
    )


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory) -> Pipeline:
    """A generated cohort plus the real FHIR files, landed and materialized once per session."""
    data = tmp_path_factory.mktemp("pipeline")
    previous = os.environ.get("MM_DATA_DIR")
    os.environ["MM_DATA_DIR"] = str(data)
    try:
        generate(TEST_PATIENTS, TEST_SEED, data / "landing", progress=False)
        for fixtures, modality in (
            (REAL_FHIR, "clinical"),
            (REAL_VCF, "genomics"),
            (REAL_DICOM, "imaging"),
            (REAL_NOTES, "notes"),
        ):
            shutil.copytree(
                fixtures,
                data / "landing" / modality / "realdata",
                ignore=shutil.ignore_patterns("NOTICE.md"),
            )
        instance = dg.DagsterInstance.ephemeral()
        result = materialize(data, instance)
        yield Pipeline(
            data,
            data / "lakehouse",
            pd.read_parquet(data / "truth" / "patients.parquet"),
            result,
            instance,
        )
    finally:
        if previous is None:
            os.environ.pop("MM_DATA_DIR", None)
        else:
            os.environ["MM_DATA_DIR"] = previous


def pytest_collection_modifyitems(items):
    """Tests on the session's whole-graph materialization belong to the full tier (`slow`): the
    fast tier is `lib/` tests and small materializations, for every change."""
    for item in items:
        if "pipeline" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
