"""BGEN files (with an Oxford .sample when the file carries no sample ids) into dosages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from ..platform.ingest import QuarantineError
from .plink import _check_text_table, _long_dosages


def _bgen_has_sample_ids(path: Path) -> bool:
    """Bit 31 of the BGEN header flags (the last 4 bytes of the header block)."""
    with path.open("rb") as handle:
        head = handle.read(8)
        header_length = int.from_bytes(head[4:8], "little")
        handle.seek(header_length)
        return bool(int.from_bytes(handle.read(4), "little") >> 31)


def _oxford_sample_ids(path: Path) -> list[str]:
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [row[0] for row in rows[2:]]  # two header rows: names, then column types


def parse_bgen(path: Path) -> dict[str, pa.Table]:
    """A BGEN (v1.2, layouts and compressions the `bgen` reader supports) into expected dosages
    of each biallelic variant's second allele; other variants are counted, not loaded. Without
    embedded sample IDs the Oxford .sample next to the file names the samples, else their
    position does (and no manifest will match them)."""
    from bgen import BgenReader

    try:
        reader = BgenReader(str(path), delay_parsing=True)
        samples = [str(s) for s in reader.samples]
        companion = path.with_suffix(".sample")
        if not _bgen_has_sample_ids(path) and companion.exists():
            _check_text_table(companion.read_bytes(), ".sample")
            samples = _oxford_sample_ids(companion)
        ids, chrom, pos, a1, a2, columns = [], [], [], [], [], []
        for variant in reader:
            if len(variant.alleles) != 2:
                continue
            try:
                dosage = variant.alt_dosage
            except Exception:  # noqa: BLE001 - layouts the reader gives no dosage for
                continue
            ids.append(variant.rsid or variant.varid)
            chrom.append(variant.chrom)
            pos.append(variant.pos)
            a1.append(variant.alleles[1])
            a2.append(variant.alleles[0])
            columns.append(np.asarray(dosage, dtype="float32"))
    except QuarantineError:
        raise
    except Exception as err:  # noqa: BLE001 - the reader raises several error types
        raise QuarantineError("invalid_bgen", "the BGEN reader could not read the file") from err
    width = len(columns[0]) if columns else len(samples)
    if len(samples) != width:
        raise QuarantineError("invalid_sample", ".sample lists a different number of samples")
    dosage = np.column_stack(columns) if columns else np.zeros((len(samples), 0), "float32")
    return _long_dosages(samples, dict(id=ids, chrom=chrom, pos=pos, a1=a1, a2=a2), dosage, "bgen")
