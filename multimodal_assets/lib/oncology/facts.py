"""What screening knows about a patient as of the screening date, each fact with the record it
came from: read from the lakehouse, or (for the truth) from the generator's latent state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

# Where a criterion's evidence comes from: the split the screening evaluation reports.
SOURCES = ("structured_ehr", "genomics", "notes", "imaging")
HISTOLOGY_ONCOTREE = {
    "adenocarcinoma": "Lung Adenocarcinoma",
    "squamous_cell": "Lung Squamous Cell Carcinoma",
    "nsclc_nos": "Non-Small Cell Lung Cancer",
}
LATENT_ONCOTREE = {"nsclc_nos": "Other Non-Small Cell Lung Cancer"}
# Drug classes the catalog's `treatment_history` nodes name (RxNorm ingredient names, as the
# EHR orders and the notes' TREATMENT concepts spell them).
DRUG_CLASSES = {
    "immunotherapy": ("pembrolizumab", "nivolumab", "atezolizumab", "durvalumab"),
    "platinum": ("carboplatin", "cisplatin"),
    "egfr_tki": ("osimertinib", "erlotinib", "gefitinib", "afatinib"),
}
DRUG_CLASSES["antineoplastic"] = (
    *DRUG_CLASSES["immunotherapy"],
    *DRUG_CLASSES["platinum"],
    *DRUG_CLASSES["egfr_tki"],
    "pemetrexed",
    "paclitaxel",
    "docetaxel",
    "alectinib",
)
ECOG_LOINC = "89247-1"


def first_instances_sql(where: str = "") -> str:
    """Each series' first instance and its record (a resent copy of a file ties on the number:
    the hash decides); `where` narrows the instances (e.g. to one patient)."""
    return f"""
    SELECT series_uid, _source_sha256 AS sha256, _source_locator AS locator
    FROM silver.imaging_instances {where}
    QUALIFY row_number() OVER (PARTITION BY series_uid
                               ORDER BY instance_number, _source_sha256, _source_locator) = 1"""


@dataclass(frozen=True)
class Evidence:
    """One fact with its date and the record it came from (no record for the latent truth)."""

    value: str
    on: date | None
    source: str
    sha256: str | None = None
    locator: str | None = None


@dataclass(frozen=True)
class Variant:
    gene: str
    biomarker: str | None  # the bundled hotspot it is, if any (e.g. EGFR_L858R)
    variant_type: str  # snv | mnv | insertion | deletion | complex | breakend
    evidence: Evidence

    @property
    def category(self) -> str:
        return "Structural Variation" if self.variant_type == "breakend" else "Mutation"


@dataclass
class PatientFacts:
    research_key: str
    screening_date: date
    age: tuple[int, Evidence] | None = None
    sex: tuple[str, Evidence] | None = None
    diagnosis: tuple[str, Evidence] | None = None  # an OncoTree name
    stage: tuple[str, Evidence] | None = None  # I | II | III | IV
    ecog: tuple[int, Evidence] | None = None
    sequencing: Evidence | None = None  # the tumor sample's genotype record, when tested
    panel_genes: frozenset[str] = frozenset()
    variants: list[Variant] = field(default_factory=list)
    tmb: tuple[float, Evidence] | None = None
    # concept -> [(affirmed, evidence)] of note mentions (hypothetical, family and uncertain
    # mentions left out)
    mentions: dict[str, list[tuple[bool, Evidence]]] = field(default_factory=dict)
    imaging: Evidence | None = None  # the CT reviewed, when there is one with decoded pixels
    lesion_mm: float | None = None  # largest lesion diameter on it (None: no lesion found)
    treatments: list[tuple[str, Evidence]] = field(default_factory=list)
    treatment_record: Evidence | None = None  # the EHR record reviewed for absent treatments
    notes_reviewed: bool = False  # any note by the screening date (prior treatments live there)


def age_text(age: int) -> str:
    """An age as evidence text: Safe Harbor makes an age over 89 an identifier, so "90 or older"."""
    return f"age {age}" if age <= 89 else "age 90 or older"


def stage_group(stage: str | None) -> str | None:
    """The AJCC group (I–IV) of a stage such as IIIA."""
    if not stage:
        return None
    for group in ("IV", "III", "II", "I"):
        if str(stage).upper().startswith(group):
            return group
    return None


def query_rows(conn, sql: str, params: dict | None = None) -> list[dict]:
    """The rows of a query as dicts (column name -> value)."""
    cursor = conn.execute(sql, params or {})
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def years_between(born: date, day: date) -> int:
    """Completed years from `born` to `day` (an age)."""
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def _cohort_sql(screening_days: int) -> str:
    return f"""
        SELECT c.research_key,
               CAST(c.index_date + INTERVAL {int(screening_days)} DAY AS DATE) AS screening_date
        FROM gold.clinical_features c WHERE c.in_nsclc_cohort"""


def lakehouse_facts(conn, screening_days: int = 0) -> dict[str, PatientFacts]:
    """Facts of every NSCLC cohort patient as of their screening date (the index date plus
    `screening_days`), from the silver and gold tables; nothing dated after it is used."""
    cohort = f"({_cohort_sql(screening_days)})"
    facts = {
        r["research_key"]: PatientFacts(r["research_key"], r["screening_date"])
        for r in query_rows(conn, _cohort_sql(screening_days))
    }
    for r in query_rows(
        conn,
        f"""SELECT p.research_key, p.birth_date, p.sex, p._source_sha256, p._source_locator
            FROM silver.patients p JOIN {cohort} k USING (research_key)""",
    ):
        f = facts[r["research_key"]]
        record = (r["_source_sha256"], r["_source_locator"])
        if r["birth_date"]:
            age = years_between(r["birth_date"], f.screening_date)
            f.age = (age, Evidence(age_text(age), f.screening_date, "structured_ehr", *record))
        if r["sex"]:
            f.sex = (r["sex"], Evidence(r["sex"], None, "structured_ehr", *record))
        f.treatment_record = Evidence(
            "medication orders and notes", None, "structured_ehr", *record
        )
    from ..clinical.vocabulary import HISTOLOGY_BY_SNOMED

    for r in query_rows(
        conn,
        f"""SELECT c.research_key, c.snomed_code, c.stage_group, c.onset_date, c._source_sha256,
                   c._source_locator
            FROM silver.conditions c JOIN {cohort} k USING (research_key)
            WHERE c.is_nsclc AND c.onset_date <= k.screening_date
            QUALIFY row_number() OVER (PARTITION BY c.research_key
                                       ORDER BY c.onset_date, c._source_sha256, c._source_locator) = 1""",
    ):
        f = facts[r["research_key"]]
        record = (r["_source_sha256"], r["_source_locator"])
        histology = HISTOLOGY_BY_SNOMED.get(r["snomed_code"])
        if histology:
            name = HISTOLOGY_ONCOTREE[histology]
            f.diagnosis = (name, Evidence(name, r["onset_date"], "structured_ehr", *record))
        group = stage_group(r["stage_group"])
        if group:
            f.stage = (
                group,
                Evidence(f"stage {r['stage_group']}", r["onset_date"], "structured_ehr", *record),
            )
    for r in query_rows(
        conn,
        f"""SELECT o.research_key, o.value, CAST(o.effective_time AS DATE) AS day,
                   o._source_sha256, o._source_locator
            FROM silver.observations o JOIN {cohort} k USING (research_key)
            WHERE o.loinc_code = '{ECOG_LOINC}' AND o.value IS NOT NULL
              AND CAST(o.effective_time AS DATE) <= k.screening_date
            QUALIFY row_number() OVER (PARTITION BY o.research_key
                                       ORDER BY o.effective_time DESC, o._source_sha256, o._source_locator) = 1""",
    ):
        ecog = int(r["value"])
        facts[r["research_key"]].ecog = (
            ecog,
            Evidence(
                f"ECOG {ecog}",
                r["day"],
                "structured_ehr",
                r["_source_sha256"],
                r["_source_locator"],
            ),
        )
    _genomics(conn, cohort, facts)
    _notes(conn, cohort, facts)
    _imaging(conn, cohort, facts)
    _medications(conn, cohort, facts)
    return facts


def _genomics(conn, cohort: str, facts: dict[str, PatientFacts]) -> None:
    from ..genomics import reference

    genes = frozenset(r.gene for r in reference.panel())
    # The latest tumor sample sequenced by the screening date, and the genotype file it is in.
    tested = {}
    for r in query_rows(
        conn,
        f"""SELECT s.research_key, s.sample_id, s.collected_on, f._source_sha256,
                   f._source_locator
            FROM silver.genomic_samples s JOIN {cohort} k USING (research_key)
            JOIN bronze.file_samples f USING (sample_id)
            WHERE s.sample_type = 'tumor' AND s.in_file AND s.collected_on <= k.screening_date
            QUALIFY row_number() OVER (PARTITION BY s.research_key
                                       ORDER BY s.collected_on DESC, f.received_at DESC, s.sample_id,
                                                f._source_sha256) = 1""",
    ):
        f = facts[r["research_key"]]
        tested[r["research_key"]] = r["sample_id"]
        f.sequencing = Evidence(
            f"tumor sample sequenced ({len(genes)}-gene panel)",
            r["collected_on"],
            "genomics",
            r["_source_sha256"],
            r["_source_locator"],
        )
        f.panel_genes = genes
    for r in query_rows(
        conn,
        f"""SELECT v.research_key, v.sample_id, v.gene, v.biomarker, v.variant_type, v.chrom,
                   v.pos, v.ref, v.alt, v.collected_on, v._source_sha256, v._source_locator
            FROM silver.somatic_variants v JOIN {cohort} k USING (research_key)
            WHERE v.passed AND v.gene IS NOT NULL AND v.collected_on <= k.screening_date
            ORDER BY v.gene, v.pos, v.ref, v.alt, v._source_sha256""",
    ):
        if tested.get(r["research_key"]) != r["sample_id"]:
            continue
        name = r["biomarker"] or f"{r['gene']} {r['variant_type']}"
        value = f"{name} ({r['chrom']}:{r['pos']} {r['ref']}>{r['alt']})"
        facts[r["research_key"]].variants.append(
            Variant(
                r["gene"],
                r["biomarker"],
                r["variant_type"],
                Evidence(
                    value, r["collected_on"], "genomics", r["_source_sha256"], r["_source_locator"]
                ),
            )
        )
    for r in query_rows(
        conn,
        f"""SELECT g.research_key, g.tmb_per_mb FROM gold.genomics_features g
            JOIN {cohort} k USING (research_key) WHERE g.tmb_per_mb IS NOT NULL""",
    ):
        f = facts[r["research_key"]]
        if f.sequencing:
            tmb = float(r["tmb_per_mb"])
            s = f.sequencing
            f.tmb = (tmb, Evidence(f"TMB {tmb:g} mut/Mb", s.on, "genomics", s.sha256, s.locator))


def _notes(conn, cohort: str, facts: dict[str, PatientFacts]) -> None:
    for r in query_rows(
        conn,
        f"""SELECT DISTINCT n.research_key FROM silver.note_entities n
            JOIN {cohort} k USING (research_key) WHERE n.note_date <= k.screening_date""",
    ):
        facts[r["research_key"]].notes_reviewed = True
    for r in query_rows(
        conn,
        f"""SELECT n.research_key, n.concept, n.label, n.negated, n.historical,
                   coalesce(n.entity_date, n.note_date) AS day, n._source_sha256,
                   n._source_locator
            FROM silver.note_entities n JOIN {cohort} k USING (research_key)
            WHERE n.note_date <= k.screening_date AND n.label IN ('DIAGNOSIS', 'TREATMENT')
              AND NOT (n.hypothetical OR n.family OR n.uncertain)
            ORDER BY day, n._source_sha256, n._source_locator""",
    ):
        f = facts[r["research_key"]]
        record = (r["_source_sha256"], r["_source_locator"])
        affirmed = not r["negated"]
        text = f"{'' if affirmed else 'no '}{r['concept'].replace('_', ' ')} (note)"
        evidence = Evidence(text, r["day"], "notes", *record)
        if r["label"] == "TREATMENT":
            if affirmed and r["day"] and r["day"] <= f.screening_date:
                f.treatments.append((r["concept"], evidence))
        else:
            f.mentions.setdefault(r["concept"], []).append((affirmed, evidence))


def _imaging(conn, cohort: str, facts: dict[str, PatientFacts]) -> None:
    for r in query_rows(
        conn,
        f"""WITH ct AS (
                SELECT f.research_key, f.series_uid, f.acquired_on, f.lesion_found,
                       f.lesion_diameter_mm
                FROM gold.imaging_series_features f JOIN {cohort} k USING (research_key)
                WHERE f.modality = 'CT' AND f.instances_decoded > 0
                  AND f.acquired_on <= k.screening_date
                QUALIFY row_number() OVER (PARTITION BY f.research_key
                                           ORDER BY f.acquired_on DESC, f.series_uid) = 1
            )
            SELECT ct.*, i.sha256, i.locator FROM ct JOIN ({first_instances_sql()}) i USING (series_uid)""",
    ):
        f = facts[r["research_key"]]
        found = bool(r["lesion_found"]) and r["lesion_diameter_mm"] is not None
        f.lesion_mm = float(r["lesion_diameter_mm"]) if found else None
        value = f"lesion {f.lesion_mm:.0f} mm on CT" if found else "no lesion found on CT"
        f.imaging = Evidence(value, r["acquired_on"], "imaging", r["sha256"], r["locator"])


def _medications(conn, cohort: str, facts: dict[str, PatientFacts]) -> None:
    from ..clinical.vocabulary import ANTINEOPLASTIC_RXNORM

    codes = ", ".join(f"'{c}'" for c in ANTINEOPLASTIC_RXNORM)
    for r in query_rows(
        conn,
        f"""SELECT m.research_key, m.rxnorm_code, m.authored_date, m._source_sha256,
                   m._source_locator
            FROM silver.medications m JOIN {cohort} k USING (research_key)
            WHERE m.rxnorm_code IN ({codes}) AND m.authored_date < k.screening_date
            ORDER BY m.authored_date, m._source_sha256, m._source_locator""",
    ):
        drug = ANTINEOPLASTIC_RXNORM[r["rxnorm_code"]]
        facts[r["research_key"]].treatments.append(
            (
                drug,
                Evidence(
                    f"{drug} ordered",
                    r["authored_date"],
                    "structured_ehr",
                    r["_source_sha256"],
                    r["_source_locator"],
                ),
            )
        )


def latent_facts(cohort, research_keys, screening_days: int = 0) -> dict[str, PatientFacts]:
    """The same facts from the generator's latent state (every one known, none delivered):
    what a perfect record of each patient would say."""
    from ..genomics import reference

    genes = frozenset(r.gene for r in reference.panel())
    out = {}
    for row, key in zip(cohort.to_dict("records"), research_keys, strict=True):
        day = row["index_date"] + timedelta(days=screening_days)

        def known(value, on=None):
            return Evidence(str(value), on, "truth")

        f = PatientFacts(key, day)
        age = years_between(row["birth_date"], day)
        f.age = (age, known(age))
        f.sex = (row["sex"], known(row["sex"]))
        # The latent NOS is a histology of its own (neither adeno nor squamous), where a record
        # saying "NSCLC" leaves the subtype open.
        name = LATENT_ONCOTREE.get(row["histology"], HISTOLOGY_ONCOTREE[row["histology"]])
        f.diagnosis = (name, known(name))
        f.stage = (row["stage_group"], known(row["stage_group"]))
        f.ecog = (int(row["ecog"]), known(row["ecog"]))
        f.sequencing, f.panel_genes = known("tumor genotype"), genes
        for gene, biomarker, kind in _latent_variants(row):
            f.variants.append(Variant(gene, biomarker, kind, known(biomarker or gene)))
        f.tmb = (float(row["tmb"]), known(row["tmb"]))
        f.mentions["brain_metastasis"] = [(bool(row["brain_metastases"]), known("brain"))]
        f.imaging, f.lesion_mm = known("CT"), float(row["lesion_diameter_mm"])
        f.treatments = [(t, known(t)) for t in row["prior_treatments"]]
        f.treatment_record, f.notes_reviewed = known("complete history"), True
        out[key] = f
    return out


def _latent_variants(row) -> list[tuple[str, str | None, str]]:
    import pandas as pd

    found = []
    if row["egfr_variant"] == "L858R":
        found.append(("EGFR", "EGFR_L858R", "snv"))
    elif row["egfr_variant"] == "exon19del":
        found.append(("EGFR", "EGFR_exon19del", "deletion"))
    if pd.notna(row["kras_variant"]):
        found.append(("KRAS", f"KRAS_{row['kras_variant']}", "snv"))
    if row["driver"] == "ALK":
        found.append(("ALK", None, "breakend"))
    if pd.notna(row["braf_variant"]):
        found.append(("BRAF", "BRAF_V600E", "snv"))
    # The latent mutations are pathogenic by construction: named so that they count as such.
    if row["tp53"]:
        found.append(("TP53", "TP53_pathogenic", "snv"))
    if row["stk11"]:
        found.append(("STK11", "STK11_pathogenic", "snv"))
    return found


def by_class(drug_class: str) -> tuple[str, ...]:
    return DRUG_CLASSES.get(drug_class, ())
