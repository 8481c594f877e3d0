"""Bundled GRCh38 reference data for the genomics modality: the gene panel and driver hotspots
(sources in `multimodal_assets/reference/genomics/SOURCES.md`)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[2] / "reference" / "genomics"

# GRCh38 primary-assembly chromosome lengths (the ##contig lines of a GRCh38 VCF).
GRCH38_LENGTHS = {
    "chr1": 248956422,
    "chr2": 242193529,
    "chr3": 198295559,
    "chr4": 190214555,
    "chr5": 181538259,
    "chr6": 170805979,
    "chr7": 159345973,
    "chr8": 145138636,
    "chr9": 138394717,
    "chr10": 133797422,
    "chr11": 135086622,
    "chr12": 133275309,
    "chr13": 114364328,
    "chr14": 107043718,
    "chr15": 101991189,
    "chr16": 90338345,
    "chr17": 83257441,
    "chr18": 80373285,
    "chr19": 58617616,
    "chr20": 64444167,
    "chr21": 46709983,
    "chr22": 50818468,
    "chrX": 156040895,
    "chrY": 57227415,
    "chrM": 16569,
}


@dataclass(frozen=True)
class PanelRegion:
    chrom: str
    start: int  # 0-based, inclusive (BED)
    end: int  # exclusive
    gene: str


@dataclass(frozen=True)
class Hotspot:
    gene: str
    protein_change: str
    biomarker: str
    chrom: str
    pos: int
    ref: str
    alt: str
    hgvs_genomic: str
    hgvs_coding: str
    actionable: bool
    exon: int  # on the MANE Select transcript


@cache
def panel() -> tuple[PanelRegion, ...]:
    regions = []
    for line in (REFERENCE / "panel.bed").read_text().splitlines():
        if line and not line.startswith("#"):
            chrom, start, end, gene = line.split("\t")
            regions.append(PanelRegion(chrom, int(start), int(end), gene))
    return tuple(regions)


def panel_megabases() -> float:
    return sum(r.end - r.start for r in panel()) / 1e6


@cache
def hotspots() -> tuple[Hotspot, ...]:
    with (REFERENCE / "hotspots.csv").open() as handle:
        return tuple(
            Hotspot(
                gene=row["gene"],
                protein_change=row["protein_change"],
                biomarker=row["biomarker"],
                chrom=row["chrom"],
                pos=int(row["pos"]),
                ref=row["ref"],
                alt=row["alt"],
                hgvs_genomic=row["hgvs_genomic"],
                hgvs_coding=row["hgvs_coding"],
                actionable=row["actionable"] == "true",
                exon=int(row["exon"]),
            )
            for row in csv.DictReader(handle)
        )


def hotspot(biomarker: str) -> Hotspot:
    return next(h for h in hotspots() if h.biomarker == biomarker)


@dataclass(frozen=True)
class ScoreVariant:
    variant_id: str
    chrom: str
    pos: int
    effect_allele: str
    other_allele: str
    effect_allele_frequency: float
    weight: float


@cache
def prs_weights() -> tuple[ScoreVariant, ...]:
    with (REFERENCE / "prs_weights.csv").open() as handle:
        return tuple(
            ScoreVariant(
                variant_id=row["variant_id"],
                chrom=row["chrom"],
                pos=int(row["pos"]),
                effect_allele=row["effect_allele"],
                other_allele=row["other_allele"],
                effect_allele_frequency=float(row["effect_allele_frequency"]),
                weight=float(row["weight"]),
            )
            for row in csv.DictReader(handle)
        )


def prs_reference_moments() -> tuple[float, float]:
    """Mean and standard deviation of the score in the reference population (Hardy–Weinberg)."""
    mean = sum(2 * v.effect_allele_frequency * v.weight for v in prs_weights())
    variance = sum(
        2 * v.effect_allele_frequency * (1 - v.effect_allele_frequency) * v.weight**2
        for v in prs_weights()
    )
    return mean, variance**0.5
