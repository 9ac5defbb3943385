"""Batch and segment runs on dask.distributed against ``track`` in one process.

Two experiments, each printing JSON lines:

``--experiment batch``: N small videos (JPEG folders, 100 frames by default).

* ``loop``: ``pipeline.track`` over the videos in this process, model loaded once, torch on all
  cores: the work itself.
* ``batch`` with 1 worker (all cores) and with W workers (cores shared): ``run_batch`` on an
  embedded ``LocalCluster`` whose workers have already loaded the model (start-up is reported
  apart). ``overhead`` = (batch wall - loop wall) / loop wall; ``scheduler_overhead_1w`` =
  (batch wall - sum of the tasks' own seconds) / that sum with one worker, whose tasks run one
  after the other (robust to other load on the machine); ``scaling`` = 1-worker wall /
  W-worker wall.

``--experiment segments``: one real video (``../shared/data/video/bedroom.mp4`` by default),
two objects with box prompts every K frames, ``--frames`` frames.

* ``sequential``: one ``track`` pass in this process;
* ``segments`` with 1, 2 and 4 segments (workers: min(segments, cores), or one per GPU):
  wall time, speed-up, and DAVIS J&F of the segment result against the sequential one over the
  range (1.0: identical).

``--experiment malloc``: the ``loop`` above in child processes with and without
``MALLOC_TRIM_THRESHOLD_=65536`` (the variable dask's nanny sets in its workers, which the
embedded cluster removes), alternating, ``--repeats`` times each.

Usage::

    python benchmarks/batch.py --experiment batch --videos 4 --frames 100
    python benchmarks/batch.py --experiment malloc --videos 1 --frames 50 --repeats 3
    python benchmarks/batch.py --experiment segments --frames 100 --every 25
    python benchmarks/batch.py --experiment segments --video ../shared/data/video/cups.mp4
    # GPU machine: one worker per GPU, the real tiny model at 1024 px
    python benchmarks/batch.py --experiment batch --device cuda --model tiny --image-size 1024
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))


def emit(**row) -> None:
    import os

    row["load_avg_1m"] = round(os.getloadavg()[0], 2)  # other processes on a shared machine
    print(json.dumps(row), flush=True)


def model_spec(args, tmp: Path):
    """The benchmark's model: the test model as a checkpoint, or a real one by name."""
    from napari_sam2_track.distributed import ModelSpec

    if args.model != "test":
        return ModelSpec(model=args.model, image_size=args.image_size, device=args.device)
    import torch
    from conftest import nudge_test_model

    from napari_sam2_track.engine.models import load_random_model

    path = tmp / "test_model.pt"
    model = load_random_model(image_size=args.image_size or 256, seed=0, device="cpu")
    nudge_test_model(model.predictor)
    torch.save({"model": model.predictor.state_dict()}, path)
    return ModelSpec(model=str(path), image_size=args.image_size or 256, device=args.device)


def prompts_for(width: int, height: int, every: int, frames: int, start: int = 0) -> dict:
    boxes = {1: (0.2, 0.3), 2: (0.6, 0.4)}
    return {
        "objects": [{"id": o} for o in boxes],
        "prompts": [
            {"object": o, "frame": t,
             "box": [fx * width, fy * height, (fx + 0.2) * width, (fy + 0.3) * height]}
            for o, (fx, fy) in boxes.items() for t in range(start, start + frames, every)
        ],
    }


def started_cluster(n_workers: int | None, spec, threads: int | None = None):
    """An embedded cluster as ``batch`` starts it, with the model already loaded."""
    from distributed import Client

    from napari_sam2_track.distributed.cluster import plan_local_cluster, start_local_cluster
    from napari_sam2_track.distributed.models import PreloadModel

    t0 = time.perf_counter()
    plan = plan_local_cluster(n_workers)
    cluster = start_local_cluster(plan)
    client = Client(cluster)
    client.wait_for_workers(plan.n_workers)
    plan.torch_threads = threads or plan.torch_threads
    client.register_plugin(PreloadModel(spec, plan.torch_threads), name=PreloadModel.name)
    return cluster, client, plan, time.perf_counter() - t0


def small_videos(args, tmp: Path) -> tuple[list[Path], Path]:
    """``--videos`` JPEG folders of ``--frames`` 160x120 frames, one point prompt for all."""
    from conftest import make_blob_video, write_jpeg_folder

    videos = [write_jpeg_folder(make_blob_video(args.frames, 120, 160, seed=i), tmp / f"v{i}")
              for i in range(args.videos)]
    prompts = tmp / "prompts.json"
    prompts.write_text(json.dumps({"objects": [{"id": 1}], "prompts": [
        {"object": 1, "frame": 0, "points": [[40, 50]], "labels": [1]}]}))
    return videos, prompts


def loop_wall(videos, prompts: Path, model, out: Path) -> float:
    """Seconds to ``track`` the videos one after the other in this process."""
    from napari_sam2_track.pipeline import track
    from napari_sam2_track.prompts import PromptSet
    from napari_sam2_track.sources import open_source

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for i, v in enumerate(videos):
        list(track(open_source(v), PromptSet.load(prompts), out / f"{i}.zarr", model=model))
    return time.perf_counter() - t0


def loop_experiment(args, tmp: Path) -> None:
    """The loop alone, in this process (run by ``malloc`` in child processes)."""
    import os

    import torch

    from napari_sam2_track.distributed.models import cached_model

    torch.set_num_threads(args.threads or 1)
    spec = model_spec(args, tmp)
    videos, prompts = small_videos(args, tmp)
    model = cached_model(spec)
    loop_wall(videos[:1], prompts, model, tmp / "warm")  # first-run costs out of the figure
    emit(config="loop", malloc_trim_threshold=os.environ.get("MALLOC_TRIM_THRESHOLD_"),
         wall_s=round(loop_wall(videos, prompts, model, tmp / "loop"), 3),
         videos=args.videos, frames=args.frames)


def malloc_experiment(args) -> None:
    """The loop in child processes with and without dask's ``MALLOC_TRIM_THRESHOLD_=65536``
    (which a nanny gives its workers), alternating, ``--repeats`` times each."""
    import os
    import subprocess

    walls: dict[str, list[float]] = {}
    for repeat in range(args.repeats):
        for value in (None, "65536"):
            env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
            if value is not None:
                env["MALLOC_TRIM_THRESHOLD_"] = value
            command = [sys.executable, __file__, "--experiment", "loop", "--videos",
                       str(args.videos), "--frames", str(args.frames), "--threads",
                       str(args.threads or 1), "--device", args.device]
            if args.image_size:
                command += ["--image-size", str(args.image_size)]
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            walls.setdefault(str(value), []).append(row["wall_s"])
            emit(config="malloc", repeat=repeat, malloc_trim_threshold=value,
                 wall_s=row["wall_s"], videos=args.videos, frames=args.frames)
    emit(config="summary", default_s=min(walls["None"]), trim_65536_s=min(walls["65536"]),
         slowdown=round(min(walls["65536"]) / min(walls["None"]), 3), videos=args.videos,
         frames=args.frames)


def batch_experiment(args, tmp: Path) -> None:
    import torch

    from napari_sam2_track.distributed import run_batch
    from napari_sam2_track.distributed.cluster import cpu_count, gpu_count
    from napari_sam2_track.distributed.models import cached_model

    spec = model_spec(args, tmp)
    videos, prompts = small_videos(args, tmp)
    rows = [{"video": str(v), "prompts": str(prompts)} for v in videos]
    common = {"videos": args.videos, "frames": args.frames, "device": args.device,
              "model": args.model, "cores": cpu_count(), "gpus": gpu_count()}
    walls = {}
    for repeat in range(args.repeats):
        torch.set_num_threads(args.threads or cpu_count())
        walls.setdefault("loop", []).append(
            loop_wall(videos, prompts, cached_model(spec), tmp / f"loop{repeat}"))
        emit(config="loop", repeat=repeat, wall_s=round(walls["loop"][-1], 3), **common)
        for workers in args.workers:
            cluster, client, plan, startup = started_cluster(workers, spec, args.threads)
            try:
                t0 = time.perf_counter()
                summary = run_batch(rows, tmp / f"batch{repeat}_{workers}", model=spec,
                                    client=client, progress=False)
                wall = time.perf_counter() - t0
            finally:
                client.close()
                cluster.close()
            assert summary.ok, summary.table()
            task_s = sum(r["seconds"] for r in summary.rows)
            walls.setdefault(workers, []).append(wall)
            if plan.n_workers == 1:  # tasks run one after the other: the rest is dask's
                walls.setdefault("sched", []).append((wall - task_s) / task_s)
            emit(config="batch", workers=plan.n_workers, torch_threads=plan.torch_threads,
                 repeat=repeat, wall_s=round(wall, 3), startup_s=round(startup, 3),
                 task_s=round(task_s, 3), **common)
    loop = min(walls["loop"])
    one = min(walls[args.workers[0]])
    result = {"config": "summary", "loop_wall_s": round(loop, 3), **common}
    for workers in args.workers:
        best = min(walls[workers])
        result[f"wall_s_{workers}w"] = round(best, 3)
        result[f"overhead_{workers}w"] = round((best - loop) / loop, 4)
        result[f"per_task_overhead_s_{workers}w"] = round((best - loop) / args.videos, 3)
        result[f"scaling_{workers}w"] = round(one / best, 3)
    if "sched" in walls:
        result["scheduler_overhead_1w"] = round(min(walls["sched"]), 4)
    emit(**result)


def segments_experiment(args, tmp: Path) -> None:
    import torch

    from napari_sam2_track.distributed import run_batch
    from napari_sam2_track.distributed.cluster import cpu_count, gpu_count
    from napari_sam2_track.distributed.models import cached_model
    from napari_sam2_track.formats._frames import ExportOptions, project_source
    from napari_sam2_track.formats.metrics import davis_jf
    from napari_sam2_track.pipeline import track
    from napari_sam2_track.project import ProjectStore
    from napari_sam2_track.prompts import PromptSet
    from napari_sam2_track.sources import open_source

    spec = model_spec(args, tmp)
    source = open_source(args.video)
    end = min(args.frames, len(source)) - 1
    prompts_file = tmp / "prompts.json"
    prompts_file.write_text(json.dumps(prompts_for(source.width, source.height, args.every, end + 1)))
    common = {"video": Path(args.video).name, "frames": end + 1, "every": args.every,
              "size": [source.width, source.height], "device": args.device, "model": args.model,
              "cores": cpu_count(), "gpus": gpu_count()}
    torch.set_num_threads(args.threads or cpu_count())
    sequential = tmp / "sequential.zarr"
    t0 = time.perf_counter()
    list(track(source, PromptSet.load(prompts_file), sequential, model=cached_model(spec), end=end))
    seq_wall = time.perf_counter() - t0
    emit(config="sequential", wall_s=round(seq_wall, 3), **common)
    options = ExportOptions(start=0, end=end)
    reference = project_source(ProjectStore.open(sequential, "r"), options)
    for n in args.segments:
        workers = None if args.device.startswith("cuda") else min(n, cpu_count())
        cluster, client, plan, startup = started_cluster(workers, spec, args.threads)
        try:
            t0 = time.perf_counter()
            summary = run_batch(
                [{"video": str(Path(args.video).resolve()), "prompts": str(prompts_file),
                  "end": end, "segments": n}],
                tmp / f"seg{n}", model=spec, client=client, progress=False)
            wall = time.perf_counter() - t0
        finally:
            client.close()
            cluster.close()
        assert summary.ok, summary.table()
        out = ProjectStore.open(summary.rows[0]["out"], "r")
        jf = davis_jf(reference, project_source(out, options))
        emit(config="segments", segments=n, workers=plan.n_workers, wall_s=round(wall, 3),
             startup_s=round(startup, 3), speedup=round(seq_wall / wall, 3),
             jf=round(jf["overall"]["J&F"], 4), j=round(jf["overall"]["J"]["mean"], 4),
             f=round(jf["overall"]["F"]["mean"], 4),
             bounds=out.meta["runs"][-1].get("segments"), **common)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--experiment", choices=["batch", "segments", "malloc", "loop"],
                   default="batch")
    p.add_argument("--videos", type=int, default=4)
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--segments", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--every", type=int, default=25, help="keyframe spacing K (segments)")
    p.add_argument("--video", default=str(HERE.parent.parent / "shared" / "data" / "video" / "bedroom.mp4"))
    p.add_argument("--model", default="test", help="'test' (random-init, 256 px) or a model name")
    p.add_argument("--image-size", type=int)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int,
                   help="torch threads per process (default: the cores, shared by the workers)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.experiment == "batch":
            batch_experiment(args, Path(tmp))
        elif args.experiment == "malloc":
            malloc_experiment(args)
        elif args.experiment == "loop":
            loop_experiment(args, Path(tmp))
        else:
            segments_experiment(args, Path(tmp))


if __name__ == "__main__":
    main()
