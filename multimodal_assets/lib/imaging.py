"""Imaging modality: DICOM files into bronze instance headers (identified), silver de-identified
instances and series (Annex E, see `dicom_deid`), gold per-series pixel features with a
fixed-length embedding, and per-patient imaging features as of the index date.

Bronze reads headers only (`stop_before_pixels`) and keeps the header bytes, so silver can
de-identify every element without touching landing again; pixels are decoded once, for gold.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import struct
import warnings
from datetime import date, timedelta

import numpy as np

from .ingest import QuarantineError
from .tables import RESEARCH_KEY, Column, Table, provenance_columns

EMBEDDING_DIM = 32
GZIP_MAGIC = b"\x1f\x8b"
DEFLATED_TS = "1.2.840.10008.1.2.1.99"
DEFLATED_FRAMES_TS = "1.2.840.10008.1.2.8.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
# Pixel Data, Float Pixel Data and Double Float Pixel Data, little and big endian.
_PIXEL_TAG_BYTES = {
    struct.pack(order + "HH", 0x7FE0, element)
    for order in "<>"
    for element in (0x0010, 0x0008, 0x0009)
}
_PIXEL_VRS = frozenset((b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN"))
# Text VRs whose encoding follows the Specific Character Set.
_TEXT_VRS = frozenset(("LO", "SH"))
# VRs whose values are in the default character repertoire by the standard: read straight
# from the raw bytes, which is ~10× cheaper than pydicom's value conversion.
_ASCII_VRS = frozenset(("UI", "CS", "DA", "IS", "DS", "TM", "AS", "DT"))


def _uid_column(name: str, description: str, nullable: bool = True) -> Column:
    return Column(name, "VARCHAR", description, "phi", "hipaa", nullable=nullable)


DICOM_INSTANCES = Table(
    layer="bronze",
    name="dicom_instances",
    modality="imaging",
    asset_key=("imaging", "dicom_instances"),
    primary_key=("sop_instance_uid",),
    restricted=True,
    append_once=True,
    description="One row per DICOM instance as delivered: identifying header fields and the "
    "header bytes (no pixels). Identified, restricted.",
    columns=(
        _uid_column("sop_instance_uid", "SOP Instance UID.", nullable=False),
        Column("sop_class_uid", "VARCHAR", "SOP Class UID (what kind of object).", "none"),
        Column("modality", "VARCHAR", "Modality (CT, MR, SM…).", "none"),
        Column("transfer_syntax_uid", "VARCHAR", "Transfer syntax of the file.", "none"),
        Column("patient_id", "VARCHAR", "Patient ID as written (the MRN).", "phi", "hipaa"),
        _uid_column("study_instance_uid", "Study Instance UID."),
        _uid_column("series_instance_uid", "Series Instance UID."),
        Column("study_date", "DATE", "Study date as written.", "phi", "hipaa"),
        Column("series_number", "INTEGER", "Series number.", "none"),
        Column("instance_number", "INTEGER", "Instance number.", "none"),
        Column("rows", "INTEGER", "Rows.", "none", min_value=0),
        Column("columns", "INTEGER", "Columns.", "none", min_value=0),
        Column("number_of_frames", "INTEGER", "Frames (1 when not multi-frame).", "none"),
        Column(
            "has_pixel_data",
            "BOOLEAN",
            "The file carries (float) pixel data after the header.",
            "none",
        ),
        Column("header", "BLOB", "The file up to its pixel data (all header elements).", "phi"),
        Column("received_at", "TIMESTAMP", "Arrival of the file (UTC).", "none"),
        *provenance_columns("SOP Instance UID of the instance.", "phi"),
    ),
)


def read_dicom(data: bytes, headers_only: bool = True):
    """(dataset, bytes actually parsed, offset where the header ends) of a DICOM file.

    Gzip-wrapped files are unwrapped; files without the 128-byte preamble and 'DICM' are read
    as raw datasets. Anything that is not a readable DICOM instance raises QuarantineError.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    if not data:
        raise QuarantineError("empty_file", "the file is empty")
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, gzip.BadGzipFile):
            raise QuarantineError("corrupt_gzip", "gzip-wrapped file does not decompress") from None
    buffer = io.BytesIO(data)
    with warnings.catch_warnings():
        # pydicom warns on what it tolerates (odd VRs, truncation); the checks below decide.
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(buffer, stop_before_pixels=headers_only)
        except InvalidDicomError:
            buffer.seek(0)
            try:
                ds = pydicom.dcmread(buffer, stop_before_pixels=headers_only, force=True)
            except Exception:  # noqa: BLE001 - any failure here means "not DICOM"
                raise QuarantineError(
                    "not_dicom", "no DICOM preamble and the bytes do not parse as a dataset"
                ) from None
        except Exception as err:  # noqa: BLE001 - pydicom raises many types on damaged files
            raise QuarantineError(
                "unreadable_header", f"the DICOM header does not parse ({type(err).__name__})"
            ) from None
    header_end = buffer.tell()
    if not _raw_text(ds.file_meta, 0x00020010):
        # No transfer syntax in the file meta (or no file meta at all): pydicom guesses one
        # encoding, and a wrong guess reads the dataset as noise. Try the three uncompressed
        # encodings and keep the one under which the dataset is a composite instance.
        with warnings.catch_warnings(), _quiet_pydicom():
            warnings.simplefilter("ignore")
            inferred = _infer_encoding(data, ds)
        if inferred is not None:
            ds, header_end = inferred
        elif not all(_raw_text(ds, tag) for tag in _SOP_TAGS):
            raise QuarantineError("not_dicom", _missing_identity_reason(ds, data))
        elif len(ds) > 0:
            from pydicom import uid

            implicit, little = ds.original_encoding
            ds.file_meta.TransferSyntaxUID = (
                uid.ImplicitVRLittleEndian
                if implicit
                else (uid.ExplicitVRLittleEndian if little else uid.ExplicitVRBigEndian)
            )
    _refuse_overlong_elements(ds)
    if len(ds) == 0:
        if ds.file_meta:
            raise QuarantineError(
                "truncated", "file meta information but no dataset after it: the file is cut short"
            )
        raise QuarantineError("not_dicom", "no DICOM elements found")
    return ds, data, header_end


def _refuse_overlong_elements(ds) -> None:
    """An element that declares more bytes than the file holds: pydicom reads what is there and
    the dataset silently ends inside it (a declared length of 2 GB swallows the rest)."""
    from pydicom.dataelem import RawDataElement

    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        if (
            isinstance(raw, RawDataElement)
            and raw.length != 0xFFFFFFFF
            and raw.value is not None
            and len(raw.value) < raw.length
        ):
            raise QuarantineError(
                "truncated",
                f"element ({raw.tag.group:04X},{raw.tag.element:04X}) declares {raw.length} bytes, "
                "past the end of the file: the dataset is cut short",
            )


@contextlib.contextmanager
def _quiet_pydicom():
    """pydicom logs every encoding mismatch it meets while a wrong encoding is tried."""
    import logging

    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


_SOP_TAGS = (0x00080016, 0x00080018)  # SOP Class UID, SOP Instance UID
_PIXEL_DATA_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}


def _dataset_offset(data: bytes) -> int:
    """Where the dataset starts: after the preamble and the file meta group, or at byte 0."""
    if data[128:132] != b"DICM":
        return 0
    if data[132:136] == b"\x02\x00\x00\x00" and data[136:138] == b"UL":
        return 144 + int.from_bytes(data[140:144], "little")
    return 132


def _infer_encoding(data: bytes, guessed):
    """(dataset, offset where its header ends) under the first uncompressed transfer syntax
    that makes it a composite instance (both SOP UIDs), or None."""
    from pydicom import uid
    from pydicom.dataset import FileDataset
    from pydicom.filereader import read_dataset

    if all(_raw_text(guessed, tag) for tag in _SOP_TAGS):
        return None  # pydicom's guess reads it
    start = _dataset_offset(data)
    for implicit, little, syntax in (
        (False, True, uid.ExplicitVRLittleEndian),
        (True, True, uid.ImplicitVRLittleEndian),
        (False, False, uid.ExplicitVRBigEndian),
    ):
        fp = io.BytesIO(data)
        fp.seek(start)
        try:
            candidate = read_dataset(
                fp, implicit, little, stop_when=lambda tag, vr, length: tag in _PIXEL_DATA_TAGS
            )
            complete = all(_raw_text(candidate, tag) for tag in _SOP_TAGS)
        except Exception:  # noqa: BLE001 - the wrong encoding reads noise that fails to parse
            continue
        if complete:
            meta = guessed.file_meta
            meta.TransferSyntaxUID = syntax
            return FileDataset(None, candidate, file_meta=meta, preamble=None), fp.tell()
    return None


def _missing_identity_reason(ds, data: bytes) -> str:
    """What exactly makes a parsed file not a composite instance (names tags, never values)."""
    missing = [
        name
        for tag, name in zip(
            _SOP_TAGS, ("SOP Class UID (0008,0016)", "SOP Instance UID (0008,0018)"), strict=True
        )
        if not _raw_text(ds, tag)
    ]
    lacks = " and ".join(missing) or "SOP UIDs"
    if not _raw_text(ds.file_meta, 0x00020010):
        if data[128:132] == b"DICM":
            return (
                "the File Meta lacks its Transfer Syntax UID (0002,0010), and in no uncompressed "
                f"encoding does the dataset carry a {lacks}"
            )
        for offset in range(1, 16):  # a dataset cut from a file a few bytes off its start
            if data[offset : offset + 2] == b"\x08\x00" and data[offset + 4 : offset + 6].isalpha():
                return (
                    "no File Meta, and the dataset does not start at byte 0: a group 0008 data "
                    f"element starts at byte {offset}"
                )
        return f"no File Meta, and in no uncompressed encoding does the dataset carry a {lacks}"
    return f"the dataset has no {lacks}: not a DICOM composite instance"


def _raw_text(ds, tag: int) -> str | None:
    """A header value as text (first value only), from the raw bytes when they are plain text
    by the standard or in the default/Latin-1 character set; pydicom converts the rest."""
    from pydicom.dataelem import RawDataElement

    raw = ds.get_item(tag)
    if raw is None:
        return None
    if isinstance(raw, RawDataElement) and (
        raw.VR in _ASCII_VRS or (raw.VR in _TEXT_VRS and _latin1(ds))
    ):
        if raw.value is None:
            return None
        text = raw.value.decode("latin-1").split("\\")[0].strip("\x00 ")
    else:
        value = ds[tag].value
        if value is None or value == "":
            return None
        text = str(value[0] if ds[tag].VM > 1 else value).strip()
    return text or None


def _latin1(ds) -> bool:
    """Whether text values are ASCII or ISO-IR 100 (Latin-1), i.e. decodable byte for byte."""
    charset = ds.get_item(0x00080005)
    if charset is None or charset.value is None:
        return True
    value = charset.value if isinstance(charset.value, bytes) else str(charset.value).encode()
    return value.strip(b"\x00 ") in (b"", b"ISO_IR 6", b"ISO_IR 100")


def _raw_int(ds, tag: int) -> int | None:
    from pydicom.dataelem import RawDataElement

    raw = ds.get_item(tag)
    if raw is None:
        return None
    if isinstance(raw, RawDataElement) and raw.VR == "US" and raw.is_little_endian and raw.value:
        return int.from_bytes(raw.value[:2], "little")
    text = _raw_text(ds, tag)
    try:
        return int(float(text)) if text is not None else None
    except ValueError:
        return None


def _dicom_date(text: str | None) -> date | None:
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8])) if text else None
    except (ValueError, IndexError):
        return None


def _pixel_data_complete(data: bytes, start: int, transfer_syntax: str | None) -> bool:
    """Whether the pixel data element at `start` ends inside the file: its declared length
    fits, or (encapsulated) its sequence delimiter is there."""
    # Explicit or implicit VR is read from the bytes: some files contradict their meta.
    big_endian = transfer_syntax == "1.2.840.10008.1.2.2"
    order = ">" if big_endian else "<"
    if data[start + 4 : start + 6] in _PIXEL_VRS:
        (length,), value_start = struct.unpack_from(order + "L", data, start + 8), start + 12
    else:
        (length,), value_start = struct.unpack_from(order + "L", data, start + 4), start + 8
    if length == 0xFFFFFFFF:
        delimiter = struct.pack(order + "HHL", 0xFFFE, 0xE0DD, 0)
        return data.rfind(delimiter, value_start) != -1
    return value_start + length <= len(data)


def parse_dicom_file(data: bytes) -> list[dict]:
    """One bronze row for a DICOM instance (headers only), or QuarantineError."""
    ds, parsed, header_end = read_dicom(data)
    try:
        sop_instance = _raw_text(ds, 0x00080018)
        sop_class = _raw_text(ds, 0x00080016)
        meta = ds.file_meta
        sop_instance = sop_instance or meta.get("MediaStorageSOPInstanceUID")
        sop_class = sop_class or meta.get("MediaStorageSOPClassUID")
        transfer_syntax = _raw_text(meta, 0x00020010)
        if not sop_instance or not sop_class:
            raise QuarantineError("not_dicom", _missing_identity_reason(ds, data))
        if transfer_syntax == DEFLATED_TS:
            # The whole dataset is deflated: the header offset is not one into the file.
            header, has_pixels = parsed, None
        else:
            header = parsed[:header_end]
            has_pixels = parsed[header_end : header_end + 4] in _PIXEL_TAG_BYTES
            if has_pixels and not _pixel_data_complete(parsed, header_end, transfer_syntax):
                raise QuarantineError(
                    "truncated", "the file ends inside its pixel data: it was cut short"
                )
        row = {
            "sop_instance_uid": str(sop_instance),
            "sop_class_uid": str(sop_class),
            "modality": _raw_text(ds, 0x00080060),
            "transfer_syntax_uid": transfer_syntax,
            "patient_id": _raw_text(ds, 0x00100020),
            "study_instance_uid": _raw_text(ds, 0x0020000D),
            "series_instance_uid": _raw_text(ds, 0x0020000E),
            "study_date": _dicom_date(_raw_text(ds, 0x00080020)),
            "series_number": _raw_int(ds, 0x00200011),
            "instance_number": _raw_int(ds, 0x00200013),
            "rows": _raw_int(ds, 0x00280010),
            "columns": _raw_int(ds, 0x00280011),
            "number_of_frames": _raw_int(ds, 0x00280008) or 1,
            "has_pixel_data": has_pixels,
            "header": header,
            "_source_locator": str(sop_instance),
        }
    except QuarantineError:
        raise
    except Exception as err:  # noqa: BLE001 - damaged values surface only when read
        raise QuarantineError(
            "unreadable_header", f"a header value does not parse ({type(err).__name__})"
        ) from None
    return [row]


# ---- silver: de-identified instances and series ----------------------------------------------

_DEID_KEY = Column(
    "research_key",
    "VARCHAR",
    "Keyed pseudonym of the Patient ID (NULL when the header has none).",
    "quasi_identifier",
    "hipaa",
)
_SHIFTED_DATE = Column(
    "study_date",
    "DATE",
    "Study date shifted by the patient's keyed offset (the same shift the gateway applies to "
    "the other modalities' dates).",
    "quasi_identifier",
)


def _new_uid_column(name: str, what: str, nullable: bool = True) -> Column:
    return Column(
        name,
        "VARCHAR",
        f"{what}, replaced by a keyed UID (same input, same UID, every run).",
        "none",
        nullable=nullable,
    )


_INSTANCE_GEOMETRY = (
    Column("rows", "INTEGER", "Rows.", "none", min_value=0),
    Column("columns", "INTEGER", "Columns.", "none", min_value=0),
    Column("pixel_spacing_mm", "DOUBLE[]", "Row and column spacing (mm).", "none"),
    Column("slice_thickness_mm", "DOUBLE", "Slice thickness (mm).", "none"),
)

INSTANCES = Table(
    layer="silver",
    name="imaging_instances",
    modality="imaging",
    asset_key=("imaging", "instances"),
    primary_key=("instance_uid",),
    description="De-identified DICOM instances (PS3.15 Annex E basic profile, modified dates): "
    "research key for Patient ID, keyed UIDs, dates shifted per patient, private tags dropped; "
    "the whole de-identified header as DICOM JSON.",
    columns=(
        _DEID_KEY,
        Column(
            "linked_to_patient",
            "BOOLEAN",
            "The Patient ID is the MRN of a known patient.",
            "none",
            nullable=False,
        ),
        _new_uid_column("instance_uid", "SOP Instance UID", nullable=False),
        _new_uid_column("series_uid", "Series Instance UID"),
        _new_uid_column("study_uid", "Study Instance UID"),
        Column("sop_class_uid", "VARCHAR", "SOP Class UID.", "none"),
        Column("modality", "VARCHAR", "Modality.", "none"),
        Column("transfer_syntax_uid", "VARCHAR", "Transfer syntax of the file.", "none"),
        _SHIFTED_DATE,
        Column("series_number", "INTEGER", "Series number.", "none"),
        Column("instance_number", "INTEGER", "Instance number.", "none"),
        *_INSTANCE_GEOMETRY,
        Column("number_of_frames", "INTEGER", "Frames.", "none", min_value=0),
        Column("image_position", "DOUBLE[]", "Image Position (Patient), mm.", "none"),
        Column("image_orientation", "DOUBLE[]", "Image Orientation (Patient) cosines.", "none"),
        Column(
            "slice_location_mm",
            "DOUBLE",
            "Position along the slice normal (orders the slices of a series).",
            "none",
        ),
        Column("has_pixel_data", "BOOLEAN", "The file carries pixel data.", "none"),
        Column(
            "deidentified_header",
            "JSON",
            "Every remaining header element, de-identified, in the DICOM JSON model.",
            "quasi_identifier",
        ),
        *provenance_columns("De-identified SOP Instance UID (the source row: _source_sha256)."),
    ),
    lineage={
        "research_key": (("bronze.dicom_instances", "patient_id"),),
        "linked_to_patient": (("bronze.dicom_instances", "patient_id"), ("silver.patients", "mrn")),
        "instance_uid": (("bronze.dicom_instances", "sop_instance_uid"),),
        "series_uid": (("bronze.dicom_instances", "series_instance_uid"),),
        "study_uid": (("bronze.dicom_instances", "study_instance_uid"),),
        "sop_class_uid": (("bronze.dicom_instances", "sop_class_uid"),),
        "modality": (("bronze.dicom_instances", "modality"),),
        "transfer_syntax_uid": (("bronze.dicom_instances", "transfer_syntax_uid"),),
        "study_date": (("bronze.dicom_instances", "study_date"),),
        "deidentified_header": (("bronze.dicom_instances", "header"),),
        **{
            name: (("bronze.dicom_instances", "header"),)
            for name in (
                "series_number",
                "instance_number",
                "rows",
                "columns",
                "pixel_spacing_mm",
                "slice_thickness_mm",
                "number_of_frames",
                "image_position",
                "image_orientation",
                "slice_location_mm",
                "has_pixel_data",
            )
        },
    },
)


def _first_functional(ds, sequence: str, attribute: str):
    """An attribute of an enhanced multi-frame's shared functional groups, if any."""
    shared = ds.get("SharedFunctionalGroupsSequence")
    if not shared:
        return None
    group = shared[0].get(sequence)
    return group[0].get(attribute) if group else None


def _floats(value, count: int) -> list[float] | None:
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return out if len(out) == count else None


def instance_geometry(ds) -> dict:
    """Geometry of an instance from its header (classic or enhanced multi-frame)."""
    spacing = ds.get("PixelSpacing") or _first_functional(
        ds, "PixelMeasuresSequence", "PixelSpacing"
    )
    thickness = ds.get("SliceThickness") or _first_functional(
        ds, "PixelMeasuresSequence", "SliceThickness"
    )
    orientation = ds.get("ImageOrientationPatient") or _first_functional(
        ds, "PlaneOrientationSequence", "ImageOrientationPatient"
    )
    position = ds.get("ImagePositionPatient")
    orientation, position = _floats(orientation, 6), _floats(position, 3)
    location = None
    if orientation and position:
        normal = np.cross(orientation[:3], orientation[3:])
        location = float(np.dot(normal, position))
    try:
        thickness = float(thickness) if thickness not in (None, "") else None
    except (TypeError, ValueError):
        thickness = None
    return {
        "pixel_spacing_mm": _floats(spacing, 2),
        "slice_thickness_mm": thickness,
        "image_orientation": orientation,
        "image_position": position,
        "slice_location_mm": location,
    }


def deidentified_instance(bronze: dict, key_by_mrn: dict[str, str], key: bytes) -> dict:
    """The silver row of one bronze instance: de-identified header and its indexed fields."""
    import pydicom

    from . import dicom_deid
    from .pseudonym import date_shift_days, research_key

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(bronze["header"]), force=True, stop_before_pixels=True)
        patient = bronze["patient_id"]
        pseudonym = key_by_mrn.get(patient) or (research_key(patient, key) if patient else None)
        shift = date_shift_days(pseudonym, key) if pseudonym else None
        geometry = instance_geometry(ds)
        ds.file_meta = pydicom.dataset.FileMetaDataset()  # meta repeats the SOP Instance UID
        dicom_deid.deidentify(ds, pseudonym, shift, key)
        header = dicom_deid.to_json(ds)
    study_date = bronze["study_date"]

    def uid(value):
        return dicom_deid.new_uid(value, key) if value else None

    instance_uid = uid(bronze["sop_instance_uid"])
    return {
        "research_key": pseudonym,
        "linked_to_patient": patient in key_by_mrn,
        "instance_uid": instance_uid,
        "series_uid": uid(bronze["series_instance_uid"]),
        "study_uid": uid(bronze["study_instance_uid"]),
        "sop_class_uid": bronze["sop_class_uid"],
        "modality": bronze["modality"],
        "transfer_syntax_uid": bronze["transfer_syntax_uid"],
        "study_date": (
            study_date + timedelta(days=shift) if study_date and shift is not None else None
        ),
        "series_number": bronze["series_number"],
        "instance_number": bronze["instance_number"],
        "rows": bronze["rows"],
        "columns": bronze["columns"],
        "number_of_frames": bronze["number_of_frames"],
        "has_pixel_data": bronze["has_pixel_data"],
        "deidentified_header": header,
        **geometry,
        "_source_sha256": bronze["_source_sha256"],
        "_source_locator": instance_uid,
    }


SERIES = Table(
    layer="silver",
    name="imaging_series",
    modality="imaging",
    asset_key=("imaging", "series"),
    primary_key=("series_uid",),
    description="De-identified series: instances, frames and the geometry they share, with "
    "whether the slices are regularly spaced.",
    columns=(
        _DEID_KEY,
        Column("linked_to_patient", "BOOLEAN", "Linked to a known patient.", "none"),
        _new_uid_column("series_uid", "Series Instance UID", nullable=False),
        _new_uid_column("study_uid", "Study Instance UID"),
        Column("modality", "VARCHAR", "Modality.", "none"),
        _SHIFTED_DATE,
        Column("instances", "INTEGER", "Instances in the series.", "none", min_value=1),
        Column("frames", "INTEGER", "Frames over all instances.", "none", min_value=0),
        *_INSTANCE_GEOMETRY,
        Column(
            "slice_gap_mm",
            "DOUBLE",
            "Median distance between consecutive slice locations (mm).",
            "none",
        ),
        Column(
            "geometry_consistent",
            "BOOLEAN",
            "All instances share rows, columns, spacing and orientation.",
            "none",
        ),
        Column(
            "slices_regular",
            "BOOLEAN",
            "Consecutive slice gaps within 10% of the median, no two slices at one location "
            "(NULL for single-slice series).",
            "none",
        ),
        Column("has_pixel_data", "BOOLEAN", "Some instance carries pixel data.", "none"),
        Column("_run_id", "VARCHAR", "Dagster run that wrote this row.", "none"),
    ),
    lineage={
        **{
            name: (("silver.imaging_instances", name),)
            for name in (
                "research_key",
                "linked_to_patient",
                "series_uid",
                "study_uid",
                "modality",
                "study_date",
                "rows",
                "columns",
                "pixel_spacing_mm",
                "slice_thickness_mm",
                "has_pixel_data",
            )
        },
        "instances": (("silver.imaging_instances", "instance_uid"),),
        "frames": (("silver.imaging_instances", "number_of_frames"),),
        "slice_gap_mm": (("silver.imaging_instances", "slice_location_mm"),),
        "geometry_consistent": (("silver.imaging_instances", "image_orientation"),),
        "slices_regular": (("silver.imaging_instances", "slice_location_mm"),),
    },
)

SERIES_SQL = """
WITH gaps AS (
    SELECT series_uid,
           slice_location_mm - lag(slice_location_mm) OVER (
               PARTITION BY series_uid ORDER BY slice_location_mm) AS gap
    FROM silver.imaging_instances WHERE series_uid IS NOT NULL
),
gap_stats AS (
    SELECT series_uid, median(gap) AS median_gap,
           bool_and(abs(gap - median_gap_w) <= 0.1 * abs(median_gap_w) AND gap > 0) AS regular
    FROM (SELECT *, median(gap) OVER (PARTITION BY series_uid) AS median_gap_w
          FROM gaps WHERE gap IS NOT NULL)
    GROUP BY series_uid
)
SELECT any_value(i.research_key) AS research_key,
       bool_or(i.linked_to_patient) AS linked_to_patient,
       i.series_uid, any_value(i.study_uid) AS study_uid, any_value(i.modality) AS modality,
       min(i.study_date) AS study_date, count(*)::INTEGER AS instances,
       sum(coalesce(i.number_of_frames, 1))::INTEGER AS frames,
       any_value(i.rows) AS rows, any_value(i.columns) AS columns,
       any_value(i.pixel_spacing_mm) AS pixel_spacing_mm,
       any_value(i.slice_thickness_mm) AS slice_thickness_mm,
       any_value(g.median_gap) AS slice_gap_mm,
       count(DISTINCT i.rows) <= 1 AND count(DISTINCT i.columns) <= 1
           AND count(DISTINCT i.pixel_spacing_mm) <= 1
           AND count(DISTINCT i.image_orientation) <= 1 AS geometry_consistent,
       any_value(g.regular) AS slices_regular,
       bool_or(i.has_pixel_data) AS has_pixel_data,
       $run_id AS _run_id
FROM silver.imaging_instances i LEFT JOIN gap_stats g USING (series_uid)
WHERE i.series_uid IS NOT NULL
GROUP BY i.series_uid
"""


# ---- gold: pixel features and embeddings -------------------------------------------------------


class PixelError(Exception):
    """Pixels that cannot be decoded; the message names the transfer syntax, never values."""


def _syntax_name(uid) -> str:
    from pydicom.uid import UID

    return UID(str(uid)).name if uid else "unknown transfer syntax"


def decode_instance(data: bytes) -> tuple[np.ndarray, float | None, int | None, str | None]:
    """(values as float32 frames×rows×columns, slice location, instance number, modality).

    CT values are Hounsfield units (the modality LUT or rescale applied); colour images are
    averaged to one channel, which is all the generic intensity features need."""
    from pydicom.pixels import apply_modality_lut

    ds, _, _ = read_dicom(data, headers_only=False)
    # pydicom's warnings about odd values can quote them: none may reach a log.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        syntax = ds.file_meta.get("TransferSyntaxUID")
        if not any(tag in ds for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009)):
            raise PixelError("the instance has no pixel data")
        try:
            values = _inflate_frames(ds) if syntax == DEFLATED_FRAMES_TS else ds.pixel_array
            if int(ds.get("SamplesPerPixel", 1) or 1) > 1:
                values = values.mean(axis=-1)
            elif ds.get("PhotometricInterpretation") != "PALETTE COLOR":
                values = apply_modality_lut(values, ds)
        except BaseException as err:  # noqa: BLE001 - codecs raise many types, panics included
            # A Rust codec (pylibjpeg-rle) panics on corrupt data with pyo3's PanicException,
            # which is a BaseException: it would pass `except Exception` and stop the worker.
            if not isinstance(err, Exception) and type(err).__name__ != "PanicException":
                raise
            raise PixelError(
                f"pixels not decodable ({_syntax_name(syntax)}): {type(err).__name__}"
            ) from None
        values = np.asarray(values, dtype=np.float32)
        if int(ds.get("NumberOfFrames", 1) or 1) == 1 or values.ndim == 2:
            values = values.reshape((1, *values.shape[-2:]))
        location = instance_geometry(ds)["slice_location_mm"]
        number = ds.get("InstanceNumber")
        modality = ds.get("Modality")
    return values, location, int(number) if number not in (None, "") else None, modality


def _inflate_frames(ds) -> np.ndarray:
    """Pixels of the Deflated Image Frame Compression syntax (PS3.5 A.4.12, 2024), which
    pydicom 3.0.2 — the latest release — cannot decode: each frame is raw DEFLATE (RFC 1951)
    of the native frame. Written by hand because no maintained library decodes it yet."""
    import zlib

    from pydicom.encaps import generate_frames

    frames = int(ds.get("NumberOfFrames", 1) or 1)
    rows, columns = int(ds.Rows), int(ds.Columns)
    samples, bits = int(ds.get("SamplesPerPixel", 1) or 1), int(ds.BitsAllocated)
    out = []
    for frame in generate_frames(ds.PixelData, number_of_frames=frames):
        native = zlib.decompress(frame, -15)
        if bits == 1:
            values = np.unpackbits(np.frombuffer(native, np.uint8), bitorder="little")
        else:
            signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
            values = np.frombuffer(native, np.dtype(f"<{'i' if signed else 'u'}{bits // 8}"))
        out.append(values[: rows * columns * samples].reshape(rows, columns, samples))
    stacked = np.stack(out)
    return stacked[..., 0] if samples == 1 else stacked


# Within-slice connectivity: fill holes slice by slice, never through the slice above.
_IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
LESION_HISTOGRAM_HU = (-150.0, 250.0)
BODY_HISTOGRAM_HU = (-1000.0, 400.0)


def ct_lesion(hu: np.ndarray, voxel_mm: tuple[float, float, float]) -> dict | None:
    """The largest soft-tissue blob enclosed by lung, and its size, density and texture.

    Body = filled region above -500 HU; lung = air inside the body; the lesion = voxels above
    -300 HU that the lung encloses on their slice (a nodule, not the mediastinum or the wall).
    This is a segmentation for the phantom's anatomy and simple real chest CT, not a CAD system.
    """
    from scipy import ndimage

    body = ndimage.binary_fill_holes(hu > -500, structure=_IN_PLANE)
    lung = body & (hu < -500)
    enclosed = ndimage.binary_fill_holes(lung, structure=_IN_PLANE) & ~lung
    labels, count = ndimage.label(enclosed & (hu > -300))
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    lesion = labels == (int(np.argmax(sizes)) + 1)
    dz, dy, dx = voxel_mm
    area = lesion.sum(axis=(1, 2)) * dy * dx
    values = hu[lesion]
    # Grey-level contrast of horizontal neighbours inside the lesion (GLCM contrast, distance 1).
    pairs = lesion[:, :, 1:] & lesion[:, :, :-1]
    contrast = float(np.mean((hu[:, :, 1:] - hu[:, :, :-1])[pairs] ** 2)) if pairs.any() else 0.0
    histogram = np.histogram(values, bins=16, range=LESION_HISTOGRAM_HU)[0]
    p = histogram[histogram > 0] / histogram.sum()
    return {
        "lesion_volume_ml": float(lesion.sum() * dz * dy * dx / 1000.0),
        "lesion_diameter_mm": float(2 * np.sqrt(area.max() / np.pi)),
        "lesion_mean_hu": float(values.mean()),
        "lesion_sd_hu": float(values.std()),
        "lesion_contrast": contrast,
        "lesion_entropy": float(-(p * np.log2(p)).sum()),
        "lesion_extent_mm": float((area > 0).sum() * dz),
        "_values": values,
    }


def embedding(volume: np.ndarray, lesion: dict | None, is_ct: bool) -> list[float]:
    """A fixed 32-number descriptor of a series, unit length (see the README: hand-made, not
    learned): 12 lesion HU-histogram shares, 8 scaled lesion measures, 12 whole-volume
    intensity-histogram shares (HU for CT, percentile-normalized otherwise)."""
    vector = np.zeros(EMBEDDING_DIM, dtype=np.float64)
    if is_ct:
        whole = np.histogram(volume, bins=12, range=BODY_HISTOGRAM_HU)[0]
    else:
        low, high = np.percentile(volume, (1, 99))
        scaled = (volume - low) / (high - low) if high > low else np.zeros_like(volume)
        whole = np.histogram(scaled, bins=12, range=(0.0, 1.0))[0]
    vector[20:] = whole / max(whole.sum(), 1)
    if lesion is not None:
        shares = np.histogram(lesion["_values"], bins=12, range=LESION_HISTOGRAM_HU)[0]
        vector[:12] = shares / max(shares.sum(), 1)
        vector[12:20] = (
            1.0,
            lesion["lesion_diameter_mm"] / 50,
            np.log1p(lesion["lesion_volume_ml"]) / 4,
            lesion["lesion_mean_hu"] / 100,
            lesion["lesion_sd_hu"] / 40,
            np.log1p(lesion["lesion_contrast"]) / 8,
            lesion["lesion_entropy"] / 4,
            lesion["lesion_extent_mm"] / 50,
        )
    norm = np.linalg.norm(vector)
    return (vector / norm if norm else vector).astype(np.float32).tolist()


CHANGED_SINCE_INGEST = "the landed bytes are no longer those registered (changed after ingest)"


def series_features(files: list[dict], voxel_mm: tuple[float, float, float]) -> dict:
    """Pixel features of one series from its landed files (`path`, and the `sha256` the registry
    holds: bytes that changed since are left out, so gold describes what bronze holds), decoded
    here, in a worker process."""
    import hashlib
    from pathlib import Path

    decoded, errors = [], []
    for file in files:
        data = Path(file["path"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != file["sha256"]:
            errors.append(CHANGED_SINCE_INGEST)
            continue
        try:
            decoded.append(decode_instance(data))
        except (PixelError, QuarantineError) as err:
            errors.append(str(err))
        except Exception as err:  # noqa: BLE001 - one bad instance must not lose the series
            errors.append(f"pixels not decodable: {type(err).__name__}")
    out = {
        "instances_decoded": len(decoded),
        "instances_failed": len(errors),
        "pixel_error": errors[0] if errors else None,
    }
    if not decoded:
        no_pixels = all(e == "the instance has no pixel data" for e in errors)
        return {**out, "pixel_status": "no_pixels" if no_pixels else "not_decodable"}
    # Slices in patient order; instances of another shape (a localizer) are left out.
    shapes = [d[0].shape[1:] for d in decoded]
    common = max(set(shapes), key=shapes.count)
    decoded = sorted(
        (d for d in decoded if d[0].shape[1:] == common),
        key=lambda d: (d[1] is None, d[1] or 0.0, d[2] or 0),
    )
    volume = np.concatenate([d[0] for d in decoded])
    is_ct = decoded[0][3] == "CT"
    lesion = ct_lesion(volume, voxel_mm) if is_ct and volume.shape[0] >= 3 else None
    p05, p95 = np.percentile(volume, (5, 95))
    return {
        **out,
        "pixel_status": "partial" if errors else "ok",
        "intensity_units": "HU" if is_ct else "modality",
        "intensity_mean": float(volume.mean()),
        "intensity_sd": float(volume.std()),
        "intensity_p05": float(p05),
        "intensity_p95": float(p95),
        "lesion_found": (lesion is not None) if is_ct and volume.shape[0] >= 3 else None,
        **{k: v for k, v in (lesion or {}).items() if not k.startswith("_")},
        "embedding": embedding(volume, lesion, is_ct),
    }


def _feature(name: str, description: str, **bounds) -> Column:
    return Column(name, "DOUBLE", description, "sensitive", **bounds)


_LESION_COLUMNS = (
    Column(
        "lesion_found", "BOOLEAN", "A lesion was segmented (NULL: not a CT volume).", "sensitive"
    ),
    _feature("lesion_volume_ml", "Lesion volume (ml).", min_value=0),
    _feature("lesion_diameter_mm", "Largest in-plane equivalent diameter (mm).", min_value=0),
    _feature(
        "lesion_extent_mm", "Cranio-caudal extent: slices with lesion × spacing (mm).", min_value=0
    ),
    _feature("lesion_mean_hu", "Mean lesion density (HU).", min_value=-300, max_value=300),
    _feature("lesion_sd_hu", "Lesion heterogeneity: SD of HU.", min_value=0),
    _feature(
        "lesion_contrast", "GLCM contrast (distance 1, horizontal) inside the lesion.", min_value=0
    ),
    _feature("lesion_entropy", "Entropy (bits) of the lesion's 16-bin HU histogram.", min_value=0),
)
# Pixels are read from the landed files behind the instances (bronze.files gives their path).
_FROM_SERIES_PIXELS = (("silver.imaging_instances", "_source_sha256"),)

SERIES_FEATURES = Table(
    layer="gold",
    name="imaging_series_features",
    modality="imaging",
    asset_key=("imaging", "series_features"),
    primary_key=("series_uid",),
    description="Per series: pixel-decoding outcome, intensity statistics, CT lesion size, "
    f"density and texture, and a {EMBEDDING_DIM}-number embedding for similarity search.",
    columns=(
        _DEID_KEY,
        _new_uid_column("series_uid", "Series Instance UID", nullable=False),
        Column("modality", "VARCHAR", "Modality.", "none"),
        Column(
            "acquired_on",
            "DATE",
            "Study date (the true date: point-in-time joins).",
            "phi",
            "hipaa",
        ),
        Column(
            "instances_decoded", "INTEGER", "Instances whose pixels decoded.", "none", min_value=0
        ),
        Column(
            "instances_failed", "INTEGER", "Instances whose pixels did not.", "none", min_value=0
        ),
        Column(
            "pixel_status",
            "VARCHAR",
            "ok, partial (some instances failed), not_decodable or no_pixels.",
            "none",
            nullable=False,
            allowed=("ok", "partial", "not_decodable", "no_pixels"),
        ),
        Column("pixel_error", "VARCHAR", "Why pixels did not decode (first failure).", "none"),
        Column("intensity_units", "VARCHAR", "HU for CT, modality units otherwise.", "none"),
        _feature("intensity_mean", "Mean voxel value."),
        _feature("intensity_sd", "SD of voxel values.", min_value=0),
        _feature("intensity_p05", "5th percentile voxel value."),
        _feature("intensity_p95", "95th percentile voxel value."),
        *_LESION_COLUMNS,
        Column(
            "embedding",
            f"FLOAT[{EMBEDDING_DIM}]",
            "Unit-length hand-made descriptor (lesion and whole-volume histograms, lesion "
            "measures); NULL without decoded pixels.",
            "sensitive",
        ),
        Column("_run_id", "VARCHAR", "Dagster run that wrote this row.", "none"),
    ),
    lineage={
        "research_key": (("silver.imaging_series", "research_key"),),
        "series_uid": (("silver.imaging_series", "series_uid"),),
        "modality": (("silver.imaging_series", "modality"),),
        "acquired_on": (("silver.imaging_series", "study_date"),),
        **{
            c: _FROM_SERIES_PIXELS
            for c in (
                "instances_decoded",
                "instances_failed",
                "pixel_status",
                "pixel_error",
                "intensity_units",
                "intensity_mean",
                "intensity_sd",
                "intensity_p05",
                "intensity_p95",
                *(col.name for col in _LESION_COLUMNS),
                "embedding",
            )
        },
    },
)

# The files behind each series with pixel data, and the voxel size the features need.
SERIES_FILES_SQL = """
SELECT s.series_uid, s.research_key, s.modality, s.study_date,
       coalesce(s.slice_gap_mm, s.slice_thickness_mm, 1.0) AS dz,
       coalesce(s.pixel_spacing_mm[1], 1.0) AS dy, coalesce(s.pixel_spacing_mm[2], 1.0) AS dx,
       list({'path': f.path, 'sha256': f.sha256} ORDER BY i.slice_location_mm, i.instance_number)
           AS files
FROM silver.imaging_series s
JOIN silver.imaging_instances i USING (series_uid)
JOIN (SELECT sha256, min(path) AS path FROM bronze.files WHERE status = 'ingested'
      GROUP BY sha256) f ON f.sha256 = i._source_sha256
GROUP BY ALL
ORDER BY s.series_uid
"""

FEATURES = Table(
    layer="gold",
    name="imaging_features",
    modality="imaging",
    asset_key=("imaging", "imaging_features"),
    primary_key=("research_key",),
    description="One row per patient: the lesion on the latest CT acquired by the index date; "
    "measures are NULL (unknown) without one.",
    columns=(
        RESEARCH_KEY,
        Column(
            "has_imaging",
            "BOOLEAN",
            "A CT series with decoded pixels acquired by the index date.",
            "none",
            nullable=False,
        ),
        *_LESION_COLUMNS,
        Column(
            "ct_series_count",
            "INTEGER",
            "CT series with decoded pixels by the index date.",
            "none",
            min_value=0,
        ),
        Column(
            "imaging_data_through",
            "DATE",
            "Acquisition date of the series the features come from (point-in-time guard).",
            "phi",
            "hipaa",
        ),
        Column("_run_id", "VARCHAR", "Dagster run that wrote this row.", "none"),
    ),
    lineage={
        "research_key": (("gold.clinical_features", "research_key"),),
        "has_imaging": (
            ("gold.imaging_series_features", "acquired_on"),
            ("gold.clinical_features", "index_date"),
        ),
        **{c.name: (("gold.imaging_series_features", c.name),) for c in _LESION_COLUMNS},
        "ct_series_count": (("gold.imaging_series_features", "series_uid"),),
        "imaging_data_through": (("gold.imaging_series_features", "acquired_on"),),
    },
)

_LESION_NAMES = ", ".join(f"e.{c.name}" for c in _LESION_COLUMNS)
FEATURES_SQL = f"""
WITH eligible AS (
    SELECT f.*, count(*) OVER (PARTITION BY f.research_key) AS ct_series_count,
           row_number() OVER (PARTITION BY f.research_key
                              ORDER BY f.acquired_on DESC, f.lesion_found DESC NULLS LAST,
                                       f.series_uid) AS latest
    FROM gold.imaging_series_features f
    JOIN gold.clinical_features c USING (research_key)
    WHERE f.modality = 'CT' AND f.pixel_status IN ('ok', 'partial')
      AND f.acquired_on <= c.index_date
)
SELECT c.research_key, e.research_key IS NOT NULL AS has_imaging, {_LESION_NAMES},
       coalesce(e.ct_series_count, 0)::INTEGER AS ct_series_count,
       e.acquired_on AS imaging_data_through, $run_id AS _run_id
FROM gold.clinical_features c
LEFT JOIN eligible e ON e.research_key = c.research_key AND e.latest = 1
"""

TABLES = (DICOM_INSTANCES, INSTANCES, SERIES, SERIES_FEATURES, FEATURES)
