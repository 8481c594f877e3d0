"""Genomics ingest of a population VCF against the decompression floor and bcftools query.

Usage: python benchmarks/genomics_ingest.py [--samples 100] [--records 200000] [--repeat 3]
Writes a bgzipped VCF (random diploid genotypes, allele frequencies ~ Beta(0.4, 3)), then times,
in the same run: the BGZF decompression floor (`gzip -dc` to /dev/null: zlib, single thread;
no `bgzip` binary is installed here), `bcftools query` of every genotype (htslib's bcftools,
bundled with pysam, output captured in memory), and our ingest of (a) the sites table alone and
(b) sites plus the long non-reference genotype table, each including the DuckDB insert. Prints
seconds (the fastest of --repeat runs each), ratios to the floor, and peak memory.
"""

import argparse
import functools
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from measure import best_of, isolated, peak_mib


def _write_vcf(path: Path, samples: int, records: int, seed: int, keep=slice(None)) -> None:
    """`records` random sites (the same for a seed); `keep` selects which of them to write."""
    import pysam

    rng = np.random.default_rng(seed)
    header = [
        "##fileformat=VCFv4.2",
        "##contig=<ID=chr20,length=64444167>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t"
        + "\t".join(f"S{i:04d}" for i in range(samples)),
    ]
    text = Path(str(path).removesuffix(".gz"))
    bases = np.array(list("ACGT"))
    gts = np.array(["0/0", "0/1", "1/1"])
    with text.open("w") as out:
        out.write("\n".join(header) + "\n")
        positions = np.sort(rng.choice(60_000_000, records, replace=False)) + 1
        kept = np.zeros(records, dtype=bool)
        kept[keep] = True
        for start in range(0, records, 10_000):
            block = positions[start : start + 10_000]
            written = kept[start : start + 10_000]
            freq = rng.beta(0.4, 3, len(block))
            dosage = rng.binomial(2, freq[:, None], (len(block), samples))
            depth = rng.integers(8, 60, (len(block), samples))
            refs = rng.integers(0, 4, len(block))
            alts = (refs + rng.integers(1, 4, len(block))) % 4
            lines = []
            for i, pos in enumerate(block):
                if not written[i]:
                    continue
                fields = "\t".join(
                    f"{g}:{d}" for g, d in zip(gts[dosage[i]], depth[i], strict=True)
                )
                lines.append(
                    f"chr20\t{pos}\t.\t{bases[refs[i]]}\t{bases[alts[i]]}\t50\tPASS\t.\tGT:DP\t{fields}"
                )
            if lines:  # a blank line is a malformed record
                out.write("\n".join(lines) + "\n")
    pysam.tabix_compress(str(text), str(path), force=True)
    text.unlink()


def _gunzip_seconds(path: str) -> float:
    start = time.perf_counter()
    subprocess.run(["gzip", "-dc", path], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def _bcftools_query_seconds(path: str) -> float:
    import pysam.bcftools

    start = time.perf_counter()
    pysam.bcftools.query("-f", "%CHROM\t%POS\t%REF\t%ALT[\t%GT]\n", path)
    return time.perf_counter() - start


def _ingest(landing: Path, with_calls: bool, workers: int) -> tuple[float, dict, float]:
    """Our bronze ingest (parse, provenance, registry, DuckDB append) of every file under
    `landing`/genomics into a fresh lakehouse (Delta tables on disk, as in the pipeline):
    (seconds, rows per table, peak MiB). Run in its own process so each figure has its own
    peak memory."""
    from multimodal_assets.lib import genomics
    from multimodal_assets.lib.platform import ingest, warehouse

    files = [f.hashed() for f in ingest.scan_landing(landing, "genomics")]  # hashing not timed
    root = Path(tempfile.mkdtemp(prefix="mm-genomics-db-")) / "lakehouse"
    opened = warehouse.connect(root)
    conn = opened.__enter__()
    start = time.perf_counter()
    ingest.ingest(
        conn,
        "genomics",
        files,
        functools.partial(genomics.parse_vcf, with_calls=with_calls),
        genomics.BRONZE_TABLES,
        "benchmark",
        workers=workers,
    )
    seconds = time.perf_counter() - start
    rows = {t.name: warehouse.row_count(conn, t.fqn) for t in genomics.BRONZE_TABLES}
    opened.__exit__(None, None, None)
    return seconds, rows, peak_mib()


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per figure; the fastest is kept"
    )
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="mm-genomics-bench-"))
    vcf = folder / "landing" / "genomics" / "population.vcf.gz"
    vcf.parent.mkdir(parents=True)
    seconds, _ = _timed(lambda: isolated(_write_vcf, vcf, args.samples, args.records, 1))
    size = vcf.stat().st_size
    print(
        f"wrote {args.records:,} records x {args.samples} samples ({size / 1e6:.1f} MB) "
        f"in {seconds:.1f} s"
    )

    repeat = args.repeat
    floor = best_of(repeat, _gunzip_seconds, str(vcf))
    peer = best_of(repeat, _bcftools_query_seconds, str(vcf))  # timed inside, without start-up
    sites, sites_rows, sites_peak = best_of(repeat, _ingest, folder / "landing", False, 1)
    both, both_rows, both_peak = best_of(repeat, _ingest, folder / "landing", True, 1)
    # The same records delivered as two files (one per half of the chromosome): what the
    # pipeline's parallel parsing (2 processes, staged Parquet, one writer) does with them.
    shards = folder / "sharded"
    for i, half in enumerate((slice(0, args.records // 2), slice(args.records // 2, None))):
        path = shards / "genomics" / f"part-{i}.vcf.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        isolated(_write_vcf, path, args.samples, args.records, 1, half)
    serial, _, _ = best_of(repeat, _ingest, shards, True, 1)
    parallel, parallel_rows, _ = best_of(repeat, _ingest, shards, True, 2)
    print(f"(each figure the fastest of {repeat} runs)")
    print(f"BGZF floor (gzip -dc > /dev/null)     {floor:7.2f} s   1.0x")
    print(f"bcftools query (all genotypes)        {peer:7.2f} s  {peer / floor:5.1f}x")
    print(
        f"ours: sites table                     {sites:7.2f} s  {sites / floor:5.1f}x  "
        f"{sites_rows['variant_sites']:,} rows"
    )
    print(
        f"ours: sites + long genotype table     {both:7.2f} s  {both / floor:5.1f}x  "
        f"{both_rows['variant_calls']:,} non-reference calls"
    )
    print(f"ours: same records as 2 files, 1 process   {serial:7.2f} s  {serial / floor:5.1f}x")
    print(
        f"ours: same records as 2 files, 2 processes {parallel:7.2f} s  {parallel / floor:5.1f}x  "
        f"({serial / parallel:.2f}x faster; {parallel_rows['variant_calls']:,} calls)"
    )
    print(f"peak memory: sites {sites_peak:.0f} MiB, sites + genotypes {both_peak:.0f} MiB")


if __name__ == "__main__":
    main()
