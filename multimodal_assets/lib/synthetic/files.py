"""Writing delivered files: the file's mtime is its simulated arrival."""

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path


def stamp_delivery(path: Path, delivered_on: date, hour: int = 12) -> None:
    stamp = datetime(
        delivered_on.year, delivered_on.month, delivered_on.day, hour, tzinfo=UTC
    ).timestamp()
    os.utime(path, (stamp, stamp))


def write_delivered(path: Path, data: bytes, delivered_on: date, hour: int = 12) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    stamp_delivery(path, delivered_on, hour)


def batch_folder(day: date) -> str:
    """Deliveries are batched weekly: the folder is the Monday of the delivery week."""
    return (day - timedelta(days=day.weekday())).isoformat()
