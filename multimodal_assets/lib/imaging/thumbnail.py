"""A key-slice thumbnail of a CT series: the slice where the lesion is largest, lung-windowed,
with the lesion outlined, as PNG bytes. Only pixels are drawn: no header value reaches it."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .pixels import ct_lesion, decode_instance, stacked_volume

WINDOW_HU = (-1000.0, 400.0)  # lung to soft tissue
OUTLINE_RGB = (255, 64, 64)


def key_slice_png(paths: list[Path], voxel_mm: tuple[float, float, float], size: int = 256):
    """(PNG bytes, lesion diameter on the slice in mm) of the series' key slice, or None when
    the series does not decode or has no lesion."""
    from PIL import Image
    from scipy import ndimage

    decoded = []
    for path in paths:
        try:
            decoded.append(decode_instance(path.read_bytes()))
        except Exception:  # noqa: BLE001 - a slice that does not decode is left out of the picture
            continue
    if len(decoded) < 3:
        return None
    volume, is_ct = stacked_volume(decoded)
    lesion = ct_lesion(volume, voxel_mm) if is_ct else None
    if lesion is None:
        return None
    mask = lesion["_mask"]
    area = mask.sum(axis=(1, 2))
    z = int(np.argmax(area))
    low, high = WINDOW_HU
    grey = (np.clip((volume[z] - low) / (high - low), 0, 1) * 255).astype(np.uint8)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    edge = mask[z] & ~ndimage.binary_erosion(mask[z])
    rgb[edge] = OUTLINE_RGB
    image = Image.fromarray(rgb).resize((size, size), Image.NEAREST)
    out = io.BytesIO()
    image.save(out, format="PNG")
    _, dy, dx = voxel_mm
    return out.getvalue(), float(2 * np.sqrt(area[z] * dy * dx / np.pi))
