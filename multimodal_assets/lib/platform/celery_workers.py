"""Starting and stopping this machine's Celery workers (scripts/celery_workers.sh) from Python,
for the tests and benchmarks of MM_EXECUTOR=celery."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "celery_workers.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_workers(broker: str, count: int, timeout: float = 120.0) -> None:
    """Return once `count` workers answer a ping on `broker`; raise after `timeout` seconds."""
    from celery import Celery

    app = Celery(broker=broker, backend=broker)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len(app.control.ping(timeout=1.0)) >= count:
                return
        except OSError:  # the broker is not listening yet
            pass
        time.sleep(1)
    raise TimeoutError(f"fewer than {count} Celery workers answered within {timeout:.0f} s")


@contextmanager
def celery_workers(env: dict[str, str], count: int) -> Iterator[dict[str, str]]:
    """`count` workers and their own Redis server on a free port, with the settings in `env`;
    yields the environment a run needs to use them (MM_EXECUTOR=celery, the broker)."""
    port = free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    env = {
        **env,
        "MM_REDIS_PORT": str(port),
        "MM_CELERY_BROKER": broker,
        "MM_EXECUTOR": "celery",
    }
    process = subprocess.Popen(
        [SCRIPT, str(count)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, stopped whole below
    )
    try:
        wait_for_workers(broker, count)
        yield env
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
