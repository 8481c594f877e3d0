"""VCF and BCF into bronze sites and calls, read with cyvcf2 (htslib)."""

from __future__ import annotations

import gzip
import os
import tempfile
import zlib
from functools import lru_cache

import numpy as np
import pyarrow as pa

from ..platform.ingest import QuarantineError
from .bronze import BGZF_EOF, FILE_SAMPLES, VARIANT_CALLS, VARIANT_SITES


def _decompressed_head(data: bytes) -> bytes:
    if data[:2] != b"\x1f\x8b":
        return data[:64]
    try:
        return zlib.decompressobj(31).decompress(data[:65536], 64)
    except zlib.error as err:
        raise QuarantineError("corrupt_gzip", "gzip stream cannot be decompressed") from err


@lru_cache(maxsize=4096)  # called for every ALT; the same few SNV pairs dominate
def variant_type(ref: str, alt: str | None) -> str:
    """Classify one ALT against REF the way the VCF specification defines the allele forms."""
    if alt is None or alt == ".":
        return "no_alt"
    if alt in ("<NON_REF>", "<*>"):
        return "reference_block"
    if alt == "*":
        return "spanning_deletion"
    if alt.startswith("<"):
        return "symbolic"
    if "[" in alt or "]" in alt or alt.startswith(".") or alt.endswith("."):
        return "breakend"
    if len(ref) == len(alt):
        return "snv" if len(ref) == 1 else "mnv"
    if len(alt) > len(ref) and alt.startswith(ref):
        return "insertion"
    if len(ref) > len(alt) and ref.startswith(alt):
        return "deletion"
    return "complex"


def _genotype_texts(alleles: np.ndarray, phased: np.ndarray) -> np.ndarray:
    """GT strings as written ('0/1', '1|2', '0/1/.'), computed once per distinct genotype;
    -1 is a missing allele and -2 pads a sample of lower ploidy."""
    if not len(alleles):
        return np.array([], dtype=object)
    # One integer per (alleles, phased); distinct ones found through a lookup table when the
    # codes are small (they are: a few alleles), which is far cheaper than sorting them.
    digits = alleles.astype(np.int64) + 2  # -2..max → 0..max+2
    base = int(digits.max()) + 1
    code = phased.astype(np.int64)
    for column in range(digits.shape[1]):
        code = code * base + digits[:, column]
    if int(code.max()) < 1 << 22:
        # Any row of a code will do as its example: the code determines the text.
        example = np.full(int(code.max()) + 1, -1)
        example[code] = np.arange(len(code))
        distinct = np.flatnonzero(example >= 0)
        slot = np.zeros(len(example), dtype=np.int64)
        slot[distinct] = np.arange(len(distinct))
        examples, inverse = example[distinct], slot[code]
    else:
        _, examples, inverse = np.unique(code, return_index=True, return_inverse=True)
    texts = np.array(
        [
            ("|" if phased[i] else "/").join(
                "." if a == -1 else str(a) for a in alleles[i] if a != -2
            )
            for i in examples
        ],
        dtype=object,
    )
    return texts[inverse.ravel()]


def _silence_htslib(cyvcf2) -> None:
    """Turn htslib's own logging off: its warnings quote header lines (sample names, which may be
    identifiers) and record fields to stderr, which lands in the run's logs. Quarantine reasons
    say what was wrong instead."""
    import ctypes

    ctypes.CDLL(cyvcf2.cyvcf2.__file__).hts_set_log_level(0)  # HTS_LOG_OFF


def parse_vcf(data: bytes, with_calls: bool = True) -> dict[str, pa.Table]:
    """Sites (one row per ALT) and non-reference calls of a VCF/BCF; quarantines what htslib
    cannot read and BGZF files cut short (no end-of-file block). `with_calls=False` reads the
    sites alone and never decodes a sample column (several times faster on wide files)."""
    import cyvcf2

    _silence_htslib(cyvcf2)
    if data[:4] == b"\x1f\x8b\x08\x04" and not data.endswith(BGZF_EOF):
        raise QuarantineError("truncated_bgzf", "BGZF file lacks its end-of-file block (cut short)")
    if data[:2] == b"\x1f\x8b" and data[:4] != b"\x1f\x8b\x08\x04":
        try:  # plain gzip (not BGZF): readable by streaming, and checked whole
            gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise QuarantineError("corrupt_gzip", "gzip stream is truncated or corrupt") from err
    fd, path = tempfile.mkstemp(suffix=".vcf")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        try:
            vcf = cyvcf2.VCF(
                path, gts012=False, strict_gt=False, lazy=True, samples=None if with_calls else []
            )
        except (OSError, Exception) as err:  # noqa: BLE001 - htslib raises generic errors
            raise QuarantineError("unreadable_vcf", "htslib could not read the header") from err
        samples = list(vcf.samples)
        if any(not s for s in samples):
            raise QuarantineError("invalid_header", "the #CHROM line declares an empty sample name")
        sites, calls, records = _read_records(vcf, samples, _RecordText(data))
        vcf.close()
    finally:
        os.unlink(path)
    fmt = "bcf" if _decompressed_head(data).startswith(b"BCF") else "vcf"
    return {
        VARIANT_SITES.fqn: sites,
        VARIANT_CALLS.fqn: calls,
        FILE_SAMPLES.fqn: pa.Table.from_pylist(
            [
                {"sample_id": s, "sample_index": i, "records": records, "_source_locator": fmt}
                for i, s in enumerate(samples)
            ]
        ),
    }


_SITE_COLUMNS = (
    "chrom",
    "pos",
    "ref",
    "alt",
    "alt_index",
    "variant_type",
    "variant_id",
    "qual",
    "filter",
    "end_pos",
    "_source_locator",
)
_CALL_COLUMNS = (
    "sample_id",
    "chrom",
    "pos",
    "ref",
    "alt",
    "alt_index",
    "genotype",
    "ploidy",
    "alt_copies",
    "phased",
    "depth",
    "alt_depth",
    "allele_fraction",
    "_source_locator",
)
# Records are turned into Arrow per chunk, so a file's peak memory is one chunk, not the file.
CHUNK_SITES = 50_000
CHUNK_GENOTYPES = 2_000_000  # records × samples decoded before their calls are extracted


def _read_records(vcf, samples: list[str], text: _RecordText) -> tuple[pa.Table, pa.Table, int]:
    """(sites, calls, records): sites row by row; the genotypes of a chunk of records are
    stacked and their calls extracted with whole-array operations, since per-record numpy work
    is what made genotype ingest slow."""
    site_tables, call_tables = [], []
    sites = {k: [] for k in _SITE_COLUMNS}
    pending = []  # records whose calls are due: (chrom, pos, ref, alts, GT, DP, AD, AF)
    records = 0
    # Fields the header does not declare are not asked for: each miss raises inside cyvcf2.
    declared = {h.info().get("ID") for h in vcf.header_iter() if h.type == "FORMAT"}
    wanted = [f if f in declared else None for f in ("DP", "AD", "AF")]

    def flush():
        nonlocal sites, pending
        site_tables.append(pa.Table.from_pydict(sites))
        sites = {k: [] for k in _SITE_COLUMNS}
        if pending:
            call_tables.append(_chunk_calls(pending, samples))
            pending = []

    for v in _records(vcf):
        records += 1
        # A blank or cut line parses as a record without alleles, and reading its REF crashes
        # cyvcf2 (SIGSEGV): check what is safe to read first.
        if not v.CHROM or v.end <= v.start:
            raise QuarantineError(
                "malformed_record", f"record {records} is empty or lacks REF (blank or cut line)"
            )
        # Fixed fields read once per record: each access is a call into cyvcf2. POS comes from
        # the 0-based start, which is 64-bit: cyvcf2's POS is 32-bit and wraps past 2^32 (long
        # plant and assembly contigs; htslib's own longrefs test file).
        chrom, pos, ref, variant_id = v.CHROM, v.start + 1, v.REF, v.ID
        alts = v.ALT or [None]
        qual = v.QUAL
        filt = v.FILTER or "PASS"
        end = v.INFO.get("END")
        types = [variant_type(ref, a) for a in alts]
        if end is None and any(t in _END_TYPES for t in types):
            end = text.info_end(v)
        if "reference_block" in types and set(types) != {"reference_block"}:
            # <NON_REF> beside real ALTs is gVCF's "any other allele", not a block.
            types = ["symbolic" if t == "reference_block" else t for t in types]
        for k, (alt, kind) in enumerate(zip(alts, types, strict=True), start=1):
            sites["chrom"].append(chrom)
            sites["pos"].append(pos)
            sites["ref"].append(ref)
            sites["alt"].append(alt)
            sites["alt_index"].append(k if alt is not None else None)
            sites["variant_type"].append(kind)
            sites["variant_id"].append(variant_id)
            sites["qual"].append(None if qual is None or qual != qual else float(qual))
            sites["filter"].append(filt)
            sites["end_pos"].append(int(end) if isinstance(end, (int, np.integer)) else None)
            sites["_source_locator"].append(f"{chrom}:{pos}:{ref}:{alt or '.'}")
        if samples and not all(t in ("reference_block", "no_alt") for t in types):
            # gVCF reference blocks are not exploded into calls
            try:
                genotypes = v.genotype.array()
            except Exception:  # noqa: BLE001 - no GT field: nothing to call
                genotypes = None
            if genotypes is not None:
                formats = (_format(v, f) if f else None for f in wanted)
                pending.append((chrom, pos, ref, alts, genotypes, *formats))
        if len(sites["chrom"]) >= CHUNK_SITES or len(pending) * len(samples) >= CHUNK_GENOTYPES:
            flush()
    flush()
    calls = (
        pa.concat_tables(call_tables, promote_options="default")
        if call_tables
        else pa.Table.from_pydict({k: [] for k in _CALL_COLUMNS})
    )
    return pa.concat_tables(site_tables, promote_options="default"), calls, records


# Records whose extent INFO/END gives. htslib keeps INFO integers in 32 bits and turns a larger
# END into a missing value (only a warning on stderr): such an END is read from the file's text.
_END_TYPES = {"symbolic", "reference_block", "breakend", "spanning_deletion"}


class _RecordText:
    """The file's own text, decompressed on first need, to read what htslib could not keep."""

    def __init__(self, data: bytes):
        self.data, self.text = data, None

    def info_end(self, v) -> int | None:
        """INFO/END of a record whose parsed END is missing: None when the record has none, the
        written value when htslib dropped it, a quarantine when it cannot be read at all."""
        if "END=" not in str(v).split("\t", 8)[7]:
            return None
        unreadable = QuarantineError(
            "info_end_unreadable",
            f"INFO/END of a {v.CHROM} record is not an integer htslib or its text can give",
        )
        if _decompressed_head(self.data).startswith(b"BCF"):
            raise unreadable  # BCF stores INFO integers in 32 bits: there is no text to read
        if self.text is None:
            self.text = gzip.decompress(self.data) if self.data[:2] == b"\x1f\x8b" else self.data
        start = f"\n{v.CHROM}\t{v.start + 1}\t".encode()
        at = self.text.find(start)
        line = self.text[at + 1 : self.text.find(b"\n", at + 1)] if at >= 0 else b""
        fields = line.split(b"\t")
        for item in fields[7].split(b";") if len(fields) > 7 else ():
            key, _, value = item.partition(b"=")
            if key == b"END" and value.isdigit():
                return int(value)
        raise unreadable


def _records(vcf):
    """The file's records; one htslib cannot parse quarantines the file (not a parser_error)."""
    iterator, number = iter(vcf), 0
    while True:
        number += 1
        try:
            yield next(iterator)
        except StopIteration:
            return
        except Exception as err:  # noqa: BLE001 - cyvcf2 raises a bare Exception here
            raise QuarantineError(
                "malformed_record", f"record {number} cannot be parsed by htslib"
            ) from err


def _format_matrix(pending: list, position: int, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """One numeric FORMAT field of a chunk as floats (records × samples × values, NaN where a
    value is missing: htslib's negative integer sentinels) and which records carry it."""
    arrays = [
        a if a is not None and a.ndim == 2 and a.dtype.kind in "iuf" and len(a) == samples else None
        for a in (p[position] for p in pending)
    ]
    present = np.array([a is not None for a in arrays])
    if present.all() and len({(a.shape, a.dtype) for a in arrays}) == 1:
        raw = np.stack(arrays)  # the usual case: one stack instead of a copy per record
        out = raw.astype(float)
        if raw.dtype.kind in "iu":
            out[raw < 0] = np.nan
    else:
        width = max((a.shape[1] for a in arrays if a is not None), default=1)
        out = np.full((len(pending), samples, width), np.nan)
        for i, a in enumerate(arrays):
            if a is not None:
                out[i, :, : a.shape[1]] = np.where(a < 0, np.nan, a) if a.dtype.kind in "iu" else a
    out[~np.isfinite(out)] = np.nan
    return out, present


def _pick(matrix: np.ndarray, record: np.ndarray, sample: np.ndarray, index: np.ndarray):
    """matrix[record, sample, index] per call, NaN where the index is beyond the values."""
    out = np.full(len(record), np.nan)
    inside = index < matrix.shape[2]
    out[inside] = matrix[record[inside], sample[inside], index[inside]]
    return out


def _chunk_calls(pending: list, samples: list[str]) -> pa.Table:
    """The long non-reference call table of a chunk of records: one row per (record, ALT,
    sample carrying that ALT), in that order."""
    n_samples = len(samples)
    width = max(p[4].shape[1] for p in pending)  # alleles + the phase column
    stacked = np.full((len(pending), n_samples, width), -2, dtype=np.int32)  # -2: no allele
    for i, p in enumerate(pending):
        stacked[i, :, : p[4].shape[1] - 1] = p[4][:, :-1]
        stacked[i, :, -1] = p[4][:, -1]
    alleles, phase = stacked[:, :, :-1], stacked[:, :, -1].astype(bool)
    alt_counts = np.array([len(p[3]) for p in pending])
    if (alleles > alt_counts[:, None, None]).any():
        # A genotype that names an allele the record does not have is malformed: dropping it
        # would lose a call silently, so the file is quarantined.
        raise QuarantineError(
            "genotype_allele_out_of_range",
            "a GT allele index is beyond the record's ALT alleles",
        )
    # (record, ALT, sample) for each declared ALT a sample carries: one pass per ALT index,
    # usually just one.
    found = []
    for k in range(1, int(alt_counts.max()) + 1):
        hit = (alleles == k).any(axis=2) & (alt_counts >= k)[:, None]
        record, sample = np.nonzero(hit)  # record-major, then sample
        found.append((record, np.full(len(record), k), sample))
    record, allele, sample = (np.concatenate(parts) for parts in zip(*found, strict=True))
    if len(found) > 1:  # multi-allelic records: put each record's ALTs together again
        order = np.argsort(record * (len(found) + 1) + allele, kind="stable")
        record, allele, sample = record[order], allele[order], sample[order]
    called = alleles[record, sample]
    ploidy = (called != -2).sum(axis=1)
    # A haploid call has no separator to be phased by, and htslib leaves its phase bit
    # undefined (it varied from run to run on a real file).
    phased = phase[record, sample] & (ploidy > 1)
    # Strings per record or per ALT, expanded by index in Arrow: not one Python object per call.
    alt_slot = np.concatenate([[0], np.cumsum(alt_counts)])[record] + allele - 1
    depth, _ = _format_matrix(pending, 5, n_samples)
    ad, has_ad = _format_matrix(pending, 6, n_samples)
    af, _ = _format_matrix(pending, 7, n_samples)
    alt_depth = _pick(ad, record, sample, allele)
    # AF absent or missing: derived from the allelic depths where the record has them.
    total = np.nansum(ad[record, sample], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        derived = np.where(total > 0, alt_depth / total, np.nan)
    fraction = _pick(af, record, sample, allele - 1)
    fraction = np.where(np.isnan(fraction) & has_ad[record], derived, fraction)

    def strings(values: list, index: np.ndarray) -> pa.Array:
        return pa.DictionaryArray.from_arrays(
            pa.array(index, type=pa.int32()), pa.array(values, type=pa.string())
        ).dictionary_decode()

    def numbers(values: np.ndarray, kind) -> pa.Array:
        return pa.array(values, mask=np.isnan(values)).cast(kind)

    return pa.table(
        {
            "sample_id": strings(samples, sample),
            "chrom": strings([p[0] for p in pending], record),
            "pos": pa.array(np.array([p[1] for p in pending], dtype=np.int64)[record]),
            "ref": strings([p[2] for p in pending], record),
            "alt": strings([a for p in pending for a in p[3]], alt_slot),
            "alt_index": pa.array(allele.astype(np.int32)),
            "genotype": pa.array(_genotype_texts(called, phased), pa.string()),
            "ploidy": pa.array(ploidy.astype(np.int32)),
            "alt_copies": pa.array((called == allele[:, None]).sum(axis=1).astype(np.int32)),
            "phased": pa.array(phased),
            "depth": numbers(_pick(depth, record, sample, np.zeros_like(record)), pa.int32()),
            "alt_depth": numbers(alt_depth, pa.int32()),
            "allele_fraction": numbers(fraction, pa.float64()),
            "_source_locator": strings(
                [f"{p[0]}:{p[1]}:{p[2]}:{a}" for p in pending for a in p[3]], alt_slot
            ),
        }
    )


def _format(v, field: str):
    try:
        return v.format(field)
    except Exception:  # noqa: BLE001 - absent or string-typed FORMAT field
        return None
