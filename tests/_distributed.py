"""Shared by the dask tests: a real two-process LocalCluster and the test model as a checkpoint.

Workers build the test model from the checkpoint file, with the same options a user passes to
``batch``, so they run exactly the weights of the ``test_model`` fixture.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from napari_sam2_track.project import COL, ProjectStore

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, test_model) -> Path:
    import torch

    path = tmp_path_factory.mktemp("ckpt") / "test_tiny.pt"
    torch.save({"model": test_model.predictor.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def model_spec(checkpoint):
    from napari_sam2_track.distributed import ModelSpec

    return ModelSpec(model=str(checkpoint), image_size=256, device="cpu")


@contextmanager
def one_torch_thread():
    """Compute a reference as the workers do: CPU results depend on torch's thread count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def dask_client():
    """Two worker processes with one task slot and one torch thread each (glibc's malloc
    defaults, as in the embedded cluster)."""
    import dask
    from distributed import Client, LocalCluster

    from napari_sam2_track.distributed.cluster import WORKER_ENVIRON

    with dask.config.set(WORKER_ENVIRON), LocalCluster(
        processes=True,
        n_workers=2,
        threads_per_worker=1,
        dashboard_address=None,
        worker_dashboard_address=None,
        env={"OMP_NUM_THREADS": "1"},
    ) as cluster, Client(cluster) as client:
        client.wait_for_workers(2)
        yield client


def assert_same_project(path_a, path_b, frames=None) -> None:
    """Masks, merged labels and table rows (all but the run column) are identical."""
    a, b = ProjectStore.open(path_a, "r"), ProjectStore.open(path_b, "r")
    assert a.object_ids() == b.object_ids()
    frames = range(a.num_frames) if frames is None else frames
    cols = [i for i in range(len(COL)) if i != COL["run"]]
    for t in frames:
        assert np.array_equal(a.labels[t], b.labels[t]), f"labels differ on frame {t}"
    for obj in a.object_ids():
        ta, tb = a.table(obj)[list(frames)][:, cols], b.table(obj)[list(frames)][:, cols]
        assert np.array_equal(ta, tb, equal_nan=True), f"table of object {obj} differs"
        for t in frames:
            assert np.array_equal(a.mask(obj, t), b.mask(obj, t)), f"object {obj} frame {t}"
