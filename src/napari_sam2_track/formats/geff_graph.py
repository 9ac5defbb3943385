"""geff: a zarr graph with one node per object per frame and edges along each object's track.

Node properties: ``t``, ``y``, ``x`` (centroid), ``area``, ``track_id`` (the object id) and
``seg_id`` (the object's value in the labels). The merged labels are written beside the graph
as OME-Zarr (``labels.ome.zarr``) and linked as a geff related object.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..project import ProjectStore
from ._frames import ExportOptions, ProjectView, staged
from ._registry import FormatRecord, export_target, register


def export_geff(store: ProjectStore, out: str | Path, options: ExportOptions | None = None, *,
                overwrite: bool = False, labels: bool = True) -> Path:
    """Write ``OUT/tracks.geff`` (and ``OUT/labels.ome.zarr`` when ``labels``)."""
    from geff.core_io import write_arrays
    from geff_spec import Axis, GeffMetadata, PropMetadata, RelatedObject

    view = ProjectView(store, options)
    progress = view.progress
    if labels:  # the labels are a second walk over the frames
        view.progress = staged(progress, 0, 2)
    final = Path(out)
    with export_target(store, final, "geff", overwrite) as out:
        cols = {k: [] for k in ("t", "y", "x", "area", "track_id", "frame")}
        edges = []
        last_node: dict[int, int] = {}
        for fr in view:
            for obj_id in sorted(fr.masks):
                ys, xs = np.nonzero(fr.masks[obj_id])
                node = len(cols["t"])
                for k, v in (("t", fr.index), ("y", ys.mean()), ("x", xs.mean()), ("area", ys.size),
                             ("track_id", obj_id), ("frame", fr.t)):
                    cols[k].append(v)
                if obj_id in last_node:
                    edges.append((last_node[obj_id], node))
                last_node[obj_id] = node
        n = len(cols["t"])
        node_ids = np.arange(n, dtype=np.uint64)
        edge_ids = np.asarray(edges, dtype=np.uint64).reshape(-1, 2)
        dtypes = {"t": np.int64, "y": np.float64, "x": np.float64, "area": np.int64, "track_id": np.int64,
                  "frame": np.int64}
        props = {k: {"values": np.asarray(v, dtype=dtypes[k]), "missing": None} for k, v in cols.items()}
        props["seg_id"] = {"values": props["track_id"]["values"].copy(), "missing": None}
        related = [RelatedObject(type="labels", path="../labels.ome.zarr", label_prop="seg_id")] if labels else None
        meta = GeffMetadata(
            directed=True,
            axes=[Axis(name="t", type="time"), Axis(name="y", type="space"), Axis(name="x", type="space")],
            node_props_metadata={k: PropMetadata(identifier=k, dtype=np.dtype(p["values"].dtype).name)
                                 for k, p in props.items()},
            edge_props_metadata={},
            track_node_props={"tracklet": "track_id"},
            related_objects=related,
        )
        write_arrays(str(out / "tracks.geff"), node_ids, props, edge_ids, {}, meta, zarr_format=2)
        if labels:
            from .omezarr import export_omezarr

            labels_options = replace(view.options, progress=staged(progress, 1, 2))
            export_omezarr(store, out / "labels.ome.zarr", labels_options, version="0.4")
    return final


register(FormatRecord("geff", "geff export", exporter=export_geff))
