"""DICOM de-identification: the PS3.15 Annex E Basic Application Level Confidentiality Profile
with the Retain Longitudinal Temporal Information with Modified Dates Option, and a scan that
proves nothing identifying is left.

The Annex E attribute table (which tags get removed, emptied, replaced or given new UIDs) comes
from dicom-anonymizer's transcription of the standard (`dicomfields_2026c`, BSD-3-Clause). Its
own actions are not used: it draws new UIDs at random per process and writes dummy dates, while
a warehouse needs the same new UID for the same old one in every run (so series stay together
across deliveries) and dates shifted per patient consistently with the other modalities. Those
two actions are keyed HMACs here; everything else follows the table.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date, timedelta
from functools import cache

ANNEX_E_EDITION = "dicomfields_2026c"
# Deidentification Method is LO (64 characters at most); the codes below carry the detail.
METHOD = "DICOM PS3.15 Annex E: Basic Profile, Modified Dates"
# Options applied, as the codes PS3.16 CID 7050 defines for them.
METHOD_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
)
PATIENT_ID = 0x00100020
PATIENT_BIRTH_DATE = 0x00100030
_DATE_VRS = ("DA", "DT")
# Repeating groups of curves (50xx) and overlays (60xx) can carry burned-in annotations.
_REPEATING_GROUPS = ((0x5000, 0x50FF), (0x6000, 0x60FF))
# Binary, numeric and coded values: not names or identifiers, and short codes such as 'CHEST'
# recur in unrelated elements, which would make the leak scan cry wolf.
_NOT_IDENTIFYING_VRS = frozenset(
    (
        "OB",
        "OW",
        "OF",
        "OD",
        "OL",
        "OV",
        "UN",
        "CS",
        "DS",
        "IS",
        "US",
        "SS",
        "UL",
        "SL",
        "FL",
        "FD",
        "TM",
    )
)


@cache
def annex_e_actions() -> dict[int, str]:
    """Tag → action of the Annex E table: 'remove', 'empty', 'dummy', 'uid' or 'uid_within'."""
    from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector

    table = dicom_anonymization_database_selector(ANNEX_E_EDITION)
    # Where the standard allows several actions, the strictest one that keeps the file valid:
    # removal for X/Z, X/D, X/Z/D; empty for Z/D; new UIDs inside X/Z/U* sequences.
    by_category = {
        "X_TAGS": "remove",
        "X_Z_TAGS": "remove",
        "X_D_TAGS": "remove",
        "X_Z_D_TAGS": "remove",
        "Z_TAGS": "empty",
        "Z_D_TAGS": "empty",
        "D_TAGS": "dummy",
        "U_TAGS": "uid",
        "X_Z_U_STAR_TAGS": "uid_within",
    }
    actions: dict[int, str] = {}
    for category, action in by_category.items():
        for entry in table[category]:
            if len(entry) == 2:  # masked entries are the curve/overlay groups, removed whole
                group, element = entry
                actions[(group << 16) | element] = action
    return actions


def new_uid(uid: str, key: bytes) -> str:
    """The same replacement for the same UID in every run: '2.25.' + a keyed 128-bit hash."""
    digest = hmac.new(key, b"dicom-uid:" + uid.encode(), hashlib.sha256)
    return "2.25." + str(int.from_bytes(digest.digest()[:16], "big"))


def _registered(uid: str) -> bool:
    """A UID the standard itself defines (SOP classes, transfer syntaxes, coding schemes)."""
    from pydicom.uid import UID

    return UID(uid).name != uid


def shift_date_text(value: str, days: int) -> str:
    """A DA or DT value moved by `days`; the time part of a DT stays. Unparseable → ''."""
    text = str(value).strip()
    try:
        moved = date(int(text[:4]), int(text[4:6]), int(text[6:8])) + timedelta(days=days)
    except (ValueError, IndexError):
        return ""
    return moved.strftime("%Y%m%d") + text[8:]


def _in_repeating_group(group: int) -> bool:
    return any(low <= group <= high for low, high in _REPEATING_GROUPS)


def deidentify(ds, research_key: str | None, shift_days: int | None, key: bytes):
    """De-identify `ds` in place (and return it). Without a patient (no research key) dates
    are emptied instead of shifted."""
    from pydicom.dataset import Dataset

    actions = annex_e_actions()

    def dated(value) -> str:
        return "" if shift_days is None else shift_date_text(value, shift_days)

    def visit(dataset: Dataset) -> None:
        for element in list(dataset):
            tag = int(element.tag)
            if element.tag.is_private or _in_repeating_group(element.tag.group):
                del dataset[tag]
                continue
            action = actions.get(tag)
            vr = element.VR
            if tag == PATIENT_ID:
                element.value = research_key or ""
            elif tag == PATIENT_BIRTH_DATE or action == "remove":
                if tag == PATIENT_BIRTH_DATE:
                    element.value = ""  # Type 2: present and empty; age lives in clinical
                else:
                    del dataset[tag]
            elif vr == "SQ":
                if action in ("empty", "dummy"):
                    element.value = []
                else:
                    for item in element.value:  # 'uid_within' sequences too: UIDs get remapped
                        visit(item)
            elif vr in _DATE_VRS and element.value not in (None, ""):
                values = element.value if element.VM > 1 else [element.value]
                shifted = [dated(v) for v in values]
                element.value = shifted if element.VM > 1 else shifted[0]
            elif vr == "UI" and element.value:
                values = element.value if element.VM > 1 else [element.value]
                remapped = [
                    v if (_registered(v) and action != "uid") else new_uid(v, key) for v in values
                ]
                element.value = remapped if element.VM > 1 else remapped[0]
            elif action == "empty":
                element.value = None
            elif action == "dummy":
                element.value = _dummy(vr)

    visit(ds)
    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = "MODIFIED" if shift_days is not None else "REMOVED"
    ds.DeidentificationMethod = METHOD
    codes = []
    for value, meaning in METHOD_CODES:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, "DCM", meaning
        codes.append(code)
    ds.DeidentificationMethodCodeSequence = codes
    return ds


def _dummy(vr: str):
    if vr in ("US", "SS", "UL", "SL", "FL", "FD", "IS", "DS", "UV", "SV"):
        return 0
    if vr == "PN":
        return "ANONYMIZED"
    if vr in ("TM",):
        return "000000"
    return "ANONYMIZED" if vr in ("LO", "SH", "LT", "ST", "UT", "UC", "CS", "AE") else None


def to_json(ds) -> str:
    """The de-identified dataset in the DICOM JSON model (PS3.18 F); binary values dropped."""
    return json.dumps(
        ds.to_json_dict(bulk_data_threshold=1 << 16, bulk_data_element_handler=lambda _: ""),
        separators=(",", ":"),
    )


def identifying_values(ds) -> set[str]:
    """The original values a de-identified copy must not contain: the strings of the elements
    the profile acts on, of private tags and of curve/overlay groups, except registered UIDs,
    codes and numbers, values shorter than 4 characters, and values the source also carries in
    elements the profile keeps (a manufacturer 'Test' or a code meaning is not an identifier)."""
    actions = annex_e_actions()
    acted_values: set[str] = set()
    kept_values: set[str] = set()

    def visit(dataset) -> None:
        for element in dataset:
            if element.VR == "SQ":
                for item in element.value or []:
                    visit(item)
                continue
            if element.VR in _NOT_IDENTIFYING_VRS:
                continue
            acted = (
                int(element.tag) in actions
                or element.tag.is_private
                or _in_repeating_group(element.tag.group)
            )
            target = acted_values if acted else kept_values
            for text in _strings(element):
                if element.VR == "UI" and _registered(text):
                    continue
                target.add(text)
                if element.VR == "PN":
                    # A person name has up to three component groups (alphabetic, ideographic,
                    # phonetic: 'Yamada^Tarou=山田^太郎=やまだ^たろう'), each a name of its own.
                    for group in text.split("="):
                        target.add(group)
                        target.update(group.replace("^", " ").split())

    visit(ds)
    return {v for v in acted_values - kept_values if _long_enough(v)}


def _long_enough(value: str) -> bool:
    """Long enough to be an identifier rather than a coincidence: 4 characters in ASCII, 2 in
    scripts where a family or given name is often 2 or 3 characters (CJK, Hangul, kana)."""
    return len(value) >= 4 or (not value.isascii() and len(value) >= 2)


def _strings(element) -> list[str]:
    values = element.value if element.VM > 1 else [element.value]
    return [str(v).strip() for v in values if v is not None and str(v).strip()]


def _json_strings(elements: dict) -> set[str]:
    """Every string value of a DICOM JSON dataset, person names and their parts included."""
    found: set[str] = set()
    for element in elements.values():
        for value in element.get("Value", []):
            if isinstance(value, dict) and element.get("vr") == "SQ":
                found |= _json_strings(value)
            elif isinstance(value, dict):  # PN: {"Alphabetic": "Family^Given"}
                for name in value.values():
                    found.add(name)
                    found.update(name.replace("^", " ").split())
            elif isinstance(value, str):
                found.add(value.strip())
    return found


def phi_left_in(pair: dict) -> list[str]:
    """`phi_left` for a row of the bronze header's bytes (`header`) and the de-identified
    instance's DICOM JSON (`deidentified`)."""
    import io
    import warnings

    import pydicom

    header, deidentified = pair["header"], pair["deidentified"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        original = pydicom.dcmread(io.BytesIO(header), force=True, stop_before_pixels=True)
    return phi_left(json.loads(deidentified), identifying_values(original))


def phi_left(deidentified: dict, originals: set[str]) -> list[str]:
    """Why a de-identified instance (DICOM JSON) is not clean: the offending tags and the count
    of original identifying values still present. Never the values themselves."""
    actions = annex_e_actions()
    problems: list[str] = []

    def visit(elements: dict, path: str) -> None:
        for tag_text, element in elements.items():
            tag = int(tag_text, 16)
            group = tag >> 16
            where = f"{path}{tag_text}"
            if group % 2 == 1:
                problems.append(f"{where}: private tag")
            elif _in_repeating_group(group):
                problems.append(f"{where}: curve/overlay group")
            elif actions.get(tag) == "remove":
                problems.append(f"{where}: must be removed")
            elif tag == PATIENT_BIRTH_DATE and element.get("Value"):
                problems.append(f"{where}: birth date kept")
            for item in element.get("Value", []) if element.get("vr") == "SQ" else []:
                visit(item, f"{where}/")

    visit(deidentified, "")
    leaked = len(originals & _json_strings(deidentified))
    if leaked:
        problems.append(f"{leaked} original identifying value(s) present")
    return problems
