"""The resources assets share: the lakehouse, and the pseudonymization key."""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from multimodal_assets.lib.governance import pseudonym
from multimodal_assets.lib.platform import config, warehouse


class LakehouseResource(dg.ConfigurableResource):
    """Delta Lake tables under one root URI, read and written through DuckDB connections."""

    root: str

    @contextmanager
    def get_connection(self) -> Iterator[warehouse.LakehouseConnection]:
        with warehouse.connect(self.root, memory_limit=config.duckdb_memory_limit()) as conn:
            yield conn


class PseudonymKey(dg.ConfigurableResource):
    """The secret behind research keys, date shifts and de-identified DICOM UIDs."""

    secret: str

    def value(self) -> bytes:
        return self.secret.encode()


def pseudonym_key_resource() -> PseudonymKey:
    """MM_PSEUDONYM_KEY as an EnvVar (Dagster never shows its value), or the public development
    key, announced loudly, when it is not set."""
    if os.environ.get(pseudonym.KEY_ENV):
        return PseudonymKey(secret=dg.EnvVar(pseudonym.KEY_ENV))
    return PseudonymKey(secret=pseudonym.pseudonym_key().decode())


@dg.definitions
def resources() -> dg.Definitions:
    """The lakehouse under MM_DATA_DIR (or MM_LAKEHOUSE) and the pseudonymization key, read
    when the code location loads."""
    return dg.Definitions(
        resources={
            "lakehouse": LakehouseResource(root=config.lakehouse_root()),
            "pseudonym": pseudonym_key_resource(),
        }
    )


OWNERS = ["team:data-platform"]
