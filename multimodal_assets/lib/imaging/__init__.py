"""Imaging modality: DICOM files into bronze instance headers (identified), silver de-identified
instances and series (Annex E, see `deid.py`), gold per-series pixel features with a
fixed-length embedding, and per-patient imaging features as of the index date.

Bronze reads headers only (`stop_before_pixels`) and keeps the header bytes, so silver can
de-identify every element without touching landing again; pixels are decoded once, for gold.

Modules: `bronze` (the instance header table), `dicom` (DICOM reader (pydicom)), `silver` (de-
identified instances and series and their SQL), `pixels` (pixel decoding, CT lesion, embedding),
`gold` (gold series and patient features and their SQL).
"""

from .bronze import (
    CT_IMAGE_STORAGE,
    DEFLATED_FRAMES_TS,
    DEFLATED_TS,
    DICOM_INSTANCES,
    EMBEDDING_DIM,
    GZIP_MAGIC,
)
from .dicom import parse_dicom_file, read_dicom
from .gold import FEATURES, SERIES_FEATURES, SERIES_FILES_SQL
from .pixels import (
    BODY_HISTOGRAM_HU,
    CHANGED_SINCE_INGEST,
    LESION_HISTOGRAM_HU,
    PixelError,
    _syntax_name,
    ct_lesion,
    decode_instance,
    embedding,
    series_features,
)
from .silver import INSTANCES, SERIES, deidentified_instance, instance_geometry

TABLES = (DICOM_INSTANCES, INSTANCES, SERIES, SERIES_FEATURES, FEATURES)

__all__ = [
    "BODY_HISTOGRAM_HU",
    "CHANGED_SINCE_INGEST",
    "CT_IMAGE_STORAGE",
    "DEFLATED_FRAMES_TS",
    "DEFLATED_TS",
    "DICOM_INSTANCES",
    "EMBEDDING_DIM",
    "FEATURES",
    "GZIP_MAGIC",
    "INSTANCES",
    "LESION_HISTOGRAM_HU",
    "PixelError",
    "SERIES",
    "SERIES_FEATURES",
    "SERIES_FILES_SQL",
    "TABLES",
    "_syntax_name",
    "ct_lesion",
    "decode_instance",
    "deidentified_instance",
    "embedding",
    "instance_geometry",
    "parse_dicom_file",
    "read_dicom",
    "series_features",
]
