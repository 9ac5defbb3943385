"""Volumes: opening a volume and reading one slice must not load the volume.

Each case runs in its own subprocess (so RSS is per case): the real volumes in
``../shared/data/volumes`` (``mni152_t1.nii.gz``, ``example4d.nii.gz``, and the three contiguous
slices of ``ct_series``, copied to a temporary folder because the fourth file lies 202 mm away
and the whole folder is refused as incomplete), then a synthetic 256^3 int16 volume (32 MiB)
written here as ``.nii`` and ``.nii.gz``. For each: the resident set size after the imports,
after ``open_source`` (headers, plus the slices sampled for the default intensity window) and
after reading the middle slice and the last slice; the peak RSS of the process; and the full
size of the volume. One JSON line per case::

    nice python benchmarks/volumes.py
    nice python benchmarks/volumes.py --data /path/to/volumes
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def rss_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def run_case(name: str, path: str) -> dict:
    """Open ``path``, read its middle and its last slice; memory and time at each step."""
    import nibabel  # noqa: F401 - imported before measuring, so RSS growth is data, not code
    import numpy as np
    import pydicom  # noqa: F401

    from napari_sam2_track.sources import open_volume
    from napari_sam2_track.sources.dicom import _header  # noqa: F401

    before, peak_before = rss_bytes(), peak_rss_bytes()
    t0 = time.perf_counter()
    vol = open_volume(path)
    t_open = time.perf_counter() - t0
    after_open = rss_bytes()
    t_n, n_z = vol.shape[:2]
    t0 = time.perf_counter()
    middle = vol.read_slice(t_n // 2, n_z // 2)
    t_middle = time.perf_counter() - t0
    after_middle = rss_bytes()
    t0 = time.perf_counter()
    vol.read_slice(t_n - 1, n_z - 1)
    t_last = time.perf_counter() - t0
    after_last = rss_bytes()
    full = int(np.prod(vol.shape)) * vol.dtype.itemsize
    vol.close()
    mib = 1 / 2**20
    return {
        "case": name,
        "kind": vol.kind,
        "shape_tzyx": list(vol.shape),
        "dtype": vol.dtype.name,
        "volume_mib": round(full * mib, 2),
        "slice_mib": round(middle.nbytes * mib, 3),
        "rss_before_mib": round(before * mib, 1),
        "rss_after_open_mib": round(after_open * mib, 1),
        "rss_after_middle_slice_mib": round(after_middle * mib, 1),
        "rss_after_last_slice_mib": round(after_last * mib, 1),
        "rss_growth_mib": round((after_last - before) * mib, 2),
        "peak_rss_growth_mib": round(max(0, peak_rss_bytes() - max(peak_before, before)) * mib, 2),
        "open_s": round(t_open, 4),
        "middle_slice_s": round(t_middle, 4),
        "last_slice_s": round(t_last, 4),
        "window": vol.window.to_dict() if vol.window is not None else None,
    }


def synthetic(folder: Path) -> list[tuple[str, str]]:
    import nibabel as nib
    import numpy as np

    rng = np.random.default_rng(0)
    data = rng.integers(0, 4000, (256, 256, 256), dtype=np.int16)
    out = []
    for name in ("synthetic256.nii", "synthetic256.nii.gz"):
        path = folder / name
        nib.save(nib.Nifti1Image(data, np.eye(4)), path)
        out.append((name, str(path)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "volumes"))
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--make", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.path)), flush=True)
        return
    if args.make:
        print(json.dumps(synthetic(Path(args.make))))
        return
    data = Path(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        cases = []
        for name in ("mni152_t1.nii.gz", "example4d.nii.gz"):
            if (data / name).is_file():
                cases.append((name, str(data / name)))
        if (data / "ct_series").is_dir():
            ct = Path(tmp) / "ct_series_contiguous"
            ct.mkdir()
            for name in ("17136", "17166", "17196"):
                shutil.copy(data / "ct_series" / name, ct / name)
            cases.append(("ct_series (3 contiguous slices)", str(ct)))
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
        # written by a child: Linux keeps a process's peak RSS across exec, so this process
        # stays small for the peaks its children report to mean something
        made = subprocess.run([sys.executable, __file__, "--make", tmp], env=env, check=True,
                              capture_output=True, text=True)
        cases.extend(tuple(c) for c in json.loads(made.stdout))
        for name, path in cases:
            subprocess.run([sys.executable, __file__, "--case", name, "--path", path], env=env,
                           check=True)


if __name__ == "__main__":
    main()
