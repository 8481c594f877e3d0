"""Genomics modality: somatic panel VCF/BCF deliveries and their sample manifests into bronze
variant sites, long-form non-reference calls and sample tables; silver variants normalized and
annotated against the bundled panel and hotspots; gold per-patient driver flags and TMB.

VCF and BCF are read with cyvcf2 (htslib). One landed file gives rows for several bronze tables:
`parse_genomics_file` returns them keyed by table name. Sample IDs and genotypes are genetic data
(GDPR art. 9): they are tagged `sensitive`/`gdpr_art9`, and the manifest's MRN `phi`.

Modules: `bronze` (bronze table declarations), `formats` (which reader a landed file goes to),
`vcf` (VCF/BCF reader (cyvcf2)), `plink` (PLINK .bed/.bim/.fam reader), `bgen` (BGEN reader),
`manifest` (sample manifest reader), `silver` (silver tables and their SQL), `gold` (gold features
and their SQL).
"""

from .bgen import parse_bgen
from .bronze import (
    BGZF_EOF,
    BRONZE_TABLES,
    FILE_SAMPLES,
    GENETIC,
    GENOMIC_SAMPLES,
    GERMLINE_GENOTYPES,
    MANIFEST_COLUMNS,
    SAMPLE_TYPES,
    VARIANT_CALLS,
    VARIANT_SITES,
    VARIANT_TYPES,
)
from .formats import parse_genomics_file
from .gold import FEATURES, PRS_MIN_COVERAGE, PRS_MIN_SAMPLE, TABLES, TMB_TYPES
from .manifest import parse_manifest
from .plink import PLINK_COMPANIONS, PLINK_MAGIC, parse_plink
from .silver import (
    GERMLINE_DOSAGES,
    SAMPLES,
    SOMATIC_VARIANTS,
    canonical_contig_sql,
)
from .vcf import CHUNK_GENOTYPES, CHUNK_SITES, parse_vcf, variant_type

__all__ = [
    "BGZF_EOF",
    "BRONZE_TABLES",
    "CHUNK_GENOTYPES",
    "CHUNK_SITES",
    "FEATURES",
    "FILE_SAMPLES",
    "GENETIC",
    "GENOMIC_SAMPLES",
    "GERMLINE_DOSAGES",
    "GERMLINE_GENOTYPES",
    "MANIFEST_COLUMNS",
    "PLINK_COMPANIONS",
    "PLINK_MAGIC",
    "PRS_MIN_COVERAGE",
    "PRS_MIN_SAMPLE",
    "SAMPLES",
    "SAMPLE_TYPES",
    "SOMATIC_VARIANTS",
    "TABLES",
    "TMB_TYPES",
    "VARIANT_CALLS",
    "VARIANT_SITES",
    "VARIANT_TYPES",
    "canonical_contig_sql",
    "parse_bgen",
    "parse_genomics_file",
    "parse_manifest",
    "parse_plink",
    "parse_vcf",
    "variant_type",
]
