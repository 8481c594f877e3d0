"""DICOM files into bronze instance rows: headers read with pydicom, what is missing or cut short said exactly."""

from __future__ import annotations

import contextlib
import gzip
import io
import struct
import warnings
from datetime import date

from ..platform.ingest import QuarantineError
from .bronze import _ASCII_VRS, _PIXEL_TAG_BYTES, _PIXEL_VRS, _TEXT_VRS, DEFLATED_TS, GZIP_MAGIC


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
