"""Imaging bronze: one row per DICOM instance, its identified header."""

from __future__ import annotations

import struct

from ..platform.tables import Column, Table, provenance_columns

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
