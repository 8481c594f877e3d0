"""Fusion: the per-modality gold feature tables joined into one row per cohort patient.

The fused declaration is derived from the registry: every gold `<modality>_features` table with
a `has_<modality>` flag contributes its columns (with their classification) and lineage, so a
new modality joins without a change here. Each input is already point-in-time (nothing after
the index date), so the join adds no leakage.
"""

from __future__ import annotations

from ..platform.tables import RESEARCH_KEY, RUN_ID, Column, Table

ANCHOR = "gold.clinical_features"  # defines the cohort and the index date
_SKIP = ("research_key", "_run_id")
# Fused columns that are not predictors: identifiers, dates, cohort bookkeeping, and race (kept
# only for subgroup evaluation, never as an input); phi columns never enter either.
NOT_PREDICTORS = {"research_key", "_run_id", "in_nsclc_cohort", "research_consent", "race"}


def feature_tables(tables) -> list[Table]:
    """Gold per-modality feature tables: named `<modality>_features` with `has_<modality>`."""
    return [
        t
        for t in tables
        if t.layer == "gold"
        and t.name == f"{t.modality}_features"
        and f"has_{t.modality}" in t.column_names
    ]


def fused_table(tables) -> Table:
    sources = sorted(feature_tables(tables), key=lambda t: (t.fqn != ANCHOR, t.fqn))
    columns: list[Column] = [RESEARCH_KEY]
    lineage = {"research_key": ((ANCHOR, "research_key"),)}
    for source in sources:
        for column in source.columns:
            if column.name in _SKIP:
                continue
            if column.name in lineage:
                raise ValueError(f"feature column {column.name} appears in two modalities")
            # A missing modality is a value: its flag is false, never null.
            is_flag = column.name == f"has_{source.modality}"
            columns.append(
                Column(
                    column.name,
                    column.type,
                    column.description,
                    column.classification,
                    column.regulatory,
                    nullable=not is_flag and column.nullable,
                    allowed=column.allowed,
                    min_value=column.min_value,
                    max_value=column.max_value,
                )
            )
            lineage[column.name] = ((source.fqn, column.name),)
    columns.append(RUN_ID)
    return Table(
        layer="gold",
        name="patient_features",
        modality="fusion",
        primary_key=("research_key",),
        description="One row per NSCLC cohort patient: every modality's features as of the "
        "index date, with has_<modality> flags.",
        columns=tuple(columns),
        lineage=lineage,
    )


def fused_sql(fused: Table) -> str:
    """Join every contributing table to the anchor; absent modalities give false flags."""
    sources = sorted({fqn for deps in fused.lineage.values() for fqn, _ in deps} - {ANCHOR})
    aliases = {ANCHOR: "a", **{fqn: f"m{i}" for i, fqn in enumerate(sources)}}
    select = []
    for column in fused.columns:
        if column.name == "_run_id":
            select.append("$run_id AS _run_id")
        elif column.name == "research_key":
            select.append("a.research_key")
        else:
            ((fqn, name),) = fused.lineage[column.name]
            ref = f'{aliases[fqn]}."{name}"'
            select.append(
                f'coalesce({ref}, FALSE) AS "{column.name}"'
                if name.startswith("has_")
                else f'{ref} AS "{column.name}"'
            )
    joins = "\n".join(
        f"LEFT JOIN {fqn} {alias} USING (research_key)"
        for fqn, alias in aliases.items()
        if fqn != ANCHOR
    )
    return f"SELECT {', '.join(select)}\nFROM {ANCHOR} a\n{joins}\nWHERE a.in_nsclc_cohort"


def data_through_column(modality: str) -> str:
    """Each modality's feature table declares the latest source date its row used."""
    return f"{modality}_data_through"


def leakage_sql(fused: Table) -> str:
    """Per modality: cohort rows whose features used data dated after the index date, or -1
    when the modality declares no data-through date (it cannot be verified)."""
    modalities = sorted(
        {
            fqn.split(".")[1].removesuffix("_features")
            for deps in fused.lineage.values()
            for fqn, _ in deps
        }
    )
    counts = [
        f"count(*) FILTER ({data_through_column(m)} > index_date) AS {m}"
        if data_through_column(m) in fused.column_names
        else f"-1 AS {m}"
        for m in modalities
    ]
    return f"SELECT {', '.join(counts)} FROM {fused.layer}.{fused.name}"


def predictors_by_modality(fused: Table) -> dict[str, list[str]]:
    """Predictor columns of the fused table per source modality (without the has_ flags)."""
    out: dict[str, list[str]] = {}
    for column in fused.columns:
        if column.name in NOT_PREDICTORS or column.classification == "phi":
            continue
        ((source, _),) = fused.lineage[column.name]
        modality = source.split(".")[1].removesuffix("_features")
        if column.name != f"has_{modality}":
            out.setdefault(modality, []).append(column.name)
    return out


def risk_scores_table(fused: Table) -> Table:
    """gold.risk_scores: one production score per patient with its per-modality contributions."""
    predictors = predictors_by_modality(fused)
    flags = [c.name for c in fused.columns if c.name.startswith("has_")]
    modalities = [f.removeprefix("has_") for f in flags if f.removeprefix("has_") in predictors]
    source = f"{fused.layer}.{fused.name}"
    inputs = {m: ((source, f"has_{m}"), *((source, c) for c in predictors[m])) for m in modalities}
    return Table(
        layer="gold",
        name="risk_scores",
        modality="fusion",
        primary_key=("research_key",),
        description="Risk of progression or death within 12 months for every cohort patient, "
        "from the production model, with the modalities it used and what each contributed. "
        "Decision support for clinicians, never a decision.",
        columns=(
            RESEARCH_KEY,
            Column(
                "risk_score",
                "DOUBLE",
                "Predicted probability of progression or death within 12 months.",
                "sensitive",
                "hipaa",
                nullable=False,
                min_value=0,
                max_value=1,
            ),
            Column(
                "strategy",
                "VARCHAR",
                "Fusion strategy that produced the score.",
                "none",
                nullable=False,
            ),
            Column("model_version", "VARCHAR", "Published model version.", "none", nullable=False),
            Column(
                "training_set",
                "VARCHAR",
                "Training snapshot of that model.",
                "none",
                nullable=False,
            ),
            Column(
                "modalities_used",
                "VARCHAR",
                "Modalities available to the score, joined by '+'.",
                "sensitive",
                "hipaa",
                nullable=False,
            ),
            Column("baseline_logit", "DOUBLE", "Late fusion's intercept (logit scale).", "none"),
            *[
                Column(
                    f"contribution_{m}",
                    "DOUBLE",
                    f"Additive contribution of {m} to the score's logit (0 when absent).",
                    "sensitive",
                    "hipaa",
                )
                for m in modalities
            ],
            RUN_ID,
        ),
        lineage={
            "research_key": ((source, "research_key"),),
            "risk_score": tuple(dep for m in modalities for dep in inputs[m]),
            "modalities_used": tuple((source, f"has_{m}") for m in modalities),
            **{f"contribution_{m}": inputs[m] for m in modalities},
        },
    )
