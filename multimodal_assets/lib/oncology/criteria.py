"""Judging a CTML criterion against a patient's facts: met, not_met or unknown, with evidence.

Three-valued (Kleene) logic: `and` is not_met if any part is, met if all are; `or` is met if any
part is, not_met if all are; otherwise unknown. **Missing data gives unknown, never not_met**:
no sequencing by the screening date leaves every genomic criterion unknown, no CT leaves the
lesion criteria unknown, and a note that never mentions brain imaging says nothing about brain
metastases. An unknown carries the question a coordinator would ask.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from datetime import date
from functools import cache

from .facts import Evidence, PatientFacts, Variant, by_class

MET, NOT_MET, UNKNOWN = "met", "not_met", "unknown"
# OncoTree ancestry of the diagnoses an NSCLC cohort has (a subset of OncoTree's tree).
ONCOTREE_PARENT = {
    "lung adenocarcinoma": "non-small cell lung cancer",
    "lung squamous cell carcinoma": "non-small cell lung cancer",
    "large cell lung carcinoma": "non-small cell lung cancer",
    "other non-small cell lung cancer": "non-small cell lung cancer",
    "non-small cell lung cancer": "lung",
    "small cell lung cancer": "lung",
    "pleuropulmonary blastoma": "lung",
    "lung": "_solid_",
}
_OPS = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}


@dataclass(frozen=True)
class Judgement:
    status: str
    evidence: Evidence | None = None
    question: str | None = None


def _unknown(question: str) -> Judgement:
    return Judgement(UNKNOWN, None, question)


def _comparison(text) -> tuple:
    """(operator, threshold) of a CTML comparison such as '>=18' (a bare number is equality)."""
    raw = str(text).strip()
    for symbol in (">=", "<=", "==", "!=", ">", "<"):
        if raw.startswith(symbol):
            return _OPS[symbol], float(raw[len(symbol) :])
    return operator.eq, float(raw)


def _compare(fact, text, what: str) -> Judgement:
    if fact is None:
        return _unknown(f"{what} is not recorded by the screening date")
    value, evidence = fact
    test, threshold = _comparison(text)
    return Judgement(MET if test(float(value), threshold) else NOT_MET, evidence)


def _negatable(text) -> tuple[bool, str]:
    raw = str(text).strip()
    return (True, raw[1:].strip()) if raw.startswith("!") else (False, raw)


def _lineage(name: str) -> list[str]:
    chain = [name]
    while chain[-1] in ONCOTREE_PARENT:
        chain.append(ONCOTREE_PARENT[chain[-1]])
    return chain


def _diagnosis(facts: PatientFacts, wanted) -> Judgement:
    negated, name = _negatable(wanted)
    if facts.diagnosis is None:
        return _unknown("no primary diagnosis recorded by the screening date")
    diagnosis, evidence = facts.diagnosis
    target = name.lower()
    if target in _lineage(diagnosis.lower()):
        return Judgement(NOT_MET if negated else MET, evidence)
    if diagnosis.lower() in _lineage(target):
        return _unknown(f"diagnosis recorded as {diagnosis}: is it {name}?")
    return Judgement(MET if negated else NOT_MET, evidence)


def _clinical(facts: PatientFacts, key: str, value) -> Judgement:
    if key == "age_numerical":
        return _compare(facts.age, value, "age")
    if key == "ecog_numerical":
        return _compare(facts.ecog, value, "ECOG performance status")
    if key == "tmb_numerical":
        if facts.sequencing is None:
            return _unknown("no tumor sequencing by the screening date: is TMB known?")
        return _compare(facts.tmb, value, "tumor mutational burden")
    if key == "oncotree_primary_diagnosis":
        return _diagnosis(facts, value)
    if key == "stage_group":
        negated, group = _negatable(value)
        if facts.stage is None:
            return _unknown("no stage recorded by the screening date")
        stage, evidence = facts.stage
        return Judgement(MET if (stage == group.upper()) != negated else NOT_MET, evidence)
    if key == "gender":
        if facts.sex is None:
            return _unknown("sex is not recorded")
        negated, wanted = _negatable(value)
        sex, evidence = facts.sex
        return Judgement(MET if (sex.lower() == wanted.lower()) != negated else NOT_MET, evidence)
    return _unknown(f"clinical criterion {key} is not evaluable from the delivered data")


@cache
def _hotspots() -> dict[tuple[str, str], object]:
    from ..genomics import reference

    return {(h.gene, h.protein_change.upper()): h for h in reference.hotspots()}


def _classification(hotspot) -> str:
    """The MAF variant classification of a bundled hotspot, from its alleles."""
    if len(hotspot.ref) == len(hotspot.alt) == 1:
        return "Missense_Mutation"
    shift = len(hotspot.ref) - len(hotspot.alt)
    if shift > 0:
        return "In_Frame_Del" if shift % 3 == 0 else "Frame_Shift_Del"
    return "In_Frame_Ins" if shift % 3 == 0 else "Frame_Shift_Ins"


def _annotated(gene: str, spec: dict) -> set[str] | None:
    """The hotspot biomarkers a genomic node's protein-level keys select (None: no such keys)."""
    keys = ("protein_change", "wildcard_protein_change", "variant_classification", "exon")
    if not any(k in spec for k in keys):
        return None
    chosen = set()
    for (hgene, protein), h in _hotspots().items():
        if hgene != gene:
            continue
        if "protein_change" in spec and protein != str(spec["protein_change"]).upper()[2:]:
            continue
        wildcard = str(spec.get("wildcard_protein_change", "")).upper()[2:]
        if wildcard and not protein.startswith(wildcard):
            continue
        if (
            "variant_classification" in spec
            and _classification(h) != spec["variant_classification"]
        ):
            continue
        if "exon" in spec and str(h.exon) != str(spec["exon"]):
            continue
        chosen.add(h.biomarker)
    return chosen


def _genomic(facts: PatientFacts, spec: dict) -> Judgement:
    gene = str(spec.get("hugo_symbol", "")).upper()
    if facts.sequencing is None:
        return _unknown(f"no tumor sequencing by the screening date: is {gene or 'it'} tested?")
    if gene not in facts.panel_genes:
        return _unknown(f"{gene} is not on the sequenced panel")
    negated, category = _negatable(spec.get("variant_category", "Mutation"))
    if category not in ("Mutation", "Structural Variation", "Any Variation"):
        return _unknown(f"{category} in {gene} is not reported by the delivered genotype files")
    in_gene = [
        v for v in facts.variants if v.gene == gene and category in ("Any Variation", v.category)
    ]
    biomarkers = _annotated(gene, spec)
    if biomarkers is not None and not biomarkers:
        return _unknown(f"the bundled hotspot table does not annotate {spec}")
    # Only the bundled hotspots are annotated; the panel spans whole genes, so another small
    # variant may be intronic or silent: it decides nothing, in either direction.
    hits = [
        v
        for v in in_gene
        if (
            v.biomarker in biomarkers
            if biomarkers is not None
            else v.biomarker or v.category == "Structural Variation"
        )
    ]
    unannotated = [v for v in in_gene if v.biomarker is None and v.category == "Mutation"]
    if not hits and unannotated:
        return _unknown(
            f"a {gene} variant the bundled hotspot table does not annotate "
            f"({unannotated[0].evidence.value}): is it pathogenic?"
        )
    return _found(hits, negated, facts.sequencing)


def _found(hits: list[Variant], negated: bool, sequencing: Evidence) -> Judgement:
    if hits:
        return Judgement(NOT_MET if negated else MET, hits[0].evidence)
    return Judgement(MET if negated else NOT_MET, sequencing)


def _note(facts: PatientFacts, spec: dict) -> Judgement:
    concept = str(spec.get("concept"))
    wanted_present = str(spec.get("assertion", "present")).lower() == "present"
    mentions = facts.mentions.get(concept, [])
    affirmed = [e for present, e in mentions if present]
    denied = [e for present, e in mentions if not present]
    label = concept.replace("_", " ")
    if affirmed:
        return Judgement(MET if wanted_present else NOT_MET, _latest(affirmed))
    if denied:
        return Judgement(NOT_MET if wanted_present else MET, _latest(denied))
    return _unknown(f"no note by the screening date says whether there are {label}")


def _latest(evidence: list[Evidence]) -> Evidence:
    return max(
        evidence,
        key=lambda e: (e.on is not None, e.on or date.min, e.sha256 or "", e.locator or ""),
    )


def _imaging(facts: PatientFacts, spec: dict) -> Judgement:
    if set(spec) != {"measurable_lesion_mm"}:
        return _unknown(f"imaging criterion {sorted(spec)} is not evaluable")
    if facts.imaging is None:
        return _unknown("no CT by the screening date: is there measurable disease?")
    if facts.lesion_mm is None:
        return Judgement(NOT_MET, facts.imaging)
    test, threshold = _comparison(spec["measurable_lesion_mm"])
    return Judgement(MET if test(facts.lesion_mm, threshold) else NOT_MET, facts.imaging)


def _treatment_history(facts: PatientFacts, spec: dict) -> Judgement:
    drug_class = str(spec.get("drug_class"))
    drugs = by_class(drug_class)
    if not drugs:
        return _unknown(f"drug class {drug_class} is not known to the screening")
    wanted_prior = str(spec.get("prior", "Y")).upper().startswith("Y")
    given = [e for drug, e in facts.treatments if drug in drugs]
    if given:
        return Judgement(MET if wanted_prior else NOT_MET, _latest(given))
    if facts.treatment_record is None or not facts.notes_reviewed:
        # Orders before this EHR and outside notes are invisible: absence needs both sources.
        return _unknown(f"no notes to complete the EHR orders: has the patient had {drug_class}?")
    record = facts.treatment_record
    absent = Evidence(
        f"no {drug_class.replace('_', ' ')} in {record.value}",
        record.on,
        record.source,
        record.sha256,
        record.locator,
    )
    return Judgement(NOT_MET if wanted_prior else MET, absent)


_LEAVES = {
    "genomic": _genomic,
    "note": _note,
    "imaging": _imaging,
    "treatment_history": _treatment_history,
}


def judge(node: dict, facts: PatientFacts) -> Judgement:
    """A criterion's status for one patient, with the evidence (or the open question)."""
    for connective in ("and", "or"):
        if connective in node:
            return _combine(connective, [judge(child, facts) for child in node[connective]])
    ((kind, spec),) = [(k, v) for k, v in node.items() if k != "criterion_id"]
    if kind == "clinical":
        return _combine("and", [_clinical(facts, k, v) for k, v in spec.items()])
    return _LEAVES[kind](facts, spec)


def _combine(connective: str, parts: list[Judgement]) -> Judgement:
    if len(parts) == 1:
        return parts[0]
    decisive, opposite = (NOT_MET, MET) if connective == "and" else (MET, NOT_MET)
    for part in parts:
        if part.status == decisive:
            return part
    if all(p.status == opposite for p in parts):
        values = "; ".join(dict.fromkeys(p.evidence.value for p in parts if p.evidence))
        first = next(p.evidence for p in parts if p.evidence)
        return Judgement(
            opposite,
            Evidence(values, first.on, first.source, first.sha256, first.locator),
        )
    questions = "; ".join(dict.fromkeys(p.question for p in parts if p.question))
    return Judgement(UNKNOWN, None, questions or None)


def arm_status(statuses: list[str]) -> str:
    """eligible when every criterion is met, not_eligible when one is not, else potentially."""
    if NOT_MET in statuses:
        return "not_eligible"
    if all(s == MET for s in statuses):
        return "eligible"
    return "potentially_eligible"
