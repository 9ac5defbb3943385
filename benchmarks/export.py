"""Peak memory of every exporter as the video grows.

Builds (and caches) tiny synthetic projects of 64x64 frames with three moving objects, one of
which disappears every 50 frames, then exports each format in its own subprocess so that the
peak RSS is per case. Prints one JSON line per format and size::

    python benchmarks/export.py --frames 1000 20000
    python benchmarks/export.py --frames 1000 --formats ctc davis
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZE = 64
OUT_NAMES = {"youtube-vis": "out.json", "cvat": "out.xml", "mots": "out.txt", "mots-kitti": "out.txt",
             "tiff": "out.tif", "table": "out.csv"}


def build(path: Path, n_frames: int) -> None:
    from napari_sam2_track.prompts import ObjectSpec
    from napari_sam2_track.project import STATE_ABSENT, STATE_EDITED, ProjectStore, mask_stats

    store = ProjectStore.create(path, num_frames=n_frames, height=SIZE, width=SIZE, overwrite=True)
    ids = [1, 2, 3]
    store.set_objects([ObjectSpec(id=i) for i in ids])
    yy, xx = np.mgrid[:SIZE, :SIZE]
    tables = {i: np.full((n_frames, 8), np.nan) for i in ids}
    for t in range(n_frames):
        masks = {}
        for i in ids:
            cx = 16 + (t * i) % 32
            m = (xx - cx) ** 2 + (yy - 12 * i - 8) ** 2 < 36
            if i == 2 and (t // 50) % 2:
                m[:] = False
            masks[i] = m
            area, bbox = mask_stats(m)
            tables[i][t] = [1.0 if area else -1.0, area, *(bbox or (np.nan,) * 4),
                            STATE_EDITED if area else STATE_ABSENT, 1]
        store.merge_labels(t, masks)
    for i in ids:
        store.group[f"objects/{i}/table"][:] = tables[i]
    (path / "BUILD_COMPLETE").touch()  # a build that was interrupted is redone


def run_case(project: str, fmt: str, out: str) -> None:
    from napari_sam2_track.formats import export

    t0 = time.perf_counter()
    export(project, fmt, Path(out) / OUT_NAMES.get(fmt, "out"))
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    print(json.dumps({"seconds": round(seconds, 2), "peak_rss_mib": round(rss, 1)}))


def main() -> None:
    from napari_sam2_track.formats import FORMATS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, nargs="+", default=[1000, 20000])
    p.add_argument("--formats", nargs="+", default=list(FORMATS))
    p.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "nst-export-bench"))
    p.add_argument("--case", nargs=3, metavar=("PROJECT", "FORMAT", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.case:
        run_case(*args.case)
        return
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    for n in args.frames:
        project = cache / f"p{n}.zarr"
        if not (project / "BUILD_COMPLETE").is_file():
            build(project, n)
        for fmt in args.formats:
            out = Path(tempfile.mkdtemp(dir=cache))
            try:
                res = subprocess.run([sys.executable, __file__, "--case", str(project), fmt, str(out)],
                                     capture_output=True, text=True, check=True)
                line = json.loads(res.stdout.strip().splitlines()[-1])
            finally:
                shutil.rmtree(out, ignore_errors=True)
            print(json.dumps({"format": fmt, "frames": n, "size": SIZE, **line}), flush=True)


if __name__ == "__main__":
    main()
