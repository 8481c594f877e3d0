"""Where the project reads and writes: everything hangs off MM_DATA_DIR (default ./data)."""

import os
from pathlib import Path


def data_dir() -> Path:
    return Path(os.environ.get("MM_DATA_DIR", "data")).resolve()


def landing_dir(modality: str | None = None) -> Path:
    base = data_dir() / "landing"
    return base / modality if modality else base


def lakehouse_root() -> str:
    """The lakehouse root URI (MM_LAKEHOUSE; default <MM_DATA_DIR>/lakehouse): a local folder
    now, an object-store URI later, so it stays a string and is joined as a URI."""
    override = os.environ.get("MM_LAKEHOUSE")
    if override:
        return override if "://" in override else str(Path(override).resolve())
    return str(data_dir() / "lakehouse")


def legacy_warehouse_path() -> Path:
    """Where the first round kept its single DuckDB file (read by nothing now)."""
    return data_dir() / "warehouse" / "lakehouse.duckdb"


def truth_dir() -> Path:
    return data_dir() / "truth"


def ingest_workers() -> int:
    """Processes that parse landed genomics files in parallel (MM_INGEST_WORKERS, default 1:
    on this 2-core machine two processes gave no end-to-end gain, see benchmarks/)."""
    return int(os.environ.get("MM_INGEST_WORKERS", "1"))


def pixel_workers() -> int:
    """Processes that decode DICOM pixels for the imaging features (MM_PIXEL_WORKERS, default
    2: decoding and feature arithmetic are CPU-bound per series, see benchmarks/)."""
    return int(os.environ.get("MM_PIXEL_WORKERS", "2"))


def duckdb_memory_limit() -> str:
    """What DuckDB may hold in memory per pipeline connection before it spills to its scratch
    folder (MM_DUCKDB_MEMORY_LIMIT, default 2GB; DuckDB's own default is 80% of the machine, which
    it then keeps as a cache and which grew the main job's peak with the cohort)."""
    return os.environ.get("MM_DUCKDB_MEMORY_LIMIT", "2GB")


def parse_engine() -> str:
    """Where the multi-file bronze ingests (genomics) parse: `in_process` (default: worker
    processes of this machine) or `spark` (MM_PARSE_ENGINE=spark; a Spark job through Dagster
    Pipes on MM_SPARK_MASTER)."""
    engine = os.environ.get("MM_PARSE_ENGINE", "in_process")
    if engine not in ("in_process", "spark"):
        raise ValueError("MM_PARSE_ENGINE must be in_process or spark")
    return engine


def spark_master() -> str:
    """The Spark master the parse runs on (MM_SPARK_MASTER, default local[*]: this machine)."""
    return os.environ.get("MM_SPARK_MASTER", "local[*]")


def executor() -> str:
    """Where the steps of a run execute: `in_process` (default: `mma run` runs them in its own
    process, the UI one process per step) or `celery` (MM_EXECUTOR=celery: on the Celery
    workers listening to the Redis broker at MM_CELERY_BROKER, through dagster-celery)."""
    engine = os.environ.get("MM_EXECUTOR", "in_process")
    if engine not in ("in_process", "celery"):
        raise ValueError("MM_EXECUTOR must be in_process or celery")
    return engine


def celery_broker() -> str:
    """The Celery broker and result backend (MM_CELERY_BROKER, default the Redis server that
    scripts/celery_workers.sh starts on this machine)."""
    return os.environ.get("MM_CELERY_BROKER", "redis://127.0.0.1:6379/0")


def service_dir() -> Path:
    """The gateway service's own folder (MM_SERVICE_DIR, default <MM_DATA_DIR>/service): its
    token store, private to the service's OS user."""
    override = os.environ.get("MM_SERVICE_DIR")
    return Path(override).resolve() if override else data_dir() / "service"


def gateway_location() -> str:
    """Where the gateway service listens and clients connect (MM_GATEWAY, default localhost)."""
    return os.environ.get("MM_GATEWAY", "grpc://127.0.0.1:8815")
