"""FHIR R4 JSON: file parsing, structural validation of the fields we consume, and flattening.

Written with the standard library on purpose: a full model validator (fhir.resources/pydantic)
costs milliseconds per resource, hours at cohort scale, and we only trust the fields we read.
Numbers are parsed as Decimal and written back verbatim, because float64 changes FHIR decimals
with more than 15-17 significant digits.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from decimal import Decimal

from ..platform.ingest import PartlyRead, QuarantineError, mostly_bad

_DATE = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$")
_DATETIME = re.compile(
    r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])"
    r"(T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00)))?)?)?$"
)
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]+$")

MRN_TYPE_CODE = "MR"
MAX_PROBLEMS_REPORTED = 5

# Field rules for the resource types the silver tables read: (path, kind, required).
_RULES: dict[str, list[tuple[str, str, bool]]] = {
    "Patient": [
        ("gender", "gender", False),
        ("birthDate", "date", False),
        ("deceasedDateTime", "datetime", False),
    ],
    "Encounter": [
        ("status", "code", True),
        ("class", "coding", True),
        ("subject", "reference", False),
    ],
    "Condition": [
        ("subject", "reference", True),
        ("code", "codeable", False),
        ("onsetDateTime", "datetime", False),
        ("recordedDate", "datetime", False),
    ],
    "Observation": [
        ("status", "code", True),
        ("code", "codeable", True),
        ("subject", "reference", False),
        ("effectiveDateTime", "datetime", False),
    ],
    "MedicationRequest": [
        ("status", "code", True),
        ("intent", "code", True),
        ("subject", "reference", True),
        ("authoredOn", "datetime", False),
    ],
    "Procedure": [
        ("status", "code", True),
        ("subject", "reference", True),
        ("performedDateTime", "datetime", False),
    ],
    "DeviceUseStatement": [
        ("status", "code", True),
        ("subject", "reference", True),
        ("timingPeriod", "period", False),
    ],
    "Consent": [
        ("status", "code", True),
        ("patient", "reference", False),
        ("dateTime", "datetime", False),
    ],
}
_GENDERS = {"male", "female", "other", "unknown"}


def dumps_exact(value) -> str:
    """JSON text for parsed FHIR with Decimal numbers written as delivered (stdlib cannot)."""
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k) + ":" + dumps_exact(v) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps_exact(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def loads(text: str | bytes):
    return json.loads(text, parse_float=Decimal)


def _decode(data: bytes) -> str:
    if not data.strip():
        raise QuarantineError("empty_file", "the file is empty")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise QuarantineError(
            "encoding_error", f"not UTF-8 text (invalid byte at offset {err.start})"
        ) from None


def _documents(text: str) -> tuple[list, list[int | None], list[tuple[int, str, str]]]:
    """The JSON documents of a file (one, or one per NDJSON line), the line each starts on
    (None for a whole-file document), and the NDJSON lines that are not JSON."""
    stripped = text.lstrip()
    if stripped.startswith("<"):
        raise QuarantineError(
            "unsupported_format", "XML FHIR is not supported; deliver FHIR R4 JSON or NDJSON"
        )
    try:
        return [loads(text)], [None], []
    except json.JSONDecodeError as whole_err:
        lines = [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]
        if len(lines) > 1:
            docs, numbers, rejected = [], [], []
            for number, line in lines:
                try:
                    docs.append(loads(line))
                    numbers.append(number)
                except json.JSONDecodeError as err:
                    rejected.append((number, "invalid_json", f"not JSON ({err.msg})"))
            if mostly_bad(len(rejected), len(lines)):
                number, _, why = rejected[0]
                raise QuarantineError(
                    "invalid_json",
                    f"{len(rejected)} of {len(lines)} NDJSON lines are not JSON (line {number}: "
                    f"{why})",
                ) from None
            return docs, numbers, rejected
        raise QuarantineError(
            "invalid_json",
            f"not valid JSON ({whole_err.msg}; line {whole_err.lineno}, column {whole_err.colno})",
        ) from None


def _resources(doc) -> list[tuple[dict, str | None]]:
    """Resources of one document with their bundle fullUrl (if any)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceType"), str):
        raise QuarantineError("invalid_r4", "top-level JSON value is not a FHIR resource")
    if doc["resourceType"] != "Bundle":
        return [(doc, None)]
    entries = doc.get("entry", [])
    if not isinstance(entries, list):
        raise QuarantineError("invalid_r4", "Bundle.entry must be an array")
    out = []
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if resource is None:
            # Transaction entries without a resource (e.g. DELETE requests) carry no data.
            continue
        if not isinstance(resource, dict):
            raise QuarantineError("invalid_r4", f"Bundle.entry[{index}].resource is not an object")
        full_url = entry.get("fullUrl")
        out.append((resource, full_url if isinstance(full_url, str) else None))
    return out


def validate(resource: dict) -> list[str]:
    """Problems with the structure of the fields we read; messages name paths, never values."""
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or not _RESOURCE_TYPE.match(rtype):
        return ["resourceType is missing or malformed"]
    problems = []
    rid = resource.get("id")
    if rid is not None and (not isinstance(rid, str) or not _ID.match(rid)):
        problems.append(f"{rtype}.id is not a valid FHIR id")
    for path, kind, required in _RULES.get(rtype, []):
        value = resource.get(path)
        if value is None:
            if required:
                problems.append(f"{rtype}.{path} is required")
            continue
        problem = _check_kind(value, kind)
        if problem:
            problems.append(f"{rtype}.{path} {problem}")
    if rtype == "Patient":
        problems.extend(_patient_problems(resource))
    if rtype == "Observation":
        quantity = resource.get("valueQuantity")
        if quantity is not None and not (
            isinstance(quantity, dict) and isinstance(quantity.get("value", 0), (int, Decimal))
        ):
            problems.append("Observation.valueQuantity.value must be a number")
    return problems


def _check_kind(value, kind: str) -> str | None:
    if kind in ("code", "gender"):
        if not isinstance(value, str) or not value:
            return "must be a non-empty code string"
        if kind == "gender" and value not in _GENDERS:
            return "is not an AdministrativeGender code"
    elif kind == "date":
        if not isinstance(value, str) or not _DATE.match(value):
            return "is not a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD, no time part)"
    elif kind == "datetime":
        if not isinstance(value, str) or not _DATETIME.match(value):
            return "is not a FHIR dateTime"
    elif kind == "reference":
        if not isinstance(value, dict) or not isinstance(value.get("reference", ""), str):
            return "must be a Reference with a string reference"
    elif kind == "coding":
        if not isinstance(value, dict) or not isinstance(value.get("code", ""), str):
            return "must be a Coding"
    elif kind == "period":
        if not isinstance(value, dict) or not all(
            _DATETIME.match(value[k]) for k in ("start", "end") if isinstance(value.get(k), str)
        ):
            return "must be a Period of FHIR dateTimes"
    elif kind == "codeable":
        if not isinstance(value, dict) or not isinstance(value.get("coding", []), list):
            return "must be a CodeableConcept"
    return None


def _patient_problems(resource: dict) -> list[str]:
    problems = []
    for i, name in enumerate(_as_list(resource.get("name"))):
        if not isinstance(name, dict):
            problems.append(f"Patient.name[{i}] must be a HumanName object")
            continue
        if "family" in name and not isinstance(name["family"], str):
            problems.append(f"Patient.name[{i}].family must be a string (R4 has one family name)")
        given = name.get("given", [])
        if not isinstance(given, list) or not all(isinstance(g, str) for g in given):
            problems.append(f"Patient.name[{i}].given must be an array of strings")
    for i, ident in enumerate(_as_list(resource.get("identifier"))):
        if not isinstance(ident, dict) or not isinstance(ident.get("value", ""), str):
            problems.append(f"Patient.identifier[{i}].value must be a string")
    return problems


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def reference_id(
    reference: str | None, target_type: str, full_urls: dict[str, tuple]
) -> str | None:
    """The id of the `target_type` resource a reference points to (relative, absolute or urn)."""
    if not reference:
        return None
    if reference in full_urls:
        rtype, rid = full_urls[reference]
        return rid if rtype == target_type else None
    parts = reference.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == target_type:
        return parts[-1]
    return None


def _patient_of(resource: dict, full_urls) -> str | None:
    if resource["resourceType"] == "Patient":
        return resource.get("id")
    for field_name in ("subject", "patient", "beneficiary"):
        ref = resource.get(field_name)
        if isinstance(ref, dict):
            return reference_id(ref.get("reference"), "Patient", full_urls)
    return None


def _require_r4(resources: list[dict]) -> None:
    """Quarantine content of another FHIR release, naming it and the first sign of it."""
    from .fhir_version import release_of

    counts: Counter = Counter()
    first_sign: dict[str, str] = {}
    for resource in resources:
        release = release_of(resource)
        if release:
            counts[release[0]] += 1
            first_sign.setdefault(*release)
    if counts:
        name, count = counts.most_common(1)[0]
        why = first_sign[name]
        raise QuarantineError(
            "fhir_version",
            f"FHIR {name} content, not R4 ({why}; {count} resource(s)); convert it to R4 "
            "before delivery",
        )


def parse_fhir_file(data: bytes) -> list[dict] | PartlyRead:
    """Bronze records (one per resource) from a FHIR R4 JSON/NDJSON file, or QuarantineError."""
    try:
        return _parse_fhir(data)
    except RecursionError:
        # No FHIR resource nests anywhere near this deep; a file that does is damaged or hostile.
        raise QuarantineError(
            "invalid_json", "JSON nested deeper than the parser's limit (about 1,000 levels)"
        ) from None


def _parse_fhir(data: bytes) -> list[dict] | PartlyRead:
    """A Bundle or single resource is one document: any problem quarantines the file. NDJSON
    (Bulk Data export) has one resource a line, each standing alone: a line that is not JSON or
    not valid R4 is quarantined with its number and the others are ingested, unless most lines
    are bad. Another FHIR release anywhere quarantines the whole file."""
    text = _decode(data)
    docs, numbers, rejected = _documents(text)
    _require_r4([doc for doc in docs if isinstance(doc, dict)])
    if numbers != [None]:
        lines, kept = len(docs) + len(rejected), []
        for doc, number in zip(docs, numbers, strict=True):
            try:
                problems = list(
                    dict.fromkeys(p for res, _ in _resources(doc) for p in validate(res))
                )
            except QuarantineError as err:
                problems = [err.message]
            if problems:
                shown = "; ".join(problems[:MAX_PROBLEMS_REPORTED])
                rejected.append((number, "invalid_r4", f"not valid FHIR R4: {shown}"))
            else:
                kept.append(doc)
        if not mostly_bad(len(rejected), lines):
            docs = kept  # otherwise the whole file is refused below, with its problems
    resources: list[tuple[dict, str | None, str | None]] = []
    for doc in docs:
        bundle_type = (
            doc.get("type")
            if isinstance(doc, dict) and doc.get("resourceType") == "Bundle"
            else None
        )
        resources.extend((res, url, bundle_type) for res, url in _resources(doc))
    _require_r4([res for res, _, _ in resources])
    problems = []
    for res, _, _ in resources:
        problems.extend(validate(res))
    if problems:
        unique = list(dict.fromkeys(problems))
        shown = "; ".join(unique[:MAX_PROBLEMS_REPORTED])
        more = len(unique) - MAX_PROBLEMS_REPORTED
        raise QuarantineError(
            "invalid_r4", f"not valid FHIR R4: {shown}" + (f" (+{more} more)" if more > 0 else "")
        )
    full_urls = {url: (res["resourceType"], res.get("id")) for res, url, _ in resources if url}
    records = []
    for position, (res, url, bundle_type) in enumerate(resources):
        rid = res.get("id") or (url.rsplit(":", 1)[-1] if url else f"entry-{position}")
        records.append(
            {
                "resource_type": res["resourceType"],
                "resource_id": rid,
                "patient_ref": _patient_of(res, full_urls),
                "bundle_type": bundle_type,
                "resource_json": dumps_exact(res),
                "_source_locator": f"{res['resourceType']}/{rid}",
            }
        )
    return PartlyRead.join(records, sorted(rejected))
