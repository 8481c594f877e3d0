"""Genomics silver: samples linked to patients, somatic variants annotated against the panel, germline dosages with the score's weights."""

from __future__ import annotations

from ..platform.tables import RESEARCH_KEY, Column, RuleCheck, Table, provenance_columns
from . import reference
from .bronze import (
    _ALLELE_FRACTION,
    _ALT_COPIES,
    _CANONICAL_CHROM,
    _DEPTH,
    _DOSAGE,
    _DOSAGE_ALLELE,
    _GENOTYPE,
    _LOCATOR,
    _OTHER_ALLELE,
    _PLOIDY,
    _POS,
    _REF,
    _SAMPLE_ID,
    GENETIC,
    SAMPLE_DESCRIPTION,
    VARIANT_TYPES,
)

# ---- silver ---------------------------------------------------------------------------------

_RK_FROM_PATIENTS = (("silver.patients", "research_key"), ("bronze.genomic_samples", "mrn"))


def canonical_contig_sql(column: str) -> str:
    """`7`, `chr7` and `CHR7` are one contig, `chr7` (and `MT`/`chrMT` is `chrM`), in SQL."""
    bare = f"regexp_replace({column}, '^[cC][hH][rR]', '')"
    return (
        f"'chr' || CASE upper({bare}) WHEN 'MT' THEN 'M' WHEN 'X' THEN 'X' WHEN 'Y' THEN 'Y' "
        f"WHEN 'M' THEN 'M' ELSE {bare} END"
    )


def _reference_sql() -> str:
    panel = ", ".join(f"('{r.chrom}', {r.start}, {r.end}, '{r.gene}')" for r in reference.panel())
    spots = ", ".join(
        f"('{h.chrom}', {h.pos}, '{h.ref}', '{h.alt}', '{h.biomarker}', {str(h.actionable).upper()})"
        for h in reference.hotspots()
    )
    return (
        f"panel(chrom, start_0, end_excl, gene) AS (VALUES {panel}),\n"
        f"hotspot(chrom, pos, ref, alt, biomarker, actionable) AS (VALUES {spots})"
    )


SAMPLES_SQL = """
SELECT b.sample_id, p.research_key, b.sample_type, b.assay, b.collected_on,
       b.sample_id IN (SELECT sample_id FROM bronze.file_samples) AS in_file,
       b._source_sha256, b._source_locator, $run_id AS _run_id
FROM bronze.genomic_samples b JOIN silver.patients p ON p.mrn = b.mrn
"""


SAMPLES = Table(
    layer="silver",
    name="genomic_samples",
    modality="genomics",
    primary_key=("sample_id",),
    description="Sequencing samples linked to patients by the manifest's MRN (research key only).",
    columns=(
        _SAMPLE_ID,
        RESEARCH_KEY,
        *SAMPLE_DESCRIPTION,
        Column(
            "in_file",
            "BOOLEAN",
            "An ingested genotype file carries this sample.",
            "none",
            nullable=False,
        ),
        *provenance_columns("Manifest line number."),
    ),
    build_sql=SAMPLES_SQL,
    checks=(
        RuleCheck(
            "file_samples_mapped_to_patients",
            "Every sample an ingested genotype file carries maps to a patient through a manifest.",
            "SELECT count(DISTINCT sample_id) FROM bronze.file_samples "
            "WHERE sample_id NOT IN (SELECT sample_id FROM silver.genomic_samples)",
        ),
    ),
)

SOMATIC_VARIANTS_SQL = f"""
WITH {_reference_sql()},
calls AS (
    SELECT c.*, {canonical_contig_sql("c.chrom")} AS contig, s.research_key, s.collected_on,
           t.variant_type, t.filter
    FROM bronze.variant_calls c
    JOIN silver.genomic_samples s ON s.sample_id = c.sample_id AND s.sample_type = 'tumor'
    JOIN bronze.variant_sites t ON t._source_sha256 = c._source_sha256 AND t.chrom = c.chrom
         AND t.pos = c.pos AND t.ref = c.ref AND t.alt = c.alt
    QUALIFY row_number() OVER (PARTITION BY c.sample_id, contig, c.pos, c.ref, c.alt
                               ORDER BY c.received_at, c._source_sha256) = 1
)
SELECT c.research_key, c.sample_id, c.contig AS chrom, c.pos, c.ref, c.alt, c.variant_type,
       c.filter, c.filter = 'PASS' AS passed, c.genotype, c.ploidy, c.alt_copies,
       c.allele_fraction, c.depth, g.gene, g.gene IS NOT NULL AS in_panel, h.biomarker,
       h.actionable, c.collected_on, c._source_sha256, c._source_locator, $run_id AS _run_id
FROM calls c
LEFT JOIN panel g ON g.chrom = c.contig AND c.pos > g.start_0 AND c.pos <= g.end_excl
LEFT JOIN hotspot h ON h.chrom = c.contig AND h.pos = c.pos AND h.ref = c.ref AND h.alt = c.alt
"""


SOMATIC_VARIANTS = Table(
    layer="silver",
    name="somatic_variants",
    modality="genomics",
    primary_key=("sample_id", "chrom", "pos", "ref", "alt"),
    description="Tumour non-reference calls, contigs normalized to GRCh38 'chrN' names, "
    "annotated with panel gene and driver hotspot.",
    columns=(
        RESEARCH_KEY,
        _SAMPLE_ID,
        _CANONICAL_CHROM,
        _POS,
        _REF,
        Column("alt", "VARCHAR", "Alternate allele.", "sensitive", GENETIC, nullable=False),
        Column(
            "variant_type",
            "VARCHAR",
            "Allele class.",
            "none",
            nullable=False,
            allowed=VARIANT_TYPES,
        ),
        Column("filter", "VARCHAR", "PASS or failed filters.", "none"),
        Column("passed", "BOOLEAN", "FILTER is PASS.", "none", nullable=False),
        _GENOTYPE,
        _PLOIDY,
        _ALT_COPIES,
        _ALLELE_FRACTION,
        _DEPTH,
        Column("gene", "VARCHAR", "Panel gene whose span holds the variant.", "sensitive", GENETIC),
        Column("in_panel", "BOOLEAN", "Inside the panel BED.", "none", nullable=False),
        Column(
            "biomarker",
            "VARCHAR",
            "Driver hotspot matched (gene_change), or NULL.",
            "sensitive",
            GENETIC,
        ),
        Column(
            "actionable",
            "BOOLEAN",
            "The hotspot has an approved targeted therapy.",
            "sensitive",
            GENETIC,
        ),
        Column("collected_on", "DATE", "Specimen collection date.", "phi", "hipaa"),
        *provenance_columns(_LOCATOR, "sensitive"),
    ),
    build_sql=SOMATIC_VARIANTS_SQL,
    checks=(
        RuleCheck(
            "ref_alt_alphabet",
            "REF and sequence ALTs use only A, C, G, T, N.",
            "SELECT count(*) FROM silver.somatic_variants WHERE NOT regexp_full_match(ref, "
            "'[ACGTN]+') OR (variant_type IN ('snv','mnv','insertion','deletion','complex') "
            "AND NOT regexp_full_match(alt, '[ACGTN]+'))",
        ),
        RuleCheck(
            "position_within_contig",
            "POS lies within the GRCh38 length of a known contig.",
            "SELECT count(*) FROM silver.somatic_variants v LEFT JOIN (VALUES "
            + ", ".join(f"('{c}', {n})" for c, n in reference.GRCH38_LENGTHS.items())
            + ") g(chrom, length) USING (chrom) WHERE g.length IS NULL OR v.pos > g.length",
        ),
        RuleCheck(
            "genotype_ploidy_consistent",
            "Ploidy equals the alleles written in GT, and ALT copies do not exceed it.",
            "SELECT count(*) FROM silver.somatic_variants WHERE ploidy <> "
            "len(regexp_split_to_array(genotype, '[/|]')) OR alt_copies > ploidy",
        ),
    ),
)


def _weights_sql() -> str:
    rows = ", ".join(
        f"('{v.variant_id}', '{v.chrom}', {v.pos}, '{v.effect_allele}', '{v.other_allele}', "
        f"{v.effect_allele_frequency}, {v.weight})"
        for v in reference.prs_weights()
    )
    return (
        f"weights(variant_id, chrom, pos, effect_allele, other_allele, freq, weight) AS "
        f"(VALUES {rows})"
    )


GERMLINE_DOSAGES_SQL = f"""
WITH {_weights_sql()},
genotypes AS (
    SELECT g.*, {canonical_contig_sql("g.chrom")} AS contig, s.research_key
    FROM bronze.germline_genotypes g
    JOIN silver.genomic_samples s ON s.sample_id = g.sample_id AND s.sample_type = 'germline'
    QUALIFY row_number() OVER (PARTITION BY g.sample_id, contig, g.pos, g.dosage_allele,
                                            g.other_allele ORDER BY g.received_at) = 1
)
SELECT g.research_key, g.sample_id, g.variant_id, g.contig AS chrom, g.pos, g.dosage_allele,
       g.other_allele, g.dosage, w.variant_id AS score_variant_id,
       CASE WHEN w.effect_allele = g.dosage_allele AND w.other_allele = g.other_allele
                THEN g.dosage
            WHEN w.effect_allele = g.other_allele AND w.other_allele = g.dosage_allele
                THEN 2 - g.dosage END AS effect_dosage,
       g.source_format, g._source_sha256, g._source_locator, $run_id AS _run_id
FROM genotypes g LEFT JOIN weights w ON w.chrom = g.contig AND w.pos = g.pos
"""


GERMLINE_DOSAGES = Table(
    layer="silver",
    name="germline_dosages",
    modality="genomics",
    primary_key=("sample_id", "chrom", "pos", "dosage_allele", "other_allele"),
    description="Germline array dosages of patients' samples, contigs normalized, aligned to the "
    "polygenic score's effect allele where the variant is one of its SNPs.",
    columns=(
        RESEARCH_KEY,
        _SAMPLE_ID,
        Column("variant_id", "VARCHAR", "Variant ID as delivered.", "none"),
        _CANONICAL_CHROM,
        _POS,
        _DOSAGE_ALLELE,
        _OTHER_ALLELE,
        _DOSAGE,
        Column("score_variant_id", "VARCHAR", "The score SNP this variant is, if any.", "none"),
        Column(
            "effect_dosage",
            "DOUBLE",
            "Copies of the score's effect allele (alleles matched "
            "either way round; NULL if they do not match).",
            "sensitive",
            GENETIC,
            min_value=0,
            max_value=2,
        ),
        Column("source_format", "VARCHAR", "plink or bgen.", "none"),
        *provenance_columns("CHROM:POS:variant_id in its file."),
    ),
    build_sql=GERMLINE_DOSAGES_SQL,
)
