"""The trial catalog: CTML files (MatchMiner's format, YAML or JSON) read into arms and their
criteria.

An arm's `match` tree is screened as the AND of its top-level conjuncts; each conjunct is one
criterion (a leaf, or an `and`/`or` subtree such as "EGFR exon 19 deletion or L858R"), named by
its `criterion_id` (our extension) or by an id derived from its content. A `clinical` node with
several keys is several criteria (MatchMiner reads it as their AND). An arm without a `match`
takes its step's; suspended arms (`arm_suspended: Y`) and dose levels are not screened.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

CATALOG = Path(__file__).resolve().parents[2] / "reference" / "trials"
TRIAL_SUFFIXES = (".yml", ".yaml", ".json")
# Leaf node types: CTML's two, and our extensions for what only notes, imaging and the
# treatment history carry (see reference/trials/README.md).
LEAF_TYPES = ("clinical", "genomic", "note", "imaging", "treatment_history")


class TrialFileError(ValueError):
    """A catalog file that is not CTML this reader understands (the reason names the part)."""


@dataclass(frozen=True)
class Criterion:
    criterion_id: str
    node: dict  # a CTML subtree: {"and"|"or": [...]} or {leaf type: {key: value}}


@dataclass(frozen=True)
class Arm:
    arm_id: str
    description: str
    criteria: tuple[Criterion, ...]


@dataclass(frozen=True)
class Trial:
    trial_id: str
    title: str
    arms: tuple[Arm, ...]
    source: str  # file name in the catalog
    sha256: str

    @property
    def criteria_count(self) -> int:
        return sum(len(arm.criteria) for arm in self.arms)


def _slug(value) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(value).lower()).strip("_")


_COMPARATORS = {">=": "ge", "<=": "le", ">": "gt", "<": "lt", "==": "eq", "!=": "ne"}


def _comparison_slug(value) -> str:
    text = str(value).strip()
    for symbol, word in _COMPARATORS.items():
        if text.startswith(symbol):
            return f"{word}_{_slug(text[len(symbol) :])}"
    return f"eq_{_slug(text)}"


_CLINICAL_NAMES = {
    "age_numerical": "age",
    "ecog_numerical": "ecog",
    "tmb_numerical": "tmb",
    "oncotree_primary_diagnosis": "diagnosis",
    "stage_group": "stage",
}


def _leaf_id(kind: str, spec: dict) -> str:
    if kind == "clinical":
        ((key, value),) = spec.items()
        name = _CLINICAL_NAMES.get(key, _slug(key))
        if key.endswith("_numerical"):
            return f"{name}_{_comparison_slug(value)}"
        text = str(value)
        return f"{name}_{'not_' if text.startswith('!') else ''}{_slug(text.lstrip('!'))}"
    if kind == "genomic":
        gene = _slug(spec.get("hugo_symbol", "any_gene"))
        parts = [
            _slug(str(spec[k]).lstrip("!"))
            for k in ("protein_change", "wildcard_protein_change", "variant_classification")
            if k in spec
        ]
        if "exon" in spec:
            parts.append(f"exon{_slug(spec['exon'])}")
        category = str(spec.get("variant_category", ""))
        if category and not parts:
            parts.append(_slug(category.lstrip("!")))
        negated = any(str(v).startswith("!") for v in spec.values())
        return ("no_" if negated else "") + "_".join([gene, *parts])
    if kind == "note":
        return f"{_slug(spec.get('concept'))}_{_slug(spec.get('assertion', 'present'))}"
    if kind == "imaging":
        ((key, value),) = spec.items()
        return f"{_slug(key)}_{_comparison_slug(value)}"
    if kind == "treatment_history":
        prior = str(spec.get("prior", "Y")).upper() == "Y"
        return f"{'' if prior else 'no_'}prior_{_slug(spec.get('drug_class'))}"
    raise TrialFileError(f"unknown node type {kind!r}")


def node_id(node: dict) -> str:
    """A readable id for a criterion that names none: from its leaves and connectives."""
    if "criterion_id" in node:
        return _slug(node["criterion_id"])
    for connective in ("and", "or"):
        if connective in node:
            return f"_{connective}_".join(node_id(child) for child in node[connective])
    ((kind, spec),) = _leaf_items(node)
    return _leaf_id(kind, spec)


def _leaf_items(node: dict) -> list[tuple[str, dict]]:
    items = [(k, v) for k, v in node.items() if k != "criterion_id"]
    if len(items) != 1 or items[0][0] not in LEAF_TYPES or not isinstance(items[0][1], dict):
        raise TrialFileError(f"a match node must be and/or or one of {LEAF_TYPES}: {sorted(node)}")
    return items


def _validate(node) -> None:
    if not isinstance(node, dict):
        raise TrialFileError("a match node must be a mapping")
    for connective in ("and", "or"):
        if connective in node:
            children = node[connective]
            if not isinstance(children, list) or not children:
                raise TrialFileError(f"'{connective}' must list at least one node")
            for child in children:
                _validate(child)
            return
    _leaf_items(node)


def _conjuncts(match) -> list[dict]:
    """The top-level criteria of a match list: `and` children, one criterion per clinical key."""
    if not match:
        return []
    if not isinstance(match, list):
        raise TrialFileError("'match' must be a list")
    root = match[0] if len(match) == 1 else {"and": match}
    _validate(root)
    nodes = root["and"] if "and" in root and "criterion_id" not in root else [root]
    out = []
    for node in nodes:
        if "clinical" in node and len(node["clinical"]) > 1 and "criterion_id" not in node:
            out += [{"clinical": {key: value}} for key, value in node["clinical"].items()]
        else:
            out.append(node)
    return out


def _criteria(match) -> tuple[Criterion, ...]:
    criteria, seen = [], {}
    for node in _conjuncts(match):
        base = node_id(node)
        seen[base] = seen.get(base, 0) + 1
        cid = base if seen[base] == 1 else f"{base}_{seen[base]}"
        criteria.append(Criterion(cid, node))
    return tuple(criteria)


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def parse_trial(document, source: str, sha256: str) -> Trial:
    """One CTML document as a Trial; TrialFileError names what is missing or malformed."""
    if not isinstance(document, dict) or "protocol_no" not in document:
        raise TrialFileError(f"{source}: not a CTML trial (no protocol_no)")
    treatment = document.get("treatment_list")
    if not isinstance(treatment, dict) or "step" not in treatment:
        raise TrialFileError(f"{source}: no treatment_list.step")
    arms = []
    for step in _as_list(treatment["step"]):
        for arm in _as_list(step.get("arm")):
            if str(arm.get("arm_suspended", "N")).upper().startswith("Y"):
                continue
            match = arm.get("match") or step.get("match")
            try:
                criteria = _criteria(match)
            except TrialFileError as err:
                raise TrialFileError(f"{source}: arm {arm.get('arm_code')}: {err}") from None
            if criteria:
                arms.append(
                    Arm(
                        str(arm.get("arm_code") or arm.get("arm_internal_id")),
                        str(arm.get("arm_description") or ""),
                        criteria,
                    )
                )
    title = document.get("short_title") or document.get("long_title") or ""
    return Trial(str(document["protocol_no"]), str(title), tuple(arms), source, sha256)


def read_trial(path: Path) -> Trial:
    data = path.read_bytes()
    try:
        document = yaml.safe_load(data)  # JSON is YAML
    except yaml.YAMLError as err:
        raise TrialFileError(f"{path.name}: not YAML or JSON ({type(err).__name__})") from None
    return parse_trial(document, path.name, hashlib.sha256(data).hexdigest())


def trial_files(folder: Path | None = None) -> list[Path]:
    folder = folder or CATALOG
    return sorted(p for p in folder.iterdir() if p.suffix in TRIAL_SUFFIXES)


def load_catalog(folder: Path | None = None) -> tuple[Trial, ...]:
    """Every trial file of the catalog folder (default: the bundled one); duplicate ids fail."""
    trials = [read_trial(p) for p in trial_files(folder)]
    ids = [t.trial_id for t in trials]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise TrialFileError(f"trial ids appear in two files: {duplicated}")
    return tuple(trials)


def catalog_version(folder: Path | None = None) -> str:
    """A hash of the catalog's files (names and bytes): changes when a trial is added or edited."""
    digest = hashlib.sha256()
    for path in trial_files(folder):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
