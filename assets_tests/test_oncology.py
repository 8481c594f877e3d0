"""Oncology: the CTML catalog (and a real MatchMiner file), screening's missing-data rule and
provenance, missingness-aware similarity, and who may see which similar patients."""

import shutil
from datetime import date

import dagster as dg
import numpy as np
import pytest

from multimodal_assets.lib.governance.policy import Denied
from multimodal_assets.lib.oncology import criteria, trials
from multimodal_assets.lib.oncology.criteria import MET, NOT_MET, UNKNOWN, judge
from multimodal_assets.lib.oncology.facts import Evidence, PatientFacts, Variant
from multimodal_assets.lib.oncology.similarity import ApproximateIndex, Profiles, exact_search

from .conftest import FIXTURES, audit_rows, research_key

CTML = FIXTURES / "ctml"
EHR = Evidence("record", date(2022, 1, 5), "structured_ehr", "a" * 64, "Patient/1")


def _patient(**known) -> PatientFacts:
    """A patient whose EHR is complete and who has nothing else unless given."""
    facts = PatientFacts("rk_" + "0" * 20, date(2022, 2, 1))
    facts.age = (64, EHR)
    facts.diagnosis = ("Lung Adenocarcinoma", EHR)
    facts.stage = ("IV", EHR)
    facts.ecog = (1, EHR)
    facts.treatment_record = EHR
    for name, value in known.items():
        setattr(facts, name, value)
    return facts


def _sequenced(*variants: Variant, tmb: float = 4.0) -> dict:
    from multimodal_assets.lib.genomics import reference

    sample = Evidence("tumor sample", date(2022, 1, 20), "genomics", "b" * 64, "sample T1")
    return {
        "sequencing": sample,
        "panel_genes": frozenset(r.gene for r in reference.panel()),
        "variants": list(variants),
        "tmb": (tmb, sample),
    }


def _variant(gene: str, biomarker: str | None, kind: str = "snv") -> Variant:
    return Variant(gene, biomarker, kind, Evidence(gene, None, "genomics", "c" * 64, "chr:1"))


def test_a_real_matchminer_ctml_file_reads_without_change():
    trial = trials.read_trial(CTML / "all_open.json")
    assert trial.trial_id == "10-002"
    # ARM 2 is suspended: not screened. Dose levels are not screened either.
    (arm,) = trial.arms
    assert arm.arm_id == "ARM 1"
    assert [c.criterion_id for c in arm.criteria] == [
        "egfr_in_frame_del",
        "age_ge_18",
        "diagnosis_non_small_cell_lung_cancer",
    ]
    exon19 = _sequenced(_variant("EGFR", "EGFR_exon19del", "deletion"))
    statuses = [judge(c.node, _patient(**exon19)).status for c in arm.criteria]
    assert statuses == [MET, MET, MET]
    l858r = _sequenced(_variant("EGFR", "EGFR_L858R"))
    assert judge(arm.criteria[0].node, _patient(**l858r)).status == NOT_MET
    (tmb_arm,) = trials.read_trial(CTML / "tmb.json").arms
    (any_tmb,) = tmb_arm.criteria  # one `or` of five comparisons
    assert judge(any_tmb.node, _patient(**_sequenced(tmb=12.0))).status == MET
    assert judge(any_tmb.node, _patient(**_sequenced(tmb=5.0))).status == MET  # "<=40"
    assert judge(any_tmb.node, _patient()).status == UNKNOWN  # not sequenced


def test_the_bundled_catalog_reads_and_every_criterion_is_evaluable(tmp_path):
    catalog = trials.load_catalog()
    assert len(catalog) == 12
    complete = _patient(
        **_sequenced(_variant("KRAS", "KRAS_G12C")),
        mentions={"brain_metastasis": [(False, EHR)]},
        imaging=EHR,
        lesion_mm=31.0,
        notes_reviewed=True,
    )
    for trial in catalog:
        for arm in trial.arms:
            ids = [c.criterion_id for c in arm.criteria]
            assert len(ids) == len(set(ids)), (trial.trial_id, arm.arm_id)
            for criterion in arm.criteria:
                verdict = judge(criterion.node, complete)
                assert verdict.status in (MET, NOT_MET), (trial.trial_id, criterion.criterion_id)
    # A typo in a catalog file is an error that names the file and the part, not a guess.
    shutil.copy(trials.CATALOG / "nsclc-alk.yml", tmp_path / "a.yml")
    (tmp_path / "b.yml").write_text(
        "protocol_no: X-1\ntreatment_list:\n  step:\n  - arm:\n    - arm_code: A\n"
        "      match:\n      - and:\n        - clinicl: {age_numerical: '>=18'}\n"
    )
    with pytest.raises(trials.TrialFileError, match="b.yml: arm A"):
        trials.load_catalog(tmp_path)


def test_missing_data_is_unknown_never_not_met():
    nothing_else = _patient()  # EHR only: no sequencing, CT or notes
    unknowns = []
    for trial in trials.load_catalog():
        for arm in trial.arms:
            for criterion in arm.criteria:
                verdict = judge(criterion.node, nothing_else)
                kinds = str(criterion.node)
                if any(k in kinds for k in ("genomic", "tmb_numerical", "imaging", "note")):
                    assert verdict.status == UNKNOWN, criterion.criterion_id
                    assert verdict.question and verdict.evidence is None
                    unknowns.append(criterion.criterion_id)
    assert {"egfr_exon19_or_l858r", "tmb_ge_10", "measurable_lesion_mm_ge_10"} <= set(unknowns)
    # Without notes, an absent prior treatment cannot be claimed from EHR orders alone.
    no_io = {"treatment_history": {"drug_class": "immunotherapy", "prior": "N"}}
    assert judge(no_io, nothing_else).status == UNKNOWN
    assert judge(no_io, _patient(notes_reviewed=True)).status == MET
    # A variant the hotspot table cannot classify decides nothing either way.
    passenger = _sequenced(_variant("KRAS", None))
    for wanted in ("Mutation", "!Mutation"):
        node = {"genomic": {"hugo_symbol": "KRAS", "variant_category": wanted}}
        assert judge(node, _patient(**passenger)).status == UNKNOWN
    assert judge(node, _patient(**_sequenced())).status == MET  # sequenced, nothing in KRAS


def test_three_valued_logic_and_the_arm_rule():
    unknown = {"genomic": {"hugo_symbol": "EGFR", "protein_change": "p.L858R"}}
    met = {"clinical": {"age_numerical": ">=18"}}
    not_met = {"clinical": {"ecog_numerical": "==3"}}
    facts = _patient()
    assert judge({"or": [unknown, met]}, facts).status == MET
    assert judge({"or": [unknown, not_met]}, facts).status == UNKNOWN
    assert judge({"and": [unknown, not_met]}, facts).status == NOT_MET
    assert judge({"and": [unknown, met]}, facts).status == UNKNOWN
    assert criteria.arm_status([MET, MET]) == "eligible"
    assert criteria.arm_status([MET, UNKNOWN]) == "potentially_eligible"
    assert criteria.arm_status([UNKNOWN, NOT_MET]) == "not_eligible"


def _profiles(n: int = 400, seed: int = 3) -> Profiles:
    rng = np.random.default_rng(seed)
    blocks, present = {}, {}
    for modality, width in (
        ("clinical", 6),
        ("genomics", 4),
        ("imaging", 5),
        ("notes", 3),
        ("wearables", 4),
    ):
        vectors = rng.normal(size=(n, width))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        mask = np.ones(n, bool) if modality == "clinical" else rng.random(n) < 0.5
        blocks[modality] = np.where(mask[:, None], vectors, 0).astype(np.float32)
        present[modality] = mask
    return Profiles(np.array([f"rk_{i:020x}" for i in range(n)]), blocks, present)


def test_similarity_compares_shared_modalities_only_and_the_index_agrees_with_exact():
    profiles = _profiles()
    clinical_only = int(
        np.flatnonzero(
            ~np.any(
                [profiles.present[m] for m in ("genomics", "imaging", "notes", "wearables")], axis=0
            )
        )[0]
    )
    for hit in exact_search(profiles, clinical_only, 10):
        assert hit.compared == ("clinical",)
        assert hit.distance == pytest.approx(hit.contributions["clinical"])
    query = int(np.flatnonzero(profiles.present["imaging"] & profiles.present["genomics"])[0])
    hits = exact_search(profiles, query, 10)
    for hit in hits:
        row = profiles.index_of(hit.research_key)
        shared = [
            m
            for m in ("clinical", "genomics", "imaging", "notes", "wearables")
            if profiles.present[m][query] and profiles.present[m][row]
        ]
        assert list(hit.compared) == shared
        assert sum(hit.contributions.values()) == pytest.approx(hit.distance, rel=1e-5)
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)
    assert all(h.research_key != profiles.keys[query] for h in hits)
    index = ApproximateIndex(profiles, expansion_search=400)
    for q in range(0, 400, 37):
        exact = exact_search(profiles, q, 10)
        approximate = index.search(q, 10)
        assert [h.research_key for h in approximate] == [h.research_key for h in exact]
        assert [h.distance for h in approximate] == pytest.approx(
            [h.distance for h in exact], abs=1e-4
        )
    narrowed = exact_search(profiles, query, 5, ["imaging"])
    assert all(h.compared == ("imaging",) for h in narrowed)


def test_the_catalog_sensor_rescreens_on_a_changed_trial_file(tmp_path, monkeypatch):
    from multimodal_assets.defs.oncology import trial_catalog_sensor

    for path in trials.trial_files():
        shutil.copy(path, tmp_path / path.name)
    monkeypatch.setattr(trials, "CATALOG", tmp_path)
    first = trial_catalog_sensor(dg.build_sensor_context())
    assert isinstance(first, dg.SkipReason)
    cursor = trials.catalog_version()
    unchanged = trial_catalog_sensor(dg.build_sensor_context(cursor=cursor))
    assert isinstance(unchanged, dg.SkipReason)
    (tmp_path / "nsclc-new.yml").write_text(
        (tmp_path / "nsclc-braf.yml").read_text().replace("SYN-BRAF-01", "SYN-BRAF-02")
    )
    request = trial_catalog_sensor(dg.build_sensor_context(cursor=cursor))
    assert isinstance(request, dg.RunRequest) and trials.catalog_version() in request.run_key
    assert len(trials.load_catalog()) == 13  # a new trial, no code change


def test_every_met_or_not_met_names_the_record_it_came_from(pipeline):
    with pipeline.connect() as conn:
        (decided, without, unregistered) = conn.execute(
            """SELECT count(*),
                      count(*) FILTER (_source_sha256 IS NULL OR _source_locator IS NULL),
                      count(*) FILTER (_source_sha256 NOT IN
                          (SELECT sha256 FROM bronze.files WHERE status = 'ingested'))
               FROM gold.trial_screening WHERE status IN ('met', 'not_met')"""
        ).fetchall()[0]
        (unknown_with_question,) = conn.execute(
            "SELECT count(*) FILTER (question IS NOT NULL) = count(*) "
            "FROM gold.trial_screening WHERE status = 'unknown'"
        ).fetchall()[0]
        # EHR evidence points at a FHIR resource of that very file.
        (ehr, found) = conn.execute(
            """SELECT count(*), count(r._source_locator) FROM gold.trial_screening s
               LEFT JOIN bronze.fhir_resources r ON r._source_sha256 = s._source_sha256
                    AND r._source_locator = s._source_locator
               WHERE s.evidence_source = 'structured_ehr' AND s.status <> 'unknown'"""
        ).fetchall()[0]
        statuses = conn.sql("SELECT * FROM gold.trial_screening").df()
        arms = conn.sql("SELECT * FROM gold.trial_candidates").df()
    assert decided > 0 and without == 0 and unregistered == 0
    assert unknown_with_question
    assert ehr > 0 and found == ehr
    from multimodal_assets.lib.oncology.evaluation import arm_statuses_agree

    assert arm_statuses_agree(statuses, arms)  # the SQL and the Python rule agree
    evaluation = pipeline.metadata("oncology/screening_evaluation")
    assert evaluation["evaluated"] and evaluation["all_wrong_share"] < 0.01


def _consented_profile(pipeline, where: str = "TRUE") -> str:
    """A consented cohort patient with a profile (the researcher may see it)."""
    consented = {
        research_key(m)
        for m in pipeline.truth.query("research_consent and not consent_opt_out").mrn
    }
    with pipeline.connect() as conn:
        keys = [
            r[0]
            for r in conn.execute(
                f"SELECT research_key FROM gold.patient_profiles WHERE {where} ORDER BY 1"
            ).fetchall()
        ]
    return next(k for k in keys if k in consented)


def test_similar_patients_follow_the_role_rules(pipeline, warehouse_copy):
    from multimodal_assets.lib.oncology.search import similar_patients

    truth = pipeline.truth.assign(research_key=[research_key(m) for m in pipeline.truth.mrn])
    site_of = dict(zip(truth.research_key, truth.site, strict=True))
    consented = set(truth.query("research_consent and not consent_opt_out").research_key)
    with pipeline.connect() as conn:
        cohort = {
            r[0] for r in conn.execute("SELECT research_key FROM gold.patient_profiles").fetchall()
        }
    probe = next(k for k in sorted(cohort & consented) if site_of[k] == "site_a")
    root = warehouse_copy
    researcher = similar_patients(
        user="alice", role="researcher", research_key=probe, k=10, root=root
    )
    assert researcher.hits and {h["research_key"] for h in researcher.hits} <= consented
    assert researcher.hidden == 0 and all("mrn" not in h for h in researcher.hits)
    assert researcher.outcomes["with_outcome"] == len(researcher.hits)
    clinician = similar_patients(user="bob", role="clinician", research_key=probe, k=10, root=root)
    assert all(site_of[h["research_key"]] == "site_a" for h in clinician.hits)
    assert all(h["mrn"] for h in clinician.hits)
    assert len(clinician.hits) + clinician.hidden == 10
    hidden_outcomes = clinician.outcomes["with_outcome"]
    assert hidden_outcomes in (len(clinician.hits), 10)  # fewer than 5 hidden: left out
    with pytest.raises(Denied, match="not visible"):
        similar_patients(user="frank", role="clinician", research_key=probe, root=root)
    refused = next(k for k in sorted(cohort - consented))
    with pytest.raises(Denied, match="not visible"):
        similar_patients(user="alice", role="researcher", research_key=refused, root=root)
    with pytest.raises(Denied):
        similar_patients(user="erin", role="auditor", research_key=probe, root=root)
    with pytest.raises(Denied, match="research_key"):
        similar_patients(user="alice", role="researcher", research_key="x' OR 1=1", root=root)
    log = audit_rows(root)
    searches = log[log.action == "patient_similarity"]
    assert list(searches.decision) == ["allow", "allow", "deny", "deny", "deny", "deny"]


def test_the_cli_answers_multimodally_by_default(pipeline, warehouse_copy, capsys, monkeypatch):
    from multimodal_assets.cli import similar

    monkeypatch.setenv("MM_LAKEHOUSE", str(warehouse_copy))
    key = _consented_profile(pipeline, "has_genomics")
    assert (
        similar.main(["--in-process", "--user", "alice", "--role", "researcher", "--patient", key])
        == 0
    )
    out = capsys.readouterr().out
    assert "patient's modalities: clinical, genomics" in out and "from_clinical" in out
    assert "12-month progression or death among them" in out
    assert (
        similar.main(
            [
                "--in-process",
                "--user",
                "alice",
                "--role",
                "researcher",
                "--patient",
                key,
                "--modalities",
                "genomics",
                "-k",
                "3",
            ]
        )
        == 0
    )
    assert "compared" in capsys.readouterr().out


def test_evidence_text_never_states_an_age_over_89():
    from multimodal_assets.lib.oncology.facts import age_text

    assert age_text(64) == "age 64"
    assert [age_text(a) for a in (90, 94, 107)] == ["age 90 or older"] * 3
    # The comparison still uses the true age: a trial for patients of 75 or older matches.
    old = _patient(age=(94, Evidence(age_text(94), None, "structured_ehr", "a" * 64, "P/1")))
    assert judge({"clinical": {"age_numerical": ">=75"}}, old).status == MET
