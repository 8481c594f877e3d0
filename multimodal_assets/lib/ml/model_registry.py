"""Where training snapshots and models live, and which model version is in production.

Layout under `<data>/ml/`:
- `training_sets/<version>/` (rows.parquet, manifest.json) and `training_sets/LATEST`;
- `models/<version>/` (fitted bundle, LightGBM boosters as text, metrics.json) and
  `models/current.json`, the published version;
- `evaluation_cohort.json`: the frozen evaluation cohort, the test-split research keys of the
  first published model. Test membership is a hash of the key, so these patients are never
  trained on by any later version; new models are compared with the current one on them.

Bundles are pickled: they are written and read only by this project, under its data folder.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from . import training

if TYPE_CHECKING:
    import pandas as pd

    from .fusion_models import FusionModels

NOT_WORSE_TOLERANCE = 0.01  # AUROC a new version may lose on the frozen cohort (its noise floor)


def model_version(training_set: str, code_version: str, seed: int) -> str:
    return hashlib.sha256(f"{training_set}/{code_version}/{seed}".encode()).hexdigest()[:16]


def compare_on_frozen_cohort(
    candidate: FusionModels, incumbent: FusionModels | None, rows: pd.DataFrame, keys: list[str]
) -> dict:
    """Late-fusion AUROC of both models on the frozen cohort's current rows. The candidate
    passes if there is no incumbent, if the cohort cannot rank the incumbent (one outcome class
    only), or if it is not worse than the incumbent by more than the tolerance."""
    from .fusion_models import PRODUCTION_STRATEGY

    cohort = rows[rows.research_key.isin(keys)]
    y = cohort[training.LABEL].to_numpy(dtype=bool)

    def score(models):
        return training.auroc(y, models.predict(cohort)[PRODUCTION_STRATEGY].to_numpy())

    new = score(candidate)
    old = score(incumbent) if incumbent is not None else None
    passed = old is None or (new is not None and new >= old - NOT_WORSE_TOLERANCE)
    return {"patients": len(cohort), "candidate_auroc": new, "current_auroc": old, "passed": passed}


class ModelRegistry:
    """The registry under one folder (`<MM_DATA_DIR>/ml` in the product): training sets, model
    bundles, the published version and the frozen evaluation cohort."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    @property
    def training_sets(self) -> Path:
        return self.folder / "training_sets"

    def mark_latest_training_set(self, version: str) -> None:
        (self.training_sets / "LATEST").write_text(version + "\n")

    def latest_training_set(self) -> tuple[str, pd.DataFrame]:
        import pandas as pd

        version = (self.training_sets / "LATEST").read_text().strip()
        return version, pd.read_parquet(self.training_sets / version / "rows.parquet")

    def training_rows(self, version: str) -> pd.DataFrame:
        import pandas as pd

        return pd.read_parquet(self.training_sets / version / "rows.parquet")

    def save_models(self, models: FusionModels, version: str, manifest: dict) -> Path:
        folder = self.folder / "models" / version
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "bundle.pkl").write_bytes(pickle.dumps(models))
        for modality, model in models.modality_models.items():  # portable copies of each model
            if hasattr(model, "portable"):
                (folder / f"{modality}.json").write_text(json.dumps(model.portable(), indent=1))
            else:
                model.booster_.save_model(str(folder / f"{modality}.txt"))
        models.early.booster_.save_model(str(folder / "early_fusion.txt"))
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        return folder

    def load_models(self, version: str) -> FusionModels:
        return pickle.loads((self.folder / "models" / version / "bundle.pkl").read_bytes())

    def current(self) -> dict | None:
        """The published model: version, training_set, published_at; None before the first."""
        path = self.folder / "models" / "current.json"
        return json.loads(path.read_text()) if path.exists() else None

    def publish(self, version: str, training_set: str, frozen_auroc: float | None) -> None:
        record = {
            "version": version,
            "training_set": training_set,
            "frozen_cohort_auroc": frozen_auroc,
            "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        (self.folder / "models" / "current.json").write_text(json.dumps(record, indent=2))

    def frozen_cohort(self, rows: pd.DataFrame) -> list[str]:
        """The frozen evaluation cohort's research keys, fixed from `rows`' test split on first use."""
        path = self.folder / "evaluation_cohort.json"
        if not path.exists():
            keys = sorted(rows.research_key[rows.split == "test"])
            created = datetime.now(UTC).isoformat(timespec="seconds")
            path.write_text(json.dumps({"created_at": created, "research_keys": keys}))
        return json.loads(path.read_text())["research_keys"]

    def pinned_table_versions(self) -> dict[str, set[int]]:
        """Delta versions of the input tables named by the training set of every saved model: the
        versions lakehouse maintenance must keep readable (time travel rebuilds those sets)."""
        pinned: dict[str, set[int]] = {}
        for model_manifest in sorted((self.folder / "models").glob("*/manifest.json")):
            training_set = json.loads(model_manifest.read_text()).get("training_set")
            path = self.training_sets / str(training_set) / "manifest.json"
            if not path.exists():
                continue
            versions = json.loads(path.read_text())["source"].get("table_versions", {})
            for fqn, version in versions.items():
                pinned.setdefault(fqn, set()).add(int(version))
        return pinned
