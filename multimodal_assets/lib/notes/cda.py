"""HL7 CDA documents (Release 2 and C-CDA; Release 1 'levelone'): the header is structured
identity, the body is the note.

The header's patient (`recordTarget/patientRole`: ids, name, birth time, address, telecom) and
every other person, address and telecom it names (authors, custodian, authenticators,
guardians) become the document's identity, which the de-identifier replaces wherever the text
mentions it, as it does with the EHR identity; the first patient id is the note's MRN for
patient matching. The text is the body's sections (titles kept as section headers) or a
`nonXMLBody` in plain text; any other body media type is quarantined with its type named.
Parsed with the standard library's ElementTree, which does not fetch external entities.
"""

from __future__ import annotations

import base64
import binascii
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import date

from ..platform.ingest import QuarantineError

_BLOCKS = {"paragraph", "tr", "item", "br", "caption", "title", "list", "table", "thead", "tbody"}
_CELLS = {"td", "th"}


@dataclass
class CdaDocument:
    text: str
    mrn: str | None = None
    note_date: date | None = None
    # The patient's fields (the EHR identity's names) and [category, value] of everything else.
    identity: dict = field(default_factory=dict)


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _children(element, name: str):
    return [child for child in element if _local(child.tag) == name]


def _first(element, *path: str):
    for name in path:
        found = _children(element, name) if element is not None else []
        element = found[0] if found else None
    return element


def _text(element) -> str:
    return " ".join("".join(element.itertext()).split()) if element is not None else ""


def _hl7_date(value: str | None) -> date | None:
    match = re.match(r"^(\d{4})(\d{2})(\d{2})", value or "")
    if not match:
        return None
    try:
        return date(*(int(g) for g in match.groups()))
    except ValueError:
        return None


def _telecom(value: str) -> tuple[str, str]:
    scheme, _, rest = value.partition(":")
    if scheme in ("mailto",):
        return "EMAIL", rest.strip()
    if scheme in ("tel", "fax"):
        return ("FAX" if scheme == "fax" else "PHONE"), rest.strip()
    if scheme in ("http", "https"):
        return "URL", value.strip()
    return "PHONE", value.strip()


def _render(element) -> str:
    """Narrative block text: blocks on their own lines, table cells separated by ' | '."""
    out: list[str] = []

    def walk(node) -> None:
        name = _local(node.tag)
        if name in _BLOCKS:
            out.append("\n")
        if node.text:
            out.append(node.text)
        for child in node:
            walk(child)
            if _local(child.tag) in _CELLS:
                out.append(" | ")
            if child.tail:
                out.append(child.tail)
        if name in _BLOCKS:
            out.append("\n")

    walk(element)
    lines = (" ".join(line.split()).strip(" |") for line in "".join(out).split("\n"))
    return "\n".join(line for line in lines if line)


def _identity_r2(header_parts: list) -> tuple[dict, str | None]:
    """(identity, MRN) from a Release 2 header (every child of ClinicalDocument but the body)."""
    identity: dict = {"others": []}
    others = identity["others"]
    mrn = None
    patient_role = None
    for part in header_parts:
        if _local(part.tag) == "recordTarget":
            patient_role = _first(part, "patientRole")
            break
    if patient_role is not None:
        ids = [i.get("extension") for i in _children(patient_role, "id") if i.get("extension")]
        mrn = ids[0] if ids else None
        others += [["MRN", i] for i in ids]
        patient = _first(patient_role, "patient")
        name = _first(patient, "name")
        if name is not None:
            identity["family_name"] = " ".join(_text(f) for f in _children(name, "family"))
            identity["given_name"] = " ".join(_text(g) for g in _children(name, "given"))
        birth = _first(patient, "birthTime")
        if birth is not None and _hl7_date(birth.get("value")):
            identity["birth_date"] = _hl7_date(birth.get("value")).isoformat()
        addr = _first(patient_role, "addr")
        if addr is not None:
            identity["address_line"] = " ".join(
                _text(s) for s in _children(addr, "streetAddressLine")
            )
            identity["city"] = _text(_first(addr, "city"))
            identity["postal_code"] = _text(_first(addr, "postalCode"))
        phones = [t.get("value") for t in _children(patient_role, "telecom") if t.get("value")]
        if phones:
            identity["phone"] = _telecom(phones[0])[1]
    for part in header_parts:
        for element in part.iter():
            name = _local(element.tag)
            if name in ("given", "family", "prefix", "suffix") and _text(element):
                others.append(["NAME", _text(element)])
            elif name == "name" and not len(element) and _text(element):
                others.append(["NAME", _text(element)])  # an organization's or a plain name
            elif name == "streetAddressLine" and _text(element):
                others.append(["ADDRESS", _text(element)])
            elif name == "city" and _text(element):
                others.append(["CITY", _text(element)])
            elif name == "postalCode" and _text(element):
                others.append(["ZIP", _text(element)])
            elif name == "telecom" and element.get("value"):
                others.append(list(_telecom(element.get("value"))))
    return identity, mrn


def _identity_r1(header) -> tuple[dict, str | None]:
    """(identity, MRN) from a Release 1 header, whose values sit in V/EX attributes."""
    identity: dict = {"others": []}
    others = identity["others"]
    # Person name parts, address lines (LIT: the whole street line), city and ZIP; the state is
    # not a Safe Harbor identifier.
    codes = {"GIV": "NAME", "FAM": "NAME", "MID": "NAME", "STR": "ADDRESS", "LIT": "ADDRESS"}
    codes |= {"CTY": "CITY", "ZIP": "ZIP"}
    for element in header.iter():
        name = _local(element.tag)
        value = (element.get("V") or "").strip()
        if name in codes and value:
            others.append([codes[name], value])
        elif name == "telecom" and value:
            others.append(list(_telecom(value)))
    patient = _first(header, "patient")
    birth = _first(patient, "birth_dttm") if patient is not None else None
    if birth is not None and _hl7_date(birth.get("V")):
        identity["birth_date"] = _hl7_date(birth.get("V")).isoformat()
    ids = (
        [i.get("EX") for i in patient.iter() if _local(i.tag) == "id"]
        if patient is not None
        else []
    )
    mrn = next((i for i in ids if i and not i.startswith("#")), None)
    return identity, mrn


def _body_text(body) -> str:
    """The text of a structuredBody: each section's title, then its narrative, in order."""
    lines: list[str] = []

    def section(node, depth: int) -> None:
        title = _text(_first(node, "title"))
        if title:
            lines.append(title.upper() if depth == 0 else title)
        narrative = _first(node, "text")
        if narrative is not None:
            rendered = _render(narrative)
            if rendered:
                lines.append(rendered)
        for component in _children(node, "component"):
            for child in _children(component, "section"):
                section(child, depth + 1)

    for component in _children(body, "component"):
        for child in _children(component, "section"):
            section(child, 0)
            lines.append("")
    return "\n".join(lines).strip()


def _non_xml_text(body) -> str:
    text = _first(body, "text")
    media = (text.get("mediaType") if text is not None else None) or "text/plain"
    if media.split(";")[0].strip().lower() != "text/plain":
        raise QuarantineError(
            "cda_non_text_body",
            f"the CDA nonXMLBody is {media}, not text: no text extractor for it is installed",
        )
    content = "".join(text.itertext()) if text is not None else ""
    if (text.get("representation") or "TXT").upper() == "B64":
        try:
            content = base64.b64decode("".join(content.split()), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise QuarantineError(
                "cda_non_text_body", "the CDA nonXMLBody's base64 text/plain does not decode"
            ) from None
    return content.replace("\r\n", "\n").replace("\r", "\n").strip()


def parse_cda(text: str) -> CdaDocument:
    """The note and identity of a CDA document (QuarantineError when it is neither)."""
    try:
        root = ET.fromstring(_without_doctype(text).encode("utf-8"))
    except ET.ParseError as err:
        raise QuarantineError(
            "invalid_xml", f"the CDA document is not well-formed XML ({err.code})"
        ) from None
    except LookupError:
        raise QuarantineError(
            "invalid_xml", "the XML declaration names an unknown character encoding"
        ) from None
    if _local(root.tag) == "levelone":
        header = _first(root, "clinical_document_header")
        identity, mrn = _identity_r1(header) if header is not None else ({"others": []}, None)
        body = _first(root, "body")
        origination = _first(header, "origination_dttm") if header is not None else None
        return CdaDocument(
            _render(body) if body is not None else "",
            mrn,
            _hl7_date(origination.get("V") if origination is not None else None),
            identity,
        )
    if _local(root.tag) != "ClinicalDocument":
        raise QuarantineError("unsupported_format", "XML that is not an HL7 CDA document")
    body_component = _first(root, "component")
    header_parts = [part for part in root if _local(part.tag) != "component"]
    identity, mrn = _identity_r2(header_parts)
    effective = _first(root, "effectiveTime")
    note_date = _hl7_date(effective.get("value") if effective is not None else None)
    structured = _first(body_component, "structuredBody")
    non_xml = _first(body_component, "nonXMLBody")
    if structured is not None:
        body = _body_text(structured)
    elif non_xml is not None:
        body = _non_xml_text(non_xml)
    else:
        body = ""
    return CdaDocument(body, mrn, note_date, identity)


def _without_doctype(text: str) -> str:
    # An internal DTD subset may declare entities ElementTree would expand without limit; the
    # entities real CDA files declare are characters (&deg;), which HTML's table resolves.
    import html

    if "<!DOCTYPE" not in text[:2000]:
        return text
    text = re.sub(r"<!DOCTYPE[^\[>]*(\[[^\]]*\])?>", "", text, count=1, flags=re.S)
    return re.sub(
        r"&([A-Za-z][A-Za-z0-9]*);",
        lambda m: (
            m.group(0)
            if m.group(1) in ("lt", "gt", "amp", "quot", "apos")
            else html.unescape(m.group(0))
        ),
        text,
    )
