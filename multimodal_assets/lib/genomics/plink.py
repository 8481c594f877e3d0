"""PLINK 1 binary filesets (.bed with its .bim and .fam) into long-form dosages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from ..platform.ingest import QuarantineError
from .bronze import FILE_SAMPLES, GERMLINE_GENOTYPES

PLINK_MAGIC = b"\x6c\x1b"
PLINK_COMPANIONS = (".bim", ".fam")


def _check_text_table(data: bytes, suffix: str) -> None:
    """PLINK .bim/.fam have six columns (a .bim's 4th an integer position); an Oxford .sample
    has two header rows and rows as wide as them."""
    try:
        rows = [line.split() for line in data.decode("utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as err:
        raise QuarantineError(f"invalid_{suffix[1:]}", f"{suffix} file is not text") from err
    if suffix == ".sample":
        if len(rows) < 2 or any(len(r) != len(rows[0]) for r in rows):
            raise QuarantineError("invalid_sample", ".sample rows do not match its header width")
        return
    for number, row in enumerate(rows, start=1):
        if len(row) != 6:
            raise QuarantineError(
                f"invalid_{suffix[1:]}", f"line {number} has {len(row)} columns, not 6"
            )
        if suffix == ".bim" and not row[3].lstrip("-").isdigit():
            raise QuarantineError("invalid_bim", f"line {number}: position is not an integer")


def parse_plink(data: bytes, path: Path) -> dict[str, pa.Table]:
    """A PLINK .bed with its .bim/.fam (same prefix) into long dosages of allele 1 (PLINK's
    counted allele); bed-reader checks the size against the sample and variant counts."""
    from bed_reader import open_bed

    if not data.startswith(PLINK_MAGIC):
        raise QuarantineError("invalid_bed", "not a PLINK .bed: the magic bytes 6c 1b are missing")
    missing = [s for s in PLINK_COMPANIONS if not path.with_suffix(s).exists()]
    if missing:
        raise QuarantineError("missing_companion", f"no {', '.join(missing)} next to the .bed")
    for suffix in PLINK_COMPANIONS:
        _check_text_table(path.with_suffix(suffix).read_bytes(), suffix)
    try:
        with open_bed(path, count_A1=True) as bed:
            dosage = bed.read(dtype="float32")
            samples = [str(s) for s in bed.iid]
            variants = dict(
                id=bed.sid,
                chrom=bed.chromosome,
                pos=bed.bp_position,
                a1=bed.allele_1,
                a2=bed.allele_2,
            )
    except Exception as err:  # noqa: BLE001 - bed-reader raises several error types
        raise QuarantineError(
            "invalid_bed", ".bed size or mode does not match its .bim/.fam"
        ) from err
    return _long_dosages(samples, variants, dosage, "plink")


def _long_dosages(samples, variants: dict, dosage: np.ndarray, fmt: str) -> dict[str, pa.Table]:
    n_samples, n_variants = dosage.shape
    variant_index = np.tile(np.arange(n_variants), n_samples)
    values = dosage.reshape(-1).astype(float)
    take = {k: np.asarray(v, dtype=object)[variant_index] for k, v in variants.items()}
    genotypes = pa.table(
        {
            "sample_id": np.repeat(np.asarray(samples, dtype=object), n_variants),
            "variant_id": take["id"],
            "chrom": take["chrom"].astype(str),
            "pos": take["pos"].astype(np.int64),
            "dosage_allele": take["a1"].astype(str),
            "other_allele": take["a2"].astype(str),
            "dosage": pa.array(values, mask=np.isnan(values)),
            "source_format": np.full(len(values), fmt, dtype=object),
            "_source_locator": np.array(
                [
                    f"{c}:{p}:{i}"
                    for c, p, i in zip(take["chrom"], take["pos"], take["id"], strict=True)
                ],
                dtype=object,
            ),
        }
    )
    file_samples = pa.Table.from_pylist(
        [
            {"sample_id": s, "sample_index": i, "records": n_variants, "_source_locator": fmt}
            for i, s in enumerate(samples)
        ]
    )
    return {GERMLINE_GENOTYPES.fqn: genotypes, FILE_SAMPLES.fqn: file_samples}
