"""Wearables gold: daily aggregates per patient and features as of the index date."""

from __future__ import annotations

from ..platform.tables import RESEARCH_KEY as RK
from ..platform.tables import RUN_ID, Column, Table

DAILY_SQL = """
WITH days AS (
    SELECT research_key, event_date AS day,
           quantile_cont(value, 0.1) FILTER (event_type = 'heart_rate') AS resting_hr,
           count(*) FILTER (event_type = 'heart_rate') AS hr_readings,
           sum(value) FILTER (event_type = 'steps') AS steps,
           coalesce(sum(date_diff('minute', event_time, end_time)) FILTER (
               event_type = 'steps'
               AND value >= 40 * date_diff('minute', event_time, end_time)), 0)
               AS active_minutes,
           sum(value) FILTER (event_type = 'sleep') AS sleep_minutes
    FROM silver.wearable_events
    GROUP BY ALL
)
SELECT research_key, day, resting_hr, CAST(hr_readings AS INTEGER) AS hr_readings, steps,
       active_minutes, sleep_minutes,
       avg(steps) OVER w7 AS steps_7d, avg(steps) OVER w28 AS steps_28d,
       avg(resting_hr) OVER w7 AS resting_hr_7d, avg(resting_hr) OVER w28 AS resting_hr_28d,
       CAST(count(*) OVER w28 AS INTEGER) AS days_covered_28d,
       $run_id AS _run_id
FROM days
WINDOW w7 AS (PARTITION BY research_key ORDER BY day
              RANGE BETWEEN INTERVAL 6 DAY PRECEDING AND CURRENT ROW),
       w28 AS (PARTITION BY research_key ORDER BY day
               RANGE BETWEEN INTERVAL 27 DAY PRECEDING AND CURRENT ROW)
"""


DAILY = Table(
    layer="gold",
    name="wearable_daily",
    modality="wearables",
    primary_key=("research_key", "day"),
    partition_column="day",
    description="Daily activity per patient with rolling 7- and 28-day windows.",
    columns=(
        RK,
        Column("day", "DATE", "Calendar day.", "phi", "hipaa", nullable=False),
        Column(
            "resting_hr",
            "DOUBLE",
            "10th percentile of the day's heart rate (bpm).",
            "sensitive",
            "hipaa",
            min_value=25,
            max_value=200,
        ),
        Column("hr_readings", "INTEGER", "Heart-rate readings that day.", "none", min_value=0),
        Column(
            "steps",
            "DOUBLE",
            "Steps that day.",
            "sensitive",
            "hipaa",
            min_value=0,
            max_value=100_000,
        ),
        Column(
            "active_minutes",
            "DOUBLE",
            "Minutes in intervals at ≥ 40 steps/min.",
            "sensitive",
            "hipaa",
            min_value=0,
            max_value=1440,
        ),
        Column(
            "sleep_minutes",
            "DOUBLE",
            "Minutes asleep in sessions starting that day.",
            "sensitive",
            "hipaa",
            min_value=0,
            max_value=1440,
        ),
        Column(
            "steps_7d",
            "DOUBLE",
            "Mean daily steps over the 7 days ending that day.",
            "sensitive",
            "hipaa",
            min_value=0,
        ),
        Column(
            "steps_28d",
            "DOUBLE",
            "Mean daily steps over the 28 days ending that day.",
            "sensitive",
            "hipaa",
            min_value=0,
        ),
        Column(
            "resting_hr_7d", "DOUBLE", "Mean resting heart rate over 7 days.", "sensitive", "hipaa"
        ),
        Column(
            "resting_hr_28d",
            "DOUBLE",
            "Mean resting heart rate over 28 days.",
            "sensitive",
            "hipaa",
        ),
        Column(
            "days_covered_28d",
            "INTEGER",
            "Days with data in the 28-day window.",
            "none",
            min_value=0,
            max_value=28,
        ),
        RUN_ID,
    ),
    build_sql=DAILY_SQL,
)

FEATURES_SQL = """
SELECT c.research_key,
       count(d.day) > 0 AS has_wearables,
       CAST(count(d.day) AS INTEGER) AS coverage_days_28d,
       avg(d.steps) FILTER (d.day >= c.index_date - INTERVAL 7 DAY) AS steps_mean_7d,
       avg(d.steps) AS steps_mean_28d,
       regr_slope(d.steps, date_diff('day', c.index_date, d.day)) AS steps_slope_28d,
       avg(d.resting_hr) FILTER (d.day >= c.index_date - INTERVAL 7 DAY) AS resting_hr_mean_7d,
       avg(d.resting_hr) AS resting_hr_mean_28d,
       avg(d.sleep_minutes) AS sleep_mean_28d,
       max(d.day) AS wearables_data_through,
       $run_id AS _run_id
FROM gold.clinical_features c
LEFT JOIN gold.wearable_daily d
  ON d.research_key = c.research_key AND d.day < c.index_date
 AND d.day >= c.index_date - INTERVAL 28 DAY
GROUP BY c.research_key
"""


FEATURES = Table(
    layer="gold",
    name="wearables_features",
    modality="wearables",
    primary_key=("research_key",),
    description="One row per patient: wearable activity in the 28 days before the index date.",
    columns=(
        RK,
        Column(
            "has_wearables",
            "BOOLEAN",
            "Any wearable day in the 28 days before index.",
            "none",
            nullable=False,
        ),
        Column(
            "coverage_days_28d",
            "INTEGER",
            "Days with data in the 28 days before index.",
            "none",
            nullable=False,
            min_value=0,
            max_value=28,
        ),
        Column(
            "steps_mean_7d",
            "DOUBLE",
            "Mean daily steps, 7 days before index.",
            "sensitive",
            "hipaa",
            min_value=0,
        ),
        Column(
            "steps_mean_28d",
            "DOUBLE",
            "Mean daily steps, 28 days before index.",
            "sensitive",
            "hipaa",
            min_value=0,
        ),
        Column(
            "steps_slope_28d",
            "DOUBLE",
            "Trend of daily steps (steps/day per day).",
            "sensitive",
            "hipaa",
        ),
        Column(
            "resting_hr_mean_7d",
            "DOUBLE",
            "Mean resting HR, 7 days before index.",
            "sensitive",
            "hipaa",
        ),
        Column(
            "resting_hr_mean_28d",
            "DOUBLE",
            "Mean resting HR, 28 days before index.",
            "sensitive",
            "hipaa",
        ),
        Column(
            "sleep_mean_28d",
            "DOUBLE",
            "Mean minutes asleep, 28 days before index.",
            "sensitive",
            "hipaa",
        ),
        Column(
            "wearables_data_through",
            "DATE",
            "Latest wearable day any feature of this row used (the point-in-time guard).",
            "phi",
            "hipaa",
        ),
        RUN_ID,
    ),
    build_sql=FEATURES_SQL,
)
