"""Genomics ingest of a population VCF against the decompression floor and bcftools query.

Usage: python benchmarks/genomics_ingest.py [--samples 100] [--records 200000]
Writes a bgzipped VCF (random diploid genotypes, allele frequencies ~ Beta(0.4, 3)), then times,
in the same run: the BGZF decompression floor (`gzip -dc` to /dev/null: zlib, single thread;
no `bgzip` binary is installed here), `bcftools query` of every genotype (htslib's bcftools,
bundled with pysam, output captured in memory), and our ingest of (a) the sites table alone and
(b) sites plus the long non-reference genotype table, each including the DuckDB insert. Prints
seconds, ratios to the floor, and peak memory.
"""

import argparse
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


def _write_vcf(path: Path, samples: int, records: int, seed: int) -> None:
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
        for start in range(0, records, 10_000):
            block = positions[start : start + 10_000]
            freq = rng.beta(0.4, 3, len(block))
            dosage = rng.binomial(2, freq[:, None], (len(block), samples))
            depth = rng.integers(8, 60, (len(block), samples))
            refs = rng.integers(0, 4, len(block))
            alts = (refs + rng.integers(1, 4, len(block))) % 4
            lines = []
            for i, pos in enumerate(block):
                fields = "\t".join(
                    f"{g}:{d}" for g, d in zip(gts[dosage[i]], depth[i], strict=True)
                )
                lines.append(
                    f"chr20\t{pos}\t.\t{bases[refs[i]]}\t{bases[alts[i]]}\t50\tPASS\t.\tGT:DP\t{fields}"
                )
            out.write("\n".join(lines) + "\n")
    pysam.tabix_compress(str(text), str(path), force=True)
    text.unlink()


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args()

    import duckdb
    import pysam.bcftools

    from multimodal_assets.lib import genomics, ingest, warehouse

    folder = Path(tempfile.mkdtemp(prefix="mm-genomics-bench-"))
    vcf = folder / "landing" / "genomics" / "population.vcf.gz"
    vcf.parent.mkdir(parents=True)
    seconds, _ = _timed(lambda: _write_vcf(vcf, args.samples, args.records, 1))
    size = vcf.stat().st_size
    print(
        f"wrote {args.records:,} records x {args.samples} samples ({size / 1e6:.1f} MB) "
        f"in {seconds:.1f} s"
    )

    floor, _ = _timed(
        lambda: subprocess.run(["gzip", "-dc", str(vcf)], stdout=subprocess.DEVNULL, check=True)
    )
    peer, out = _timed(
        lambda: pysam.bcftools.query("-f", "%CHROM\t%POS\t%REF\t%ALT[\t%GT]\n", str(vcf))
    )
    del out
    (landed,) = ingest.scan_landing(folder / "landing", "genomics")  # hashing not timed

    def ingest_into_duckdb(with_calls: bool) -> dict:
        """Our bronze ingest (parse, provenance, registry, DuckDB append) into a fresh database."""
        conn = duckdb.connect()
        for schema in ("bronze", "audit"):
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        ingest.ingest(
            conn,
            "genomics",
            [landed],
            lambda data: genomics.parse_vcf(data, with_calls=with_calls),
            genomics.BRONZE_TABLES,
            "benchmark",
        )
        rows = {t.name: warehouse.row_count(conn, t.fqn) for t in genomics.BRONZE_TABLES}
        conn.close()
        return rows

    sites, sites_rows = _timed(lambda: ingest_into_duckdb(False))
    both, both_rows = _timed(lambda: ingest_into_duckdb(True))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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
    print(f"peak memory {peak:.0f} MiB")


if __name__ == "__main__":
    main()
