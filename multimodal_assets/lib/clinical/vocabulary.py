"""Reference vocabularies the clinical features rely on: SNOMED histologies and smoking status, RxNorm antineoplastics, LOINC observations."""

from __future__ import annotations

from ..platform.tables import RESEARCH_KEY

# ---- reference vocabularies the features rely on -------------------------------------------
HISTOLOGY_BY_SNOMED = {
    "254626006": "adenocarcinoma",  # Adenocarcinoma of lung (disorder)
    "254634000": "squamous_cell",  # Squamous cell carcinoma of lung (disorder)
    "254637007": "nsclc_nos",  # Non-small cell lung cancer (disorder)
}
SMOKING_BY_SNOMED = {"77176002": "current", "8517006": "former", "266919005": "never"}
ANTINEOPLASTIC_RXNORM = {
    "40048": "carboplatin",
    "2555": "cisplatin",
    "68446": "pemetrexed",
    "72962": "docetaxel",
    "1547545": "pembrolizumab",
    "1721560": "osimertinib",
    "1727455": "alectinib",
    "1597876": "nivolumab",
    "1792776": "atezolizumab",
    "1919503": "durvalumab",
    "56946": "paclitaxel",
}
LOINC = {
    "hemoglobin": "718-7",
    "albumin": "1751-7",
    "ldh": "2532-0",
    "crp": "1988-5",
    "weight": "29463-7",
    "ecog": "89247-1",
    "smoking": "72166-2",
    "stage": "21908-9",
}
STAGE_GROUPS = ("I", "II", "III", "IV")
HISTOLOGIES = ("adenocarcinoma", "squamous_cell", "nsclc_nos")
SEXES = ("male", "female", "other", "unknown")

RK = RESEARCH_KEY
