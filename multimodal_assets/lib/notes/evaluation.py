"""Measuring the notes pipeline: entities and assertions against generated truth, negation and
temporality on the real ConText reference sentences, de-identification per Safe Harbor
category. Plain functions returning numbers; the evaluation assets publish them."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from . import nlp as notes_nlp

CONTEXT_CORPUS = "rsAnnotations-1-120-random.txt"


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


NEGEX_2001_REFERENCE = {"sensitivity": 0.778, "specificity": 0.945, "ppv": 0.845}


def read_context_corpus(path: Path) -> list[dict]:
    """The ConText reference sentences: id, concept, sentence and the three annotations."""
    rows = []
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        for record in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(record) < 7:
                continue
            rows.append(
                {
                    "concept": record[2],
                    "sentence": record[3],
                    "negation": record[4].strip(),
                    "temporality": record[5].strip(),
                    "experiencer": record[6].strip(),
                }
            )
    return rows


def _locate(concept: str, sentence: str) -> tuple[int, int] | None:
    words = [re.escape(w) for w in concept.split()]
    if not words:
        return None
    match = re.search(r"\s+".join(words), sentence, re.I)
    return (match.start(), match.end()) if match else None


def evaluate_context(rows: list[dict]) -> dict:
    """Negation, temporality and experiencer accuracy on the reference sentences, with the
    majority-class baseline of the same sentences next to each."""
    scored = negation_tp = negation_fp = negation_fn = negation_tn = 0
    hist_tp = hist_fp = hist_fn = 0
    correct = {"negation": 0, "temporality": 0, "experiencer": 0}
    unlocated = 0
    for row in rows:
        span = _locate(row["concept"], row["sentence"])
        if span is None:
            unlocated += 1
            continue
        scored += 1
        got = notes_nlp.assert_span(row["sentence"], *span)
        negated = row["negation"] == "Negated"
        historical = row["temporality"] == "Historical"
        temporality = (
            "Not particular"
            if got["hypothetical"]
            else ("Historical" if got["historical"] else "Recent")
        )
        experiencer = (
            "Patient"
            if not got["family"]
            else row["experiencer"]
            if row["experiencer"] != "Patient"
            else "Other"
        )
        correct["negation"] += got["negated"] == negated
        correct["temporality"] += temporality == row["temporality"]
        correct["experiencer"] += (experiencer == "Patient") == (row["experiencer"] == "Patient")
        negation_tp += got["negated"] and negated
        negation_fp += got["negated"] and not negated
        negation_fn += negated and not got["negated"]
        negation_tn += not negated and not got["negated"]
        hist_tp += got["historical"] and historical
        hist_fp += got["historical"] and not historical
        hist_fn += historical and not got["historical"]
    located = [r for r in rows if _locate(r["concept"], r["sentence"])]
    majority = {
        "negation": sum(r["negation"] == "Affirmed" for r in located),
        "temporality": sum(r["temporality"] == "Recent" for r in located),
        "experiencer": sum(r["experiencer"] == "Patient" for r in located),
    }
    return {
        "sentences": len(rows),
        "scored": scored,
        "concept_not_found_in_sentence": unlocated,
        **{f"{k}_accuracy": round(v / scored, 4) if scored else 0.0 for k, v in correct.items()},
        **{
            f"{k}_majority_baseline": round(v / scored, 4) if scored else 0.0
            for k, v in majority.items()
        },
        **{f"negated_{k}": v for k, v in _prf(negation_tp, negation_fp, negation_fn).items()},
        "negated_specificity": round(negation_tn / (negation_tn + negation_fp), 4)
        if negation_tn + negation_fp
        else 0.0,
        # The published bar (Chapman et al., J Biomed Inform 2001;34:301-10, abstract: 1,235
        # findings in discharge summaries) — another corpus, shown for comparison only.
        **{f"negex_2001_reference_{k}": v for k, v in NEGEX_2001_REFERENCE.items()},
        **{f"historical_{k}": v for k, v in _prf(hist_tp, hist_fp, hist_fn).items()},
    }


def evaluate_entities(predicted: list[dict], truth: list[dict]) -> dict:
    """Exact-span entity precision/recall/F1 (span and label), per label and overall, and the
    accuracy of each assertion on the entities found. Rows carry note, start, end, label and
    the assertion flags."""
    key = lambda r: (r["note"], r["start"], r["end"], r["label"])  # noqa: E731
    found = {key(r): r for r in predicted}
    expected = {key(r): r for r in truth}
    tp = found.keys() & expected.keys()
    out = {"entities_expected": len(expected), "entities_found": len(found)}
    out.update(
        {
            f"entity_{k}": v
            for k, v in _prf(len(tp), len(found) - len(tp), len(expected) - len(tp)).items()
        }
    )
    for label in sorted({k[3] for k in expected}):
        t = {k for k in tp if k[3] == label}
        f = sum(1 for k in found if k[3] == label)
        e = sum(1 for k in expected if k[3] == label)
        out[f"{label.lower()}_f1"] = _prf(len(t), f - len(t), e - len(t))["f1"]
    from . import ASSERTIONS

    for assertion in ASSERTIONS:
        right = sum(found[k][assertion] == expected[k][assertion] for k in tp)
        out[f"{assertion}_accuracy"] = round(right / len(tp), 4) if tp else 0.0
    return out


def evaluate_deidentification(notes: list[tuple[str, dict | None, list[dict]]]) -> dict:
    """Recall per Safe Harbor category (a truth span counts when detected spans cover all of
    it) and overall precision (detected spans that touch a truth span), with the patient's EHR
    identifiers and with patterns alone."""
    from .deid import find_identifiers

    out: dict = {}
    for mode in ("with_ehr_identifiers", "patterns_only"):
        caught: dict[str, int] = {}
        total: dict[str, int] = {}
        detected = touching = 0
        for text, identity, truth in notes:
            spans = find_identifiers(text, identity if mode == "with_ehr_identifiers" else None)
            for t in truth:
                total[t["category"]] = total.get(t["category"], 0) + 1
                if any(s.start <= t["start"] and t["end"] <= s.end for s in spans):
                    caught[t["category"]] = caught.get(t["category"], 0) + 1
            detected += len(spans)
            touching += sum(
                any(s.start < t["end"] and t["start"] < s.end for t in truth) for s in spans
            )
        prefix = "" if mode == "with_ehr_identifiers" else "patterns_only_"
        for category in sorted(total):
            out[f"{prefix}recall_{category}"] = round(caught.get(category, 0) / total[category], 4)
        out[f"{prefix}recall_all"] = round(sum(caught.values()) / max(sum(total.values()), 1), 4)
        out[f"{prefix}precision"] = round(touching / detected, 4) if detected else 0.0
    out["identifiers_expected"] = sum(len(t) for _, _, t in notes)
    return out
