"""The lakehouse resource shared by every asset."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from multimodal_assets.lib.platform import config, warehouse


class LakehouseResource(dg.ConfigurableResource):
    """Delta Lake tables under one root URI, read and written through DuckDB connections."""

    root: str

    @contextmanager
    def get_connection(self) -> Iterator[warehouse.LakehouseConnection]:
        with warehouse.connect(self.root) as conn:
            yield conn


@dg.definitions
def resources() -> dg.Definitions:
    """The lakehouse under MM_DATA_DIR (or MM_LAKEHOUSE), read when the code location loads."""
    return dg.Definitions(resources={"lakehouse": LakehouseResource(root=config.lakehouse_root())})


OWNERS = ["team:data-platform"]
