"""Imaging silver: de-identified instances (Annex E, see `deid.py`) with their geometry, and
series."""

from __future__ import annotations

import io
import warnings
from datetime import timedelta

import numpy as np

from ..platform.tables import RUN_ID, Column, RuleCheck, Table, provenance_columns

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
    checks=(
        RuleCheck(
            "instances_mapped_to_patients",
            "Every instance's Patient ID is the MRN of a known patient.",
            "SELECT count(*) FROM silver.imaging_instances WHERE NOT linked_to_patient",
        ),
    ),
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

    from ..governance.pseudonym import date_shift_days, research_key
    from . import deid as dicom_deid

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


SERIES = Table(
    layer="silver",
    name="imaging_series",
    modality="imaging",
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
        RUN_ID,
    ),
    build_sql=SERIES_SQL,
    checks=(
        RuleCheck(
            "geometry_sane",
            "CT series: one geometry across instances, positive pixel spacing, slices regularly "
            "spaced with no two at one location.",
            "SELECT count(*) FROM silver.imaging_series WHERE modality = 'CT' AND instances > 1 "
            "AND (NOT geometry_consistent OR NOT coalesce(slices_regular, false) "
            "OR pixel_spacing_mm[1] <= 0 OR pixel_spacing_mm[2] <= 0)",
        ),
    ),
)
