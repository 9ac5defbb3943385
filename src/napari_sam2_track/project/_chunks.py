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

try:  # a compression context kept per thread: a frame's many small tiles cost ~1 us each, not
    # the ~20 us of setting up a context per call; releases the GIL like imagecodecs
    import zstandard as _zstandard
except ImportError:  # pragma: no cover - optional
    _zstandard = None
try:  # releases the GIL, so chunks of several frames compress in parallel
    import imagecodecs as _imagecodecs

    if not hasattr(_imagecodecs, "zstd_encode"):  # pragma: no cover - built without zstd
        _imagecodecs = None
except ImportError:  # pragma: no cover - optional
    _imagecodecs = None

_local = threading.local()


class UnsupportedChunkLayout(Exception):
    """The array uses codecs or a key encoding that :class:`ChunkIO` does not write."""


def zstd_encode(data: np.ndarray, level: int) -> bytes:
    """One zstd frame (content size in the header, no checksum) of a contiguous array."""
    if _zstandard is not None:
        compressors = getattr(_local, "zstd", None)
        if compressors is None:
            compressors = _local.zstd = {}
        compressor = compressors.get(level)
        if compressor is None:
            compressor = compressors[level] = _zstandard.ZstdCompressor(level=level)
        return compressor.compress(data)
    if _imagecodecs is not None:
        return _imagecodecs.zstd_encode(data, level=level)
    from numcodecs import Zstd

    return Zstd(level=level).encode(data)


def zstd_decode(data: bytes, out: bytearray | None = None) -> bytes | bytearray:
    """Decompressed ``data``; into ``out`` (of the decompressed size) if given."""
    if _imagecodecs is not None:
        return _imagecodecs.zstd_decode(data, out=out)
    from numcodecs import Zstd

    return Zstd().decode(data, out=out)


class ChunkFiles:
    """The chunk files of one local zarr v3 array: paths, atomic replacement, deletion."""

    def __init__(self, array_dir: str | Path):
        self.dir = Path(array_dir)
        self.meta = json.loads((self.dir / "zarr.json").read_text())
        key = self.meta.get("chunk_key_encoding", {"name": "default"})
        if key.get("name") != "default":
            raise UnsupportedChunkLayout(f"chunk key encoding {key}")
        self.separator = key.get("configuration", {}).get("separator", "/")

    def path(self, coords: tuple[int, ...]) -> Path:
        if self.separator == "/":
            return self.dir.joinpath("c", *map(str, coords))
        return self.dir / self.separator.join(["c", *map(str, coords)])

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

    def exists(self, coords: tuple[int, ...]) -> bool:
        return self.path(coords).is_file()


class ChunkIO(ChunkFiles):
    """Encode, write, read and delete whole chunks of one local zarr v3 array."""

    def __init__(self, array_dir: str | Path):
        super().__init__(array_dir)
        meta = self.meta
        self.shape = tuple(meta["shape"])
        self.chunk_shape = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
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

    def encode(self, chunk: np.ndarray) -> bytes:
        """The stored bytes of a chunk of exactly ``chunk_shape``."""
        data = np.ascontiguousarray(chunk, dtype=self.dtype)
        if data.shape != self.chunk_shape:
            raise ValueError(f"chunk of shape {data.shape}, expected {self.chunk_shape}")
        if self.zstd_level is None:
            return data.tobytes()
        return zstd_encode(data, self.zstd_level)

    def decode(self, raw: bytes, out: bytearray | None = None) -> np.ndarray:
        if self.zstd_level is None:
            out = None
        else:
            raw = zstd_decode(raw, out)
        chunk = np.frombuffer(raw, dtype=self.dtype).reshape(self.chunk_shape)
        return chunk if out is not None else chunk.copy()

    def write_rows(self, coords: tuple[int, ...], lead: tuple[int, ...],
                   rows: list[tuple[int, list[float]]]) -> bool:
        """Overwrite rows ``[*lead, r, :len(values)]`` of a stored uncompressed chunk in place;
        ``False`` (nothing written) where the chunk is compressed or not stored.

        Each row is one ``pwrite`` of its bytes: no read, no rewrite of the chunk and no file
        replaced (replacing a file on ext4 starts writing the new one out at once). A
        ``kill -9`` cannot cut a row written this way; rows not yet written keep their values.
        """
        if self.zstd_level is not None:
            return False
        try:
            fd = os.open(self.path(coords), os.O_WRONLY)
        except FileNotFoundError:
            return False
        try:
            if os.fstat(fd).st_size != self.dtype.itemsize * int(np.prod(self.chunk_shape)):
                return False
            for r, values in rows:
                start = np.ravel_multi_index((*lead, r, 0), self.chunk_shape) * self.dtype.itemsize
                os.pwrite(fd, np.asarray(values, self.dtype).tobytes(), start)
        finally:
            os.close(fd)
        return True

    def read(self, coords: tuple[int, ...], out: bytearray | None = None) -> np.ndarray | None:
        """The chunk, or ``None`` where it is not stored (all fill value).

        ``out``: a buffer of the chunk's size in bytes to decode into (sparing the page faults
        of a fresh array); a compressed chunk is then returned as a view of it.
        """
        try:
            raw = self.path(coords).read_bytes()
        except FileNotFoundError:
            return None
        return self.decode(raw, out)


_EMPTY_TILES: dict[tuple, bytes] = {}


class ShardIO(ChunkFiles):
    """Writes whole shards (one per frame) of a local zarr v3 array with ``sharding_indexed``.

    Only the inner chunks (tiles) that hold non-zero values are stored, so a frame's layer
    costs in proportion to its pixels, not to the frame. Inner chunks: ``bytes`` + ``zstd``;
    index: ``bytes`` (+ ``crc32c``) at the end, as zarr writes it.
    """

    EMPTY = np.uint64(2**64 - 1)

    def __init__(self, array_dir: str | Path):
        super().__init__(array_dir)
        meta = self.meta
        codecs = meta["codecs"]
        if len(codecs) != 1 or codecs[0]["name"] != "sharding_indexed":
            raise UnsupportedChunkLayout(f"codecs {codecs}")
        config = codecs[0]["configuration"]
        inner = config["codecs"]
        index = [c["name"] for c in config.get("index_codecs", [])]
        if (
            config.get("index_location", "end") != "end"
            or [c["name"] for c in inner] != ["bytes", "zstd"]
            or inner[1].get("configuration", {}).get("checksum")
            or index not in (["bytes"], ["bytes", "crc32c"])
            or meta["fill_value"] != 0
        ):
            raise UnsupportedChunkLayout(f"sharding configuration {config}")
        self.crc = index == ["bytes", "crc32c"]
        self.level = int(inner[1].get("configuration", {}).get("level", 0))
        self.dtype = np.dtype(meta["data_type"]).newbyteorder("<")
        self.shard_shape = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
        self.tile = tuple(config["chunk_shape"])
        lead = len(self.shard_shape) - 2  # (1, h, w) shards, or (1, 1, h, w) of a volume
        if (lead not in (1, 2) or len(self.tile) != len(self.shard_shape)
                or any(self.shard_shape[i] != 1 or self.tile[i] != 1 for i in range(lead))):
            raise UnsupportedChunkLayout("only (1, h, w) or (1, 1, h, w) shards of 1-plane tiles")
        self.shard_shape = self.shard_shape[lead - 1:]  # the plane's (1, h, w)
        self.tile = self.tile[lead - 1:]
        self.grid = (self.shard_shape[1] // self.tile[1], self.shard_shape[2] // self.tile[2])

    def _empty_tile(self) -> bytes:
        """The encoding of an all-zero tile (encoding is deterministic)."""
        key = (self.level, self.tile, self.dtype.str)
        empty = _EMPTY_TILES.get(key)
        if empty is None:
            empty = _EMPTY_TILES[key] = zstd_encode(np.zeros(self.tile[1:], self.dtype), self.level)
        return empty

    def encode(self, layer: np.ndarray, regions: list[tuple[int, int, int, int]]) -> bytes | None:
        """One frame's shard of ``layer`` (top left at the frame's; it may extend past the
        frame, e.g. padded to whole tiles); ``None`` if it is all zero. ``regions``: boxes
        ``(y0, y1, x0, x1)`` outside which ``layer`` is zero: only their tiles are looked at."""
        th, tw = self.tile[1:]
        tiles: set[tuple[int, int]] = set()
        for y0, y1, x0, x1 in regions:
            for ty in range(y0 // th, (y1 - 1) // th + 1):
                tiles.update((ty, tx) for tx in range(x0 // tw, (x1 - 1) // tw + 1))
        index = np.full((*self.grid, 2), self.EMPTY, dtype="<u8")
        parts, offset = [], 0
        empty = self._empty_tile()
        for ty, tx in sorted(tiles):
            piece = layer[ty * th : (ty + 1) * th, tx * tw : (tx + 1) * tw]
            if piece.shape == (th, tw):
                tile = np.ascontiguousarray(piece, dtype=self.dtype)
            else:  # cut by the end of an unpadded layer
                tile = np.zeros((th, tw), self.dtype)
                tile[: piece.shape[0], : piece.shape[1]] = piece
            data = zstd_encode(tile, self.level)
            if data == empty:  # an all-zero tile (cheaper to see so than to scan it first)
                continue
            index[ty, tx] = (offset, len(data))
            parts.append(data)
            offset += len(data)
        if not parts:
            return None
        index_bytes = index.tobytes()
        if self.crc:
            import google_crc32c

            index_bytes += np.uint32(google_crc32c.value(index_bytes)).tobytes()
        return b"".join(parts) + index_bytes

    def read_tiles(self, coords: tuple[int, ...]) -> dict[tuple[int, int], np.ndarray]:
        """The stored tiles of a shard, ``{(tile row, tile column): (th, tw) array}``; empty
        where the shard is not stored (all zero). Tiles that are not stored are left out."""
        try:
            raw = self.path(coords).read_bytes()
        except FileNotFoundError:
            return {}
        n = self.grid[0] * self.grid[1] * 16
        end = len(raw) - (4 if self.crc else 0)
        index = np.frombuffer(raw[end - n : end], dtype="<u8").reshape(*self.grid, 2)
        shape = self.tile[1:]
        out = {}
        for ty, tx in zip(*np.nonzero(index[..., 0] != self.EMPTY)):
            offset, size = (int(v) for v in index[ty, tx])
            data = zstd_decode(raw[offset : offset + size])
            out[int(ty), int(tx)] = np.frombuffer(data, dtype=self.dtype).reshape(shape)
        return out


def read_table_rows(io: ChunkIO, lo: int, hi: int) -> np.ndarray:
    """Rows ``lo:hi`` of a 2-D array chunked by rows only (a per-object table), read chunk by
    chunk; the fill value where a chunk is not stored."""
    step = io.chunk_shape[0]
    out = np.empty((max(hi - lo, 0), io.shape[1]), io.dtype)
    for block in range(lo // step, -(-hi // step)):
        a, b = max(lo, block * step), min(hi, (block + 1) * step)
        chunk = io.read((block, 0))
        a0 = block * step
        out[a - lo : b - lo] = io.fill if chunk is None else chunk[a - a0 : b - a0]
    return out


def write_table_rows(
    io: ChunkIO | None, array, rows: list[tuple[int, list[float]]], lead: tuple[int, ...] = ()
) -> None:
    """Write ``(index, values)`` rows of a float table array: in place where the chunk is
    stored uncompressed (:meth:`ChunkIO.write_rows`), else one whole-chunk write per chunk.

    ``lead``: the indices of leading axes (a stack of tables, as a segment's part table);
    ``io``: the array's :class:`ChunkIO`, or ``None`` to write through zarr (``array``).
    """
    if io is None:
        for i, row in rows:
            array[(*lead, i)] = row
        return
    chunk_rows = io.chunk_shape[-2]
    lead_chunk = tuple(a // c for a, c in zip(lead, io.chunk_shape))
    lead_in = tuple(a % c for a, c in zip(lead, io.chunk_shape))
    by_block: dict[int, list[tuple[int, list[float]]]] = {}
    for i, row in rows:
        by_block.setdefault(i // chunk_rows, []).append((i, row))
    for block, block_rows in by_block.items():
        coords = (*lead_chunk, block, 0)
        if io.write_rows(coords, lead_in, [(i - block * chunk_rows, row) for i, row in block_rows]):
            continue
        chunk = io.read(coords)
        if chunk is None:
            chunk = np.full(io.chunk_shape, io.fill, dtype=io.dtype)
        table = chunk[lead_in]
        for i, row in block_rows:
            table[i - block * chunk_rows, : len(row)] = row
        io.write(coords, io.encode(chunk))
