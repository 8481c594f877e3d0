"""Genomics modality: somatic panel VCF/BCF deliveries and their sample manifests into bronze
variant sites, long-form non-reference calls and sample tables; silver variants normalized and
annotated against the bundled panel and hotspots; gold per-patient driver flags and TMB.

VCF and BCF are read with cyvcf2 (htslib). One landed file gives rows for several bronze tables:
`parse_genomics_file` returns them keyed by table name. Sample IDs and genotypes are genetic data
(GDPR art. 9): they are tagged `sensitive`/`gdpr_art9`, and the manifest's MRN `phi`.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import tempfile
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa

from . import genomics_reference as reference
from .ingest import QuarantineError
from .tables import RESEARCH_KEY, Column, Table, provenance_columns

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

GENOMIC_SAMPLES = Table(
    layer="bronze",
    name="genomic_samples",
    modality="genomics",
    asset_key=("genomics", "genomic_samples"),
    primary_key=("sample_id",),
    restricted=True,
    append_once=True,
    description="Sequencing manifest rows: which sample belongs to which MRN (identified).",
    columns=(
        _SAMPLE_ID,
        Column("mrn", "VARCHAR", "Medical record number.", "phi", "hipaa", nullable=False),
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
        Column("file", "VARCHAR", "Delivered data file named by the manifest.", "none"),
        Column("received_at", "TIMESTAMP", "Arrival of the manifest (UTC).", "none"),
        *provenance_columns("Manifest line number."),
    ),
)

FILE_SAMPLES = Table(
    layer="bronze",
    name="file_samples",
    modality="genomics",
    asset_key=("genomics", "file_samples"),
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
    asset_key=("genomics", "variant_sites"),
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
    asset_key=("genomics", "variant_calls"),
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
    asset_key=("genomics", "germline_genotypes"),
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


def _decompressed_head(data: bytes) -> bytes:
    if data[:2] != b"\x1f\x8b":
        return data[:64]
    try:
        return zlib.decompressobj(31).decompress(data[:65536], 64)
    except zlib.error as err:
        raise QuarantineError("corrupt_gzip", "gzip stream cannot be decompressed") from err


PLINK_MAGIC = b"\x6c\x1b"
PLINK_COMPANIONS = (".bim", ".fam")


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


def parse_manifest(data: bytes) -> list[dict]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise QuarantineError("invalid_manifest", "manifest is not UTF-8") from err
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in MANIFEST_COLUMNS[:3] if c not in (reader.fieldnames or [])]
    if missing:
        raise QuarantineError("invalid_manifest", f"manifest lacks columns {missing}")
    rows = []
    for line, row in enumerate(reader, start=2):
        if not row["sample_id"] or not row["mrn"] or row["sample_type"] not in SAMPLE_TYPES:
            raise QuarantineError(
                "invalid_manifest", f"line {line}: sample_id, mrn or sample_type is invalid"
            )
        rows.append(
            {**{c: row.get(c) or None for c in MANIFEST_COLUMNS}, "_source_locator": f"line {line}"}
        )
    return rows


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


# ---- silver ---------------------------------------------------------------------------------

_RK_FROM_PATIENTS = (("silver.patients", "research_key"), ("bronze.genomic_samples", "mrn"))

SAMPLES = Table(
    layer="silver",
    name="genomic_samples",
    modality="genomics",
    asset_key=("genomics", "samples"),
    primary_key=("sample_id",),
    description="Sequencing samples linked to patients by the manifest's MRN (research key only).",
    columns=(
        _SAMPLE_ID,
        RESEARCH_KEY,
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
        Column(
            "in_file",
            "BOOLEAN",
            "An ingested genotype file carries this sample.",
            "none",
            nullable=False,
        ),
        *provenance_columns("Manifest line number."),
    ),
    lineage={
        "sample_id": (("bronze.genomic_samples", "sample_id"),),
        "research_key": _RK_FROM_PATIENTS,
        "sample_type": (("bronze.genomic_samples", "sample_type"),),
        "assay": (("bronze.genomic_samples", "assay"),),
        "collected_on": (("bronze.genomic_samples", "collected_on"),),
        "in_file": (("bronze.file_samples", "sample_id"),),
    },
)

SOMATIC_VARIANTS = Table(
    layer="silver",
    name="somatic_variants",
    modality="genomics",
    asset_key=("genomics", "somatic_variants"),
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
    lineage={
        "research_key": (("silver.genomic_samples", "research_key"),),
        "sample_id": (("bronze.variant_calls", "sample_id"),),
        **{
            c: (("bronze.variant_calls", c),)
            for c in (
                "chrom",
                "pos",
                "ref",
                "alt",
                "genotype",
                "ploidy",
                "alt_copies",
                "allele_fraction",
                "depth",
            )
        },
        "variant_type": (("bronze.variant_sites", "variant_type"),),
        "filter": (("bronze.variant_sites", "filter"),),
        "passed": (("bronze.variant_sites", "filter"),),
        "gene": (("bronze.variant_calls", "pos"),),
        "in_panel": (("bronze.variant_calls", "pos"),),
        "biomarker": (("bronze.variant_calls", "alt"),),
        "actionable": (("bronze.variant_calls", "alt"),),
        "collected_on": (("silver.genomic_samples", "collected_on"),),
    },
)


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

GERMLINE_DOSAGES = Table(
    layer="silver",
    name="germline_dosages",
    modality="genomics",
    asset_key=("genomics", "germline_dosages"),
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
    lineage={
        "research_key": (("silver.genomic_samples", "research_key"),),
        **{
            c: (("bronze.germline_genotypes", c),)
            for c in (
                "sample_id",
                "variant_id",
                "chrom",
                "pos",
                "dosage_allele",
                "other_allele",
                "dosage",
                "source_format",
            )
        },
        "score_variant_id": (("bronze.germline_genotypes", "pos"),),
        "effect_dosage": (
            ("bronze.germline_genotypes", "dosage"),
            ("bronze.germline_genotypes", "dosage_allele"),
        ),
    },
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

# ---- gold -----------------------------------------------------------------------------------

PRS_MIN_COVERAGE = 0.9
PRS_MIN_SAMPLE = 20  # patients with a score before its distribution is judged
_FLAGS = {
    "egfr_l858r": "biomarker = 'EGFR_L858R'",
    "egfr_exon19del": "biomarker = 'EGFR_exon19del'",
    "egfr_t790m": "biomarker = 'EGFR_T790M'",
    "kras_g12c": "biomarker = 'KRAS_G12C'",
    "kras_hotspot": "biomarker LIKE 'KRAS_%'",
    "braf_v600e": "biomarker = 'BRAF_V600E'",
    "alk_fusion": "variant_type = 'breakend' AND gene = 'ALK'",
    "tp53_mutated": "gene = 'TP53' AND variant_type <> 'breakend'",
    "stk11_mutated": "gene = 'STK11' AND variant_type <> 'breakend'",
    "actionable_biomarker": "actionable OR (variant_type = 'breakend' AND gene = 'ALK')",
}
TMB_TYPES = ("snv", "mnv", "insertion", "deletion", "complex")

FEATURES = Table(
    layer="gold",
    name="genomics_features",
    modality="genomics",
    asset_key=("genomics", "genomics_features"),
    primary_key=("research_key",),
    description="One row per patient: somatic drivers, actionable biomarkers and TMB from tumour "
    "samples collected by the index date; flags are NULL (unknown) without sequencing.",
    columns=(
        RESEARCH_KEY,
        Column(
            "has_genomics",
            "BOOLEAN",
            "A tumour panel collected by the index date.",
            "none",
            nullable=False,
        ),
        *[
            Column(name, "BOOLEAN", f"Somatic: {rule}.", "sensitive", GENETIC)
            for name, rule in _FLAGS.items()
        ],
        Column(
            "tmb_per_mb",
            "DOUBLE",
            "PASS small variants in the panel per Mb of panel.",
            "sensitive",
            GENETIC,
            min_value=0,
        ),
        Column(
            "somatic_variant_count",
            "INTEGER",
            "PASS somatic variants (all types).",
            "sensitive",
            GENETIC,
            min_value=0,
        ),
        Column(
            "has_germline",
            "BOOLEAN",
            f"Germline array covering ≥ {PRS_MIN_COVERAGE:.0%} of the score's SNPs.",
            "none",
            nullable=False,
        ),
        Column(
            "prs_z",
            "DOUBLE",
            "Polygenic score standardized with the reference weights' mean and SD "
            "(missing SNPs count at their expected dosage).",
            "sensitive",
            GENETIC,
        ),
        Column(
            "genomics_data_through",
            "DATE",
            "Latest tumour specimen date any feature used (the point-in-time guard; germline "
            "genotypes do not change over life and carry no date).",
            "phi",
            "hipaa",
        ),
        Column("_run_id", "VARCHAR", "Dagster run that wrote this row.", "none"),
    ),
    lineage={
        "research_key": (("gold.clinical_features", "research_key"),),
        "has_genomics": (
            ("silver.genomic_samples", "in_file"),
            ("silver.genomic_samples", "collected_on"),
            ("gold.clinical_features", "index_date"),
        ),
        **{
            name: (("silver.somatic_variants", "biomarker"), ("silver.somatic_variants", "gene"))
            for name in _FLAGS
        },
        "tmb_per_mb": (
            ("silver.somatic_variants", "variant_type"),
            ("silver.somatic_variants", "in_panel"),
        ),
        "somatic_variant_count": (("silver.somatic_variants", "passed"),),
        "has_germline": (("silver.germline_dosages", "effect_dosage"),),
        "prs_z": (
            ("silver.germline_dosages", "effect_dosage"),
            ("silver.germline_dosages", "score_variant_id"),
        ),
        "genomics_data_through": (("silver.genomic_samples", "collected_on"),),
    },
)

FEATURES_SQL = f"""
WITH sequenced AS (
    SELECT s.research_key, max(s.collected_on) AS data_through
    FROM silver.genomic_samples s JOIN gold.clinical_features c USING (research_key)
    WHERE s.sample_type = 'tumor' AND s.in_file AND s.collected_on <= c.index_date
    GROUP BY 1
),
variants AS (
    SELECT v.* FROM silver.somatic_variants v JOIN sequenced q USING (research_key)
    JOIN gold.clinical_features c USING (research_key)
    WHERE v.passed AND v.collected_on <= c.index_date
),
{_weights_sql()},
score_dosages AS (  -- one dosage per patient and score SNP, whatever the samples
    SELECT * FROM silver.germline_dosages WHERE effect_dosage IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY research_key, score_variant_id ORDER BY sample_id) = 1
),
score AS (
    SELECT d.research_key, count(*) AS snps,
           sum((d.effect_dosage - 2 * w.freq) * w.weight) AS centred
    FROM score_dosages d JOIN weights w ON w.variant_id = d.score_variant_id
    GROUP BY 1
),
per_patient AS (
    SELECT research_key,
           {", ".join(f"bool_or({rule}) AS {name}" for name, rule in _FLAGS.items())},
           count(*) FILTER (variant_type IN {TMB_TYPES} AND in_panel) AS small_in_panel,
           count(*) AS somatic_variant_count
    FROM variants GROUP BY 1
)
SELECT c.research_key, q.research_key IS NOT NULL AS has_genomics,
       {", ".join(f"CASE WHEN q.research_key IS NULL THEN NULL ELSE coalesce(p.{name}, FALSE) END AS {name}" for name in _FLAGS)},
       CASE WHEN q.research_key IS NULL THEN NULL
            ELSE round(coalesce(p.small_in_panel, 0) / {reference.panel_megabases()}, 3) END
           AS tmb_per_mb,
       CASE WHEN q.research_key IS NULL THEN NULL
            ELSE CAST(coalesce(p.somatic_variant_count, 0) AS INTEGER) END AS somatic_variant_count,
       coalesce(g.snps >= {PRS_MIN_COVERAGE * len(reference.prs_weights())}, FALSE)
           AS has_germline,
       CASE WHEN g.snps >= {PRS_MIN_COVERAGE * len(reference.prs_weights())}
            THEN round(g.centred / {reference.prs_reference_moments()[1]}, 4) END AS prs_z,
       q.data_through AS genomics_data_through,
       $run_id AS _run_id
FROM gold.clinical_features c
LEFT JOIN sequenced q USING (research_key)
LEFT JOIN per_patient p USING (research_key)
LEFT JOIN score g USING (research_key)
"""

TABLES = (*BRONZE_TABLES, SAMPLES, SOMATIC_VARIANTS, GERMLINE_DOSAGES, FEATURES)
