"""Genomics bronze tables: samples, file samples, variant sites and calls, germline genotypes."""

from __future__ import annotations

from ..platform.tables import Column, Table, provenance_columns

GENETIC = "gdpr_art9"
VARIANT_TYPES = (
    "snv",
    "mnv",
    "insertion",
    "deletion",
    "complex",
    "symbolic",
    "breakend",
    "spanning_deletion",
    "reference_block",
    "no_alt",
)
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
SAMPLE_TYPES = ("tumor", "normal", "germline")
MANIFEST_COLUMNS = ("sample_id", "mrn", "sample_type", "assay", "collected_on", "file")

_SAMPLE_ID = Column(
    "sample_id",
    "VARCHAR",
    "Sequencing sample ID as delivered.",
    "sensitive",
    GENETIC,
    nullable=False,
)
_CHROM = Column("chrom", "VARCHAR", "Contig as written in the file.", "none", nullable=False)
_POS = Column("pos", "BIGINT", "1-based position.", "none", nullable=False, min_value=1)
_REF = Column("ref", "VARCHAR", "Reference allele.", "sensitive", GENETIC, nullable=False)
_ALT = Column(
    "alt", "VARCHAR", "One alternate allele (NULL when the site has none).", "sensitive", GENETIC
)
_ALT_INDEX = Column("alt_index", "INTEGER", "1-based index of `alt` among the site's ALTs.", "none")
_CANONICAL_CHROM = Column(
    "chrom", "VARCHAR", "Contig, GRCh38 style ('chr7').", "none", nullable=False
)
# Call and dosage columns keep their meaning from bronze to silver: declared once.
_GENOTYPE = Column(
    "genotype",
    "VARCHAR",
    "GT as written ('0/1', '1|2', '1', '0/1/.').",
    "sensitive",
    GENETIC,
    nullable=False,
)
_PLOIDY = Column("ploidy", "INTEGER", "Alleles in the genotype.", "none", min_value=1)
_ALT_COPIES = Column(
    "alt_copies",
    "INTEGER",
    "Copies of this ALT in the genotype.",
    "sensitive",
    GENETIC,
    min_value=1,
)
_DEPTH = Column("depth", "INTEGER", "Read depth (FORMAT/DP).", "none", min_value=0)
_ALLELE_FRACTION = Column(
    "allele_fraction",
    "DOUBLE",
    "Allele fraction of this ALT (FORMAT/AF, else derived from AD).",
    "sensitive",
    GENETIC,
    min_value=0,
    max_value=1,
)
_DOSAGE_ALLELE = Column(
    "dosage_allele",
    "VARCHAR",
    "Allele the dosage counts (PLINK A1, BGEN 2nd).",
    "none",
    nullable=False,
)
_OTHER_ALLELE = Column("other_allele", "VARCHAR", "The variant's other allele.", "none")
_DOSAGE = Column(
    "dosage",
    "DOUBLE",
    "Copies of `dosage_allele` (expected, for BGEN).",
    "sensitive",
    GENETIC,
    min_value=0,
    max_value=2,
)
_LOCATOR = "CHROM:POS:REF:ALT of the record in its file."
_RECEIVED = Column("received_at", "TIMESTAMP", "Arrival of the file (UTC).", "none")

# What the manifest says of a sample, in bronze and in silver alike.
SAMPLE_DESCRIPTION = (
    Column(
        "sample_type",
        "VARCHAR",
        "tumor, normal or germline.",
        "none",
        nullable=False,
        allowed=SAMPLE_TYPES,
    ),
    Column("assay", "VARCHAR", "Assay name.", "none"),
    Column("collected_on", "DATE", "Specimen collection date.", "phi", "hipaa"),
)

GENOMIC_SAMPLES = Table(
    layer="bronze",
    name="genomic_samples",
    modality="genomics",
    primary_key=("sample_id",),
    restricted=True,
    append_once=True,
    description="Sequencing manifest rows: which sample belongs to which MRN (identified).",
    columns=(
        _SAMPLE_ID,
        Column("mrn", "VARCHAR", "Medical record number.", "phi", "hipaa", nullable=False),
        *SAMPLE_DESCRIPTION,
        Column("file", "VARCHAR", "Delivered data file named by the manifest.", "none"),
        Column("received_at", "TIMESTAMP", "Arrival of the manifest (UTC).", "none"),
        *provenance_columns("Manifest line number."),
    ),
)

FILE_SAMPLES = Table(
    layer="bronze",
    name="file_samples",
    modality="genomics",
    restricted=True,
    description="The samples each ingested VCF, BCF, PLINK or BGEN file declares, with its "
    "record count.",
    columns=(
        _SAMPLE_ID,
        Column("sample_index", "INTEGER", "0-based column of the sample in the file.", "none"),
        Column(
            "records", "BIGINT", "Records (variants, before ALT splitting) in the file.", "none"
        ),
        _RECEIVED,
        *provenance_columns("File-level row: the file's format (vcf, bcf, plink, bgen)."),
    ),
)

VARIANT_SITES = Table(
    layer="bronze",
    name="variant_sites",
    modality="genomics",
    restricted=True,
    description="Every VCF/BCF record split to one row per ALT allele, as delivered and typed.",
    columns=(
        _CHROM,
        _POS,
        _REF,
        _ALT,
        _ALT_INDEX,
        Column(
            "variant_type",
            "VARCHAR",
            "Allele class (symbolic, breakend, gVCF block …).",
            "none",
            nullable=False,
            allowed=VARIANT_TYPES,
        ),
        Column("variant_id", "VARCHAR", "ID column.", "none"),
        Column("qual", "DOUBLE", "QUAL (NULL when '.', NaN spelled any way).", "none"),
        Column("filter", "VARCHAR", "PASS, or the failed filters joined by ';'.", "none"),
        Column("end_pos", "BIGINT", "INFO/END for blocks and symbolic alleles.", "none"),
        _RECEIVED,
        *provenance_columns(_LOCATOR, "sensitive"),
    ),
)

VARIANT_CALLS = Table(
    layer="bronze",
    name="variant_calls",
    modality="genomics",
    restricted=True,
    description="Non-reference genotype calls in long form: one row per sample and ALT allele "
    "it carries; missing, haploid and polyploid genotypes kept as written.",
    columns=(
        _SAMPLE_ID,
        _CHROM,
        _POS,
        _REF,
        _ALT,
        _ALT_INDEX,
        _GENOTYPE,
        _PLOIDY,
        _ALT_COPIES,
        Column("phased", "BOOLEAN", "Genotype is phased.", "none"),
        _DEPTH,
        Column("alt_depth", "INTEGER", "FORMAT/AD of this ALT.", "none", min_value=0),
        _ALLELE_FRACTION,
        _RECEIVED,
        *provenance_columns(_LOCATOR, "sensitive"),
    ),
)

GERMLINE_GENOTYPES = Table(
    layer="bronze",
    name="germline_genotypes",
    modality="genomics",
    restricted=True,
    description="Genotyping-array dosages (PLINK hard calls or BGEN expected dosages), one row "
    "per sample and biallelic variant.",
    columns=(
        _SAMPLE_ID,
        Column("variant_id", "VARCHAR", "Variant ID (PLINK SID, BGEN rsid).", "none"),
        _CHROM,
        _POS,
        _DOSAGE_ALLELE,
        _OTHER_ALLELE,
        _DOSAGE,
        Column(
            "source_format",
            "VARCHAR",
            "plink or bgen.",
            "none",
            nullable=False,
            allowed=("plink", "bgen"),
        ),
        _RECEIVED,
        *provenance_columns("CHROM:POS:variant_id in its file."),
    ),
)

BRONZE_TABLES = (GENOMIC_SAMPLES, FILE_SAMPLES, VARIANT_SITES, VARIANT_CALLS, GERMLINE_GENOTYPES)
