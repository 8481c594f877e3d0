"""Genomics: VCF/BCF parsing faithful to the file, real files ingested or quarantined with a
reason, reference data consistent, and gold drivers and TMB equal to the generator's truth."""

from pathlib import Path

import cyvcf2
import pandas as pd
import pytest

from multimodal_assets.lib import catalog, genomics
from multimodal_assets.lib import genomics_reference as reference
from multimodal_assets.lib.ingest import QuarantineError
from multimodal_assets.lib.pseudonym import research_key

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
    assert {reference.canonical_contig(c) for c in ("7", "chr7", "CHR7")} == {"chr7"}
    assert reference.canonical_contig("MT") == "chrM"


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
            "SELECT count(*) AS n FROM bronze.vcf_samples "
            "WHERE sample_id NOT IN (SELECT sample_id FROM silver.genomic_samples)"
        ).df()
    by_name = files.set_index(files.path.str.rsplit("/", n=1).str[-1])
    assert (files[files.path.str.endswith(".tbi")].records == 0).all()
    assert set(files.error_code.dropna()) == {"truncated_bgzf", "empty_file", "unreadable_vcf"}
    assert (files.status == "duplicate").sum() == 1
    assert by_name.loc["multi-contig.bcf", "status"] == "ingested"
    # The stray delivery and the real files' samples have no manifest: the check says so.
    assert unmapped.n[0] > 0
    (check,) = [
        c
        for c in pipeline.result.get_asset_check_evaluations()
        if c.check_name == "vcf_samples_mapped_to_patients"
    ]
    assert not check.passed and check.metadata["offending_rows"].value == unmapped.n[0]
    for name in ("ref_alt_alphabet", "position_within_contig", "genotype_ploidy_consistent"):
        (result,) = [
            c for c in pipeline.result.get_asset_check_evaluations() if c.check_name == name
        ]
        assert result.passed, name
