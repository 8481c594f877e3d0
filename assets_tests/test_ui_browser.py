"""The Dagster UI as a user meets it, in headless Chromium: after the main job on a small cohort,
`dagster dev` opens without starting any run; the automation page shows every sensor and
schedule in the state its definition declares; an asset page shows its columns with their
classification tags; and "Materialize all" on the lineage page materializes every asset, every
delivery, in one backfill that succeeds. Screenshots go to test-artifacts/ui/ (or
$MM_TEST_ARTIFACTS/ui)."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.execution.backfill import BulkActionStatus

from multimodal_assets.definitions import defs
from multimodal_assets.lib.governance import catalog

from .conftest import BROWSER_FLAGS, CHROMIUM, NO_CHROMIUM

pytestmark = [pytest.mark.slow, NO_CHROMIUM]

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ARTIFACTS = Path(os.environ.get("MM_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "ui"
FINISHED = {
    BulkActionStatus.COMPLETED,
    BulkActionStatus.COMPLETED_SUCCESS,
    BulkActionStatus.COMPLETED_FAILED,
    BulkActionStatus.FAILED,
    BulkActionStatus.CANCELED,
}


@dataclass
class DagsterUI:
    url: str
    home: Path
    log: Path
    opened_at: float

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(1)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """The main job on 8 patients, then `dagster dev` on its instance, as the README says."""
    data = tmp_path_factory.mktemp("ui")
    env = {**os.environ, "MM_DATA_DIR": str(data), "DAGSTER_HOME": str(data / "dagster_home")}
    env.pop("MM_LAKEHOUSE", None)
    main = subprocess.run(
        [BIN / "mma", "run", "--patients", "8", "--seed", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert "run succeeded" in main.stdout, main.stdout[-2000:] + main.stderr[-2000:]
    port = _free_port()
    log = data / "dagster_dev.log"
    opened_at = time.time()
    with log.open("w") as out:
        server = subprocess.Popen(
            [BIN / "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the webserver, the daemon and their runs: one group
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until(lambda: _answers(f"{url}/server_info"), 180, "the webserver")
        yield DagsterUI(url, data / "dagster_home", log, opened_at)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            pass
        try:  # whatever of the group outlived SIGTERM (a code server, a run)
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_FLAGS)
        yield chromium
        chromium.close()


def _open(browser, url: str):
    """A page at `url`, past the one-time community dialog Dagster shows a new browser."""
    page = browser.new_page(viewport={"width": 1600, "height": 1400})
    page.set_default_timeout(60_000)
    page.goto(url, wait_until="networkidle")
    skip = page.get_by_role("button", name="Skip")
    if skip.count():
        skip.click()
    return page


def test_opening_the_ui_after_the_main_job_starts_no_run(ui):
    sensors = {s.name for s in defs.sensors}
    ticked = re.compile(r"Sensor (\w+) skipped|launch of run \S+ for (\w+)|tick for (\w+)")

    def every_sensor_ticked():
        seen = {name for m in ticked.finditer(ui.log.read_text()) for name in m.groups() if name}
        return sensors <= seen

    _wait_until(every_sensor_ticked, 240, "every sensor's first tick")
    launched = re.findall(r"launch of run \S+ for (\w+)", ui.log.read_text())
    assert launched == []
    with ui.instance() as instance:
        opened = datetime.fromtimestamp(ui.opened_at, UTC)
        started = instance.get_runs(filters=dg.RunsFilter(created_after=opened))
    assert started == []


def test_the_automation_page_shows_each_declared_state(ui, browser):
    page = _open(browser, f"{ui.url}/automation")
    declared = {
        **{s.name: s.default_status == dg.DefaultSensorStatus.RUNNING for s in defs.sensors},
        **{s.name: s.default_status == dg.DefaultScheduleStatus.RUNNING for s in defs.schedules},
    }
    shown = {}
    for name in declared:
        # Each automation is a list row: its selection checkbox first, its on/off switch last.
        row = page.locator("[data-index]").filter(has=page.get_by_text(name, exact=True))
        shown[name] = row.locator("input[type=checkbox]").last.is_checked()
    page.screenshot(path=str(ARTIFACTS / "automation.png"), full_page=True)
    assert shown == declared


def test_an_asset_page_shows_its_columns_with_their_classification(ui, browser):
    page = _open(browser, f"{ui.url}/assets/silver/patients")
    page.get_by_text("classification: phi").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "asset_silver_patients.png"), full_page=True)
    text = page.locator("body").inner_text()
    table = catalog.table("silver.patients")
    assert table.description in text and "Row count" in text
    for column in table.columns:
        shown = re.search(
            rf"^{column.name}\s+classification: (\w+)\s+regulatory: (\w+)", text, re.MULTILINE
        )
        assert shown is not None, column.name
        assert shown.groups() == (column.classification, column.regulatory), column.name


def test_materialize_all_builds_every_asset_and_every_delivery(ui, browser):
    page = _open(browser, f"{ui.url}/asset-groups")
    page.get_by_role("button", name=re.compile("Materialize all")).click()
    dialog = page.get_by_role("dialog")
    # Dagster opens the partition choice empty; "All" takes every delivery (single-run policy).
    dialog.get_by_role("button", name="All", exact=True).click()
    page.screenshot(path=str(ARTIFACTS / "materialize_all_dialog.png"))
    launched_at = time.time()
    dialog.get_by_role("button", name="Launch backfill").click()

    with ui.instance() as instance:
        (backfill,) = _wait_until(instance.get_backfills, 60, "the backfill")

        def finished():
            current = instance.get_backfill(backfill.backfill_id)
            return current if current.status in FINISHED else None

        done = _wait_until(finished, 1200, "the backfill to finish")
        runs = instance.get_runs(
            filters=dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id})
        )
        graph = defs.resolve_asset_graph()
        stale = [
            key.to_user_string()
            for key in graph.materializable_asset_keys
            if (event := instance.get_latest_materialization_event(key)) is None
            or event.timestamp < launched_at
        ]
    page.goto(f"{ui.url}/runs/b/{backfill.backfill_id}", wait_until="networkidle")
    page.get_by_text("Succeeded").first.wait_for()  # the backfill's status, as the UI shows it
    page.screenshot(path=str(ARTIFACTS / "backfill.png"), full_page=True)
    assert done.status == BulkActionStatus.COMPLETED_SUCCESS
    assert runs and {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
    assert stale == []
