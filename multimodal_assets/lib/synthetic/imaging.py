"""Chest CT series as DICOM files (CT Image Storage), one or more per study, for the patients with
imaging.

Each series is a stack of axial slices of a body phantom: soft tissue, two lungs and one lesion
whose diameter, mean density and heterogeneity come from the latent phenotype (lesion diameter,
density and texture). Pixels are int16 with a rescale slope/intercept that varies by site. The
header carries PHI as real scanners write it (name, MRN, birth date, institution, dates, accession
number and a private block with an identifier): the de-identification in silver has real work.
About a tenth of the series are RLE Lossless. Accidents: a file cut inside its pixel data, a file
of noise with a .dcm name, and a whole series delivered twice.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from .files import batch_folder, write_delivered

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
FIELD_OF_VIEW_MM = 360.0
SLICE_THICKNESS_MM = 5.0
# Largest lesion the phantom's lung can hold whole; the latent diameter is clipped to it.
MAX_RENDERED_DIAMETER_MM = 100.0
INSTITUTIONS = {
    "site_a": "Riverside University Hospital",
    "site_b": "Northgate Cancer Center",
    "site_c": "St. Brendan Community Hospital",
}
# Sites' scanners store HU differently: unsigned-style offset, plain signed, half-HU steps.
RESCALE = {"site_a": (1.0, -1024.0), "site_b": (1.0, 0.0), "site_c": (0.5, -1024.0)}
RLE_SHARE = 0.1
FOLLOW_UP_SHARE = 0.3
SECOND_SERIES_SHARE = 0.1


def _uid(rng: np.random.Generator) -> str:
    """A UUID-derived UID (PS3.5 B.2): '2.25.' and a 128-bit integer."""
    return "2.25." + str(int.from_bytes(rng.bytes(16), "big"))


def phantom_hu(
    matrix: int,
    slices: int,
    diameter_mm: float,
    density_hu: float,
    texture: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, float]:
    """A (slices, matrix, matrix) HU volume and the lesion diameter actually rendered."""
    from scipy import ndimage

    spacing = FIELD_OF_VIEW_MM / matrix
    centre = (np.arange(matrix) + 0.5) * spacing - FIELD_OF_VIEW_MM / 2
    x = centre[None, :]
    y = centre[:, None]
    # The body and lungs are the same on every slice: draw one slice and repeat it.
    plane = np.where((x / 170) ** 2 + (y / 125) ** 2 <= 1, 40.0, -1000.0)
    lung_x, lung_a, lung_b = 78.0, 66.0, 100.0
    for sx in (-1, 1):
        plane[((x - sx * lung_x) / lung_a) ** 2 + (y / lung_b) ** 2 <= 1] = -850.0
    hu = np.repeat(plane[None].astype(np.float32), slices, axis=0)
    rendered = float(np.clip(diameter_mm, 5.0, MAX_RENDERED_DIAMETER_MM))
    radius = rendered / 2
    # Keep the lesion inside its lung with a margin of two pixels.
    room_x = max(lung_a - radius - 2 * spacing, 0.0)
    room_y = max(lung_b - radius - 2 * spacing, 0.0)
    cx = rng.choice((-1, 1)) * lung_x + rng.uniform(-room_x, room_x) * 0.5
    cy = rng.uniform(-room_y, room_y) * 0.5
    cz = rng.uniform(-1, 1) * SLICE_THICKNESS_MM
    z = (np.arange(slices) - (slices - 1) / 2) * SLICE_THICKNESS_MM
    lesion = ((x[None] - cx) ** 2 + (y[None] - cy) ** 2 + (z[:, None, None] - cz) ** 2) <= radius**2
    # Heterogeneity (the latent texture) is smoothed noise, drawn only around the lesion: over
    # its box with a margin, then centred and scaled to unit spread. Scaled on the lesion's own
    # box, a lesion of a few voxels got a nearly constant pattern divided by its tiny spread:
    # 5-mm lesions came out at 300 to 2,800 HU (the 10,000-patient range-check failures).
    box = ndimage.find_objects(lesion.astype(np.int8))
    if box:
        region = tuple(slice(max(s.start - 3, 0), s.stop + 3) for s in box[0])
        pattern = ndimage.gaussian_filter(
            rng.normal(0, 1, lesion[region].shape), sigma=(0.6, 1.2, 1.2)
        )
        pattern = (pattern - pattern.mean()) / pattern.std()
        heterogeneity = 12.0 * np.exp(0.45 * texture)
        hu[region][lesion[region]] = (density_hu + heterogeneity * pattern)[lesion[region]]
    hu += 10 * rng.standard_normal(hu.shape, dtype=np.float32)  # scanner noise everywhere
    return np.clip(hu, -1024, 3071), rendered


def _series_template(p: dict, study: dict, series: dict, matrix: int):
    """The header every slice of a series shares; `_slice_bytes` sets the per-slice elements."""
    from pydicom.dataset import Dataset, FileMetaDataset

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = study["date_text"]
    ds.StudyTime = ds.SeriesTime = study["time_text"]
    ds.AccessionNumber = study["accession"]
    ds.Modality = "CT"
    ds.Manufacturer = "SYNTHETIC"
    ds.InstitutionName = INSTITUTIONS[p["site"]]
    ds.ReferringPhysicianName = study["referrer"]
    ds.StudyDescription = "CT CHEST WITH CONTRAST"
    ds.SeriesDescription = series["description"]
    ds.PatientName = f"{p['family_name']}^{p['given_name']}"
    ds.PatientID = p["mrn"]
    ds.PatientBirthDate = p["birth_date"].strftime("%Y%m%d")
    ds.PatientSex = "F" if p["sex"] == "female" else "M"
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = SLICE_THICKNESS_MM
    ds.KVP = 120
    ds.ConvolutionKernel = series["kernel"]
    ds.PatientPosition = "FFS"
    ds.StudyInstanceUID = study["uid"]
    ds.SeriesInstanceUID = series["uid"]
    ds.StudyID = study["study_id"]
    ds.SeriesNumber = series["number"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = study["frame_uid"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = matrix
    spacing = round(FIELD_OF_VIEW_MM / matrix, 6)
    ds.PixelSpacing = [spacing, spacing]
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope, ds.RescaleIntercept = series["rescale"]
    ds.RescaleType = "HU"
    ds.WindowCenter, ds.WindowWidth = 40, 400
    # A vendor's private block that carries an identifier: Annex E drops private tags.
    block = ds.private_block(0x0009, "SYNTHETIC_SCANNER", create=True)
    block.add_new(0x01, "LO", f"{p['mrn']}|{study['accession']}")
    return ds


# Elements that differ between the slices of a series, in tag order; everything else in the
# header is encoded once per series (pydicom's writer costs ~3 ms a file, most of it on them).
_PER_SLICE_TAGS = (0x00080018, 0x00200013, 0x00200032, 0x00201041, 0x7FE00010)


def _encoded(ds) -> bytes:
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds)
    return fp.getvalue()


def _constant_segments(template) -> list[bytes]:
    """The template's elements encoded as bytes, cut at each per-slice element's place."""
    from pydicom.dataset import Dataset

    bounds = (0, *_PER_SLICE_TAGS, 0xFFFFFFFF)
    segments = []
    for low, high in zip(bounds, bounds[1:], strict=False):
        part = Dataset()
        for element in template:
            if low < element.tag < high:
                part.add(element)
        segments.append(_encoded(part))
    return segments


def _slice_bytes(segments, sop_uid: str, index: int, z_mm: float, pixels, rle: bool) -> bytes:
    """One slice's file: preamble, file meta, and the series' segments around this slice's
    UID, instance number, position and pixels."""
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_file_meta_info
    from pydicom.pixels.encoders import RLELosslessEncoder
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = RLELossless if rle else ExplicitVRLittleEndian
    head = DicomBytesIO()
    head.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(head, meta)
    half = FIELD_OF_VIEW_MM / 2
    values = Dataset()
    values.SOPInstanceUID = sop_uid
    values.InstanceNumber = index + 1
    values.ImagePositionPatient = [-half, -half, round(z_mm, 3)]
    values.SliceLocation = round(z_mm, 3)
    if rle:
        frame = RLELosslessEncoder.encode(
            pixels,
            rows=pixels.shape[0],
            columns=pixels.shape[1],
            samples_per_pixel=1,
            bits_allocated=16,
            bits_stored=16,
            pixel_representation=1,
            photometric_interpretation="MONOCHROME2",
            number_of_frames=1,
        )
        values.add(DataElement(0x7FE00010, "OB", encapsulate([frame]), is_undefined_length=True))
    else:
        values.add(DataElement(0x7FE00010, "OW", pixels.astype("<i2").tobytes()))
    parts = [head.getvalue(), segments[0]]
    for tag, segment in zip(_PER_SLICE_TAGS, segments[1:], strict=True):
        single = Dataset()
        single.add(values[tag])
        parts += [_encoded(single), segment]
    return b"".join(parts)


def _studies(p: dict, rng: np.random.Generator) -> list[dict]:
    """A baseline CT shortly before the index date; for some patients a follow-up after it."""
    index_date = p["index_date"]
    days = [-int(rng.integers(3, 46))]
    if rng.random() < FOLLOW_UP_SHARE:
        days.append(int(rng.integers(60, 200)))
    studies = []
    for k, offset in enumerate(days):
        growth = 1.0 if offset < 0 else (1.3 if p["label"] else 0.95)
        day = index_date + timedelta(days=offset)
        studies.append(
            {
                "date": day,
                "date_text": day.strftime("%Y%m%d"),
                "time_text": f"{int(rng.integers(7, 19)):02d}{int(rng.integers(0, 60)):02d}00",
                "uid": _uid(rng),
                "frame_uid": _uid(rng),
                "accession": f"A{int(rng.integers(10**8, 10**9))}",
                "study_id": str(k + 1),
                "referrer": f"{rng.choice(('Okafor', 'Lindqvist', 'Haddad'))}^Dana",
                "diameter_mm": p["lesion_diameter_mm"] * growth,
            }
        )
    return studies


def render_imaging(
    cohort: pd.DataFrame, seed: int, landing: Path, slices: int = 16, matrix: int = 128
) -> tuple[list[dict], list[dict]]:
    """Write every imaged patient's CT series under landing/; returns (deliveries, series truth)."""
    rng_accidents = np.random.default_rng([seed, 40])
    deliveries: list[dict] = []
    truth: list[dict] = []
    imaged = [p for p in cohort.to_dict("records") if p["has_imaging"]]
    accidents = rng_accidents.choice(len(imaged), size=min(3, len(imaged)), replace=False)
    truncated, resent, noise_after = (list(accidents) + [None, None, None])[:3]
    for i, p in enumerate(imaged):
        rng = np.random.default_rng([seed, 41, i])
        for study in _studies(p, rng):
            series_list = [("STANDARD", "AXIAL 5MM SOFT TISSUE")]
            if rng.random() < SECOND_SERIES_SHARE:
                series_list.append(("LUNG", "AXIAL 5MM LUNG"))
            delivered = study["date"] + timedelta(days=int(rng.integers(1, 5)))
            folder = landing / batch_folder(delivered) / study["accession"]
            for number, (kernel, description) in enumerate(series_list, start=1):
                hu, rendered = phantom_hu(
                    matrix,
                    slices,
                    study["diameter_mm"],
                    p["lesion_density_hu"],
                    p["lesion_texture"],
                    rng,
                )
                slope, intercept = RESCALE[p["site"]]
                series = {
                    "uid": _uid(rng),
                    "number": number,
                    "kernel": kernel,
                    "description": description,
                    "rescale": (slope, intercept),
                    "sop_uids": [_uid(rng) for _ in range(slices)],
                }
                stored = np.round((hu - intercept) / slope).astype(np.int16)
                rle = bool(rng.random() < RLE_SHARE)
                z0 = -(slices - 1) / 2 * SLICE_THICKNESS_MM
                segments = _constant_segments(_series_template(p, study, series, matrix))
                for k in range(slices):
                    z_mm = z0 + k * SLICE_THICKNESS_MM
                    data = _slice_bytes(segments, series["sop_uids"][k], k, z_mm, stored[k], rle)
                    path = folder / f"S{number}" / f"IM{k + 1:04d}.dcm"
                    kind = "instance"
                    if i == truncated and k == slices // 2:
                        truncated = None  # one file cut short is enough
                        data, kind = data[: len(data) - len(data) // 3], "truncated_pixels"
                    write_delivered(path, data, delivered)
                    deliveries.append(_delivery(path, landing, kind, "ingested", p, delivered))
                if i == resent and number == 1:
                    again = delivered + timedelta(days=7)
                    copy = landing / batch_folder(again) / f"{study['accession']}-resend"
                    for k in range(slices):
                        src = folder / f"S{number}" / f"IM{k + 1:04d}.dcm"
                        dst = copy / f"S{number}" / src.name
                        write_delivered(dst, src.read_bytes(), again)
                        deliveries.append(_delivery(dst, landing, "resend", "duplicate", p, again))
                truth.append(
                    {
                        "mrn": p["mrn"],
                        "study_instance_uid": study["uid"],
                        "series_instance_uid": series["uid"],
                        "study_date": study["date"],
                        "after_index_date": study["date"] > p["index_date"],
                        "slices": slices,
                        "rle": rle,
                        "lesion_diameter_mm": rendered,
                        "lesion_density_hu": float(p["lesion_density_hu"]),
                        "lesion_texture": float(p["lesion_texture"]),
                    }
                )
            if i == noise_after:
                junk = folder / "S9" / "IM0001.dcm"
                write_delivered(junk, rng.bytes(4096), delivered)
                deliveries.append(_delivery(junk, landing, "noise", "quarantined", None, delivered))
    return deliveries, truth


def _delivery(path: Path, landing: Path, kind: str, expected: str, p, day: date) -> dict:
    return {
        "path": path.relative_to(landing.parent).as_posix(),
        "kind": kind,
        "expected_status": expected,
        "mrn": p["mrn"] if p else None,
        "delivered_on": day,
    }
