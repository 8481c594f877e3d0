"""Wearables: schema versions, exactly-once events, late events, day slices, real exports."""

import json
import os
import re
from datetime import date, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from assets_tests.conftest import REAL_WEARABLES, copy_lakehouse, materialize, research_key
from multimodal_assets.defs import automation
from multimodal_assets.lib.platform import warehouse
from multimodal_assets.lib.platform.ingest import QuarantineError
from multimodal_assets.lib.wearables import parse_wearables_file

SHARED = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "wearables"


def _events(data: bytes) -> list[dict]:
    parsed = parse_wearables_file(data)
    return parsed if isinstance(parsed, list) else parsed.to_pylist()


def _one(line: dict) -> dict:
    (event,) = _events((json.dumps(line) + "\n").encode())
    return event


def test_schema_v1_and_v2_map_to_one_canonical_event():
    v1 = _one(
        {
            "device": "D1",
            "id": "e1",
            "ts": "2021-05-01T23:00:00Z",
            "type": "sleep",
            "end": "2021-05-02T06:00:00Z",
            "minutes": 420,
        }
    )
    v2 = _one(
        {
            "schema_version": 2,
            "device_id": "D1",
            "event_id": "e1",
            "timestamp": "2021-05-01T23:00:00Z",
            "kind": "sleep",
            "end_timestamp": "2021-05-02T06:00:00Z",
            "value": 25200,
            "unit": "s",
            "battery_pct": 40,
            "firmware": "1.2",
        }
    )
    for field in ("device_id", "event_id", "event_type", "event_time", "end_time", "value", "unit"):
        assert v1[field] == v2[field], field
    assert v1["unit"] == "min" and v1["value"] == 420
    # Fields the canonical schema does not know are kept, not dropped.
    assert json.loads(v2["extra"]) == {"battery_pct": 40, "firmware": "1.2"}
    hr = _one(
        {"device": "D1", "id": "e2", "ts": "2021-05-01T10:00:00+02:00", "type": "hr", "bpm": 71}
    )
    assert (hr["event_type"], hr["unit"], hr["event_time"].hour) == ("heart_rate", "count/min", 8)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b'{"device": "D1", "id": "e1"}\n', "invalid_event"),
        (
            # More bad lines than good: not an event file with a damaged record.
            b'{"device": "D1", "id": "e1", "ts": "2021-05-01T10:00:00Z", "type": "hr", "bpm": 70}\n'
            b'{"dev\n{"dev',
            "invalid_json",
        ),
        (b"Id,Foo,Bar\n1,2,3\n", "unsupported_format"),
        (b"\x00\x01binary", "unsupported_format"),
        (b"PK\x03\x04broken-zip", "invalid_zip"),
    ],
)
def test_bad_batches_are_refused_with_a_code(data, code):
    with pytest.raises(QuarantineError) as err:
        parse_wearables_file(data)
    assert err.value.code == code


def test_one_bad_line_is_quarantined_with_its_number_and_the_other_events_are_ingested(tmp_path):
    from multimodal_assets.lib import wearables
    from multimodal_assets.lib.platform import ingest, warehouse

    lines = [
        json.dumps(
            {
                "device": "D1",
                "id": f"e{i}",
                "ts": f"2021-05-01T10:{i:02d}:00Z",
                "type": "hr",
                "bpm": 60 + i,
            }
        )
        for i in range(25)
    ]
    lines[6] = lines[6][:-9]  # cut short: not JSON
    lines[11] = json.dumps({"device": "D1", "id": "e11", "type": "hr", "bpm": 70})  # no time
    batch = tmp_path / "landing" / "wearables" / "2021-05-01"
    batch.mkdir(parents=True)
    (batch / "events.jsonl").write_text("\n".join(lines) + "\n")
    root = tmp_path / "lakehouse"
    with warehouse.connect(root) as conn:
        files = ingest.unregistered(conn, ingest.scan_landing(tmp_path / "landing", "wearables"))
        summary = ingest.ingest(
            conn, "wearables", files, parse_wearables_file, wearables.WEARABLE_EVENTS, "run-1"
        )
        registry = conn.execute("SELECT status, error_code FROM bronze.files").fetchall()
        quarantined = conn.execute(
            "SELECT error_code, message FROM bronze.quarantine ORDER BY message"
        ).fetchall()
        events = conn.execute("SELECT event_id FROM bronze.wearable_events").fetchall()
    assert (summary.ingested, summary.records, summary.records_quarantined) == (1, 23, 2)
    assert registry == [("ingested", "records_quarantined")]
    assert quarantined == [
        ("invalid_event", "line 12: the event lacks one of device, id, ts, type"),
        ("invalid_json", "line 7: not a valid JSON event"),
    ]
    assert sorted(e for (e,) in events) == sorted(f"e{i}" for i in range(25) if i not in (6, 11))


def test_apple_health_exports_parse_from_xml_and_zip():
    xml = parse_wearables_file((REAL_WEARABLES / "apple-alxdrcirilo-export.xml").read_bytes())
    zipped = parse_wearables_file((REAL_WEARABLES / "apple-alxdrcirilo-export.zip").read_bytes())
    assert len(xml) == len(zipped) == 8
    assert {e["event_type"] for e in xml} >= {"heart_rate", "active_energy", "in_bed"}
    workouts = parse_wearables_file((REAL_WEARABLES / "apple-paulstaab-export.xml").read_bytes())
    assert sum(e["event_type"] == "workout" for e in workouts) == 8
    # Source names such as "<owner>'s Apple Watch" never become the device id.
    assert all(e["device_id"].startswith("apple:") and "'" not in e["device_id"] for e in xml)
    with pytest.raises(QuarantineError, match="GPX"):
        parse_wearables_file((REAL_WEARABLES / "apple-paulstaab-route_2023-12-28.gpx").read_bytes())


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/realdata is not present on this machine")
def test_fitabase_csv_layouts_parse_with_every_row():
    expected = {
        "fitabase-hr-vikramtheboss/heartrate_seconds_merged.csv": ("heart_rate", 17666),
        "fitabase-minute-elena-js/minuteStepsNarrow_merged.csv": ("steps", 49),
        "fitabase-daily-sergeibogdanov/dailyActivity_merged.csv": ("daily_steps", 940),
        "fitabase-daily-sergeibogdanov/sleepDay_merged.csv": ("sleep", 413),
        "fitabase-daily-sergeibogdanov/weightLogInfo_merged.csv": ("weight", 67),
    }
    for name, (kind, rows) in expected.items():
        events = parse_wearables_file((SHARED / name).read_bytes())
        assert len(events) == rows and {e["event_type"] for e in events} == {kind}, name
    daily = parse_wearables_file(
        (SHARED / "fitabase-daily-sergeibogdanov/dailyActivity_merged.csv").read_bytes()
    )
    assert daily[0]["event_time"].year == 2016  # 2-digit years


def test_minute_steps_wide_layout():
    header = "Id,ActivityHour," + ",".join(f"Steps{m:02d}" for m in range(60))
    row = "42,4/12/2016 1:00:00 AM," + ",".join(str(m) for m in range(60))
    events = _events(f"{header}\n{row}\n".encode())
    assert len(events) == 60 and sum(e["value"] for e in events) == sum(range(60))
    assert events[5]["event_time"].minute == 5


def test_each_event_lands_once_whatever_the_deliveries(pipeline):
    truth = pd.read_parquet(pipeline.data_dir / "truth" / "wearable_events.parquet")
    with pipeline.connect() as conn:
        synthetic = conn.execute(
            "SELECT count(*), count(DISTINCT (device_id, event_id)) FROM bronze.wearable_events "
            "WHERE source_schema IN ('v1', 'v2')"
        ).fetchone()
        silver = conn.execute("SELECT count(*) FROM silver.wearable_events").fetchone()[0]
        quarantined = conn.execute(
            "SELECT count(*) FROM bronze.files WHERE modality = 'wearables' "
            "AND status = 'quarantined' AND path NOT LIKE '%.gpx'"
        ).fetchone()[0]
        cut = conn.execute(
            "SELECT q.error_code FROM bronze.files f JOIN bronze.quarantine q USING (path, sha256) "
            "WHERE f.modality = 'wearables' AND f.error_code = 'records_quarantined'"
        ).fetchall()
    assert synthetic == (len(truth), len(truth))
    assert silver == (~truth.beyond_horizon).sum()
    # The cut-off upload: its events up to the cut are ingested (its complete twin holds them
    # too, and each lands once), the event it ends inside is quarantined.
    assert quarantined == 0 and cut == [("truncated",)]


def test_device_reassignment_links_events_to_the_right_patient(pipeline):
    truth = pd.read_parquet(pipeline.data_dir / "truth" / "wearable_events.parquet")
    shared = truth.groupby("device_id").mrn.nunique()
    (device,) = shared[shared > 1].index
    expected = truth[(truth.device_id == device) & ~truth.beyond_horizon]
    with pipeline.connect() as conn:
        rows = conn.execute(
            "SELECT research_key, count(*) FROM silver.wearable_events "
            "WHERE _source_locator LIKE ? GROUP BY 1",
            [f"{device}/%"],
        ).fetchall()
    got = dict(rows)
    assert got == {research_key(m): n for m, n in expected.groupby("mrn").size().items()}


def test_daily_features_equal_a_direct_computation_from_truth(pipeline):
    truth = pd.read_parquet(pipeline.data_dir / "truth" / "wearable_events.parquet")
    truth = truth[~truth.beyond_horizon].assign(day=lambda t: t.event_time.dt.date)
    steps = truth[truth.event_type == "steps"].groupby(["mrn", "day"]).value.sum()
    resting = truth[truth.event_type == "heart_rate"].groupby(["mrn", "day"]).value.quantile(0.1)
    sleep = truth[truth.event_type == "sleep"].groupby(["mrn", "day"]).value.sum()
    expected = pd.DataFrame({"steps": steps, "resting_hr": resting, "sleep": sleep}).reset_index()
    expected["research_key"] = expected.mrn.map(research_key)
    with pipeline.connect() as conn:
        gold = conn.execute(
            "SELECT research_key, day, steps, resting_hr, sleep_minutes, "
            "steps_7d FROM gold.wearable_daily"
        ).df()
    gold["day"] = pd.to_datetime(gold.day).dt.date
    merged = expected.merge(gold, on=["research_key", "day"], how="outer", indicator=True)
    assert (merged._merge == "both").all()
    assert np.allclose(merged.steps_x.fillna(0), merged.steps_y.fillna(0))
    assert np.allclose(merged.resting_hr_x, merged.resting_hr_y)
    assert np.allclose(merged.sleep.fillna(0), merged.sleep_minutes.fillna(0))
    # The 7-day window is the mean of the patient's days in the 7 days ending that day.
    one = merged[merged.research_key == merged.research_key.iloc[0]].sort_values("day")
    day = one.day.iloc[10]
    window = one[(one.day <= day) & (one.day > day - pd.Timedelta(days=7))]
    assert np.isclose(one.loc[one.day == day, "steps_7d"].iloc[0], window.steps_x.mean())


def test_wearables_features_have_a_row_and_flag_for_every_patient(pipeline):
    with pipeline.connect() as conn:
        patients = conn.execute("SELECT count(*) FROM gold.clinical_features").fetchone()[0]
        rows = conn.execute(
            "SELECT count(*), count(*) FILTER (has_wearables), max(coverage_days_28d) "
            "FROM gold.wearables_features"
        ).fetchone()
    truth = pipeline.truth
    assert rows[0] == patients
    assert rows[1] == truth.has_wearables.sum()
    assert rows[2] == 28


def test_late_event_rewrites_exactly_its_day_and_the_windows_after_it(
    pipeline, tmp_path, monkeypatch
):
    data = tmp_path / "data"
    copy_lakehouse(pipeline.lakehouse, data / "lakehouse")
    monkeypatch.setenv("MM_DATA_DIR", str(data))
    # Nothing new: a re-run rewrites no slice at all.
    rerun = materialize(data, selection=dg.AssetSelection.groups("wearables"))
    republished = {
        m.asset_key.to_user_string(): m.materialization.metadata["slices_republished"].value
        for m in rerun.get_asset_materialization_events()
        if "slices_republished" in m.materialization.metadata
    }
    assert republished == {"silver/wearable_events": 0, "gold/wearable_daily": 0}
    truth = pd.read_parquet(pipeline.data_dir / "truth" / "wearable_events.parquet")
    sample = truth[truth.event_type == "steps"].iloc[200]
    late_day = sample.event_time.date()
    event = {
        "device": sample.device_id,
        "id": "late-0001",
        "type": "steps",
        "ts": (sample.event_time + pd.Timedelta(minutes=30)).isoformat() + "Z",
        "end": (sample.event_time + pd.Timedelta(minutes=31)).isoformat() + "Z",
        "count": 777,
    }
    batch = data / "landing" / "wearables" / "late" / "late.jsonl"
    batch.parent.mkdir(parents=True)
    batch.write_text(json.dumps(event) + "\n")
    arrival = pd.Timestamp(late_day) + pd.Timedelta(days=3)
    os.utime(batch, (arrival.timestamp(), arrival.timestamp()))
    result = materialize(data, selection=dg.AssetSelection.groups("wearables"))
    assert result.success
    run_id = result.run_id
    key = research_key(sample.mrn)
    with warehouse.connect(data / "lakehouse") as conn:
        silver_days = {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT event_date FROM silver.wearable_events WHERE _run_id = ?", [run_id]
            ).fetchall()
        }
        gold_days = {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT day FROM gold.wearable_daily WHERE _run_id = ?", [run_id]
            ).fetchall()
        }
        patient_days = {
            r[0]
            for r in conn.execute(
                "SELECT day FROM gold.wearable_daily WHERE research_key = ?", [key]
            ).fetchall()
        }
        steps = conn.execute(
            "SELECT steps FROM gold.wearable_daily WHERE research_key = ? AND day = ?",
            [key, late_day],
        ).fetchone()[0]
    assert silver_days == {late_day}
    window = {d for d in patient_days if late_day <= d <= late_day + pd.Timedelta(days=27)}
    assert gold_days == window
    expected = truth[
        (truth.mrn == sample.mrn)
        & (truth.event_type == "steps")
        & (truth.event_time.dt.date == late_day)
        & ~truth.beyond_horizon
    ].value.sum()
    assert steps == expected + 777


def test_a_batch_seen_again_by_a_restarted_sensor_starts_one_run(data_dir):
    sensor = automation.landing_sensor("wearables", dg.AssetKey(["bronze", "wearable_events"]))
    target = data_dir / "landing" / "wearables" / "a" / "export.jsonl"
    target.parent.mkdir(parents=True)
    target.write_text(
        '{"device": "D", "id": "1", "ts": "2021-01-01T00:00:00Z", "type": "hr", "bpm": 60}\n'
    )
    keys = [
        sensor(dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral()))
        .run_requests[0]
        .run_key
        for _ in "ab"
    ]
    assert keys[0] == keys[1]


def _resaved(original: bytes, column: str, written: str, *, split: bool, id_format: str) -> bytes:
    """The file as a day-first spreadsheet writes it back: day-first 24-hour dates, the user id
    as a number in scientific notation, optionally the time in a column of its own. (No public
    re-saved Fitbit file was found; this re-saves a real one the way spreadsheets do.)"""
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(original.decode())))
    fields = list(rows[0])
    if split:
        fields = ["Date" if f == column else f for f in fields] + [column]
    out = io.StringIO()
    writer = csv.DictWriter(out, fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        when = datetime.strptime(row[column], written)
        row["Id"] = format(int(row["Id"]), id_format)
        if split:
            row["Date"], row[column] = when.strftime("%d/%m/%Y"), when.strftime("%H:%M:%S")
        else:
            row[column] = when.strftime("%d/%m/%Y %H:%M:%S" if "%I" in written else "%d/%m/%Y")
        writer.writerow(row)
    return out.getvalue().encode()


HEART_RATE = "fitabase-hr-vikramtheboss/heartrate_seconds_merged.csv"
DAILY = "fitabase-daily-sergeibogdanov/dailyActivity_merged.csv"


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/realdata is not present on this machine")
def test_a_spreadsheet_resaved_fitbit_file_gives_the_same_events_or_says_why_not():
    daily = (SHARED / DAILY).read_bytes()
    expected = parse_wearables_file(daily)
    resaved = parse_wearables_file(
        _resaved(daily, "ActivityDate", "%m/%d/%y", split=False, id_format=".9E")
    )
    key = ("device_id", "event_time", "value")
    assert [tuple(e[k] for k in key) for e in resaved] == [
        tuple(e[k] for k in key) for e in expected
    ]
    assert {json.loads(e["extra"])["date_order"] for e in resaved} == {"day-first"}
    with pytest.raises(QuarantineError, match="scientific notation with digits lost"):
        parse_wearables_file(
            _resaved(daily, "ActivityDate", "%m/%d/%y", split=False, id_format=".5E")
        )
    # The heart-rate slice spans 10-12 May: re-saved day-first without AM/PM, its dates read
    # both ways, so it is quarantined instead of read with months and days swapped.
    heart = (SHARED / HEART_RATE).read_bytes()
    for split in (False, True):
        with pytest.raises(QuarantineError) as raised:
            parse_wearables_file(
                _resaved(heart, "Time", "%m/%d/%Y %I:%M:%S %p", split=split, id_format=".9E")
            )
        assert raised.value.code == "ambiguous_dates"


def test_date_order_is_decided_per_file():
    def times(*stamps):
        body = "".join(f"42,{s},70\n" for s in stamps)
        events = parse_wearables_file(f"Id,Time,Value\n{body}".encode())
        return [e["event_time"].date() for e in events]

    assert times("3/4/2016 10:00:00", "25/4/2016 10:00:00") == [date(2016, 4, 3), date(2016, 4, 25)]
    assert times("3/4/2016 10:00:00", "4/25/2016 10:00:00") == [date(2016, 3, 4), date(2016, 4, 25)]
    assert times("3/4/2016 10:00:00 AM") == [date(2016, 3, 4)]  # Fitbit's own 12-hour times
    split = parse_wearables_file(b"Id,Date,Time,Value\n42,25/4/2016,10:00:00,70\n")
    assert split[0]["event_time"] == datetime(2016, 4, 25, 10, 0)
    with pytest.raises(QuarantineError, match="day-first in some rows"):
        times("25/4/2016 10:00:00", "4/25/2016 10:00:00")


# The start of the DTD every export.xml since HealthKit Export Version 3 carries (as published
# with real exports); the whole block runs to several kilobytes before <HealthData>.
_APPLE_DTD = (
    """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE HealthData [
<!-- HealthKit Export Version: 3 -->
<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout|ActivitySummary)*)>
<!ATTLIST HealthData
  locale CDATA #REQUIRED
>
<!ELEMENT ExportDate EMPTY>
<!ATTLIST ExportDate
  value CDATA #REQUIRED
>
<!ELEMENT Record ((MetadataEntry|HeartRateVariabilityMetadataList)*)>
<!ATTLIST Record
  type          CDATA #REQUIRED
  unit          CDATA #IMPLIED
  value         CDATA #IMPLIED
  sourceName    CDATA #REQUIRED
  sourceVersion CDATA #IMPLIED
  device        CDATA #IMPLIED
  creationDate  CDATA #IMPLIED
  startDate     CDATA #REQUIRED
  endDate       CDATA #REQUIRED
>
"""
    + "".join(f"<!-- padding of the real DTD's {n} further declarations -->\n" for n in range(60))
    + "]>\n"
)


def test_an_export_with_its_inline_dtd_a_comma_locale_and_vertical_tabs_is_read():
    real = (REAL_WEARABLES / "apple-alxdrcirilo-export.xml").read_text()
    expected = parse_wearables_file(real.encode())
    body = real.split("?>", 1)[1]
    first = body.index('value="', body.index("HKQuantityTypeIdentifierHeartRate"))
    # A decimal comma (non-US locale) and a vertical tab (early exports) in values.
    older = _APPLE_DTD + body.replace('sourceVersion="10.2"', 'sourceVersion="10\x0b2"', 1)
    number = re.match(r'value="(\d+)"', body[first:])
    if number:
        older = older.replace(number.group(0), f'value="{number.group(1)},0"', 1)
    assert len(_APPLE_DTD) > 2000
    events = parse_wearables_file(older.encode())
    key = ("event_type", "event_time", "value")
    assert [tuple(e[k] for k in key) for e in events] == [
        tuple(e[k] for k in key) for e in expected
    ]


def test_a_2019_export_is_read_and_its_inline_route_locations_are_not_kept():
    # Older exports list a workout route's locations inline (later ones point to a GPX file):
    # positions are quasi-identifiers and must not reach any event.
    data = (REAL_WEARABLES / "apple-healthkit-to-sqlite-export.xml").read_bytes()
    assert b"<Location " in data
    events = parse_wearables_file(data)
    by_type = {e["event_type"]: e for e in events}
    assert by_type["heart_rate"]["value"] == 72.0
    assert by_type["heart_rate"]["event_time"] == datetime(2018, 9, 10, 9, 28, 55)
    assert by_type["workout"]["event_time"] == datetime(2016, 11, 14, 14, 25, 41)
    assert round(by_type["workout"]["value"], 2) == 5.18  # minutes, from start to end
    text = " ".join(str(e) for e in events)
    assert "37.7777" not in text and "-122.426" not in text and "latitude" not in text


def test_ios8_export_dates_are_read():
    record = (
        '<HealthData locale="de_DE"><Record type="HKQuantityTypeIdentifierStepCount" '
        'sourceName="Phone" unit="count" value="12" startDate="20150301100000+0100" '
        'endDate="20150301101000+0100"/></HealthData>'
    )
    (event,) = parse_wearables_file(record.encode())
    assert event["event_time"] == datetime(2015, 3, 1, 9, 0) and event["value"] == 12.0


DEVICES = Path(__file__).parent / "fixtures" / "wearables_devices"


def test_tcx_gives_heart_rate_and_a_workout_and_keeps_no_position():
    data = (DEVICES / "sup_activity_1.tcx").read_bytes()
    events = parse_wearables_file(data)
    # Independent count: trackpoints that carry a heart rate, read with a regular expression.
    points = re.findall(rb"<Trackpoint>.*?</Trackpoint>", data, re.S)
    with_hr = [p for p in points if b"<HeartRateBpm>" in p]
    assert [e["event_type"] for e in events].count("heart_rate") == len(with_hr) > 100
    assert [e["event_type"] for e in events].count("workout") == 1
    assert not any("Latitude" in (e["extra"] or "") for e in events)
    assert [
        e["event_type"] for e in parse_wearables_file((DEVICES / "no_hr.tcx").read_bytes())
    ] == ["workout"]


def test_fit_heart_rate_matches_an_independent_reader():
    import fitparse

    path = DEVICES / "garmin-fenix-5-walk.fit"
    events = parse_wearables_file(path.read_bytes())
    records = fitparse.FitFile(str(path)).get_messages("record")
    independent = sorted(m.get_value("timestamp") for m in records if m.get_value("heart_rate"))
    assert sorted(e["event_time"] for e in events if e["event_type"] == "heart_rate") == independent
    assert all(e["device_id"].startswith("fit:") for e in events)  # the serial is hashed


@pytest.mark.parametrize(
    "name, code, reason",
    [
        ("activity-unexpected-eof.fit", "truncated", "Garmin FIT, truncated"),
        ("activity-filecrc.fit", "invalid_fit", "CRC does not match"),
        # Timestamps counted from power-on (below 0x10000000): samples that cannot be dated.
        ("compressed-speed-distance.fit", "undatable_events", "without an absolute time"),
        ("DeveloperData.fit", "undatable_events", "without an absolute time"),
    ],
)
def test_fit_files_that_cannot_give_dated_events_are_quarantined_with_the_format_named(
    name, code, reason
):
    with pytest.raises(QuarantineError) as raised:
        parse_wearables_file((DEVICES / name).read_bytes())
    assert raised.value.code == code and reason in raised.value.message


FIT_QUARANTINE = {
    "activity-unexpected-eof.fit": "truncated",
    "activity-settings-nodata.fit": "truncated",
    "activity-filecrc.fit": "invalid_fit",
    "activity-settings-corruptheader.fit": "invalid_fit",
    "compressed-speed-distance.fit": "undatable_events",
    "DeveloperData.fit": "undatable_events",
    "antfs-dump.63.fit": "undatable_events",
    "Settings.fit": "no_measurements",
    "WeightScaleSingleUser.fit": "no_measurements",
    "WorkoutRepeatSteps.fit": "no_measurements",
}


def _fitparse_counts(path: Path) -> tuple[int, int, int]:
    """Heart-rate samples, sessions and monitoring steps read with fitparse, another reader."""
    import fitparse

    heart = sessions = steps = 0
    day_totals: dict[str, int] = {}
    for message in fitparse.FitFile(str(path)).get_messages():
        if message.name in ("record", "monitoring") and (message.get_value("heart_rate") or 0) > 0:
            heart += 1
        sessions += message.name == "session"
        if message.name == "monitoring_info":  # counts accumulate per type from here
            steps += sum(day_totals.values())
            day_totals = {}
        kind = message.get_value("activity_type")
        if message.name == "monitoring" and kind in ("walking", "running"):
            cycles = message.get("cycles")
            if cycles is not None and cycles.raw_value is not None:
                day_totals[kind] = cycles.raw_value  # the unscaled value is the step count
    return heart, sessions, steps + sum(day_totals.values())


def test_every_bundled_fit_file_matches_another_reader_or_is_quarantined_with_its_reason():
    for path in sorted(DEVICES.glob("*.fit")):
        try:
            events = parse_wearables_file(path.read_bytes())
        except QuarantineError as err:
            assert FIT_QUARANTINE.get(path.name) == err.code, (path.name, err.code)
            continue
        assert path.name not in FIT_QUARANTINE, path.name
        kinds = [e["event_type"] for e in events]
        steps = sum(e["value"] for e in events if e["event_type"] == "steps")
        counts = (kinds.count("heart_rate"), kinds.count("workout"), steps)
        assert counts == _fitparse_counts(path), path.name
    monitoring = parse_wearables_file((DEVICES / "MonitoringFile.fit").read_bytes())
    assert {e["event_type"] for e in monitoring} == {"steps"} and len(monitoring) > 50
    assert all(e["end_time"] > e["event_time"] for e in monitoring)


def test_a_deeply_nested_jsonl_line_is_quarantined_instead_of_crashing_the_process(tmp_path):
    import subprocess
    import sys

    good = '{"device": "D", "id": "1", "ts": "2021-01-01T00:00:00Z", "type": "hr", "bpm": 60}\n'
    poison = tmp_path / "poison.jsonl"
    nested = '{"a": ' * 10_000 + "1" + "}" * 10_000
    poison.write_text(
        good + '{"device": "D", "id": "2", "ts": "2021-01-01T00:01:00Z", "type": "hr", '
        f'"extra": {nested}}}\n'
    )
    # In a child process: before the nesting bound, this line took the whole process down
    # (SIGSEGV in the native readers), so the main job exited 139 on every run.
    code = (
        "import sys; from multimodal_assets.lib.wearables import parse_wearables_file\n"
        "from multimodal_assets.lib.platform.ingest import QuarantineError\n"
        f"try: parse_wearables_file(open({str(poison)!r}, 'rb').read())\n"
        "except QuarantineError as err: print(err.code)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.strip() == "json_too_deep"
