"""The code location: loads fast, and its asset graph matches the reviewed snapshot.

After an intended change to the graph, regenerate with UPDATE_SNAPSHOTS=1 and review the diff.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from multimodal_assets.definitions import defs

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"
NON_TABLE_ASSETS = {
    "governance/serving_files",
    "governance/lakehouse_maintenance",
    "models/training_set",
    "models/risk_models",
    "models/evaluation",
    "notes/entity_evaluation",
    "notes/context_evaluation",
    "notes/deidentification_evaluation",
    "oncology/screening_evaluation",
    "oncology/similarity_evaluation",
    "oncology/tumor_board_packets",
}


def _graph_snapshot() -> dict:
    graph = defs.resolve_asset_graph()
    out = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        spec = node.assets_def.specs_by_key[key]
        schema = spec.metadata.get("dagster/column_schema")
        out[key.to_user_string()] = {
            "deps": sorted(d.to_user_string() for d in node.parent_keys),
            "group": node.group_name,
            "kinds": sorted(spec.kinds),
            "owners": sorted(spec.owners),
            "tags": {
                k: v for k, v in sorted(spec.tags.items()) if not k.startswith("dagster/kind")
            },
            "description": spec.description,
            "columns": {c.name: c.tags for c in schema.columns} if schema else {},
            "checks": {
                c.name: "blocking" if c.blocking else "warn"
                for c in sorted(node.assets_def.check_specs, key=lambda c: c.name)
                if c.asset_key == key
            },
            "automation": node.automation_condition.get_label()
            if node.automation_condition
            else None,
            "partitions": type(node.partitions_def).__name__ if node.partitions_def else None,
            "backfill_policy": str(node.backfill_policy.policy_type)
            if node.backfill_policy
            else None,
            "freshness": str(spec.freshness_policy) if spec.freshness_policy else None,
        }
    return out


def test_asset_graph_matches_snapshot():
    current = _graph_snapshot()
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())


def test_every_asset_is_documented_tagged_and_classified():
    for key, node in _graph_snapshot().items():
        assert node["description"] and "\n" not in node["description"].strip(), key
        assert node["owners"] and node["kinds"], key
        assert set(node["tags"]) >= {"modality", "layer", "contains_phi", "access"}, key
        assert all(tags["classification"] for tags in node["columns"].values()), key
        # Every asset is a declared lakehouse table except files: the per-role serving files,
        # the training-set snapshot, the model artifacts, the evaluation report, maintenance, the
        # evaluations and the tumor-board packets.
        assert node["columns"] or key in NON_TABLE_ASSETS, key


def test_code_location_import_does_not_load_heavy_libraries():
    code = (
        "import sys, multimodal_assets.definitions; "
        "print(sorted(m for m in ('great_expectations', 'spacy', 'lightgbm', 'pandas') "
        "if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"


def test_the_pseudonym_key_comes_from_an_env_var_the_ui_never_shows(monkeypatch):
    import dagster as dg

    from multimodal_assets.defs.resources import pseudonym_key_resource

    monkeypatch.setenv("MM_PSEUDONYM_KEY", "not-the-development-key")
    resource = pseudonym_key_resource()
    assert isinstance(resource.secret, dg.EnvVar) and "not-the-development" not in repr(resource)
    with dg.build_resources({"pseudonym": resource}) as built:
        assert built.pseudonym.value() == b"not-the-development-key"


def test_governance_outputs_never_wait_on_the_model_gate():
    # A refused model version must not hold back the serving files, the column catalog or the
    # audit check: they depend on the data, not on whether a model was published.
    graph = defs.resolve_asset_graph()
    outputs = [
        dg.AssetKey(["governance", "serving_files"]),
        dg.AssetKey(["governance", "column_catalog"]),
        dg.AssetKey(["audit", "access_log"]),
    ]
    for output in outputs:
        upstream = graph.get(output).parent_keys
        seen, frontier = set(), list(upstream)
        while frontier:
            key = frontier.pop()
            if key in seen:
                continue
            seen.add(key)
            frontier.extend(graph.get(key).parent_keys)
        blocking_model_checks = [
            spec.name
            for key in seen
            if key.path[0] == "models"
            for spec in graph.get(key).assets_def.check_specs
            if spec.blocking and spec.asset_key == key
        ]
        assert blocking_model_checks == [], (output, blocking_model_checks)


def test_every_planted_fault_names_a_check_of_the_graph():
    """The main job matches failed checks to the generator's planted faults by check key."""
    from multimodal_assets.lib.synthetic.planted import KNOWN_FAULTS

    checks = {
        f"{k.asset_key.to_user_string()}:{k.name}"
        for k in defs.resolve_asset_graph().asset_check_keys
    }
    assert {f.flagged_by for f in KNOWN_FAULTS} <= checks
