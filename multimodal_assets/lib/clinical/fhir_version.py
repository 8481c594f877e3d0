"""Which FHIR release a resource was written in, from what it declares and from its shape.

The pipeline reads R4 (4.0.1). R4B (4.3) changed no resource the silver tables read, so it reads
as R4. DSTU2 (1.0), STU3 (3.0) and R5 (5.0) content is recognised by the fields that only that
release has (or that it types differently) and by declared versions (`fhirVersion`, versioned
profile or definition URLs), so that it is quarantined with the release named rather than
flattened as if it were R4. A resource whose shape is the same in several releases (an STU3
Organization, say) reads as R4, which is then what it says. No well-kept Python converter between releases exists (the HL7
converters are Java and need the full structure maps), so nothing is converted.
"""

from __future__ import annotations

import re

R4_VERSIONS = ("4.0", "4.3")  # R4 and R4B
_RELEASE_OF_VERSION = {"1.0": "DSTU2", "3.0": "STU3", "4.0": "R4", "4.3": "R4B", "5.0": "R5"}
# Versioned URLs: http://hl7.org/fhir/STU3/..., http://hl7.org/fhir/3.0/..., .../R5/...
_VERSIONED_URL = re.compile(r"hl7\.org/fhir/(DSTU2|STU3|R5|1\.0|3\.0|5\.0)(/|$)")


def _is_text(value) -> bool:
    return isinstance(value, str)


# (resource type, field, test on its value, release, why): a field only that release has, or
# one it types differently from R4.
_MARKERS: tuple[tuple[str, str, object, str, str], ...] = (
    ("*", "fhir_comments", None, "DSTU2", "fhir_comments is DSTU2's comment element"),
    ("Encounter", "patient", None, "DSTU2", "Encounter.patient is DSTU2's name for subject"),
    ("Practitioner", "name", lambda v: isinstance(v, dict), "DSTU2", "one Practitioner.name"),
    ("Encounter", "class", _is_text, "DSTU2", "Encounter.class is a code, as in DSTU2"),
    ("Encounter", "class", lambda v: isinstance(v, list), "R5", "Encounter.class is a list"),
    ("Encounter", "actualPeriod", None, "R5", "Encounter.actualPeriod is R5's name for period"),
    ("Condition", "patient", None, "DSTU2", "Condition.patient is DSTU2's name for subject"),
    ("Condition", "dateRecorded", None, "DSTU2", "Condition.dateRecorded is DSTU2's"),
    ("Condition", "assertedDate", None, "STU3", "Condition.assertedDate is STU3's"),
    ("Condition", "clinicalStatus", _is_text, "STU3", "Condition.clinicalStatus is a code"),
    ("Condition", "verificationStatus", _is_text, "STU3", "Condition.verificationStatus is a code"),
    ("Condition", "participant", None, "R5", "Condition.participant is R5's"),
    ("AllergyIntolerance", "clinicalStatus", _is_text, "STU3", "clinicalStatus is a code"),
    ("Observation", "context", None, "STU3", "Observation.context is STU3's name for encounter"),
    ("Observation", "category", lambda v: isinstance(v, dict), "DSTU2", "one category, as DSTU2"),
    ("Observation", "triggeredBy", None, "R5", "Observation.triggeredBy is R5's"),
    ("MedicationRequest", "context", None, "STU3", "MedicationRequest.context is STU3's"),
    ("MedicationRequest", "medication", None, "R5", "MedicationRequest.medication is R5's"),
    ("MedicationStatement", "taken", None, "STU3", "MedicationStatement.taken is STU3's"),
    ("Procedure", "context", None, "STU3", "Procedure.context is STU3's name for encounter"),
    ("Procedure", "occurrenceDateTime", None, "R5", "Procedure.occurrence[x] is R5's"),
    ("DiagnosticReport", "context", None, "STU3", "DiagnosticReport.context is STU3's"),
    ("Immunization", "notGiven", None, "STU3", "Immunization.notGiven is STU3's"),
    ("Immunization", "wasNotGiven", None, "DSTU2", "Immunization.wasNotGiven is DSTU2's"),
    ("Immunization", "date", None, "STU3", "Immunization.date is STU3's (R4: occurrence[x])"),
    ("Consent", "consentingParty", None, "STU3", "Consent.consentingParty is STU3's"),
    ("Consent", "decision", None, "R5", "Consent.decision is R5's"),
)
_ONLY_IN = {
    "MedicationOrder": "DSTU2",
    "DeviceUseRequest": "DSTU2",
    "ProcedureRequest": "STU3",
    "ReferralRequest": "STU3",
    "DeviceUsage": "R5",
}


def _declared(resource: dict) -> tuple[str, str] | None:
    """(release, what declared it) from a resource's own declarations."""
    version = resource.get("fhirVersion")
    if isinstance(version, str):
        release = _RELEASE_OF_VERSION.get(".".join(version.split(".")[:2]))
        if release:
            return release, f"{resource.get('resourceType')}.fhirVersion is {version}"
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    for url in profiles if isinstance(profiles, list) else ():
        found = _VERSIONED_URL.search(url) if isinstance(url, str) else None
        if found:
            release = _RELEASE_OF_VERSION.get(found.group(1), found.group(1))
            return release, f"meta.profile names a {release} definition"
    return None


def release_of(resource: dict) -> tuple[str, str] | None:
    """(release, reason) when the resource is not R4/R4B content; None when it reads as R4."""
    declared = _declared(resource)
    if declared:
        return None if declared[0] in ("R4", "R4B") else declared
    rtype = resource.get("resourceType")
    if rtype in _ONLY_IN:
        return _ONLY_IN[rtype], f"{rtype} exists only in {_ONLY_IN[rtype]}"
    for marker_type, field, test, release, why in _MARKERS:
        if marker_type not in ("*", rtype) or field not in resource:
            continue
        if test is None or test(resource[field]):
            return release, why
    return None
