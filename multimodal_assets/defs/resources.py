"""The warehouse resource shared by every asset."""

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
from dagster_duckdb import DuckDBResource

from multimodal_assets.lib import config, warehouse


class WarehouseResource(DuckDBResource):
    """DuckDB warehouse: one process at a time (OS lock), connection closed even on error."""

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with warehouse.connect(self.database, self.connection_config) as conn:
            yield conn


def default_resources() -> dict:
    return {"lakehouse": WarehouseResource(database=str(config.warehouse_path()))}


OWNERS = ["team:data-platform"]
WAREHOUSE_POOL = "warehouse"
