"""Missingness-aware patient similarity: two patients are compared on the modalities both have.

    distance(a, b) = Σ_m w_m · |a_m − b_m|² / Σ_m w_m     over m ∈ shared(a, b) ∩ asked

Each modality vector has unit length, so each term lies in [0, 4] whatever the modality's
dimension, and a modality's weight is its share of the distance. An absent modality is never
imputed: it is left out of the sum and out of the weights. Patients who share only clinical
data are ranked on clinical data alone, and each hit says which modalities were compared.

Exact search (numpy over every profile) is the reference. The approximate index (usearch,
HNSW) keeps one graph per availability pattern, over the pattern's modality blocks scaled by
√w_m. A query with the blocks it does not share set to zero finds, in pattern P's graph,
Σ_shared w_m·|q_m − x_m|² + Σ_(P not shared) w_m (the second sum because |x_m| = 1): a constant
for the whole graph, so the ranking inside each graph is the exact one, and the distance above
is recovered exactly from it. Results of the graphs are merged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .profiles import MODALITIES, vector_column

# Declared weights (the README gives the reasons): clinical data is what every patient has and
# carries most of the outcome signal; genomics and imaging next (drivers, tumour burden);
# wearables (activity) and notes (largely restating the EHR) least.
WEIGHTS = {"clinical": 0.35, "genomics": 0.2, "imaging": 0.2, "wearables": 0.15, "notes": 0.1}
ANCHOR = "clinical"


@dataclass
class Profiles:
    """Every patient's modality blocks as arrays: zeros where absent, with the mask."""

    keys: np.ndarray  # (n,) research keys
    blocks: dict[str, np.ndarray]  # modality -> (n, d_m) float32
    present: dict[str, np.ndarray]  # modality -> (n,) bool

    @classmethod
    def from_arrow(cls, table) -> Profiles:
        keys = np.asarray(table.column("research_key").to_pylist())
        blocks, present = {}, {}
        for modality in MODALITIES:
            vectors = table.column(vector_column(modality)).to_pylist()
            mask = np.array([v is not None for v in vectors], dtype=bool)
            width = len(next((v for v in vectors if v is not None), [0.0]))
            block = np.zeros((len(vectors), width), dtype=np.float32)
            if mask.any():
                block[mask] = np.asarray([v for v in vectors if v is not None], np.float32)
            blocks[modality], present[modality] = block, mask
        return cls(keys, blocks, present)

    @classmethod
    def read(cls, conn) -> Profiles:
        """Every profile of `gold.patient_profiles`."""
        from .profiles import PATIENT_PROFILES

        return cls.from_arrow(conn.sql(f"SELECT * FROM {PATIENT_PROFILES.fqn}").to_arrow_table())

    def __len__(self) -> int:
        return len(self.keys)

    def subset(self, rows: np.ndarray) -> Profiles:
        return Profiles(
            self.keys[rows],
            {m: b[rows] for m, b in self.blocks.items()},
            {m: p[rows] for m, p in self.present.items()},
        )

    def index_of(self, key: str) -> int:
        found = np.flatnonzero(self.keys == key)
        if not len(found):
            raise KeyError("no profile for that patient")
        return int(found[0])

    def modalities_of(self, row: int) -> tuple[str, ...]:
        return tuple(m for m in MODALITIES if self.present[m][row])


@dataclass(frozen=True)
class Hit:
    research_key: str
    distance: float
    compared: tuple[str, ...]  # the modalities both patients have (and were asked for)
    contributions: dict[str, float]  # modality -> its term of the distance


def _asked(modalities) -> tuple[str, ...]:
    asked = tuple(modalities or MODALITIES)
    unknown = sorted(set(asked) - set(MODALITIES))
    if unknown:
        raise ValueError(f"unknown modalities: {unknown}")
    return asked


def exact_search(profiles: Profiles, query: int, k: int = 10, modalities=None) -> list[Hit]:
    """The k nearest patients to row `query` (itself excluded), computed over every profile."""
    asked = _asked(modalities)
    terms = {}
    weight_sum = np.zeros(len(profiles), dtype=np.float64)
    for m in asked:
        if not profiles.present[m][query]:
            continue
        shared = profiles.present[m]
        squared = np.maximum(2.0 - 2.0 * (profiles.blocks[m] @ profiles.blocks[m][query]), 0.0)
        terms[m] = np.where(shared, WEIGHTS[m] * squared, 0.0)
        weight_sum += np.where(shared, WEIGHTS[m], 0.0)
    if not terms:
        return []
    total = sum(terms.values())
    distance = np.where(weight_sum > 0, total / np.where(weight_sum > 0, weight_sum, 1), np.inf)
    distance[query] = np.inf
    k = min(k, int(np.isfinite(distance).sum()))
    nearest = np.argpartition(distance, k - 1)[:k] if k else np.array([], dtype=int)
    nearest = nearest[np.lexsort((profiles.keys[nearest], distance[nearest]))]
    return [_hit(profiles, row, distance[row], terms, weight_sum[row]) for row in nearest]


def _hit(profiles: Profiles, row: int, distance: float, terms: dict, weight_sum: float) -> Hit:
    compared = tuple(m for m in terms if profiles.present[m][row])
    return Hit(
        str(profiles.keys[row]),
        float(distance),
        compared,
        {m: float(terms[m][row] / weight_sum) for m in compared},
    )


class ApproximateIndex:
    """HNSW graphs (usearch), one per availability pattern; see the module docstring."""

    def __init__(self, profiles: Profiles, connectivity: int = 16, expansion_search: int = 96):
        from usearch.index import Index

        self.profiles = profiles
        patterns = np.stack([profiles.present[m] for m in MODALITIES], axis=1)
        self.graphs = []
        for pattern in np.unique(patterns, axis=0):
            rows = np.flatnonzero((patterns == pattern).all(axis=1))
            members = tuple(m for m, has in zip(MODALITIES, pattern, strict=True) if has)
            vectors = np.hstack(
                [profiles.blocks[m][rows] * np.float32(np.sqrt(WEIGHTS[m])) for m in members]
            )
            graph = Index(
                ndim=vectors.shape[1],
                metric="l2sq",
                dtype="f32",
                connectivity=connectivity,
                expansion_add=128,
                expansion_search=expansion_search,
            )
            graph.add(np.arange(len(rows), dtype=np.uint64), np.ascontiguousarray(vectors))
            self.graphs.append((members, rows, graph))

    def search(self, query: int, k: int = 10, modalities=None) -> list[Hit]:
        asked = _asked(modalities)
        p = self.profiles
        mine = {m for m in asked if p.present[m][query]}
        found = []
        for members, rows, graph in self.graphs:
            shared = [m for m in members if m in mine]
            if not shared:
                continue
            probe = np.hstack(
                [
                    p.blocks[m][query] * np.float32(np.sqrt(WEIGHTS[m]))
                    if m in mine
                    else np.zeros(p.blocks[m].shape[1], np.float32)
                    for m in members
                ]
            )
            matches = graph.search(probe, min(k + 1, len(rows)))
            constant = sum(WEIGHTS[m] for m in members if m not in mine)
            weight = sum(WEIGHTS[m] for m in shared)
            for local, d in zip(matches.keys, matches.distances, strict=True):
                row = int(rows[int(local)])
                if row != query:
                    found.append((max(float(d) - constant, 0.0) / weight, row, shared))
        found.sort(key=lambda f: (f[0], str(p.keys[f[1]])))
        return [self._hit(query, row, shared) for _, row, shared in found[:k]]

    def _hit(self, query: int, row: int, shared: list[str]) -> Hit:
        p = self.profiles
        weight = sum(WEIGHTS[m] for m in shared)
        terms = {
            m: WEIGHTS[m] * float(np.sum((p.blocks[m][query] - p.blocks[m][row]) ** 2)) / weight
            for m in shared
        }
        return Hit(str(p.keys[row]), sum(terms.values()), tuple(shared), terms)


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (sound at small n, unlike the normal one)."""
    if n == 0:
        return (0.0, 1.0)
    phat = successes / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))


def outcome_summary(labels: list[bool]) -> dict:
    """The 12-month progression rate among similar patients, with its 95% Wilson interval."""
    known = [bool(x) for x in labels if x is not None]
    low, high = wilson_interval(sum(known), len(known))
    rate = sum(known) / len(known) if known else None
    return {
        "with_outcome": len(known),
        "progression_rate_12m": rate,
        "ci_low": low,
        "ci_high": high,
    }


def outcomes_among(conn, research_keys: list[str]) -> dict:
    """`outcome_summary` of the 12-month outcomes (`gold.clinical_outcomes`) of these patients."""
    if not research_keys:
        return outcome_summary([])
    rows = conn.execute(
        "SELECT progressed_or_died_12m FROM gold.clinical_outcomes WHERE research_key IN "
        "(SELECT unnest($keys))",
        {"keys": research_keys},
    ).fetchall()
    return outcome_summary([r[0] for r in rows])
