"""The rule-based clinical notes pipeline: spaCy (blank English, no statistical model) with a
line-aware sentencizer, an entity ruler over a small oncology vocabulary, negspacy's NegEx for
negation, and our ConText-style modifiers for history, family, hypothetical and uncertainty
(negspacy covers negation only; medspaCy does not build with spaCy 3.8), plus section titles and
dates anchored to the note date.

Everything here is plain Python on strings: the Dagster assets call `analyze` and `deidentify`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import cache

from .dates import date_mentions
from .rules import (
    FAMILY_SECTIONS,
    HISTORICAL_SECTIONS,
    PSEUDO_TRIGGERS,
    ROMAN_STAGE,
    TERMINATIONS,
    TRIGGERS,
    VOCABULARY,
)

_HEADER = re.compile(
    r"^[ \t]*([A-Za-z][A-Za-z /&]{2,48}?)[ \t]*:?[ \t]*$|^[ \t]*([A-Z][A-Za-z /&]{2,48}):", re.M
)
MENTIONS = "mentions"  # span group holding the entities for negspacy
CHUNK_CHARS = 100_000  # longer notes are processed in chunks cut at a line break


@dataclass(frozen=True)
class Mention:
    """One entity mention with its assertion, section and anchored date."""

    start: int
    end: int
    label: str
    concept: str
    code: str | None
    negated: bool
    historical: bool
    family: bool
    hypothetical: bool
    uncertain: bool
    section: str | None
    event_date: date | None
    date_source: str | None


def _concepts() -> dict[tuple[str, str], str | None]:
    return {(label, concept): code for label, concept, code, _ in VOCABULARY}


@cache
def pipeline():
    """The spaCy pipeline (built once per process)."""
    import spacy
    from negspacy.negation import Negex  # noqa: F401 - registers the "negex" factory
    from negspacy.termsets import termset
    from spacy.language import Language
    from spacy.tokens import Span

    for name in ("historical", "family", "hypothetical", "uncertain"):
        if not Span.has_extension(name):
            Span.set_extension(name, default=False)
    if "line_sentences" not in Language.factories:

        @Language.component("line_sentences")
        def line_sentences(doc):
            """A line break after a header or a blank line starts a sentence."""
            after_break = False
            for token in doc:
                if after_break:
                    token.is_sent_start = True
                after_break = "\n" in token.text
            return doc

        @Language.component("mentions_span_group")
        def mentions_span_group(doc):
            """The entities as a span group, which negspacy scans once per scope; its default
            rebuilds every entity of the doc for each scope (a third of the pipeline's time)."""
            doc.spans[MENTIONS] = list(doc.ents)
            return doc

    nlp = spacy.blank("en")
    nlp.max_length = CHUNK_CHARS + 1000
    # "stage IV." must end the stage before the full stop (spaCy keeps "I." as one token).
    for numeral in ("I", "II", "III", "IV"):
        for suffix in ("", "A", "B", "C"):
            nlp.tokenizer.add_special_case(
                f"{numeral}{suffix}.", [{"ORTH": f"{numeral}{suffix}"}, {"ORTH": "."}]
            )
    nlp.add_pipe("line_sentences")
    nlp.add_pipe("sentencizer")
    ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER"})
    patterns = [
        {"label": label, "pattern": phrase, "id": concept}
        for label, concept, _, phrases in VOCABULARY
        for phrase in phrases
    ]
    patterns += [
        {
            "label": "ECOG",
            "pattern": [
                {"LOWER": "ecog"},
                {"LOWER": {"IN": ["ps", "performance", "status", "of", "score", "="]}, "OP": "*"},
                {"TEXT": {"REGEX": r"^[0-4]$"}},
            ],
        },
        {
            "label": "STAGE",
            "pattern": [{"LOWER": "stage"}, {"TEXT": {"REGEX": f"^{ROMAN_STAGE}$"}}],
        },
    ]
    ruler.add_patterns(patterns)
    nlp.add_pipe("mentions_span_group")
    terms = termset("en_clinical")
    # negspacy scopes negation by termination terms over the whole doc, not by sentence: make
    # sentence and line ends terminate, or "No fever. Cough." would negate the cough.
    terms.add_patterns({"termination": [".", ";", "\n", "\n\n"]})
    # ConText reads these as uncertainty, not negation.
    terms.add_patterns(
        {"pseudo_negations": ["cannot exclude", "cannot rule out", "cannot be excluded"]}
    )
    # Span extensions are keyed by character offsets, so the negation negspacy sets on a span of
    # the group is read back on the entity with the same offsets.
    nlp.add_pipe("negex", config={"neg_termset": terms.get_patterns(), "span_keys": [MENTIONS]})
    return nlp


@cache
def _trigger_matcher():
    from spacy.matcher import PhraseMatcher

    nlp = pipeline()
    matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
    for category, rules in TRIGGERS.items():
        for direction, phrases in rules:
            matcher.add(f"{category}|{direction}", [nlp.make_doc(p) for p in phrases])
    matcher.add("terminate|", [nlp.make_doc(t) for t in TERMINATIONS])
    matcher.add("pseudo|", [nlp.make_doc(t) for t in PSEUDO_TRIGGERS])
    return matcher


def _modifiers(doc) -> None:
    """Set historical/family/hypothetical/uncertain on each entity from triggers in its
    sentence, scopes closed by termination terms."""
    matches = [
        (start, end, *doc.vocab.strings[match_id].split("|"))
        for match_id, start, end in _trigger_matcher()(doc)
    ]
    entities = list(doc.ents)
    for sent in doc.sents:
        ents = [e for e in entities if e.start >= sent.start and e.end <= sent.end]
        if not ents:
            continue
        found = [m for m in matches if sent.start <= m[0] and m[1] <= sent.end]
        stops = sorted(s for s, _, c, _ in found if c == "terminate")
        pseudo = [(s, e) for s, e, c, _ in found if c == "pseudo"]
        for start, end, category, direction in found:
            if category in ("terminate", "pseudo") or any(
                ps <= start and end <= pe for ps, pe in pseudo
            ):
                continue
            for ent in ents:
                if ent.start < end and ent.end > start:
                    continue  # the trigger is part of the mention
                after = ent.start >= end and not any(end <= s < ent.start for s in stops)
                before = ent.end <= start and not any(ent.end <= s < start for s in stops)
                if (direction in ("forward", "both") and after) or (
                    direction in ("backward", "both") and before
                ):
                    setattr(ent._, category, True)


def sections(text: str) -> list[tuple[int, str]]:
    """(offset, normalized title) of each section header line."""
    out = []
    for match in _HEADER.finditer(text):
        title = (match.group(1) or match.group(2) or "").strip().lower()
        if title and len(title.split()) <= 6:
            out.append((match.start(), title))
    return out


def _chunks(text: str):
    """(offset, piece): pieces of at most CHUNK_CHARS, cut at line breaks when possible."""
    start = 0
    while start < len(text):
        end = min(len(text), start + CHUNK_CHARS)
        if end < len(text):
            cut = text.rfind("\n", start, end)
            end = cut + 1 if cut > start else end
        yield start, text[start:end]
        start = end


def _in_section(section: str | None, names: tuple[str, ...]) -> bool:
    return section is not None and any(name in section for name in names)


def analyze(text: str, note_date: date | None = None) -> list[Mention]:
    """Entity mentions of a note with assertion, section and anchored date."""
    nlp = pipeline()
    codes = _concepts()
    titles = sections(text)
    dates = date_mentions(text, note_date)
    out = []
    for offset, piece in _chunks(text):
        doc = nlp(piece)
        _modifiers(doc)
        for ent in doc.ents:
            start, end = offset + ent.start_char, offset + ent.end_char
            concept = ent.ent_id_ or ent.text.lower()
            if ent.label_ == "ECOG":
                concept = ent.text[-1]
            elif ent.label_ == "STAGE":
                concept = ent.text.split()[-1].upper()
            section = next((t for o, t in reversed(titles) if o <= start), None)
            sent_start, sent_end = offset + ent.sent.start_char, offset + ent.sent.end_char
            in_sentence = [d for d in dates if sent_start <= d[0] and d[1] <= sent_end]
            anchored = min(in_sentence, key=lambda d: abs(d[0] - start), default=None)
            out.append(
                Mention(
                    start,
                    end,
                    ent.label_,
                    concept,
                    codes.get((ent.label_, concept)),
                    bool(ent._.negex),
                    bool(ent._.historical) or _in_section(section, HISTORICAL_SECTIONS),
                    bool(ent._.family) or _in_section(section, FAMILY_SECTIONS),
                    bool(ent._.hypothetical),
                    bool(ent._.uncertain),
                    section,
                    anchored[2] if anchored else None,
                    anchored[3] if anchored else None,
                )
            )
    return out


def assert_span(sentence: str, start: int, end: int) -> dict[str, bool]:
    """The assertion of a given target span in a sentence (the ConText evaluation setting:
    the condition is given, only its context is judged)."""
    nlp = pipeline()
    doc = nlp.make_doc(sentence)
    for name in ("line_sentences", "sentencizer"):
        doc = nlp.get_pipe(name)(doc)
    target = doc.char_span(start, end, label="TARGET", alignment_mode="expand")
    doc.ents = [target] if target is not None else []
    for name in ("mentions_span_group", "negex"):
        doc = nlp.get_pipe(name)(doc)
    _modifiers(doc)
    if target is None:
        return dict.fromkeys(
            ("negated", "historical", "family", "hypothetical", "uncertain"), False
        )
    ent = doc.ents[0]
    return {
        "negated": bool(ent._.negex),
        "historical": bool(ent._.historical),
        "family": bool(ent._.family),
        "hypothetical": bool(ent._.hypothetical),
        "uncertain": bool(ent._.uncertain),
    }
