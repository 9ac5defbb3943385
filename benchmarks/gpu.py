"""GPU figures in one run, as JSON lines: speed against upstream SAM 2, the store writer at
1080p, fidelity, memory over long videos, click -> mask latency.

    bash benchmarks/gpu.sh --device cuda --out DIR            # about 7 minutes on an H100/H200
    bash benchmarks/gpu.sh --device cpu --quick --out DIR     # every step in miniature (a test)

Every line is printed and appended to ``DIR/gpu.jsonl``; each has ``step`` and ``t`` (seconds
since the start). Steps, in order (each group of steps runs in its own process, so a crash or a
hang loses only the rest of its group):

* ``env``: the card, versions, and what is missing (then nothing else runs);
* ``fidelity``: this project's masks against upstream ``SAM2VideoPredictor`` on the same device
  (tiny, eager, bf16 on CUDA), for the exact (per-object) and the default (batched) engine;
* ``speed``: frames per second of ``engine`` (``StreamingTracker``, defaults), ``exact``
  (``batch_objects=False``, several objects, eager), ``pipeline`` (decode + track + write a
  project) and ``upstream`` (``init_state`` + ``propagate_in_video``) for 1 and 8 objects;
  a ``summary`` line per object count gives each one's fps over upstream's;
* ``latency``: click -> mask through the session on a prefetched frame (``benchmarks/interactive.py``);
* ``writer``: the pipeline against the tracker alone at 1920x1080 with 8 objects, and how
  long tracking waited for the store writer (``writer_share``);
* ``memory``: peak GPU memory (CUDA) and state of 1,000 frames against 100, ours and upstream;
* ``compile`` then ``speed`` again with the components ``torch.compile``-d (mode default).

Models are the SAM 2.1 architectures with seeded random weights (speed does not depend on the
weights), nudged as in the tests so masks are neither empty nor full. ``--budget`` seconds
(default 420 on CUDA) bounds the whole run: no step starts without time for it, and a group
still running at the end is stopped; what it printed stays.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import (  # noqa: E402
    REPO,
    RssSampler,
    build_test_model,
    compile_components,
    disc_clicks,
    make_disc_frames,
    per_frame,
    propagate_clicks,
    timed_writer,
)

#: module -> what to install, for everything the steps import
REQUIRED = {
    "torch": "torch", "numpy": "numpy", "PIL": "pillow", "yaml": "pyyaml", "tqdm": "tqdm",
    "sam2": "sam2==1.1.0", "hydra": "hydra-core", "omegaconf": "omegaconf",
    "antlr4": "antlr4-python3-runtime==4.9.3", "iopath": "iopath", "portalocker": "portalocker",
    "zarr": "zarr>=3", "numcodecs": "numcodecs", "donfig": "donfig", "google_crc32c": "google-crc32c",
    "deprecated": "deprecated", "zstandard": "zstandard", "pydantic": "pydantic",
    "pydantic_core": "pydantic-core", "annotated_types": "annotated-types",
    "typing_inspection": "typing-inspection", "psygnal": "psygnal", "scipy": "scipy",
}


@dataclasses.dataclass(frozen=True)
class Settings:
    image_size: int
    frames: int  # speed and fidelity runs (960x540 discs)
    objects: tuple[int, ...]
    sizes: tuple[str, ...]
    writer_frames: int  # 1920x1080 discs
    writer_objects: int
    memory_frames: tuple[int, int]  # short, long (320x240)
    latency_repeats: int
    budget: float
    compile_backend: str
    warmup_frames: int  # compiled runs: frames run once before timing


FULL = Settings(1024, 60, (1, 8), ("tiny", "base-plus"), 60, 8, (100, 1000), 5, 420.0,
                "inductor", 20)
QUICK = Settings(128, 4, (1, 2), ("tiny",), 3, 2, (3, 6), 2, 110.0, "eager", 3)

#: seconds a step needs at least (full run); a step is not started with less time left
MIN_SECONDS = {"fidelity": 20, "speed": 40, "latency": 10, "writer": 20, "memory": 60,
               "compile": 90}


def groups(s: Settings) -> list[tuple[str, str, bool, list[str]]]:
    """``(name, model size, compiled, steps)``, in the order they run."""
    tiny, rest = s.sizes[0], s.sizes[1:]
    out = [(f"{tiny}-eager", tiny, False, ["fidelity", "speed", "latency", "writer", "memory"])]
    out += [(f"{size}-eager", size, False, ["speed", "latency"]) for size in rest]
    out += [(f"{size}-compiled", size, True, ["compile", "speed"]) for size in s.sizes]
    return out


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:400]


def emit(line: dict) -> None:
    print(json.dumps(line, default=str), flush=True)


# ============================================================================= child
class Context:
    """What a group's steps share: settings, model, device, frame folders, the deadline."""

    def __init__(self, args, s: Settings, size: str, compiled: bool):
        self.args, self.s, self.size, self.compiled = args, s, size, compiled
        self.device = args.device
        self.cuda = args.device.startswith("cuda")
        self.deadline = args.deadline
        self.cache = Path(args.cache)
        self.discs = self.cache / f"discs{s.frames}"
        self.discs_1080p = self.cache / f"discs1080p{s.writer_frames}"
        self.tmp = Path(tempfile.mkdtemp(prefix="nst-gpu-", dir=args.cache))
        self.model = None

    def fields(self) -> dict:
        return {"model": self.size, "compiled": self.compiled, "image_size": self.s.image_size,
                "device": self.device}

    def fresh(self) -> None:
        """Free what the last run left and start a new GPU peak."""
        gc.collect()
        if self.cuda:
            import torch

            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    def peak_gpu_mb(self) -> float | None:
        if not self.cuda:
            return None
        import torch

        return round(torch.cuda.max_memory_allocated() / 2**20, 1)

    def run(self, engine: str, folder: Path, n_objects: int, scale: int = 1, **kw) -> dict:
        """One timed forward propagation; its measurements."""
        self.fresh()
        out = self.tmp / f"{engine}.zarr"
        shutil.rmtree(out, ignore_errors=True)
        info: dict = {}
        start = time.perf_counter()
        times = propagate_clicks(self.model, folder, engine, disc_clicks(n_objects, scale),
                                 out=out, info=info, **kw)
        wall, cpu = per_frame(times)
        shutil.rmtree(out, ignore_errors=True)
        return {
            "engine": engine, "objects": n_objects, "frames": len(times),
            "fps": round(1 / wall, 2), "sec_per_frame": round(wall, 5),
            "cpu_sec_per_frame": round(cpu, 5),
            "setup_sec": round(times[0][0] - start, 3),  # model load of frames, prompts, frame 0
            "peak_gpu_mb": self.peak_gpu_mb(),
            "state_mb": round(info.get("state_bytes", 0) / 2**20, 2),
            **({"images_mb": round(info["images_bytes"] / 2**20, 1)} if "images_bytes" in info else {}),
        }


def step_fidelity(ctx: Context):
    """Masks and presence of ours (exact and default engine) against upstream, same device."""
    n_obj = max(ctx.s.objects)
    records: dict[str, dict] = {}
    for engine in ("upstream", "exact", "engine"):
        masks: dict = {}
        presence: dict = {}

        def keep(t, frame_masks, frame_presence, masks=masks, presence=presence):
            for o, m in frame_masks.items():
                masks[(t, o)] = np.asarray(m, bool)
                presence[(t, o)] = float(frame_presence[o])

        ctx.fresh()
        propagate_clicks(ctx.model, ctx.discs, engine, disc_clicks(n_obj), on_frame=keep)
        records[engine] = {"masks": masks, "presence": presence}
    ref = records["upstream"]
    for engine in ("exact", "engine"):
        got = records[engine]
        worst, ious, identical, flips, max_dp = 0.0, [], 0, 0, 0.0
        for key, expected in ref["masks"].items():
            mask = got["masks"][key]
            area = int(expected.sum())
            differing = int(np.count_nonzero(mask != expected))
            identical += differing == 0
            worst = max(worst, differing / area if area else float(differing > 0))
            union = int(np.count_nonzero(mask | expected))
            ious.append(np.count_nonzero(mask & expected) / union if union else 1.0)
            flips += (got["presence"][key] > 0) != (ref["presence"][key] > 0)
            max_dp = max(max_dp, abs(got["presence"][key] - ref["presence"][key]))
        areas = [m.mean() for m in ref["masks"].values()]
        yield {
            "step": "fidelity", "engine": engine, "against": "upstream", "objects": n_obj,
            "object_frames": len(ref["masks"]), "identical_object_frames": identical,
            "identical": identical == len(ref["masks"]) and max_dp == 0.0,
            "max_differing_pct_of_object": round(100 * worst, 4),
            "min_iou": round(min(ious), 5), "mean_iou": round(float(np.mean(ious)), 5),
            "presence_sign_flips": flips, "max_presence_diff": round(max_dp, 5),
            "within_tolerance": worst <= 0.001 and flips == 0,
            "tolerance": "per object and frame <= 0.1 % of the object's pixels differ, presence sign identical",
            "mask_area_pct_min_max": [round(100 * min(areas), 2), round(100 * max(areas), 2)],
            **ctx.fields(),
        }


def step_speed(ctx: Context):
    """Frames per second of each engine, for each object count, and the ratios to upstream."""
    from napari_sam2_track.engine.frames import ModelFrames
    from napari_sam2_track.sources import open_source

    source = open_source(ctx.discs)
    frames = ModelFrames(source, ctx.s.image_size, depth=0)
    start = time.perf_counter()
    for t in range(min(5, len(source))):
        frames[t]
    decode_ms = 1000 * (time.perf_counter() - start) / min(5, len(source))
    frames.close()
    for n_obj in ctx.s.objects:
        engines = ["engine"] + (["exact"] if n_obj > 1 and not ctx.compiled else [])
        fps = {}
        for engine in engines + ["pipeline", "upstream"]:
            if time.time() > ctx.deadline:
                yield {"step": "speed", "engine": engine, "objects": n_obj, "skipped": "time budget",
                       **ctx.fields()}
                continue
            line = ctx.run(engine, ctx.discs, n_obj)
            fps[engine] = line["fps"]
            yield {"step": "speed", **line, **ctx.fields()}
        if "upstream" in fps:
            yield {"step": "speed", "summary": True, "objects": n_obj,
                   **{f"{e}_vs_upstream": round(fps[e] / fps["upstream"], 3)
                      for e in fps if e != "upstream"},
                   "decode_preprocess_ms_per_frame": round(decode_ms, 1),
                   "video": f"{source.width}x{source.height} JPEG", **ctx.fields()}


def step_latency(ctx: Context):
    """Click -> mask on a prefetched frame through the session (benchmarks/interactive.py)."""
    import interactive

    repeats = ctx.s.latency_repeats
    frames = interactive.make_video(2 * repeats + 2 + repeats)
    interactive.warm_up(frames, ctx.model)
    ctx.fresh()
    for line in interactive.bench_session(frames, ctx.model, repeats, ctx.tmp):
        yield {"step": "latency", **line, "peak_gpu_mb": ctx.peak_gpu_mb(), **ctx.fields()}


def step_writer(ctx: Context):
    """The whole pipeline against the tracker alone at 1080p: does the writer keep up?"""
    n_obj = ctx.s.writer_objects
    areas, overlaps = [], []

    def stats(t, masks, presence):  # sampled, so that it costs the timed run little
        if t % 10 != 1:
            return
        stack = np.stack(list(masks.values()))
        areas.extend(stack.mean(axis=(1, 2)).tolist())
        overlaps.append(bool((stack.sum(axis=0) > 1).any()))

    engine = ctx.run("engine", ctx.discs_1080p, n_obj, scale=2, on_frame=stats)
    writer = timed_writer()
    pipe = ctx.run("pipeline", ctx.discs_1080p, n_obj, scale=2, writer_class=writer)
    w = writer.stats
    wall = pipe["sec_per_frame"] * (pipe["frames"] - 1)
    waited = w["submit"] + w["close"]
    frames = max(1, w["frames"])
    yield {
        "step": "writer", "video": "1920x1080 JPEG", "objects": n_obj, "frames": pipe["frames"],
        "engine_fps": engine["fps"], "pipeline_fps": pipe["fps"],
        "pipeline_vs_engine": round(pipe["fps"] / engine["fps"], 3),
        "submit_wait_sec": round(w["submit"], 3), "close_wait_sec": round(w["close"], 3),
        "writer_share": round(waited / wall, 4) if wall > 0 else None,
        "keeps_up": wall > 0 and waited / wall <= 0.05,
        "encode_ms_per_frame": round(1000 * w["encode"] / frames, 2),
        "encode_cpu_ms_per_frame": round(1000 * w["encode_cpu"] / frames, 2),
        "encode_threads": w["workers"],
        "encode_busy": round(w["encode"] / (w["workers"] * wall), 3) if wall > 0 else None,
        "mask_area_pct_mean": round(100 * float(np.mean(areas)), 2) if areas else None,
        "overlap_frames_pct": round(100 * float(np.mean(overlaps)), 1) if overlaps else None,
        "peak_gpu_mb": pipe["peak_gpu_mb"], **ctx.fields(),
    }


def step_memory(ctx: Context):
    """Peak GPU memory (CUDA) and the memory held for the video (state and frames) of the long
    run against the short one, ours (the whole pipeline) and upstream's."""
    import propagation

    short, long = ctx.s.memory_frames
    key = "peak_gpu_mb" if ctx.cuda else "held_mb"
    peaks: dict[tuple[str, int], float | None] = {}
    for engine in ("pipeline", "upstream"):
        for n in (short, long):
            if time.time() > ctx.deadline:
                yield {"step": "memory", "engine": engine, "frames": n, "skipped": "time budget",
                       **ctx.fields()}
                continue
            folder = propagation.make_frames(ctx.cache / f"frames{n}", n)
            with RssSampler() as sampler:
                line = _memory_run(ctx, engine, folder)
            line["rss_growth_mb"] = sampler.growth_mb
            peaks[(engine, n)] = line[key]
            yield {"step": "memory", **line, **ctx.fields()}
    summary = {"step": "memory", "summary": True, "measure": key, "frames": [short, long]}
    for engine in ("pipeline", "upstream"):
        a, b = peaks.get((engine, short)), peaks.get((engine, long))
        if a and b:
            summary[f"{engine}_long_vs_short"] = round(b / a, 3)
    if "pipeline_long_vs_short" in summary:
        summary["flat"] = summary["pipeline_long_vs_short"] <= 1.05
    yield {**summary, **ctx.fields()}


def _memory_run(ctx: Context, engine: str, folder: Path) -> dict:
    """One run of the memory step: one click on the first disc of the small frames."""
    ctx.fresh()
    out = ctx.tmp / "memory.zarr"
    shutil.rmtree(out, ignore_errors=True)
    info: dict = {}
    times = propagate_clicks(ctx.model, folder, engine, [[[60.0, 120.0]]], out=out, info=info)
    shutil.rmtree(out, ignore_errors=True)
    wall, _ = per_frame(times)
    state, images = info.get("state_bytes", 0) / 2**20, info.get("images_bytes", 0) / 2**20
    return {"engine": engine, "frames": len(times), "fps": round(1 / wall, 2),
            "peak_gpu_mb": ctx.peak_gpu_mb(), "state_mb": round(state, 2),
            "images_mb": round(images, 1), "held_mb": round(state + images, 2)}


def step_compile(ctx: Context):
    """Compile the components, then run every shape the timed runs will see once."""
    import torch

    start = time.perf_counter()
    warm = ctx.cache / f"discs{ctx.s.warmup_frames}"
    propagate_clicks(ctx.model, warm, "engine", disc_clicks(1))  # fills sam2's caches first
    compile_components(ctx.model.predictor, backend=ctx.s.compile_backend)
    for n_obj in ctx.s.objects:  # one object: upstream's shapes; several: the batched ones
        propagate_clicks(ctx.model, warm, "engine", disc_clicks(n_obj))
    propagate_clicks(ctx.model, warm, "upstream", disc_clicks(1))
    counters = torch._dynamo.utils.counters
    yield {"step": "compile", "mode": "default", "backend": ctx.s.compile_backend,
           "warmup_sec": round(time.perf_counter() - start, 1),
           "warmup_frames": ctx.s.warmup_frames,
           "graph_breaks": int(sum(counters["graph_break"].values())),
           "graphs": int(counters["stats"].get("unique_graphs", 0)), **ctx.fields()}


STEPS = {"fidelity": step_fidelity, "speed": step_speed, "latency": step_latency,
         "writer": step_writer, "memory": step_memory, "compile": step_compile}


def run_child(args, s: Settings) -> None:
    name, size, compiled, steps = next(g for g in groups(s) if g[0] == args.child)
    ctx = Context(args, s, size, compiled)
    try:
        start = time.perf_counter()
        ctx.model = build_test_model(s.image_size, args.device, size=size)
        params = sum(p.numel() for p in ctx.model.predictor.parameters())
        emit({"step": "model", "params_m": round(params / 1e6, 1),
              "build_sec": round(time.perf_counter() - start, 1),
              "weights_gpu_mb": ctx.peak_gpu_mb(), **ctx.fields()})
        for step in steps:
            left = ctx.deadline - time.time()
            need = MIN_SECONDS[step] * (0.05 if args.quick else 1)
            if left < need:
                emit({"step": step, "skipped": f"time budget ({left:.0f} s left, needs {need:.0f})",
                      **ctx.fields()})
                if step == "compile":
                    return
                continue
            try:
                for line in STEPS[step](ctx):
                    emit(line)
            except Exception as exc:  # noqa: BLE001 - reported, and the next step runs
                emit({"step": step, "error": one_line(exc), **ctx.fields()})
                ctx.fresh()
                if step == "compile":
                    return
    finally:
        shutil.rmtree(ctx.tmp, ignore_errors=True)


# ============================================================================ parent
def installed(module: str) -> bool:
    """Whether ``module`` can be found (a package that fails to be looked up counts as missing)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def environment(device: str) -> dict:
    """Versions, the card, and what is missing for ``device``."""
    line: dict = {"step": "env", "python": platform.python_version(), "machine": platform.machine(),
                  "cpus": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 1)}
    missing = [pip for module, pip in REQUIRED.items() if not installed(module)]
    problems = [f"missing Python packages: {', '.join(missing)}"] if missing else []
    if installed("torch"):
        import torch

        line["torch"] = torch.__version__
        line["torch_cuda"] = torch.version.cuda
        if device.startswith("cuda"):
            if torch.cuda.is_available():
                props = torch.cuda.get_device_properties(device)
                line["gpu"] = torch.cuda.get_device_name(device)
                line["gpu_memory_gb"] = round(props.total_memory / 2**30, 1)
                line["capability"] = f"{props.major}.{props.minor}"
                line["bf16"] = torch.cuda.is_bf16_supported()
            else:
                problems.append("torch sees no CUDA GPU")
    spec = importlib.util.find_spec("napari_sam2_track")
    if spec is None or not spec.origin or not Path(spec.origin).resolve().is_relative_to(REPO / "src"):
        problems.append(f"napari_sam2_track is not imported from {REPO / 'src'} "
                        f"(found: {spec.origin if spec else None}); run through benchmarks/gpu.sh "
                        "or set PYTHONPATH=src")
    if not missing:
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            line["sam2"] = version("sam2")
        with contextlib.suppress(Exception):
            from sam2 import _C  # noqa: F401

            line["sam2_cuda_extension"] = True
    with contextlib.suppress(Exception):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                capture_output=True, text=True, timeout=5)
        if commit.returncode == 0:
            line["commit"] = commit.stdout.strip()
    if problems:
        line["error"] = "; ".join(problems) + (
            " (on a machine without a registry: `bash benchmarks/gpu.sh --fetch-wheels` on one "
            "with it, then copy .whl along; gpu.sh installs it)" if missing else "")
    return line


def prepare_frames(s: Settings, cache: Path, steps: set[str]) -> dict:
    """Write the JPEG folders the steps read (cached)."""
    import propagation

    start = time.perf_counter()
    make_disc_frames(cache / f"discs{s.frames}", s.frames)
    make_disc_frames(cache / f"discs{s.warmup_frames}", s.warmup_frames)
    if "writer" in steps:
        make_disc_frames(cache / f"discs1080p{s.writer_frames}", s.writer_frames, scale=2)
    if "memory" in steps:
        for n in s.memory_frames:
            propagation.make_frames(cache / f"frames{n}", n)
    return {"step": "frames", "sec": round(time.perf_counter() - start, 1), "cache": str(cache)}


def run_group(args, name: str, deadline: float, out: Path, record) -> None:
    """Run one group in a child process; stop it at the deadline."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--device", args.device,
           "--cache", str(args.cache), "--deadline", str(deadline)]
    cmd += ["--quick"] if args.quick else []
    cmd += ["--budget", str(args.budget)] if args.budget else []
    cmd += ["--frames", str(args.frames)] if args.frames else []
    cmd += ["--image-size", str(args.image_size)] if args.image_size else []
    with open(out / "stderr.log", "a") as err:
        err.write(f"\n===== {name}\n")
        err.flush()
        env = dict(os.environ)
        if args.quick:  # a check of the steps, not a measurement: one thread is enough
            env.setdefault("OMP_NUM_THREADS", "1")
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env,
                                 start_new_session=True)

        def forward():
            for text in child.stdout:
                if text.startswith("{"):
                    with contextlib.suppress(ValueError):
                        record({**json.loads(text), "group": name})

        reader = threading.Thread(target=forward, daemon=True)
        reader.start()
        try:
            child.wait(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            reader.join(5)
            record({"step": name, "error": "stopped at the time budget (--budget)", "group": name})
            return
        reader.join(5)
        if child.returncode != 0:
            record({"step": name, "group": name, "error": f"the group's process ended with exit "
                    f"code {child.returncode}; see stderr.log"})


def settings_from(args) -> Settings:
    s = QUICK if args.quick else FULL
    changes = {k: v for k, v in (("frames", args.frames), ("image_size", args.image_size),
                                 ("budget", args.budget)) if v}
    return dataclasses.replace(s, **changes)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    p.add_argument("--out", help="folder for gpu.jsonl and stderr.log (required)")
    p.add_argument("--quick", action="store_true",
                   help="every step in miniature: 128 px, a few frames, 1 and 2 objects")
    p.add_argument("--budget", type=float, help="seconds for the whole run (default 420; quick 110)")
    p.add_argument("--groups", nargs="+", help="run only these groups (names as printed in 'group')")
    p.add_argument("--frames", type=int, help="frames of the speed and fidelity runs (default 60)")
    p.add_argument("--image-size", type=int, help="model input size (default 1024; quick 128)")
    p.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "nst-gpu-bench"),
                   help="folder for the generated frames (kept between runs)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    s = settings_from(args)
    if args.child:
        run_child(args, s)
        return 0
    if not args.out:
        p.error("--out DIR is required")
    start = time.time()
    deadline = start + s.budget
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    log = open(out / "gpu.jsonl", "w")
    lock = threading.Lock()

    def record(line: dict) -> None:
        line = {**line, "t": round(time.time() - start, 1)}
        with lock:
            emit(line)
            log.write(json.dumps(line, default=str) + "\n")
            log.flush()

    env = environment(args.device)
    record(env)
    if "error" in env:
        return 2
    plan = [g for g in groups(s) if not args.groups or g[0] in args.groups]
    record(prepare_frames(s, Path(args.cache), {st for g in plan for st in g[3]}))
    for name, _size, _compiled, steps in plan:
        need = MIN_SECONDS[steps[0]] * (0.05 if args.quick else 1)
        if deadline - time.time() < need:
            record({"step": name, "group": name, "skipped": "time budget"})
            continue
        run_group(args, name, deadline, out, record)
    lines = [json.loads(x) for x in (out / "gpu.jsonl").read_text().splitlines()]
    failed = sorted({f"{x.get('group', '')}:{x['step']}" for x in lines if "error" in x})
    skipped = sorted({f"{x.get('group', '')}:{x['step']}" for x in lines if "skipped" in x})
    record({"step": "done", "seconds": round(time.time() - start, 1), "errors": failed,
            "skipped": skipped, "load_avg_1min": round(os.getloadavg()[0], 1)})
    log.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
