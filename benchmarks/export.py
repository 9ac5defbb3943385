"""Peak memory of every exporter as the video grows.

Builds (and caches) tiny synthetic projects of 64x64 frames with three moving objects, one of
which disappears every 50 frames, then exports each format in its own subprocess so that the
peak RSS is per case. Prints one JSON line per format and size::

    python benchmarks/export.py --frames 1000 20000
    python benchmarks/export.py --frames 1000 --formats ctc davis

Volume projects (``--volumes T ...``: T timepoints of 16 slices of 64x64, three moving balls)
are exported as the volume formats, one timepoint in memory at a time::

    python benchmarks/export.py --frames --volumes 5 40
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
DEPTH = 16
VOLUME_FORMATS = ["nifti", "ome-zarr", "tiff", "ctc"]


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


def build_volume(path: Path, n_t: int) -> None:
    """A volume project of ``n_t`` timepoints of DEPTH x SIZE x SIZE, written plane by plane."""
    from napari_sam2_track.prompts import ObjectSpec
    from napari_sam2_track.project import STATE_EDITED, ProjectStore
    from napari_sam2_track.sources.volume import ArrayVolumeSource

    volume = ArrayVolumeSource(np.zeros((n_t, DEPTH, SIZE, SIZE), np.uint8), "TZYX", window=(0, 1),
                               sizes={"z": (2.0, "µm"), "y": (0.5, "µm"), "x": (0.5, "µm")})
    store = ProjectStore.create(path, source=volume, overwrite=True)
    ids = [1, 2, 3]
    store.set_objects([ObjectSpec(id=i) for i in ids])
    zz, yy, xx = np.mgrid[:DEPTH, :SIZE, :SIZE]
    for t in range(n_t):
        balls = {i: (xx - 16 - (t * i) % 32) ** 2 + (yy - 12 * i - 8) ** 2 + 4 * (zz - 8) ** 2 < 36 for i in ids}
        for z in range(DEPTH):
            p = store.plane(t, z)
            store.merge_labels(p, {i: b[z] for i, b in balls.items() if b[z].any()})
            for i, b in balls.items():
                store.write_row(i, p, b[z], presence=1.0, state=STATE_EDITED, run=1)
    (path / "BUILD_COMPLETE").touch()


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
    p.add_argument("--frames", type=int, nargs="*", default=[1000, 20000])
    p.add_argument("--volumes", type=int, nargs="*", default=[],
                   help="also export volume projects of these many timepoints (16x64x64 each)")
    p.add_argument("--formats", nargs="+", default=list(FORMATS))
    p.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "nst-export-bench"))
    p.add_argument("--case", nargs=3, metavar=("PROJECT", "FORMAT", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.case:
        run_case(*args.case)
        return
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    cases = [(n, cache / f"p{n}.zarr", build, args.formats) for n in args.frames]
    cases += [(n, cache / f"v{n}.zarr", build_volume, [f for f in VOLUME_FORMATS if f in args.formats])
              for n in args.volumes]
    for n, project, make, formats in cases:
        if not (project / "BUILD_COMPLETE").is_file():
            make(project, n)
        for fmt in formats:
            out = Path(tempfile.mkdtemp(dir=cache))
            try:
                res = subprocess.run([sys.executable, __file__, "--case", str(project), fmt, str(out)],
                                     capture_output=True, text=True, check=True)
                line = json.loads(res.stdout.strip().splitlines()[-1])
            finally:
                shutil.rmtree(out, ignore_errors=True)
            size = {"frames": n} if make is build else {"timepoints": n, "slices": DEPTH}
            print(json.dumps({"format": fmt, **size, "size": SIZE, **line}), flush=True)


if __name__ == "__main__":
    main()
