"""COCO RLE (column-major, via pycocotools) and CVAT's row-major RLE inside a box."""

from __future__ import annotations

import numpy as np


def coco_encode(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def coco_decode(rle: dict) -> np.ndarray:
    from pycocotools import mask as mask_utils

    if isinstance(rle.get("counts"), list):  # uncompressed RLE
        h, w = rle["size"]
        rle = mask_utils.frPyObjects(rle, h, w)
    elif isinstance(rle.get("counts"), str):
        rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


def bbox_xywh(mask: np.ndarray) -> list[int] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


def cvat_encode(mask: np.ndarray) -> tuple[str, int, int, int, int]:
    """CVAT's mask RLE: run lengths over the bounding box read row by row, starting with a
    (possibly empty) run of background. Returns ``(rle, left, top, width, height)``."""
    x, y, w, h = bbox_xywh(mask)
    flat = mask[y : y + h, x : x + w].ravel()
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs = [0, *runs]
    return ", ".join(map(str, runs)), x, y, w, h


def cvat_decode(rle: str, left: int, top: int, width: int, height: int, shape) -> np.ndarray:
    runs = np.array([int(v) for v in rle.replace(",", " ").split()], dtype=np.int64)
    values = np.arange(runs.size) % 2 == 1
    flat = np.repeat(values, runs)
    if flat.size != width * height:
        raise ValueError(f"CVAT rle has {flat.size} pixels for a {width}x{height} box")
    out = np.zeros(shape, bool)
    out[top : top + height, left : left + width] = flat.reshape(height, width)
    return out


def coco_counts(counts: str) -> list[int]:
    """The run lengths of a compressed COCO RLE string; ``ValueError`` if it is malformed."""
    out: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise ValueError("the RLE string ends inside a number (truncated?)")
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"character {counts[p]!r} is not part of a COCO RLE string")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def checked_rle(rle, height: int, width: int, where: str) -> dict:
    """``rle`` if it is a COCO RLE of a ``height`` x ``width`` mask; ``ValueError`` naming ``where`` if not."""
    if not isinstance(rle, dict) or "size" not in rle or "counts" not in rle:
        raise ValueError(f"{where}: an RLE must be an object with 'size' and 'counts'")
    size = rle["size"]
    if not (isinstance(size, list) and len(size) == 2 and [type(v) for v in size] == [int, int]):
        raise ValueError(f"{where}: RLE size must be [height, width]")
    if tuple(size) != (height, width):
        raise ValueError(f"{where}: RLE size {size} differs from the video's {[height, width]}")
    counts = rle["counts"]
    if isinstance(counts, str):
        runs = coco_counts(counts)
    elif isinstance(counts, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in counts):
        runs = counts
    else:
        raise ValueError(f"{where}: RLE counts must be a string or a list of integers")
    if any(r < 0 for r in runs) or sum(runs) != height * width:
        raise ValueError(f"{where}: RLE covers {sum(runs)} pixels, not {height}x{width} (damaged or truncated)")
    return rle


def json_int(value, where: str, minimum: int = 0, *, integral_float: bool = False) -> int:
    """A JSON integer (not a bool, float or string); ``ValueError`` naming ``where`` if not.

    With ``integral_float`` a float with no fraction (``848.0``, as some formats' own tools
    write counts) is taken as that integer."""
    if integral_float and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{where} must be an integer of at least {minimum}, not {value!r:.40}")
    return value
