"""Pixels of a series: decoded with pydicom's codecs, the CT lesion measured, a fixed-length embedding."""

from __future__ import annotations

import warnings

import numpy as np

from ..platform.ingest import QuarantineError
from .bronze import DEFLATED_FRAMES_TS, EMBEDDING_DIM
from .dicom import read_dicom
from .silver import instance_geometry

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
        "_mask": lesion,
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


def stacked_volume(decoded: list[tuple]) -> tuple[np.ndarray, bool]:
    """(volume, is CT) of decoded instances: slices in patient order, instances of another
    shape than most (a localizer) left out."""
    shapes = [d[0].shape[1:] for d in decoded]
    common = max(set(shapes), key=shapes.count)
    decoded = sorted(
        (d for d in decoded if d[0].shape[1:] == common),
        key=lambda d: (d[1] is None, d[1] or 0.0, d[2] or 0),
    )
    return np.concatenate([d[0] for d in decoded]), decoded[0][3] == "CT"


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
    volume, is_ct = stacked_volume(decoded)
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
