"""The notes pipeline's rules: the oncology vocabulary (label, concept, ICD-10-CM code, phrases)
and the ConText trigger lists for negation, history, family, hypothetical and uncertainty."""

from __future__ import annotations

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
    (
        "DIAGNOSIS",
        "brain_metastasis",
        "C79.31",
        ("brain metastases", "brain metastasis", "intracranial metastases", "brain mets"),
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
    ("TREATMENT", "pembrolizumab", None, ("pembrolizumab", "keytruda")),
    ("TREATMENT", "durvalumab", None, ("durvalumab", "imfinzi")),
    ("TREATMENT", "nivolumab", None, ("nivolumab", "opdivo")),
    ("TREATMENT", "osimertinib", None, ("osimertinib", "tagrisso")),
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
