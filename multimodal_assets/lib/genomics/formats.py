"""Which genomics reader a landed file goes to, from its first bytes and its name."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from ..platform.ingest import QuarantineError
from .bgen import parse_bgen
from .bronze import GENOMIC_SAMPLES
from .manifest import parse_manifest
from .plink import PLINK_COMPANIONS, _check_text_table, parse_plink
from .vcf import _decompressed_head, parse_vcf


def parse_genomics_file(data: bytes, path: Path | None = None) -> dict[str, list[dict] | pa.Table]:
    """Rows for the bronze genomics tables from one landed file, recognised by content; the
    path is needed only for PLINK (companions share its prefix) and text companions."""
    suffix = path.suffix.lower() if path else ""
    if not data:
        raise QuarantineError("empty_file", "the file has no bytes")
    head = _decompressed_head(data)
    if head.startswith((b"TBI\x01", b"CSI\x01")) or (
        suffix == ".bgi" and data.startswith(b"SQLite format 3\x00")
    ):
        return {}  # an index delivered next to its data file: registered, nothing to load
    if head.startswith(b"sample_id,"):
        return {GENOMIC_SAMPLES.fqn: parse_manifest(data)}
    if head.startswith((b"##fileformat=VCF", b"BCF\x02")):
        return parse_vcf(data)
    if len(data) >= 20 and data[16:20] in (b"bgen", b"\x00\x00\x00\x00") and suffix == ".bgen":
        return parse_bgen(path)
    if suffix == ".bed":
        return parse_plink(data, path)
    if suffix in (*PLINK_COMPANIONS, ".sample"):
        _check_text_table(data, suffix)
        return {}  # read with the .bed/.bgen it belongs to
    raise QuarantineError(
        "unsupported_format",
        "not a VCF, BCF, PLINK, BGEN, index or sample manifest (checked by content)",
    )
