"""Datasets: ``dataset status`` on many items, and ``dataset export`` memory against the number
of items. Prints JSON lines.

Builds (and caches under ``--work``) one project tracked by the random-weight test model (a
24-frame, two-object disc video), with QC decisions and interaction events, and copies it into
a dataset of ``--items`` items. Then:

* ``status``: :func:`napari_sam2_track.dataset.status.status` in this process, cold (no
  summary cached: every project's tables and logs are read) and warm (best of ``--repeat``:
  the cached summaries, five ``stat`` calls per project), and ``napari-sam2-track dataset
  status DIR --json`` as a new process (its imports included): cold (the first run after the
  dataset was made: no summary cached) and warm (the next run; best of ``--repeat``). No mask
  is opened: the run counts the calls of ``ProjectStore.masks``/``frame_masks``/``mask_crops``/
  ``shared_pixels``.
* ``export``: ``dataset export --format ctc`` of the first N items for each N of
  ``--export-items``, each in a new process, with its peak resident memory (``VmHWM``) before
  and after the export.

::

    python benchmarks/dataset.py --items 500 --export-items 10 40 160
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

PROMPTS = {
    "objects": [{"id": 1}, {"id": 2}],
    "prompts": [{"object": 1, "frame": 0, "points": [[30, 40]], "labels": [1]},
                {"object": 2, "frame": 2, "box": [78, 20, 102, 44]}],
}


def template(work: Path) -> Path:
    """A tracked project with decisions and events (built once)."""
    project = work / "template.zarr"
    if (project / "zarr.json").is_file():
        return project
    sys.path.insert(0, str(REPO / "tests"))
    from _common import build_test_model
    from conftest import make_blob_video, write_jpeg_folder

    from napari_sam2_track.pipeline import track
    from napari_sam2_track.prompts import PromptSet
    from napari_sam2_track.review.analytics import log_event
    from napari_sam2_track.review.qc import approve, masklets
    from napari_sam2_track.sources import open_source

    clip = write_jpeg_folder(make_blob_video(24), work / "clip")
    model = build_test_model()
    for _ in track(open_source(clip), PromptSet.model_validate(PROMPTS), project, model=model):
        pass
    spans = masklets(project)
    for m in spans[: len(spans) // 2]:
        approve(project, m.object, m.start, m.end, reviewer="kim")
    for t in range(24):
        log_event(project, "navigate", annotator="ana", frames=(t, t), durable=False)
    return project


def build_dataset(work: Path, n_items: int) -> Path:
    from napari_sam2_track.dataset import Dataset

    folder = work / f"ds{n_items}"
    if (folder / "dataset.yaml").is_file():
        return folder
    project = template(work)
    videos = work / "videos"
    videos.mkdir(exist_ok=True)
    ds = Dataset.init(folder, annotators=["ana", "ben", "kim"])
    entries = []
    for i in range(n_items):
        source = videos / f"v{i:04d}.mp4"
        source.touch()
        entries.append({"source": source})
    items = ds.add_many(entries)
    for i, item in enumerate(items):
        if i % 5:  # one item in five is not tracked yet
            shutil.copytree(project, item.project)
    ds.assign([i.id for i in items[: n_items // 2]], "ana")
    ds.assign([i.id for i in items[n_items // 2:]], "ben")
    for i in items[:: 7]:
        ds.record_stage(i.id, "in review", "ana")
    return folder


def count_mask_reads():
    """Patch the store's mask readers to count their calls (the status must make none)."""
    from napari_sam2_track.project import ProjectStore

    calls = {"n": 0}
    for name in ("masks", "frame_masks", "mask_crops", "shared_pixels", "mask"):
        original = getattr(ProjectStore, name)

        def counted(self, *a, _original=original, **k):
            calls["n"] += 1
            return _original(self, *a, **k)

        setattr(ProjectStore, name, counted)
    return calls


def bench_status(work: Path, n_items: int, repeat: int) -> None:
    from napari_sam2_track.dataset import Dataset
    from napari_sam2_track.dataset.status import status

    folder = build_dataset(work, n_items)
    shutil.rmtree(folder / ".cache", ignore_errors=True)
    calls = count_mask_reads()
    ds = Dataset.open(folder)
    t0 = time.perf_counter()
    result = status(ds)
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        status(Dataset.open(folder))
        warm.append(time.perf_counter() - t0)
    def command() -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "napari_sam2_track.cli", "dataset", "status",
                        str(folder), "--json"], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "PYTHONPATH": str(REPO / "src")})
        return time.perf_counter() - t0

    shutil.rmtree(folder / ".cache", ignore_errors=True)
    cli_cold = command()
    cli_warm = min(command() for _ in range(repeat))
    print(json.dumps({
        "bench": "dataset_status", "items": n_items,
        "tracked_items": sum(1 for r in result["items"] if r["frames"] is not None),
        "cold_s": round(cold, 3), "warm_s": round(min(warm), 4),
        "cli_cold_s": round(cli_cold, 3), "cli_warm_s": round(cli_warm, 3),
        "mask_reads": calls["n"],
        "loadavg": round(os.getloadavg()[0], 2),
    }), flush=True)


def bench_export(work: Path, n_items: int, counts: list[int]) -> None:
    folder = build_dataset(work, max(n_items, max(counts) * 5 // 4 + 1))
    for n in counts:
        out = work / f"export{n}"
        shutil.rmtree(out, ignore_errors=True)
        code = (
            "import sys, time, json\n"
            "def hwm():  # VmHWM: peak RSS of this process (ru_maxrss keeps the parent's across exec)\n"
            "    for line in open('/proc/self/status'):\n"
            "        if line.startswith('VmHWM'):\n"
            "            return int(line.split()[1]) / 1024\n"
            "from napari_sam2_track.dataset import Dataset\n"
            "from napari_sam2_track.dataset.export import export_dataset\n"
            "from napari_sam2_track.dataset.status import item_rows\n"
            f"ds = Dataset.open({str(folder)!r})\n"
            "rows = item_rows(ds)\n"
            f"keep = [r['id'] for r in rows if r['frames'] is not None][:{n}]\n"
            "before = hwm()\n"
            "import napari_sam2_track.dataset.export as ex\n"
            "orig = ex.item_rows\n"
            "ex.item_rows = lambda d: [r for r in orig(d) if r['id'] in set(keep)]\n"
            "t = time.perf_counter()\n"
            f"m = export_dataset(ds, 'ctc', {str(out)!r}, split='train=0.8,val=0.2')\n"
            "print(json.dumps({'items': len(m['items']), 'seconds': time.perf_counter() - t,"
            " 'rss_before_mb': before, 'peak_rss_mb': hwm()}))\n"
        )
        done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
        data = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps({"bench": "dataset_export", "format": "ctc", **{
            k: round(v, 2) if isinstance(v, float) else v for k, v in data.items()}}), flush=True)
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=500)
    p.add_argument("--export-items", type=int, nargs="*", default=[10, 40, 160])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "nst-dataset-bench")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    bench_status(args.work, args.items, args.repeat)
    if args.export_items:
        bench_export(args.work, args.items, args.export_items)


if __name__ == "__main__":
    main()
