"""One declaration per table: DDL, expectations and governance catalog rows all derive from it."""

from __future__ import annotations

from dataclasses import dataclass, field

CLASSIFICATIONS = ("phi", "pii", "quasi_identifier", "sensitive", "none")
LAYERS = ("bronze", "silver", "gold", "governance", "audit", "ml")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str
    classification: str
    regulatory: str = "none"
    nullable: bool = True
    allowed: tuple = ()
    min_value: float | None = None
    max_value: float | None = None

    def __post_init__(self):
        if self.classification not in CLASSIFICATIONS:
            raise ValueError(f"column {self.name}: unknown classification {self.classification!r}")


@dataclass(frozen=True)
class RuleCheck:
    """A domain rule of a table: `sql` counts the published rows that break it (0 passes)."""

    name: str
    description: str
    sql: str


@dataclass(frozen=True)
class Table:
    layer: str
    name: str
    description: str
    columns: tuple[Column, ...]
    modality: str
    primary_key: tuple[str, ...] = ()
    partition_column: str | None = None
    # Tables read only by the pipeline and privileged roles (raw identified data).
    restricted: bool = False
    # Bronze tables whose rows arrive repeatedly: keep each primary key once, whatever the
    # number of deliveries.
    append_once: bool = False
    # The SELECT that builds the table (DuckDB SQL, `$run_id` bound to the run), if SQL builds
    # it: its column lineage and the asset's deps are derived from it by parsing.
    build_sql: str | None = field(default=None, compare=False, hash=False, repr=False)
    # Tables built in Python declare their column lineage by hand: column -> ((upstream table
    # fqn, upstream column), ...). Read it through `catalog.column_lineage`, which derives it
    # for SQL-built tables.
    lineage: dict = field(default_factory=dict, compare=False, hash=False)
    # column -> {upstream table fqn: SQL predicate}: which upstream records feed the column.
    record_filters: dict = field(default_factory=dict, compare=False, hash=False)
    # Domain rules checked (non-blocking) on every published version.
    checks: tuple[RuleCheck, ...] = field(default=(), compare=False, hash=False)
    _by_name: dict = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.layer not in LAYERS:
            raise ValueError(f"table {self.name}: unknown layer {self.layer!r}")
        object.__setattr__(self, "_by_name", {c.name: c for c in self.columns})
        missing = [k for k in self.primary_key if k not in self._by_name]
        missing += [k for k in self.lineage if k not in self._by_name]
        if missing:
            raise ValueError(f"table {self.name}: columns not declared: {missing}")
        if self.build_sql and self.lineage:
            raise ValueError(
                f"table {self.name}: its column lineage is derived from its SQL; declare none"
            )

    @property
    def fqn(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def asset_key(self) -> tuple[str, str]:
        """The Dagster asset key: layer and name, as in the table's name `layer.name`."""
        return (self.layer, self.name)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def contains_phi(self) -> bool:
        return any(c.classification == "phi" for c in self.columns)

    def column(self, name: str) -> Column:
        return self._by_name[name]

    def ddl(self, qualified_name: str | None = None) -> str:
        cols = [f'"{c.name}" {c.type}' + ("" if c.nullable else " NOT NULL") for c in self.columns]
        # No PRIMARY KEY constraint: uniqueness is enforced by the staged checks before publish,
        # and DuckDB's ART indexes make bulk delete-then-insert publishes slow and fragile.
        return (
            f"CREATE TABLE IF NOT EXISTS {qualified_name or self.fqn} (\n  "
            + ",\n  ".join(cols)
            + "\n)"
        )


@dataclass(frozen=True)
class Expectation:
    """A data-quality rule derived from a declaration; run by Great Expectations on staged data."""

    kind: str  # not_null | unique | in_set | between
    column: str
    blocking: bool
    params: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def check_name(self) -> str:
        return f"{self.kind}__{self.column}"


def expectations(table: Table) -> list[Expectation]:
    """Basic expectations implied by the declaration: key integrity blocks, value rules warn."""
    out: list[Expectation] = []
    for col in table.columns:
        if not col.nullable or col.name in table.primary_key:
            out.append(Expectation("not_null", col.name, blocking=True))
        if col.allowed:
            out.append(
                Expectation("in_set", col.name, blocking=False, params={"values": col.allowed})
            )
        if col.min_value is not None or col.max_value is not None:
            out.append(
                Expectation(
                    "between",
                    col.name,
                    blocking=False,
                    params={"min": col.min_value, "max": col.max_value},
                )
            )
    if len(table.primary_key) == 1:
        out.append(Expectation("unique", table.primary_key[0], blocking=True))
    elif table.primary_key:
        out.append(
            Expectation(
                "unique",
                "__".join(table.primary_key),
                blocking=True,
                params={"columns": table.primary_key},
            )
        )
    return out


def catalog_rows(tables) -> list[dict]:
    """Rows of governance.column_catalog for the given declarations."""
    return [
        {
            "table_name": t.fqn,
            "column_name": c.name,
            "data_type": c.type,
            "classification": c.classification,
            "regulatory": c.regulatory,
            "description": c.description,
        }
        for t in tables
        for c in t.columns
    ]


RESEARCH_KEY = Column(
    "research_key",
    "VARCHAR",
    "Keyed pseudonym of the patient's MRN (join key).",
    "quasi_identifier",
    "hipaa",
    nullable=False,
)


# Every published row says which Dagster run wrote it.
RUN_ID = Column("_run_id", "VARCHAR", "Dagster run that wrote this row.", "none")


def provenance_columns(locator_description: str, locator_classification: str = "none"):
    """The provenance columns every bronze and silver row carries."""
    return (
        Column(
            "_source_sha256",
            "VARCHAR",
            "SHA-256 of the landed file this row came from.",
            "none",
            nullable=False,
        ),
        Column(
            "_source_locator",
            "VARCHAR",
            locator_description,
            locator_classification,
            nullable=False,
        ),
        RUN_ID,
    )
