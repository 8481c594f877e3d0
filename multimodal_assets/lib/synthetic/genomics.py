"""Somatic panel VCFs for the patients with tumour sequencing, written with pysam (htslib).

One bgzipped, tabix-indexed VCF 4.2 per tumour sample (a few as BCF with a CSI index), tumour-only
or tumour/normal, with GT/AD/DP/AF. The patient's drivers sit at their GRCh38 hotspots (from the
bundled reference), an ALK fusion is a breakend pair, and passenger variants inside the panel
make up the latent TMB (about a tenth fail the LowQual filter and do not count). Sample IDs are
random; a per-batch manifest maps them to MRNs. Reference bases of passengers are random: the
generator has no genome sequence, and nothing downstream needs one.
"""

from __future__ import annotations

import csv
import io
import tempfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from ..genomics.reference import GRCH38_LENGTHS, hotspot, panel, panel_megabases, prs_weights
from .files import batch_folder, write_delivered

BASES = np.array(list("ACGT"))
LOWQUAL_SHARE = 0.1
BCF_SHARE = 0.05
EML4 = ("chr2", 42169350, 42332548)
GENE_LEVEL = ("TP53", "STK11")  # the usual ALK fusion partner (GRCh38 gene span)


def _header(samples: list[str]):
    import pysam

    header = pysam.VariantHeader()
    header.add_line("##fileformat=VCFv4.2")
    header.add_line("##reference=GRCh38")
    for name, length in GRCH38_LENGTHS.items():
        header.contigs.add(name, length=length)
    header.add_line('##FILTER=<ID=LowQual,Description="Low quality somatic call">')
    header.add_line('##INFO=<ID=SVTYPE,Number=1,Type=String,Description="Structural type">')
    header.add_line('##INFO=<ID=SOMATIC,Number=0,Type=Flag,Description="Somatic call">')
    header.add_line('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">')
    header.add_line('##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">')
    header.add_line('##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">')
    header.add_line('##FORMAT=<ID=AF,Number=A,Type=Float,Description="Allele fraction">')
    for sample in samples:
        header.add_sample(sample)
    return header


def _variants(p: dict, rng: np.random.Generator) -> list[dict]:
    """The tumour's variants: drivers, fusion breakends and passengers, in no order."""
    out = []
    present = {k: p[k] for k in ("egfr_variant", "kras_variant", "braf_variant") if pd.notna(p[k])}
    drivers = {
        "EGFR": {"L858R": "EGFR_L858R", "exon19del": "EGFR_exon19del"}.get(
            present.get("egfr_variant")
        ),
        "KRAS": f"KRAS_{present['kras_variant']}" if "kras_variant" in present else None,
        "BRAF": "BRAF_V600E" if "braf_variant" in present else None,
    }
    for biomarker in filter(None, drivers.values()):
        h = hotspot(biomarker)
        out.append(dict(chrom=h.chrom, pos=h.pos, ref=h.ref, alts=[h.alt], kind="driver"))
    if p["tp53"]:
        h = hotspot("TP53_R175H")
        out.append(dict(chrom=h.chrom, pos=h.pos, ref=h.ref, alts=[h.alt], kind="driver"))
    regions = {r.gene: r for r in panel()}
    if p["stk11"]:  # a loss-of-function change somewhere in STK11
        r = regions["STK11"]
        pos = int(rng.integers(r.start + 1, r.end + 1))
        ref = str(rng.choice(BASES))
        alt = str(rng.choice(BASES[BASES != ref]))
        out.append(dict(chrom=r.chrom, pos=pos, ref=ref, alts=[alt], kind="driver"))
    if p["driver"] == "ALK":  # EML4-ALK: a breakend pair, ALK intron 19 to EML4
        alk = regions["ALK"]
        a = int(rng.integers(alk.start + 1, alk.end + 1))
        b = int(rng.integers(EML4[1], EML4[2]))
        out.append(dict(chrom="chr2", pos=a, ref="G", alts=[f"G]chr2:{b}]"], kind="fusion"))
        out.append(dict(chrom="chr2", pos=b, ref="T", alts=[f"T]chr2:{a}]"], kind="fusion"))
    taken = {(v["chrom"], v["pos"]) for v in out}
    snvs = sum(v["kind"] == "driver" for v in out)
    passengers = max(0, int(round(p["tmb"] * panel_megabases())) - snvs)
    # Passengers fall in the genes whose flags are hotspot-level, so a gene-level flag
    # (any TP53 or STK11 variant) is exactly the latent truth.
    hosts = [r for r in panel() if r.gene not in GENE_LEVEL]
    spans = np.array([r.end - r.start for r in hosts], dtype=float)
    while passengers > 0:
        r = hosts[rng.choice(len(spans), p=spans / spans.sum())]
        pos = int(rng.integers(r.start + 1, r.end + 1))
        if (r.chrom, pos) in taken:
            continue
        taken.add((r.chrom, pos))
        ref = str(rng.choice(BASES))
        alts = list(rng.choice(BASES[BASES != ref], 2 if rng.random() < 0.05 else 1, False))
        passengers -= len(alts)
        out.append(
            dict(
                chrom=r.chrom,
                pos=pos,
                ref=ref,
                alts=[str(a) for a in alts],
                kind="passenger",
                lowqual=bool(rng.random() < LOWQUAL_SHARE),
            )
        )
    return out


def _write_vcf(path: Path, tumour: str, normal: str | None, variants: list[dict], rng) -> None:
    import pysam

    samples = [tumour] + ([normal] if normal else [])
    order = {c: i for i, c in enumerate(GRCH38_LENGTHS)}
    mode = "wb" if path.suffix == ".bcf" else "wz"
    with pysam.VariantFile(str(path), mode, header=_header(samples)) as out:
        for v in sorted(variants, key=lambda v: (order[v["chrom"]], v["pos"])):
            record = out.new_record(
                contig=v["chrom"], start=v["pos"] - 1, alleles=(v["ref"], *v["alts"])
            )
            record.filter.add("LowQual" if v.get("lowqual") else "PASS")
            record.info["SOMATIC"] = True
            if v["kind"] == "fusion":
                record.info["SVTYPE"] = "BND"
            depth = int(rng.normal(350, 60))
            fractions = np.clip(rng.beta(4, 8, len(v["alts"])), 0.03, 0.95) / len(v["alts"])
            alt_depths = [int(f * depth) for f in fractions]
            t = record.samples[tumour]
            t["GT"] = (1, 2) if len(v["alts"]) == 2 else (0, 1)
            t["AD"] = (depth - sum(alt_depths), *alt_depths)
            t["DP"] = depth
            t["AF"] = tuple(round(float(a / depth), 4) for a in alt_depths)
            if normal:
                n = record.samples[normal]
                n_depth = int(rng.normal(200, 40))
                n["GT"] = (0, 0)
                n["AD"] = (n_depth, *([0] * len(v["alts"])))
                n["DP"] = n_depth
                n["AF"] = tuple(0.0 for _ in v["alts"])
            out.write(record)
    if mode == "wz":
        pysam.tabix_index(str(path), preset="vcf", force=True)
    else:
        import pysam.bcftools

        pysam.bcftools.index(str(path))


def _manifest(rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, ["sample_id", "mrn", "sample_type", "assay", "collected_on", "file"]
    )
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def render_somatic(cohort: pd.DataFrame, seed: int, landing: Path, manifests: dict):
    """Write the VCFs and indexes under landing/genomics, add their samples to `manifests`
    (batch → rows); return (deliveries, truth variant rows)."""
    rng = np.random.default_rng([seed, 7])
    accidents = np.random.default_rng([seed, 8])
    sequenced = [p for p in cohort.to_dict("records") if p["has_genomics"]]
    if not sequenced:
        return [], []
    truncate = int(accidents.integers(len(sequenced)))
    resend = int(accidents.integers(len(sequenced)))
    deliveries, truth = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for i, p in enumerate(sequenced):
            tumour = f"TS{rng.integers(10**8, 10**9)}"
            normal = f"NS{rng.integers(10**8, 10**9)}" if rng.random() < 0.4 else None
            collected = p["index_date"] - timedelta(days=int(rng.integers(1, 21)))
            delivered = p["index_date"] + timedelta(days=int(rng.integers(7, 28)))
            suffix = ".bcf" if rng.random() < BCF_SHARE else ".vcf.gz"
            variants = _variants(p, rng)
            written = Path(scratch) / f"{tumour}{suffix}"
            _write_vcf(written, tumour, normal, variants, rng)
            folder = landing / batch_folder(delivered)
            name = f"somatic/{tumour}{suffix}"
            data = written.read_bytes()
            rows = manifests.setdefault(batch_folder(delivered), [])
            for sample, kind in ((tumour, "tumor"), (normal, "normal")):
                if sample:
                    rows.append(
                        {
                            "sample_id": sample,
                            "mrn": p["mrn"],
                            "sample_type": kind,
                            "assay": "somatic_panel",
                            "collected_on": collected.isoformat(),
                            "file": name,
                        }
                    )
            if i == truncate:  # a transfer cut short: quarantined, the bytes stay
                write_delivered(folder / name, data[: len(data) // 2], delivered)
                deliveries.append(_delivery(folder / name, landing, "truncated", "quarantined"))
                continue
            write_delivered(folder / name, data, delivered)
            index = written.with_name(written.name + (".csi" if suffix == ".bcf" else ".tbi"))
            write_delivered(folder / (name + index.suffix), index.read_bytes(), delivered)
            deliveries.append(_delivery(folder / name, landing, "somatic_vcf", "ingested"))
            if i == resend:
                again = landing / batch_folder(delivered + timedelta(days=7))
                write_delivered(again / f"somatic/resend-{tumour}{suffix}", data, delivered)
                deliveries.append(
                    _delivery(
                        again / f"somatic/resend-{tumour}{suffix}", landing, "resend", "duplicate"
                    )
                )
            truth += [
                {
                    "mrn": p["mrn"],
                    "sample_id": tumour,
                    "chrom": v["chrom"],
                    "pos": v["pos"],
                    "ref": v["ref"],
                    "alt": alt,
                    "kind": v["kind"],
                    "passed": not v.get("lowqual", False),
                }
                for v in variants
                for alt in v["alts"]
            ]
        # A delivery whose sample no manifest knows: ingested to bronze, never linked.
        stray = Path(scratch) / "TS000000000.vcf.gz"
        _write_vcf(stray, "TS000000000", None, _variants(sequenced[0], rng), rng)
        day = date(2023, 5, 8)
        write_delivered(
            landing / batch_folder(day) / "somatic/TS000000000.vcf.gz", stray.read_bytes(), day
        )
        deliveries.append(
            _delivery(
                landing / batch_folder(day) / "somatic/TS000000000.vcf.gz",
                landing,
                "unknown_sample",
                "ingested",
            )
        )
    return deliveries, truth


GERMLINE_BATCH = 25  # patients per genotyping-array delivery


def _germline_dosages(patients: list[dict], rng) -> np.ndarray:
    """Effect-allele dosages (patients × score SNPs): allele frequencies tilted by the latent
    polygenic risk, in the direction of each weight, so the score tracks the latent."""
    weights = prs_weights()
    freq = np.array([v.effect_allele_frequency for v in weights])
    sign = np.sign([v.weight for v in weights])
    latent = np.array([p["prs_latent"] for p in patients])[:, None]
    logit = np.log(freq / (1 - freq)) + 0.35 * sign * latent
    return rng.binomial(2, 1 / (1 + np.exp(-logit)))


def _write_plink(prefix: Path, samples: list[str], dosages: np.ndarray) -> None:
    from bed_reader import to_bed

    weights = prs_weights()
    to_bed(
        prefix.with_suffix(".bed"),
        dosages.astype(np.float32),
        properties={
            "iid": samples,
            "fid": samples,
            "sid": [v.variant_id for v in weights],
            "chromosome": [v.chrom.removeprefix("chr") for v in weights],
            "bp_position": [v.pos for v in weights],
            "allele_1": [v.effect_allele for v in weights],  # counted allele (PLINK's A1)
            "allele_2": [v.other_allele for v in weights],
        },
    )


def _write_bgen(path: Path, samples: list[str], dosages: np.ndarray) -> None:
    from bgen import BgenWriter

    with BgenWriter(str(path), len(samples), samples=samples, compression="zstd", layout=2) as out:
        for j, v in enumerate(prs_weights()):
            probabilities = np.zeros((len(samples), 3))
            probabilities[np.arange(len(samples)), dosages[:, j]] = 1.0  # P(0, 1, 2 effect)
            out.add_variant(
                v.variant_id,
                v.variant_id,
                v.chrom.removeprefix("chr"),
                v.pos,
                [v.other_allele, v.effect_allele],
                probabilities,
                ploidy=2,
                phased=False,
                bit_depth=8,
            )


def render_germline(cohort: pd.DataFrame, seed: int, landing: Path, manifests: dict):
    """Genotyping-array deliveries of the score's SNPs, alternately PLINK and BGEN, one per
    batch of patients; plus one corrupt .bed. Returns (deliveries, truth dosage rows)."""
    rng = np.random.default_rng([seed, 9])
    arrays = sorted(
        (p for p in cohort.to_dict("records") if p["has_germline"]), key=lambda p: p["index_date"]
    )
    deliveries, truth = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for b, start in enumerate(range(0, len(arrays), GERMLINE_BATCH)):
            batch = arrays[start : start + GERMLINE_BATCH]
            samples = [f"GS{rng.integers(10**8, 10**9)}" for _ in batch]
            dosages = _germline_dosages(batch, rng)
            delivered = max(p["index_date"] for p in batch) + timedelta(days=7)
            folder = landing / batch_folder(delivered) / "germline"
            stem = f"array-{b:03d}"
            if b % 2 == 0:
                _write_plink(Path(scratch) / stem, samples, dosages)
                suffixes = (".bed", ".bim", ".fam")
            else:
                _write_bgen(Path(scratch) / f"{stem}.bgen", samples, dosages)
                suffixes = (".bgen",)
            for suffix in suffixes:
                data = (Path(scratch) / f"{stem}{suffix}").read_bytes()
                write_delivered(folder / f"{stem}{suffix}", data, delivered)
            deliveries.append(
                _delivery(folder / f"{stem}{suffixes[0]}", landing, "germline_array", "ingested")
            )
            rows = manifests.setdefault(batch_folder(delivered), [])
            for p, sample, row in zip(batch, samples, dosages, strict=True):
                collected = p["index_date"] - timedelta(days=int(rng.integers(1, 60)))
                rows.append(
                    {
                        "sample_id": sample,
                        "mrn": p["mrn"],
                        "sample_type": "germline",
                        "assay": "genotyping_array",
                        "collected_on": collected.isoformat(),
                        "file": f"germline/{stem}{suffixes[0]}",
                    }
                )
                truth += [
                    {
                        "mrn": p["mrn"],
                        "sample_id": sample,
                        "variant_id": v.variant_id,
                        "effect_dosage": int(d),
                    }
                    for v, d in zip(prs_weights(), row, strict=True)
                ]
            if b == 0:  # a damaged copy of the first .bed: its magic bytes are gone
                broken = folder / "array-damaged.bed"
                bed = (Path(scratch) / f"{stem}.bed").read_bytes()
                write_delivered(broken, b"\x00\x00\x00" + bed[3:], delivered)
                deliveries.append(_delivery(broken, landing, "corrupt_bed", "quarantined"))
    return deliveries, truth


def render_genomics(cohort: pd.DataFrame, seed: int, landing: Path):
    """Somatic panels, germline arrays and the per-batch manifests that name their samples.
    Returns (deliveries, somatic truth variants, germline truth dosages)."""
    manifests: dict[str, list[dict]] = {}
    somatic, variants = render_somatic(cohort, seed, landing, manifests)
    germline, dosages = render_germline(cohort, seed, landing, manifests)
    deliveries = somatic + germline
    for batch, rows in manifests.items():
        path = landing / batch / "manifest.csv"
        write_delivered(path, _manifest(rows), date.fromisoformat(batch))
        deliveries.append(_delivery(path, landing, "manifest", "ingested"))
    return deliveries, variants, dosages


def _delivery(path: Path, landing: Path, kind: str, expected: str) -> dict:
    return {
        "path": path.relative_to(landing.parent).as_posix(),
        "kind": kind,
        "expected_status": expected,
    }
