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
from datetime import date, timedelta
from functools import cache

# (label, concept, ICD-10-CM code or None, phrases). Codes only where the mapping is exact.
VOCABULARY = (
    (
        "DIAGNOSIS",
        "adenocarcinoma",
        "C34.90",
        ("adenocarcinoma", "lung adenocarcinoma", "adenocarcinoma of the lung"),
    ),
    (
        "DIAGNOSIS",
        "squamous_cell",
        "C34.90",
        ("squamous cell carcinoma", "squamous cell carcinoma of the lung"),
    ),
    (
        "DIAGNOSIS",
        "nsclc_nos",
        "C34.90",
        ("non-small cell lung cancer", "nsclc", "non-small cell carcinoma"),
    ),
    ("DIAGNOSIS", "metastasis", None, ("metastatic disease", "metastases", "metastasis")),
    ("SYMPTOM", "cough", "R05.9", ("cough", "persistent cough", "dry cough")),
    ("SYMPTOM", "hemoptysis", "R04.2", ("hemoptysis", "blood-streaked sputum")),
    (
        "SYMPTOM",
        "dyspnea",
        "R06.00",
        ("dyspnea", "shortness of breath", "dyspnea on exertion", "sob"),
    ),
    ("SYMPTOM", "chest pain", "R07.9", ("chest pain", "pleuritic chest pain")),
    ("SYMPTOM", "weight loss", "R63.4", ("weight loss", "unintentional weight loss")),
    ("SYMPTOM", "fatigue", "R53.83", ("fatigue", "marked fatigue")),
    ("SYMPTOM", "fever", "R50.9", ("fever", "fevers")),
    ("SYMPTOM", "night sweats", None, ("night sweats",)),
    ("SYMPTOM", "bone pain", None, ("bone pain",)),
    ("SYMPTOM", "headache", None, ("headache", "headaches")),
    ("TREATMENT", "carboplatin", None, ("carboplatin",)),
    ("TREATMENT", "cisplatin", None, ("cisplatin",)),
    ("TREATMENT", "pemetrexed", None, ("pemetrexed",)),
    ("TREATMENT", "paclitaxel", None, ("paclitaxel",)),
    ("TREATMENT", "radiation therapy", None, ("radiation therapy", "radiotherapy")),
    ("CONDITION", "hypertension", "I10", ("hypertension",)),
    ("CONDITION", "pneumonia", None, ("pneumonia",)),
    ("CONDITION", "breast cancer", None, ("breast cancer",)),
    ("CONDITION", "colon cancer", None, ("colon cancer",)),
    ("CONDITION", "lung cancer", None, ("lung cancer",)),
    ("CONDITION", "prostate cancer", None, ("prostate cancer",)),
    (
        "SMOKING",
        "never",
        None,
        ("never smoker", "lifelong nonsmoker", "has never smoked", "nonsmoker"),
    ),
    ("SMOKING", "former", None, ("former smoker", "quit smoking", "ex-smoker")),
    ("SMOKING", "current", None, ("current smoker", "smokes one pack per day", "active smoker")),
    ("BIOMARKER", "EGFR_exon19del", None, ("egfr exon 19 deletion", "egfr exon 19 del")),
    ("BIOMARKER", "EGFR_L858R", None, ("egfr l858r mutation", "egfr l858r")),
    ("BIOMARKER", "KRAS_G12C", None, ("kras g12c mutation", "kras g12c")),
    ("BIOMARKER", "KRAS_G12D", None, ("kras g12d mutation",)),
    ("BIOMARKER", "KRAS_G12V", None, ("kras g12v mutation",)),
    ("BIOMARKER", "ALK", None, ("alk rearrangement", "alk fusion")),
    ("BIOMARKER", "BRAF_V600E", None, ("braf v600e mutation",)),
    ("BIOMARKER", "EGFR", None, ("egfr mutation",)),
)
ROMAN_STAGE = r"(?:0|I{1,3}|IV)[ABC]?\d?"
# ConText-style triggers (Harkema et al. 2009): a trigger opens a scope to the end of the
# sentence (forward) or back to its start (backward), closed early by a termination term.
TRIGGERS = {
    "historical": (
        (
            "forward",
            (
                # medspaCy's ConText rules trigger on "history"/"hx" alone ("past medical history
                # is significant for …", "Social history: drinks alcohol"); "history of present
                # illness" is a pseudo-trigger.
                "history",
                "hx",
                "h/o",
                "previous",
                "previously",
                "prior",
                "status post",
                "s/p",
                "remote",
                "treated with",
                "started",
                "was diagnosed with",
            ),
        ),
        ("backward", ("in the past", "ago", "years ago", "previously")),
    ),
    "family": (
        (
            "both",
            (
                "mother",
                "father",
                "sister",
                "brother",
                "aunt",
                "uncle",
                "grandmother",
                "grandfather",
                "family history",
                "cousin",
                "daughter",
                "son",
            ),
        ),
    ),
    "hypothetical": (
        (
            "forward",
            (
                "if",
                "should",
                "in case",
                "return if",
                "call if",
                "watch for",
                "as needed",
                "risk of",
                "could develop",
            ),
        ),
    ),
    "uncertain": (
        (
            "forward",
            (
                "possible",
                "possibly",
                "probable",
                "cannot exclude",
                "cannot rule out",
                "may represent",
                "suspicious for",
                "questionable",
                "concern for",
                "suggestive of",
                "r/o",
                "rule out",
            ),
        ),
        ("backward", ("is possible", "not excluded", "is suspected")),
    ),
}
# Phrases that contain a trigger but do not trigger (NegEx's pseudo-triggers): a match inside one
# of these is ignored.
PSEUDO_TRIGGERS = (
    "history of present illness",
    "day history of",
    "week history of",
    "days history of",
    "weeks history of",
    "month history of",
    "as previously",
    "previously noted",
    "than it previously",
    "if any",
    "no change",
    "not only",
    "family history of present",
)
TERMINATIONS = (
    "but",
    "however",
    "although",
    "though",
    "except",
    "which",
    "who",
    "presents",
    "presenting",
    "comes in with",
    "came in with",
    "reports",
    "complains",
    ";",
    "aside from",
)
HISTORICAL_SECTIONS = (
    "past medical history",
    "past surgical history",
    "past history",
    "medical history",
    "oncologic history",
    "treatment history",
)
FAMILY_SECTIONS = ("family history",)
_HEADER = re.compile(
    r"^[ \t]*([A-Za-z][A-Za-z /&]{2,48}?)[ \t]*:?[ \t]*$|^[ \t]*([A-Z][A-Za-z /&]{2,48}):", re.M
)
_MONTHS = {
    m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())
}
_DATE_PATTERNS = (
    (re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})\b"), "mdy"),
    (re.compile(r"\b(\d{1,2})-(\d{1,2})-(\d{4}|\d{2})\b"), "mdy"),  # "dated 4-2-04"
    (re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b"), "ymd"),
    (
        re.compile(
            r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.? (\d{1,2}),? (\d{4})\b",
            re.I,
        ),
        "mon_d_y",
    ),
    (
        re.compile(
            # "20Feb1999", "10 Aug 2009", "02-May-2014"
            r"\b(\d{1,2})[ -]?(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?"
            r"[ -]?(\d{4})\b",
            re.I,
        ),
        "d_mon_y",
    ),
)
_NUMBERS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "a": 1,
    "an": 1,
}
_RELATIVE = re.compile(
    r"\b(\d+|one|two|three|four|five|six|seven|eight|nine|ten|a|an) (day|week|month|year)s? ago\b",
    re.I,
)
_UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365}
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


def _date(kind: str, groups: tuple) -> date | None:
    try:
        if kind == "mdy":
            month, day, year = int(groups[0]), int(groups[1]), int(groups[2])
            year = year + (2000 if year < 50 else 1900) if year < 100 else year
            return date(year, month, day)
        if kind == "ymd":
            return date(int(groups[0]), int(groups[1]), int(groups[2]))
        if kind == "mon_d_y":
            return date(int(groups[2]), _MONTHS[groups[0][:3].lower()], int(groups[1]))
        return date(int(groups[2]), _MONTHS[groups[1][:3].lower()], int(groups[0]))
    except (ValueError, KeyError):
        return None


def date_mentions(text: str, note_date: date | None) -> list[tuple[int, int, date, str]]:
    """(start, end, date, 'absolute'|'relative') for each date expression the text allows."""
    found = []
    for pattern, kind in _DATE_PATTERNS:
        for m in pattern.finditer(text):
            day = _date(kind, m.groups())
            if day:
                found.append((m.start(), m.end(), day, "absolute"))
    if note_date:
        for m in _RELATIVE.finditer(text):
            count = _NUMBERS.get(m.group(1).lower()) or int(m.group(1))
            delta = timedelta(days=count * _UNIT_DAYS[m.group(2).lower()])
            found.append((m.start(), m.end(), note_date - delta, "relative"))
    return sorted(found)


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
