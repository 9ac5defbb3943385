"""Lazy model input frames with upstream SAM 2's exact preprocessing, plus read-ahead.

``SAM2VideoPredictor`` only needs ``inference_state["images"]`` to support ``__getitem__`` and
``__len__``. :class:`ModelFrames` provides that on top of a :class:`FrameSource`, converting one
frame at a time exactly as ``sam2.utils.misc._load_img_as_tensor`` + ``load_video_frames`` do
(PIL RGB, PIL ``resize`` to the square model size, ``/255`` in float64, cast to float32, minus the
ImageNet mean, divided by the std), so a JPEG folder gives bit-identical tensors.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterable

import numpy as np

from .._threads import lower_thread_priority

IMG_MEAN = (0.485, 0.456, 0.406)
IMG_STD = (0.229, 0.224, 0.225)


def preprocess_rgb(rgb: np.ndarray, image_size: int):
    """Convert an (H, W, 3) uint8 frame into SAM 2's normalised float32 [3, S, S] tensor."""
    import torch
    from PIL import Image

    img = np.array(Image.fromarray(rgb).resize((image_size, image_size))) / 255.0
    tensor = torch.from_numpy(img).permute(2, 0, 1).to(torch.float32)
    mean = torch.tensor(IMG_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(IMG_STD, dtype=torch.float32)[:, None, None]
    tensor -= mean
    tensor /= std
    return tensor


class ModelFrames:
    """Sequence of preprocessed frames read on demand, with a bounded read-ahead cache.

    Call :meth:`schedule` with the frame order of the coming pass; a worker thread then decodes
    and preprocesses up to ``depth`` frames ahead so decoding overlaps model compute. At most
    ``depth + 2`` preprocessed frames are held at any time.
    """

    def __init__(self, source, image_size: int, depth: int = 4):
        self.source = source
        self.image_size = int(image_size)
        self.depth = int(depth)
        self._ready: OrderedDict[int, Future] = OrderedDict()
        self._order: list[int] = []
        self._pos = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="frame-reader", initializer=lower_thread_priority
        )

    def __len__(self) -> int:
        return len(self.source)

    def _load(self, t: int):
        return preprocess_rgb(self.source.read_rgb(t), self.image_size)

    def schedule(self, order: Iterable[int]) -> None:
        """Announce the frames the next pass will read, in order, to start reading ahead."""
        with self._lock:
            self._order = list(order)
            self._pos = 0
            self._fill()

    def _fill(self) -> None:
        while self._pos < len(self._order) and len(self._ready) < self.depth:
            t = self._order[self._pos]
            self._pos += 1
            if t not in self._ready:
                self._ready[t] = self._pool.submit(self._load, t)

    def __getitem__(self, t: int):
        if t < 0:
            t += len(self)
        with self._lock:
            future = self._ready.pop(t, None)
            # Frames announced earlier than t were skipped; drop them so the cache stays bounded.
            while self._ready and len(self._ready) >= self.depth:
                self._ready.popitem(last=False)
        tensor = future.result() if future is not None else self._load(t)
        with self._lock:
            self._fill()
        return tensor

    def close(self) -> None:
        """Stop reading ahead and release the worker thread."""
        with self._lock:
            self._order = []
            self._ready.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
