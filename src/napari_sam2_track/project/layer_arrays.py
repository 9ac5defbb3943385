"""The arrays that hold a project's masks (store format 2), read and written chunk by chunk.

``labels/masklets/0`` is layer 0 and ``overlaps/<k>`` layer ``k`` (see :mod:`.layers`). Each
frame is one chunk file of each array, written whole (a temporary file renamed over the
chunk) and deleted where the frame's layer is empty, as zarr itself does. The overlap layers
are sharded: a frame's shard holds only the 128x128 tiles where objects overlap, so they cost
in proportion to the overlap, not to the frame.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ._chunks import ChunkIO, ShardIO, UnsupportedChunkLayout
from .layers import FrameLayers, shared_pixel_counts
from .layout import LABELS_PATH, OVERLAPS_GROUP, V1_MASK_PATH, overlap_path
from .volume import chunk_coords, plane_key

#: zstd level of the label layers, chosen by ``benchmarks/writer.py --codecs``: on label
#: frames level 1 costs the least CPU and compresses as well as level 3.
LAYER_ZSTD_LEVEL = 1
#: Tile (inner chunk) of the sharded overlap layers.
OVERLAP_TILE = 128


class LayerArrays:
    """Frame-wise access to the label layers of one project store.

    Distinct frames may be written from several threads at once; one frame from one thread.
    ``create_layers=False``: never create an overlap layer (a writer of some frames beside
    others, which must not write the same array metadata; see ``distributed/segments.py``).
    ``shape``: ``(planes, H, W)``; ``planes``: ``(T, Z)`` of a volume project, whose layers are
    ``(t, z, y, x)`` arrays with one chunk per plane (frame ``p`` is plane ``p = t * Z + z``).
    """

    def __init__(self, path: Path, group, shape: tuple[int, int, int], *, create_layers: bool = True,
                 planes: tuple[int, int] | None = None):
        self.path = Path(path)
        self.group = group
        self.shape = shape
        self.planes = planes
        self.create_layers = create_layers
        self._lock = threading.Lock()
        self._io: dict[str, ChunkIO | None] = {}
        self._shards: dict[int, ShardIO | None] = {}
        self._zarr: dict[str, object] = {}  # opened zarr arrays (opening reads zarr.json)
        self._scratch = threading.local()  # a decoding buffer per thread
        self.num_overlap_layers = self._count_overlap_layers()

    def _zarr_array(self, name: str):
        array = self._zarr.get(name)
        if array is None:
            array = self._zarr[name] = self.group[name]
        return array

    def _count_overlap_layers(self) -> int:
        folder = self.path / OVERLAPS_GROUP
        k = 0
        while (folder / str(k + 1) / "zarr.json").is_file():
            k += 1
        return k

    def chunk_io(self, name: str) -> ChunkIO | None:
        """Direct chunk access to an array of the project (``None``: use zarr)."""
        if name not in self._io:
            try:
                self._io[name] = ChunkIO(self.path / name)
            except UnsupportedChunkLayout:
                self._io[name] = None
        return self._io[name]

    def forget(self, name: str) -> None:
        """Drop the cached chunk access of an array that was deleted or replaced."""
        self._io.pop(name, None)
        self._zarr.pop(name, None)

    def ensure_overlap_layers(self, count: int) -> None:
        """Create the overlap layers ``1..count`` that do not exist yet."""
        if count <= self.num_overlap_layers:
            return
        if not self.create_layers:
            from ..errors import StoreError

            raise StoreError(f"{self.path} has {self.num_overlap_layers} overlap layers and a frame "
                             f"needs {count}; track these objects again in one run")
        from zarr.codecs import ZstdCodec

        with self._lock:
            t, h, w = self.shape
            tile = OVERLAP_TILE
            lead, names = ((t,), ["t"]) if self.planes is None else (self.planes, ["t", "z"])
            ones = (1,) * len(lead)
            group = self.group.require_group(OVERLAPS_GROUP)
            for k in range(self.num_overlap_layers + 1, count + 1):
                if str(k) not in group:
                    group.create_array(
                        str(k),
                        shape=(*lead, h, w),
                        shards=(*ones, -(-h // tile) * tile, -(-w // tile) * tile),
                        chunks=(*ones, tile, tile),
                        dtype="uint32",
                        fill_value=0,
                        compressors=ZstdCodec(level=LAYER_ZSTD_LEVEL),
                        dimension_names=[*names, "y", "x"],
                    )
                self.num_overlap_layers = max(self.num_overlap_layers, k)

    def shard_io(self, layer: int) -> ShardIO | None:
        if layer not in self._shards:
            try:
                self._shards[layer] = ShardIO(self.path / overlap_path(layer))
            except UnsupportedChunkLayout:
                self._shards[layer] = None
        return self._shards[layer]

    # ------------------------------------------------------------------ access
    def _read(self, name: str, t: int, scratch: bool = False) -> np.ndarray:
        """Frame ``t`` of a layer; ``scratch``: decoded into this thread's buffer, valid until
        its next scratch read."""
        io = self.chunk_io(name)
        if io is None:
            return np.asarray(self._zarr_array(name)[plane_key(t, self.planes)])
        out = None
        if scratch:
            out = getattr(self._scratch, "buffer", None)
            if out is None:
                size = int(np.prod(io.chunk_shape)) * io.dtype.itemsize
                out = self._scratch.buffer = bytearray(size)
        chunk = io.read(chunk_coords(t, self.planes), out)
        return np.zeros(self.shape[1:], np.uint32) if chunk is None else chunk.reshape(self.shape[1:])

    def read(self, t: int) -> list[np.ndarray]:
        """Frame ``t``'s layers: layer 0 (the merged labels), then non-empty overlap layers."""
        layers = [self._read(LABELS_PATH, t)]
        for k in range(1, self.num_overlap_layers + 1):
            io = self.shard_io(k)
            if io is not None and not io.exists(chunk_coords(t, self.planes)):
                break  # layers fill bottom-up: an empty layer has none above it
            layer = np.asarray(self._zarr_array(overlap_path(k))[plane_key(t, self.planes)])
            if not layer.any():
                break
            layers.append(layer)
        return layers

    def shared_pixels(self, t: int) -> dict[tuple[int, int], int]:
        """Pixels each pair of objects shares on frame ``t``: ``{(lower id, higher id): count}``.

        Shared pixels are where overlap layer 1 is non-zero, so only the overlap layers' stored
        tiles and the matching parts of the merged labels are looked at; a frame without
        overlaps costs one file lookup.
        """
        ios = [self.shard_io(k) for k in range(1, self.num_overlap_layers + 1)]
        if not ios:
            return {}
        if any(io is None for io in ios):  # a layout zarr reads for us
            return shared_pixel_counts(self.read(t))
        tiles = []
        for io in ios:
            layer = io.read_tiles(chunk_coords(t, self.planes))
            if not layer:
                break  # layers fill bottom-up
            tiles.append(layer)
        if not tiles:
            return {}
        labels = self._read(LABELS_PATH, t, scratch=True)
        th, tw = ios[0].tile[1:]
        counts: dict[tuple[int, int], int] = {}
        for ty, tx in tiles[0]:
            part = labels[ty * th : (ty + 1) * th, tx * tw : (tx + 1) * tw]
            h, w = part.shape  # tiles may overhang the frame
            stack = [part] + [layer[ty, tx][:h, :w] for layer in tiles if (ty, tx) in layer]
            shared_pixel_counts(stack, counts)
        return counts

    def has_frame(self, t: int) -> bool:
        """Whether frame ``t`` holds any object pixel."""
        io = self.chunk_io(LABELS_PATH)
        if io is None:
            return bool(np.asarray(self.group[LABELS_PATH][plane_key(t, self.planes)]).any())
        return io.exists(chunk_coords(t, self.planes))

    def write(self, t: int, frame: FrameLayers) -> None:
        """Replace frame ``t``'s layers (overlaps first, then the merged labels)."""
        self.ensure_overlap_layers(len(frame.overlaps))
        for k in range(self.num_overlap_layers, 0, -1):
            part = frame.overlaps[k - 1] if k <= len(frame.overlaps) else None
            io = self.shard_io(k)
            if io is not None:
                io.write(chunk_coords(t, self.planes),
                         None if part is None else io.encode(part, frame.regions[k - 1]))
            else:
                self.group[overlap_path(k)][plane_key(t, self.planes)] = (
                    0 if part is None else frame.full()[k])
        self._write(LABELS_PATH, t, frame.labels, frame.empty)

    def _write(self, name: str, t: int, layer: np.ndarray | None, empty: bool) -> None:
        io = self.chunk_io(name)
        if io is None:
            self.group[name][plane_key(t, self.planes)] = 0 if layer is None else layer
            return
        io.write(chunk_coords(t, self.planes),
                 None if empty else io.encode(layer.reshape(io.chunk_shape)))

    # ---------------------------------------------------------------- format 1
    def v1_frames(self, obj_id: int) -> list[int]:
        """Frames with a stored chunk in a format-1 per-object mask array."""
        io = ChunkIO(self.path / V1_MASK_PATH.format(id=obj_id))
        if io.separator == "/":
            folder = io.dir / "c"
            names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
        else:
            names = [p.name.split(io.separator)[1] for p in io.dir.glob(f"c{io.separator}*")]
        return sorted(int(n) for n in names if n.isdigit())
