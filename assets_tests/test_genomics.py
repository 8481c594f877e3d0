"""Genomics: VCF/BCF parsing faithful to the file, real files ingested or quarantined with a
reason, reference data consistent, and gold drivers and TMB equal to the generator's truth."""

from pathlib import Path

import cyvcf2
import pandas as pd
import pytest

from assets_tests.conftest import pipeline_resources, research_key
from multimodal_assets.lib import genomics
from multimodal_assets.lib.genomics import reference
from multimodal_assets.lib.governance import catalog
from multimodal_assets.lib.platform.ingest import QuarantineError

FIXTURES = Path(__file__).parent / "fixtures" / "vcf"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "vcf"
EXPECTED_FAILURES = {"empty.vcf": "empty_file", "test-invalid-header.vcf": "unreadable_vcf"}


def _parse(name: str) -> dict:
    return genomics.parse_genomics_file((FIXTURES / name).read_bytes())


def _calls(name: str) -> pd.DataFrame:
    return _parse(name)[genomics.VARIANT_CALLS.fqn].to_pandas()


def test_every_hotspot_lies_in_its_panel_gene_and_contigs_are_reconciled():
    spans = {r.gene: r for r in reference.panel()}
    for h in reference.hotspots():
        r = spans[h.gene]
        assert r.chrom == h.chrom and r.start < h.pos <= r.end, h.biomarker
        assert h.pos <= reference.GRCH38_LENGTHS[h.chrom]
    assert reference.panel_megabases() == pytest.approx(1.347315)
    import duckdb

    contigs = duckdb.sql(
        f"SELECT DISTINCT {genomics.canonical_contig_sql('c')} FROM "
        "(VALUES ('7'), ('chr7'), ('CHR7')) t(c)"
    ).fetchall()
    assert contigs == [("chr7",)]
    mito = duckdb.sql(f"SELECT {genomics.canonical_contig_sql(repr('MT'))}").fetchall()
    assert mito == [("chrM",)]


@pytest.mark.parametrize(
    ("ref", "alt", "kind"),
    [
        ("A", "G", "snv"),
        ("AC", "GT", "mnv"),
        ("A", "AT", "insertion"),
        ("AGGAATTAAGAGAAGC", "A", "deletion"),
        ("AC", "G", "complex"),
        ("N", "<DEL>", "symbolic"),
        ("G", "G]chr2:42299000]", "breakend"),
        ("A", "*", "spanning_deletion"),
        ("A", "<NON_REF>", "reference_block"),
        ("A", None, "no_alt"),
    ],
)
def test_alleles_are_typed(ref, alt, kind):
    assert genomics.variant_type(ref, alt) == kind


def test_genotypes_are_kept_as_written_whatever_their_ploidy():
    calls = _calls("test-format-string.vcf")
    triploid = calls[calls.genotype == "0/1/."].iloc[0]
    assert (triploid.ploidy, triploid.alt_copies, triploid.phased) == (3, 1, False)
    # 1/2 at a tri-allelic site: one row per ALT carried, never a row for the REF.
    multi = calls[(calls.pos == 55086957) & (calls.sample_id == "Tumor")]
    assert sorted(multi.alt) == ["A", "C"] and set(multi.genotype) == {"1/2"}
    assert set(calls.sample_id[calls.pos == 55086958]) == {"Tumor"}  # haploid '0' is not a call
    tetraploid = _calls("norm.phased-join.vcf")
    assert set(tetraploid.ploidy) == {4} and tetraploid.phased.all()


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/realdata/vcf is not on this machine")
def test_haploid_calls_are_never_phased():
    # htslib leaves a haploid call's phase bit undefined: it varied between runs on this file.
    data = (SHARED / "cyvcf2" / "test-haploidX.vcf").read_bytes()
    for _ in range(3):
        calls = genomics.parse_vcf(data)[genomics.VARIANT_CALLS.fqn].to_pandas()
        assert len(calls) > 1000 and set(calls.ploidy) == {1}
        assert not calls.phased.any()


@pytest.mark.parametrize(
    "name", ["test-format-string.vcf", "norm.phased-join.vcf", "NA12878_21_10002403.g.vcf"]
)
def test_parsing_in_chunks_gives_the_same_tables_as_one_chunk(name, monkeypatch):
    whole = {k: t.to_pylist() for k, t in _parse(name).items()}
    # A chunk per record: mixed ploidy, multi-allelic sites and absent FORMAT fields cross
    # chunk boundaries.
    monkeypatch.setattr(genomics.vcf, "CHUNK_SITES", 1)
    monkeypatch.setattr(genomics.vcf, "CHUNK_GENOTYPES", 1)
    chunked = {k: t.to_pylist() for k, t in _parse(name).items()}
    assert chunked == whole
    assert whole[genomics.VARIANT_SITES.fqn]


def test_gvcf_blocks_and_symbolic_alleles_are_sites_not_calls():
    parsed = _parse("NA12878_21_10002403.g.vcf")
    sites = parsed[genomics.VARIANT_SITES.fqn].to_pandas()
    assert (sites.variant_type == "reference_block").sum() > 0
    blocks = sites[sites.variant_type == "reference_block"]
    calls = parsed[genomics.VARIANT_CALLS.fqn].to_pandas()
    assert not set(zip(blocks.pos, blocks.alt, strict=True)) & set(
        zip(calls.pos, calls.alt, strict=True)
    )
    assert blocks.end_pos.notna().all()
    symbolic = _parse("merge.symbolic.1.b.vcf")[genomics.VARIANT_SITES.fqn].to_pandas()
    assert list(symbolic.variant_type) == ["symbolic"]
    breakends = _parse("norm.breakend.1.vcf")[genomics.VARIANT_SITES.fqn].to_pandas()
    assert set(breakends.variant_type) == {"breakend"}


def _record_count(parsed: dict) -> int:
    sites = parsed[genomics.VARIANT_SITES.fqn].to_pandas()
    return int(((sites.alt_index == 1) | sites.alt_index.isna()).sum())


def _check_real_file(path: Path) -> str:
    """Parse one real file; its record count must equal cyvcf2's, else it is quarantined."""
    try:
        parsed = genomics.parse_genomics_file(path.read_bytes())
    except QuarantineError as err:
        assert EXPECTED_FAILURES.get(path.name) == err.code, (path.name, err.code)
        return "quarantined"
    assert path.name not in EXPECTED_FAILURES, path.name
    if not parsed:
        assert path.suffix in (".tbi", ".csi"), path.name
        return "index"
    assert _record_count(parsed) == sum(1 for _ in cyvcf2.VCF(str(path))), path.name
    return "ingested"


def test_bundled_real_files_ingest_or_quarantine_with_a_reason():
    outcomes = {p.name: _check_real_file(p) for p in FIXTURES.iterdir() if p.suffix != ".md"}
    assert outcomes["empty.vcf"] == outcomes["test-invalid-header.vcf"] == "quarantined"
    assert outcomes["multi-contig.bcf"] == outcomes["1row_not_bgz.vcf.gz"] == "ingested"


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/realdata/vcf is not on this machine")
def test_every_shared_real_file_ingests_or_is_quarantined():
    outcomes = [_check_real_file(p) for p in sorted(SHARED.rglob("*")) if p.is_file()]
    assert outcomes.count("quarantined") == len(EXPECTED_FAILURES)
    assert outcomes.count("ingested") >= 30


def test_damaged_and_foreign_files_are_quarantined_with_specific_reasons():
    good = (FIXTURES / "1row_not_bgz.vcf.gz").read_bytes()
    with pytest.raises(QuarantineError) as cut:
        genomics.parse_genomics_file(good[: len(good) // 2])
    assert cut.value.code == "corrupt_gzip"
    with pytest.raises(QuarantineError) as foreign:
        genomics.parse_genomics_file(b"%PDF-1.4 not a genome")
    assert foreign.value.code == "unsupported_format"
    with pytest.raises(QuarantineError) as manifest:
        genomics.parse_genomics_file(b"sample_id,mrn,sample_type\nTS1,,tumor\n")
    assert manifest.value.code == "invalid_manifest" and "TS1" not in manifest.value.message


def test_genetic_columns_are_tagged_as_special_category_data():
    for table in (genomics.VARIANT_CALLS, genomics.SOMATIC_VARIANTS):
        for name in ("sample_id", "genotype", "alt"):
            column = table.column(name)
            assert (column.classification, column.regulatory) == ("sensitive", "gdpr_art9")
    assert genomics.GENOMIC_SAMPLES.column("mrn").classification == "phi"
    assert catalog.PATIENT_FEATURES.column("has_genomics").nullable is False


def test_gold_drivers_and_tmb_equal_the_generators_truth(pipeline):
    truth = pipeline.truth.assign(research_key=pipeline.truth.mrn.map(research_key))
    variants = pd.read_parquet(pipeline.data_dir / "truth" / "genomics_variants.parquet")
    deliveries = pd.read_parquet(pipeline.data_dir / "truth" / "genomics_deliveries.parquet")
    with pipeline.connect() as conn:
        gold = conn.sql("FROM gold.genomics_features").df()
    merged = gold.merge(truth, on="research_key", suffixes=("", "_truth"))
    delivered = set(variants.mrn)  # the truncated delivery never reaches gold
    expected = merged.mrn.isin(delivered)
    assert (merged.has_genomics == expected).all()
    assert (deliveries.kind == "truncated").sum() == 1
    seq = merged[merged.has_genomics]
    assert len(seq) > 10
    assert (seq.egfr_l858r.astype(bool) == seq.egfr_variant.eq("L858R")).all()
    assert (seq.egfr_exon19del.astype(bool) == seq.egfr_variant.eq("exon19del")).all()
    assert (seq.kras_g12c.astype(bool) == seq.kras_variant.eq("G12C")).all()
    assert (seq.braf_v600e.astype(bool) == seq.braf_variant.notna()).all()
    assert (seq.alk_fusion.astype(bool) == seq.driver.eq("ALK")).all()
    assert (seq.tp53_mutated.astype(bool) == seq.tp53.astype(bool)).all()
    assert (seq.stk11_mutated.astype(bool) == seq.stk11.astype(bool)).all()
    small = variants[(variants.kind != "fusion") & variants.passed].groupby("mrn").size()
    observed = (seq.mrn.map(small).fillna(0) / reference.panel_megabases()).round(3)
    assert (seq.tmb_per_mb - observed).abs().max() < 1e-9
    unsequenced = merged[~merged.has_genomics]
    assert unsequenced.tmb_per_mb.isna().all() and unsequenced.egfr_l858r.isna().all()


def test_genomics_landing_registers_indexes_and_quarantines_damage(pipeline):
    with pipeline.connect() as conn:
        files = conn.sql(
            "SELECT path, status, error_code, records FROM bronze.files WHERE modality = 'genomics'"
        ).df()
        unmapped = conn.sql(
            "SELECT count(*) AS n FROM bronze.file_samples "
            "WHERE sample_id NOT IN (SELECT sample_id FROM silver.genomic_samples)"
        ).df()
    by_name = files.set_index(files.path.str.rsplit("/", n=1).str[-1])
    assert (files[files.path.str.endswith(".tbi")].records == 0).all()
    assert set(files.error_code.dropna()) == {
        "truncated_bgzf",  # the generator's cut-short VCF
        "invalid_bed",  # the generator's damaged PLINK .bed
        "empty_file",  # real fixtures
        "unreadable_vcf",
    }
    assert (files.status == "duplicate").sum() == 1
    assert by_name.loc["multi-contig.bcf", "status"] == "ingested"
    # The stray delivery and the real files' samples have no manifest: the check says so.
    assert unmapped.n[0] > 0
    check = pipeline.check("file_samples_mapped_to_patients")
    assert not check.passed and check.metadata["offending_rows"].value == unmapped.n[0]
    for name in ("ref_alt_alphabet", "position_within_contig", "genotype_ploidy_consistent"):
        assert pipeline.check(name).passed, name


GERMLINE = Path(__file__).parent / "fixtures" / "germline"
SHARED_ARRAYS = SHARED.parent
GERMLINE_FAILURES = {  # folder/name → reason (the MANIFEST's expected failures)
    "glow/example.16bits.oxford.corrupted.sample": "invalid_sample",
    "glow-malformed/test.bed": "missing_companion",  # its .bim/.fam live in another folder
    "bed-reader/small_too_short.bed": "invalid_bed",
    "bed-reader/smallmodebad.bed": "missing_companion",
    "bed-reader/badfile.bed": "invalid_bed",
    "bed-reader/empty.bed": "empty_file",
    "bed-reader/small.bim_bad_positions.bim": "invalid_bim",
}


def _check_array_file(path: Path) -> str:
    """Parse one PLINK/BGEN file (with its companions); dosage rows = samples × variants."""
    from bed_reader import open_bed

    try:
        parsed = genomics.parse_genomics_file(path.read_bytes(), path)
    except QuarantineError as err:
        assert GERMLINE_FAILURES.get(f"{path.parent.name}/{path.name}") == err.code, path
        return "quarantined"
    if not parsed:
        return "companion"
    genotypes = parsed.get(genomics.GERMLINE_GENOTYPES.fqn)
    if genotypes is not None and path.suffix == ".bed":
        with open_bed(path) as bed:
            assert genotypes.num_rows == bed.iid_count * bed.sid_count, path
    return "ingested"


def test_bundled_plink_and_bgen_files_ingest_or_quarantine(tmp_path):
    import shutil

    for f in GERMLINE.iterdir():  # the source projects' folder names, as in ../shared
        folder = tmp_path / ("glow" if f.suffix == ".bgen" else "bed-reader")
        folder.mkdir(exist_ok=True)
        shutil.copy(f, folder / f.name)
    outcomes = {p.name: _check_array_file(p) for p in tmp_path.rglob("*.*") if p.suffix != ".md"}
    assert outcomes["small.bed"] == outcomes["complex.16bits.bgen"] == "ingested"
    assert outcomes["badfile.bed"] == outcomes["small.bim_bad_positions.bim"] == "quarantined"
    small_bed = tmp_path / "bed-reader" / "small.bed"
    small = genomics.parse_genomics_file(small_bed.read_bytes(), small_bed)
    dosages = small[genomics.GERMLINE_GENOTYPES.fqn].to_pandas()
    assert dosages.dosage.isna().any() and set(dosages.dosage.dropna()) <= {0.0, 1.0, 2.0}


@pytest.mark.skipif(not SHARED_ARRAYS.exists(), reason="../shared/realdata is not on this machine")
def test_every_shared_plink_and_bgen_file_ingests_or_is_quarantined(tmp_path):
    import shutil

    outcomes = []
    for folder in ("plink", "bgen"):
        shutil.copytree(SHARED_ARRAYS / folder, tmp_path / folder)  # readers may write beside
        outcomes += [
            _check_array_file(p) for p in sorted((tmp_path / folder).rglob("*")) if p.is_file()
        ]
    assert outcomes.count("quarantined") == len(GERMLINE_FAILURES)
    assert outcomes.count("ingested") >= 12


@pytest.mark.skipif(not SHARED_ARRAYS.exists(), reason="../shared/realdata is not on this machine")
def test_two_bgen_readers_agree_on_dosages(tmp_path):
    import shutil

    import cbgen
    import numpy as np

    bgen = tmp_path / "example.16bits.bgen"
    shutil.copy(SHARED_ARRAYS / "bgen" / "glow" / "example.16bits.bgen", bgen)
    ours = genomics.parse_bgen(bgen)[genomics.GERMLINE_GENOTYPES.fqn].to_pandas()
    with cbgen.bgen_file(str(bgen)) as reader:
        reader.create_metafile(str(tmp_path / "meta"), verbose=False)
        meta = cbgen.bgen_metafile(str(tmp_path / "meta"))
        theirs = []
        for part in range(meta.npartitions):
            for offset in meta.read_partition(part).variants.offset:
                p = reader.read_genotype(offset).probability
                theirs.append(p[:, 1] + 2 * p[:, 2])  # dosage of the second allele
        meta.close()
    expected = np.column_stack(theirs).reshape(-1)  # samples × variants, as ours is laid out
    assert len(expected) == len(ours)
    assert np.nanmax(np.abs(ours.dosage.to_numpy(dtype=float) - expected)) < 1e-6


def test_gold_polygenic_score_equals_the_truth(pipeline):
    truth = pipeline.truth.assign(research_key=pipeline.truth.mrn.map(research_key))
    dosages = pd.read_parquet(pipeline.data_dir / "truth" / "germline_dosages.parquet")
    weights = pd.DataFrame([v.__dict__ for v in reference.prs_weights()])
    dosages = dosages.merge(weights, on="variant_id")
    centred = (dosages.effect_dosage - 2 * dosages.effect_allele_frequency) * dosages.weight
    expected = centred.groupby(dosages.mrn).sum() / reference.prs_reference_moments()[1]
    with pipeline.connect() as conn:
        gold = conn.sql("SELECT research_key, has_germline, prs_z FROM gold.genomics_features").df()
    merged = gold.merge(truth, on="research_key", suffixes=("", "_truth"))
    assert (merged.has_germline == merged.has_germline_truth).all()
    scored = merged[merged.has_germline]
    assert len(scored) > 5
    assert (scored.prs_z - scored.mrn.map(expected).round(4)).abs().max() < 1e-9
    assert merged.prs_z[~merged.has_germline].isna().all()


def test_parallel_parsing_stages_parquet_and_loads_the_same_rows(tmp_path):
    import contextlib

    from multimodal_assets.lib.platform import ingest, warehouse

    stack = contextlib.ExitStack()

    landing = tmp_path / "landing" / "genomics"
    landing.mkdir(parents=True)
    for f in FIXTURES.iterdir():
        (landing / f.name).write_bytes(f.read_bytes())
    (landing / "copy-of-hemi.vcf").write_bytes((FIXTURES / "test-hemi.vcf").read_bytes())
    files = ingest.scan_landing(tmp_path / "landing", "genomics")
    loaded = []
    for workers in (1, 2):
        conn = stack.enter_context(warehouse.connect(tmp_path / f"lakehouse-{workers}"))
        summary = ingest.ingest(
            conn,
            "genomics",
            files,
            genomics.parse_genomics_file,
            genomics.BRONZE_TABLES,
            "run",
            with_path=True,
            workers=workers,
        )
        tables = {
            t.fqn: conn.sql(f"SELECT * EXCLUDE (received_at) FROM {t.fqn} ORDER BY ALL").fetchall()
            for t in genomics.BRONZE_TABLES
        }
        statuses = conn.sql(
            "SELECT path, status, error_code FROM bronze.files ORDER BY 1"
        ).fetchall()
        loaded.append((summary.as_metadata(), tables, statuses))
    stack.close()
    assert loaded[0] == loaded[1]
    # The copy is a duplicate; empty.vcf, the invalid header and NOTICE.md are quarantined.
    assert loaded[1][0]["files_duplicate"] == 1 and loaded[1][0]["files_quarantined"] == 3
    assert loaded[1][0]["records_appended"] > 100


@pytest.mark.parametrize("bad_line", ["", "1\t20"])
def test_blank_or_cut_records_are_quarantined_not_a_crash(bad_line):
    # htslib reads either as a record without alleles; touching its REF crashes cyvcf2.
    vcf = (
        "##fileformat=VCFv4.2\n##contig=<ID=1>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        f"1\t10\t.\tA\tG\t.\t.\t.\n{bad_line}\n1\t30\t.\tA\tG\t.\t.\t.\n"
    )
    with pytest.raises(QuarantineError) as err:
        genomics.parse_genomics_file(vcf.encode())
    assert err.value.code == "malformed_record" and "record 2" in err.value.message


def test_each_delivery_batch_is_a_partition_ingested_on_its_own(data_dir):
    import dagster as dg

    from assets_tests.conftest import ALL_ASSETS
    from multimodal_assets.defs.deliveries import register_delivery_batches
    from multimodal_assets.lib.platform import ingest, warehouse

    landing = data_dir / "landing" / "genomics"
    for batch, name in (("2024-01-01", "test-hemi.vcf"), ("2024-01-08", "norm.phased-join.vcf")):
        (landing / batch).mkdir(parents=True)
        (landing / batch / name).write_bytes((FIXTURES / name).read_bytes())
    (landing / "loose.vcf").write_bytes((FIXTURES / "test-format-string.vcf").read_bytes())
    assert ingest.landed_batches(data_dir / "landing", "genomics") == [
        "2024-01-01",
        "2024-01-08",
        ingest.UNBATCHED,
    ]
    bronze = dg.AssetSelection.assets(*(list(t.asset_key) for t in genomics.BRONZE_TABLES))
    database = data_dir / "lakehouse"
    resources = pipeline_resources(database)
    with dg.instance_for_test() as instance:
        tags = register_delivery_batches(instance)
        assert instance.get_dynamic_partitions("delivery") == [
            ingest.UNBATCHED,
            "2024-01-01",
            "2024-01-08",
        ]
        assert tags["dagster/asset_partition_range_end"] == "2024-01-08"

        def ingested(**run) -> set[str]:
            assert dg.materialize(
                ALL_ASSETS, resources=resources, instance=instance, selection=bronze, **run
            ).success
            with warehouse.connect(database) as conn:
                return {r[0] for r in conn.execute("SELECT path FROM bronze.files").fetchall()}

        assert ingested(partition_key="2024-01-08") == {"genomics/2024-01-08/norm.phased-join.vcf"}
        # The whole range in one run adds the other batches; the ingested one is not re-read.
        assert ingested(tags=tags) == {
            "genomics/2024-01-01/test-hemi.vcf",
            "genomics/2024-01-08/norm.phased-join.vcf",
            "genomics/loose.vcf",
        }
        status = instance.get_status_by_partition(
            dg.AssetKey(list(genomics.VARIANT_SITES.asset_key)),
            ["2024-01-01", "2024-01-08", ingest.UNBATCHED],
            dg.DynamicPartitionsDefinition(name="delivery"),
        )
        assert set(status.values()) == {dg.AssetPartitionStatus.MATERIALIZED}


EDGE = Path(__file__).parent / "fixtures" / "genomics_edge"


def _text_positions(path: Path) -> list[int]:
    """POS as written, read without htslib."""
    return [
        int(line.split("\t")[1])
        for line in path.read_text().splitlines()
        if line and not line.startswith("#")
    ]


@pytest.mark.parametrize("name", ["longrefs-index.vcf", "large_chr.vcf"])
def test_positions_are_stored_as_written_past_32_bits(name):
    # cyvcf2's POS is 32-bit and wrapped htslib's 10 Gb longrefs test file modulo 2^32.
    sites = genomics.parse_vcf((EDGE / name).read_bytes())[genomics.VARIANT_SITES.fqn]
    first_alt = [
        p
        for p, k in zip(
            sites.column("pos").to_pylist(), sites.column("alt_index").to_pylist(), strict=True
        )
        if k in (1, None)
    ]
    assert first_alt == _text_positions(EDGE / name)
    assert max(first_alt) > (2**32 if name.startswith("longrefs") else 2**31 - 2)


def test_an_info_end_htslib_drops_is_read_from_the_text():
    # htslib keeps INFO integers in 32 bits and sets END=10010001000 to missing.
    sites = genomics.parse_vcf((EDGE / "longrefs-index.vcf").read_bytes())[
        genomics.VARIANT_SITES.fqn
    ]
    ends = {
        (p, a): e
        for p, a, e in zip(
            *(sites.column(c).to_pylist() for c in ("pos", "alt", "end_pos")), strict=True
        )
        if e is not None
    }
    assert ends == {(10010000110, "<DEL>"): 10010001000}


def test_a_genotype_naming_a_missing_allele_quarantines_the_file():
    vcf = (
        "##fileformat=VCFv4.2\n##contig=<ID=1,length=1000>\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n"
        "1\t10\t.\tA\tG\t50\tPASS\t.\tGT\t0/3\n"
    )
    with pytest.raises(QuarantineError) as raised:
        genomics.parse_vcf(vcf.encode())
    assert raised.value.code == "genotype_allele_out_of_range"


def test_htslib_writes_nothing_to_the_run_logs(capfd):
    # htslib's complaint about a bad #CHROM line quotes it whole, sample names (identifiers) too.
    bad = b"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTR\tINFO\tFORMAT\tMRN-0042\n"
    with pytest.raises(QuarantineError):
        genomics.parse_genomics_file(bad)
    assert "MRN-0042" not in capfd.readouterr().err
