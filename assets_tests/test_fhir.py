"""FHIR parsing on real third-party bundles and on the edge cases the feeds send."""

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from multimodal_assets.lib import clinical
from multimodal_assets.lib.clinical import fhir
from multimodal_assets.lib.platform.ingest import QuarantineError

REAL = Path(__file__).parent / "fixtures" / "fhir"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "fhir"


def _types(name: str) -> Counter:
    return Counter(r["resource_type"] for r in fhir.parse_fhir_file((REAL / name).read_bytes()))


def test_real_synthea_bundles_parse_with_all_entries():
    assert (
        sum(_types("Georgianne697_Jerde200_ebf0d007-a52f-5364-5c32-2ba094b88f16.json").values())
        == 645
    )
    dennis = _types("Dennis_Durgan_78f005f3-7b33-4a5b-84d9-28417b36dbab.json")
    assert dennis["Patient"] == 1 and dennis["Observation"] == 139
    assert _types("Luigi_Wiegand_e27d88b0-c5e5-4042-ad49-184f6a900ee3.json")["Immunization"] == 12


def test_non_ascii_names_survive_parsing():
    records = fhir.parse_fhir_file(
        (REAL / "Gustavo_Mejia_59a8543c-e24f-4a01-b28b-47ccde6bc11d.json").read_bytes()
    )
    patient = next(r for r in records if r["resource_type"] == "Patient")
    row = clinical.flatten_patient(fhir.loads(patient["resource_json"]))
    assert any(
        ord(ch) > 127
        for ch in (row["family_name"] or "")
        + (row["city"] or "")
        + (row["given_name"] or "")
        + (row["address_line"] or "")
    )


def test_deceased_patient_has_death_date():
    records = fhir.parse_fhir_file(
        (REAL / "Dennis_Durgan_78f005f3-7b33-4a5b-84d9-28417b36dbab.json").read_bytes()
    )
    patient = next(r for r in records if r["resource_type"] == "Patient")
    assert clinical.flatten_patient(fhir.loads(patient["resource_json"]))["deceased_date"]


def test_urn_and_relative_references_resolve_to_the_patient():
    for name in ("bundle_urn_ref.json", "bundle_relative_ref.json"):
        records = fhir.parse_fhir_file((REAL / name).read_bytes())
        patient_id = next(r["resource_id"] for r in records if r["resource_type"] == "Patient")
        observation = next(r for r in records if r["resource_type"] == "Observation")
        assert observation["patient_ref"] == patient_id, name


def test_decimals_with_many_digits_are_kept_verbatim():
    raw = json.loads(
        (REAL / "observation_decimal_bundle.json").read_text(), parse_float=str, parse_int=str
    )
    delivered = {e["resource"]["valueQuantity"]["value"] for e in raw["entry"]}
    records = fhir.parse_fhir_file((REAL / "observation_decimal_bundle.json").read_bytes())
    flattened = {
        clinical.flatten_observation(fhir.loads(r["resource_json"]))["value_original_text"]
        for r in records
    }
    assert flattened == delivered
    assert "182878222991.26937" in delivered


def test_orphan_observation_is_parsed_without_a_patient():
    (record,) = fhir.parse_fhir_file((REAL / "observation_no_subject.json").read_bytes())
    assert record["patient_ref"] is None


def test_single_non_bundle_resource_is_accepted():
    (record,) = fhir.parse_fhir_file((REAL / "questionnaire_response.json").read_bytes())
    assert record["resource_type"] == "QuestionnaireResponse"


def test_ndjson_that_is_not_r4_is_refused_with_paths_not_values():
    with pytest.raises(QuarantineError) as err:
        fhir.parse_fhir_file((REAL / "patients.ndjson").read_bytes())
    assert err.value.code == "invalid_r4"
    assert "Patient.name[0].family" in err.value.message and "birthDate" in err.value.message
    source = (REAL / "patients.ndjson").read_text()
    family = json.loads(source.splitlines()[0])["name"][0]["family"][0]
    assert family not in err.value.message


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_file"),
        (b"\xff\xfe\x00garbage", "encoding_error"),
        (b'<Bundle xmlns="http://hl7.org/fhir"/>', "unsupported_format"),
        (b'{"resourceType": "Bundle", "entry": [', "invalid_json"),
        (b'{"no": "resourceType"}', "invalid_r4"),
        (b'{"resourceType": "Observation", "code": {}}', "invalid_r4"),
    ],
)
def test_bad_files_are_refused_with_a_specific_code(data, code):
    with pytest.raises(QuarantineError) as err:
        fhir.parse_fhir_file(data)
    assert err.value.code == code


def test_valid_ndjson_is_split_into_resources():
    lines = [
        {"resourceType": "Patient", "id": "a"},
        {
            "resourceType": "Observation",
            "id": "b",
            "status": "final",
            "code": {},
            "subject": {"reference": "Patient/a"},
        },
    ]
    records = fhir.parse_fhir_file("\n".join(json.dumps(x) for x in lines).encode())
    assert [r["patient_ref"] for r in records] == ["a", "a"]


def test_bad_ndjson_lines_are_quarantined_alone_and_a_bundle_never_in_part():
    from multimodal_assets.lib.platform.ingest import PartlyRead

    patients = [json.dumps({"resourceType": "Patient", "id": f"p{i}"}) for i in range(4)]
    lines = [*patients[:2], '{"resourceType": "Patient", "id": ', *patients[2:]]
    lines.append(json.dumps({"resourceType": "Observation", "id": "o", "code": {}}))  # no status
    read = fhir.parse_fhir_file("\n".join(lines).encode())
    assert isinstance(read, PartlyRead)
    assert [r["resource_id"] for r in read.records] == ["p0", "p1", "p2", "p3"]
    assert [(n, code) for n, code, _ in read.rejected] == [(3, "invalid_json"), (6, "invalid_r4")]
    assert "Observation.status" in read.rejected[1][2]
    # A bundle is one document: one bad entry quarantines the file.
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": json.loads(p)} for p in patients]
        + [{"resource": {"resourceType": "Observation", "id": "o", "code": {}}}],
    }
    with pytest.raises(QuarantineError) as refused:
        fhir.parse_fhir_file(json.dumps(bundle).encode())
    assert refused.value.code == "invalid_r4"


def test_dumps_exact_round_trips_decimals():
    text = '{"a":[1,2.50,182878222991.26937],"b":"é"}'
    assert fhir.dumps_exact(fhir.loads(text)) == text
    assert isinstance(fhir.loads(text)["a"][1], Decimal)


def _resources_by_json(path: Path) -> int:
    """Resources in a file counted with the standard json module: bundle entries or lines."""
    import json

    text = path.read_text(encoding="utf-8")
    if path.suffix == ".ndjson":
        return sum(1 for line in text.splitlines() if line.strip())
    document = json.loads(text)
    return len(document.get("entry", [])) if document["resourceType"] == "Bundle" else 1


def _check_every_fhir_file(folder: Path) -> dict[str, int | str]:
    """Each file's resource count (equal to the json module's) or its quarantine code."""
    outcomes = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix != ".md"):
        try:
            outcomes[path.name] = len(fhir.parse_fhir_file(path.read_bytes()))
        except QuarantineError as err:
            assert err.message
            outcomes[path.name] = err.code
            continue
        assert outcomes[path.name] == _resources_by_json(path), path.name
    return outcomes


def test_every_bundled_fhir_file_gives_every_resource_or_is_quarantined():
    outcomes = _check_every_fhir_file(REAL)
    assert outcomes.pop("patients.ndjson") == "invalid_r4"
    assert all(isinstance(v, int) for v in outcomes.values()) and len(outcomes) == 9


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/realdata is not present on this machine")
def test_every_shared_fhir_file_ingests_or_is_quarantined_with_a_reason():
    outcomes = _check_every_fhir_file(SHARED)
    assert outcomes["patients.ndjson"] == "invalid_r4"
    assert sum(isinstance(v, int) for v in outcomes.values()) >= 9


RELEASES = Path(__file__).parent / "fixtures" / "fhir_releases"


@pytest.mark.parametrize(
    "name, release",
    [
        ("stu3_Fannie_Waelchi.json", "STU3"),
        ("dstu2_Fannie_Waelchi.json", "DSTU2"),
        ("dstu2_practitionerInformation.json", "DSTU2"),
    ],
)
def test_other_fhir_releases_are_quarantined_with_the_release_named(name, release):
    with pytest.raises(QuarantineError) as raised:
        fhir.parse_fhir_file((RELEASES / name).read_bytes())
    assert raised.value.code == "fhir_version"
    assert raised.value.message.startswith(f"FHIR {release} content, not R4")


def test_declared_versions_decide_and_r4b_reads_as_r4():
    from multimodal_assets.lib.clinical.fhir_version import release_of

    assert release_of({"resourceType": "CapabilityStatement", "fhirVersion": "5.0.0"})[0] == "R5"
    assert release_of({"resourceType": "CapabilityStatement", "fhirVersion": "4.3.0"}) is None
    stu3_profile = {"meta": {"profile": ["http://hl7.org/fhir/STU3/StructureDefinition/Patient"]}}
    assert release_of({"resourceType": "Patient", **stu3_profile})[0] == "STU3"
    r5_encounter = {"resourceType": "Encounter", "status": "completed", "class": [{"text": "x"}]}
    assert release_of(r5_encounter)[0] == "R5"
