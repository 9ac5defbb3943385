"""Helpers shared by the benchmark scripts: the random-weight test model (optionally compiled),
synthetic disc videos, and one timed forward propagation per engine."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

#: SAM 2.1 sizes the benchmarks build (with random weights) by name.
MODEL_CONFIGS = {
    "tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "base-plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}

# ------------------------------------------------------------------------ models


def build_test_model(image_size: int = 256, device: str = "cpu", *, size: str = "tiny",
                     seed: int = 0, compile: bool = False):
    """The real SAM 2.1 architecture of ``size`` with seeded random weights, nudged as in the
    tests (``tests/conftest.nudge_test_model``) so that its masks are neither empty nor full;
    with ``compile``, its components are compiled (:func:`compile_components`)."""
    tests = str(REPO / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from conftest import nudge_test_model

    from napari_sam2_track.engine.models import load_random_model

    model = load_random_model(MODEL_CONFIGS.get(size, size), image_size=image_size, seed=seed,
                              device=device)
    nudge_test_model(model.predictor)
    if compile:
        compile_components(model.predictor)
    return model


def compile_components(predictor, *, mode: str = "default", backend: str = "inductor") -> None:
    """``torch.compile`` the image encoder and the four components sam2's
    ``SAM2VideoPredictorVOS`` compiles, in place, so that upstream's predictor and this
    project's tracker, which share the model, both run compiled.

    Differences from ``SAM2VideoPredictorVOS._compile_all_components`` (which a plain
    ``SAM2VideoPredictor`` does not have): ``mode`` ``default`` instead of ``max-autotune``
    (whose kernel search takes many minutes) and no ``fullgraph``, so a graph break costs speed
    instead of stopping the run (``torch._dynamo.utils.counters["graph_break"]`` counts them).
    Memory attention is compiled with dynamic shapes (its number of memories varies), the rest
    with static shapes, as upstream does. Run the model once before compiling: its position
    encodings are cached on the first call, and compiling before that compiles twice.
    """
    import torch

    def compiled(fn, dynamic: bool):
        return torch.compile(fn, mode=None if mode == "default" else mode, backend=backend,
                             dynamic=dynamic)

    p = predictor
    encoder = compiled(p.image_encoder.forward, False)
    # upstream's frames arrive contiguous, the tracker's channels-last: one layout, one graph
    p.image_encoder.forward = lambda sample: encoder(sample.contiguous())
    p.memory_encoder.forward = compiled(p.memory_encoder.forward, False)
    p.memory_attention.forward = compiled(p.memory_attention.forward, True)
    p.sam_prompt_encoder.forward = compiled(p.sam_prompt_encoder.forward, False)
    p.sam_mask_decoder.forward = compiled(p.sam_mask_decoder.forward, False)


# ------------------------------------------------------------------------ videos
#: Size of the disc videos at scale 1.
DISC_HEIGHT, DISC_WIDTH = 540, 960
MAX_DISCS = 16
DISC_RADIUS = 35


def disc_centres(t: int, scale: float = 1.0) -> list[tuple[float, float]]:
    """Centres (x, y) of the 16 discs on frame ``t``: a 4x4 grid, each disc drifting; for a
    video ``scale`` times 960x540."""
    centres = []
    for i in range(MAX_DISCS):
        gx, gy = i % 4, i // 4
        x = 130 + 230 * gx + 20 * np.sin(t / 7 + i)
        y = 80 + 125 * gy + 15 * np.cos(t / 9 + i)
        centres.append((float(x) * scale, float(y) * scale))
    return centres


def make_disc_frames(folder: Path, n: int, scale: int = 1) -> Path:
    """Write ``n`` JPEG frames (960x540 times ``scale``) of 16 coloured discs drifting on a
    textured background, unless ``folder`` already holds ``n`` frames.

    Each disc is drawn within its bounding box only (the same pixels as testing the whole
    frame, many times faster at 1080p)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.jpg"))) == n:
        return folder
    height, width, radius = DISC_HEIGHT * scale, DISC_WIDTH * scale, DISC_RADIUS * scale
    rng = np.random.default_rng(0)
    background = rng.integers(20, 70, size=(height, width, 3), dtype=np.uint8)
    colours = rng.integers(90, 255, size=(MAX_DISCS, 3), dtype=np.uint8)
    for t in range(n):
        img = background.copy()
        for (cx, cy), colour in zip(disc_centres(t, scale), colours):
            y0, y1 = max(0, int(np.floor(cy - radius))), min(height, int(np.ceil(cy + radius)) + 1)
            x0, x1 = max(0, int(np.floor(cx - radius))), min(width, int(np.ceil(cx + radius)) + 1)
            yy, xx = np.mgrid[y0:y1, x0:x1]
            img[y0:y1, x0:x1][(xx - cx) ** 2 + (yy - cy) ** 2 < radius**2] = colour
        Image.fromarray(img).save(folder / f"{t:05d}.jpg", quality=95)
    return folder


def disc_clicks(n_objects: int, scale: int = 1) -> list[list[list[float]]]:
    """One positive click per object, on the centre of its disc in frame 0."""
    return [[list(c)] for c in disc_centres(0, scale)[:n_objects]]


# ------------------------------------------------------------------- propagation
def propagate_clicks(model, folder, engine: str, clicks: list, *, out: Path | None = None,
                     on_frame=None, writer_class=None,
                     info: dict | None = None) -> list[tuple[float, float]]:
    """Prompt one object per entry of ``clicks`` on frame 0 and track them forward through the
    JPEG folder; returns ``(wall, process CPU)`` seconds after each frame (the first entry is the
    prompted frame), on CUDA after the device finished it.

    ``engine``:

    * ``engine``: ``StreamingTracker`` with its defaults (batched objects on a GPU);
    * ``batched`` / ``exact``: ``StreamingTracker(batch_objects=True / False)``;
    * ``pipeline``: the whole pipeline, ``napari_sam2_track.track`` into a project at ``out``
      (frames decoded on a reader thread, masks written by the store writer; the last entry is
      taken once every frame is on disk);
    * ``upstream``: ``SAM2VideoPredictor.init_state`` (loads every frame first, not timed) +
      ``propagate_in_video``, each mask thresholded and copied to the host as a user would.

    ``on_frame(t, masks, presence)`` sees each frame's bool masks ``{object: (H, W)}`` and
    object-score logits ``{object: float}`` (not for ``pipeline``). ``writer_class`` replaces the
    pipeline's ``StoreWriter`` for the run. ``info`` receives ``state_bytes``: the largest
    inference state seen (tensors, frames excluded; upstream's at the end) and, for upstream,
    ``images_bytes``: the frames it holds.
    """
    import torch

    cuda = model.predictor.device.type == "cuda"
    times: list[tuple[float, float]] = []

    def tick():
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter(), time.process_time()))

    if engine in ("engine", "batched", "exact"):
        from napari_sam2_track.engine.tracker import StreamingTracker
        from napari_sam2_track.sources import open_source

        batch = {"engine": None, "batched": True, "exact": False}[engine]
        tracker = StreamingTracker(model, open_source(folder), batch_objects=batch)
        try:
            for obj, points in enumerate(clicks, start=1):
                tracker.add_points(obj, 0, points=points, labels=[1])
            for result in tracker.propagate("forward"):
                tick()
                if on_frame is not None:
                    on_frame(result.frame, result.masks, result.presence)
                if info is not None and len(times) % 25 == 1:
                    info["state_bytes"] = max(info.get("state_bytes", 0), tracker.state_bytes())
        finally:
            tracker.close()
    elif engine == "pipeline":
        from napari_sam2_track import pipeline, recorded_run
        from napari_sam2_track.prompts import PromptSet
        from napari_sam2_track.sources import open_source

        prompts = PromptSet.model_validate({
            "objects": [{"id": i + 1} for i in range(len(clicks))],
            "prompts": [{"object": i + 1, "frame": 0, "points": points, "labels": [1]}
                        for i, points in enumerate(clicks)],
        })
        saved = recorded_run.StoreWriter  # the recorded run makes the pipeline's writer
        if writer_class is not None:
            recorded_run.StoreWriter = writer_class
        try:
            for progress in pipeline.track(open_source(folder), prompts, out, model=model,
                                           direction="forward", overwrite=True):
                tick()
                if info is not None:
                    info["state_bytes"] = max(info.get("state_bytes", 0), progress.state_bytes)
            tick()  # the writer has closed: every frame is on disk
            del times[-2]
        finally:
            recorded_run.StoreWriter = saved
    elif engine == "upstream":
        import contextlib

        p = model.predictor
        with contextlib.ExitStack() as ctx:
            # as sam2's README does, and as the tracker computes: all of it under bfloat16
            # autocast on CUDA (the frame-0 features that init_state caches included)
            ctx.enter_context(torch.inference_mode())
            if cuda:
                ctx.enter_context(torch.autocast("cuda", dtype=torch.bfloat16))
            state = p.init_state(str(folder), offload_video_to_cpu=not cuda)
            for obj, points in enumerate(clicks, start=1):
                p.add_new_points_or_box(state, frame_idx=0, obj_id=obj, points=points, labels=[1])
            for t, obj_ids, masks in p.propagate_in_video(state):
                host = (masks[:, 0] > 0).cpu().numpy()
                tick()
                if on_frame is not None:
                    outputs = [state["output_dict_per_obj"][state["obj_id_to_idx"][o]] for o in obj_ids]
                    records = [o["cond_frame_outputs"].get(t) or o["non_cond_frame_outputs"][t]
                               for o in outputs]
                    on_frame(t, dict(zip(obj_ids, host)),
                             {o: float(r["object_score_logits"].float().reshape(-1)[0])
                              for o, r in zip(obj_ids, records)})
        if info is not None:
            images = state["images"]
            info["state_bytes"] = tensor_bytes(state, exclude=images)
            info["images_bytes"] = images.numel() * images.element_size()
        del state
    else:
        raise ValueError(f"unknown engine {engine!r}")
    return times


def tensor_bytes(obj, skip=("images",), exclude=None) -> int:
    """Bytes of distinct tensor storages reachable from an inference state.

    ``exclude``: a tensor whose storage is not counted (upstream's preloaded frames, which its
    feature cache also references through a view).
    """
    import torch

    seen: set[int] = set()
    if exclude is not None:
        seen.add(exclude.untyped_storage().data_ptr())

    def walk(o) -> int:
        if isinstance(o, torch.Tensor):
            key = o.untyped_storage().data_ptr()
            if key in seen:
                return 0
            seen.add(key)
            return o.untyped_storage().nbytes()
        if isinstance(o, dict):
            return sum(walk(v) for k, v in o.items() if k not in skip)
        if isinstance(o, (list, tuple)):
            return sum(walk(v) for v in o)
        return 0

    return walk(obj)


def per_frame(times: list[tuple[float, float]]) -> tuple[float, float]:
    """(wall, CPU) seconds per frame from the second frame on (the first is the prompt)."""
    n = max(1, len(times) - 1)
    return (times[-1][0] - times[0][0]) / n, (times[-1][1] - times[0][1]) / n


# ------------------------------------------------------------------ measurement
def timed_writer():
    """``StoreWriter`` that records how long tracking waited for it and what encoding cost."""
    from napari_sam2_track.project import StoreWriter

    class TimedWriter(StoreWriter):
        stats: dict = {}

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            TimedWriter.stats = self.stats = {"submit": 0.0, "close": 0.0, "encode": 0.0,
                                              "encode_cpu": 0.0, "frames": 0,
                                              "workers": self._pool._max_workers}
            self._stats_lock = threading.Lock()

        def submit(self, result) -> None:
            start = time.perf_counter()
            super().submit(result)
            self.stats["submit"] += time.perf_counter() - start

        def close(self) -> None:
            start = time.perf_counter()
            super().close()
            self.stats["close"] += time.perf_counter() - start

        def _encode(self, result, before=None):
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return super()._encode(result, before)
            finally:
                with self._stats_lock:
                    self.stats["encode"] += time.perf_counter() - wall
                    self.stats["encode_cpu"] += time.thread_time() - cpu
                    self.stats["frames"] += 1

    return TimedWriter


class RssSampler:
    """Largest growth of this process's resident set over a block, sampled every 20 ms."""

    def __init__(self):
        self.growth_mb = 0.0
        self._stop = threading.Event()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        start = self.rss()
        peak = [start]

        def sample():
            while not self._stop.wait(0.02):
                peak[0] = max(peak[0], self.rss())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        self._start, self._peak = start, peak
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.growth_mb = round((max(self._peak[0], self.rss()) - self._start) / 2**20, 1)
