"""Whole-chunk file I/O for the store's own local zarr v3 arrays.

zarr-python spends about a millisecond of event-loop and indexing machinery on every
``array[t] = frame``; at video rates that, not compression, is the cost. The writer therefore
encodes whole chunks itself and writes them where zarr would, exactly as zarr's local store
does (a temporary file renamed over the chunk, so a reader or a ``kill -9`` never sees half a
chunk). Only the layouts the store creates are handled (``bytes`` little-endian, optionally
followed by ``zstd``; the ``default`` chunk key encoding); :class:`ChunkIO` refuses anything
else, and callers then go through zarr.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np

try:  # releases the GIL, so chunks of several frames compress in parallel
    import imagecodecs as _imagecodecs

    if not hasattr(_imagecodecs, "zstd_encode"):  # pragma: no cover - built without zstd
        _imagecodecs = None
except ImportError:  # pragma: no cover - optional
    _imagecodecs = None


class UnsupportedChunkLayout(Exception):
    """The array uses codecs or a key encoding that :class:`ChunkIO` does not write."""


def zstd_encode(data: np.ndarray, level: int) -> bytes:
    if _imagecodecs is not None:
        return _imagecodecs.zstd_encode(data, level=level)
    from numcodecs import Zstd

    return Zstd(level=level).encode(data)


def zstd_decode(data: bytes) -> bytes:
    if _imagecodecs is not None:
        return _imagecodecs.zstd_decode(data)
    from numcodecs import Zstd

    return Zstd().decode(data)


class ChunkIO:
    """Encode, write, read and delete whole chunks of one local zarr v3 array."""

    def __init__(self, array_dir: str | Path):
        self.dir = Path(array_dir)
        meta = json.loads((self.dir / "zarr.json").read_text())
        self.shape = tuple(meta["shape"])
        self.chunk_shape = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
        key = meta.get("chunk_key_encoding", {"name": "default"})
        if key.get("name") != "default":
            raise UnsupportedChunkLayout(f"chunk key encoding {key}")
        self.separator = key.get("configuration", {}).get("separator", "/")
        codecs = meta["codecs"]
        if not codecs or codecs[0]["name"] != "bytes":
            raise UnsupportedChunkLayout(f"codecs {codecs}")
        if codecs[0].get("configuration", {}).get("endian", "little") != "little":
            raise UnsupportedChunkLayout("big-endian chunks")
        self.zstd_level: int | None = None
        if len(codecs) == 2 and codecs[1]["name"] == "zstd":
            config = codecs[1].get("configuration", {})
            if config.get("checksum"):
                raise UnsupportedChunkLayout("zstd with checksum")
            self.zstd_level = int(config.get("level", 0))
        elif len(codecs) != 1:
            raise UnsupportedChunkLayout(f"codecs {codecs}")
        self.dtype = np.dtype(meta["data_type"]).newbyteorder("<")
        fill = meta["fill_value"]
        self.fill = np.nan if fill == "NaN" else fill

    def path(self, coords: tuple[int, ...]) -> Path:
        if self.separator == "/":
            return self.dir.joinpath("c", *map(str, coords))
        return self.dir / self.separator.join(["c", *map(str, coords)])

    def encode(self, chunk: np.ndarray) -> bytes:
        """The stored bytes of a chunk of exactly ``chunk_shape``."""
        data = np.ascontiguousarray(chunk, dtype=self.dtype)
        if data.shape != self.chunk_shape:
            raise ValueError(f"chunk of shape {data.shape}, expected {self.chunk_shape}")
        if self.zstd_level is None:
            return data.tobytes()
        return zstd_encode(data.view(np.uint8).reshape(-1), self.zstd_level)

    def decode(self, raw: bytes) -> np.ndarray:
        if self.zstd_level is not None:
            raw = zstd_decode(raw)
        return np.frombuffer(raw, dtype=self.dtype).reshape(self.chunk_shape).copy()

    def write(self, coords: tuple[int, ...], data: bytes | None) -> None:
        """Replace a chunk atomically; ``None`` deletes it (the array's fill value)."""
        path = self.path(coords)
        if data is None:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            return
        tmp = path.parent / f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial"
        try:
            f = open(tmp, "wb")
        except FileNotFoundError:  # first chunk in this folder
            path.parent.mkdir(parents=True, exist_ok=True)
            f = open(tmp, "wb")
        with f:
            f.write(data)
        os.replace(tmp, path)

    def read(self, coords: tuple[int, ...]) -> np.ndarray | None:
        """The chunk, or ``None`` where it is not stored (all fill value)."""
        try:
            raw = self.path(coords).read_bytes()
        except FileNotFoundError:
            return None
        return self.decode(raw)

    def exists(self, coords: tuple[int, ...]) -> bool:
        return self.path(coords).is_file()
