"""Track the videos of a manifest on a local dask cluster, from Python.

The same as ``napari-sam2-track batch MANIFEST --out-dir OUT``, written out so it can be adapted
in a notebook: the cluster and the ``Client`` are yours, ``run_batch`` only submits to them.

    python examples/batch_local.py videos.csv projects/ --model tiny --workers 2

On a GPU machine start one worker per GPU instead (``batch`` does this by itself)::

    from napari_sam2_track.distributed.cluster import plan_local_cluster, start_local_cluster
    cluster = start_local_cluster(plan_local_cluster())
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from distributed import Client, LocalCluster

    from napari_sam2_track.distributed import ModelSpec, run_batch

    p = argparse.ArgumentParser(description="batch tracking on a local dask cluster")
    p.add_argument("manifest", help="CSV or YAML manifest (see docs/distributed.md)")
    p.add_argument("out_dir", help="folder of the output projects")
    p.add_argument("--model", default="tiny", help="model name or .pt checkpoint")
    p.add_argument("--image-size", type=int)
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)

    # Worker processes with one task slot each: one video (or segment) at a time per worker.
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        summary = run_batch(
            args.manifest,
            args.out_dir,
            model=ModelSpec(model=args.model, image_size=args.image_size, device=args.device),
            client=client,
            retries=1,
        )
    print(summary.table())
    summary.to_json(f"{args.out_dir}/summary.json")
    return 0 if summary.ok else 1


if __name__ == "__main__":  # worker processes are spawned: keep the work under this guard
    sys.exit(main())
