"""Per-track table (CSV, or Parquet when pyarrow is installed): one row per object per frame."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import StoreError
from ..review.models import read_review
from ..project import COL, STATE_NAMES, ProjectStore
from ._frames import ExportOptions, ProjectView, _Tables
from ._registry import FormatRecord, export_target, head, register

COLUMNS = ("object_id", "name", "category", "frame", "visible", "occluded", "area", "x0", "y0", "x1", "y1",
           "centroid_x", "centroid_y", "presence_logit", "state", "qc_status", "qc_reviewer",
           "qc_time")
#: A volume project's table: ``frame`` is the plane ``t * Z + z``, followed by ``t`` and ``z``.
VOLUME_COLUMNS = (*COLUMNS[:4], "t", "z", *COLUMNS[4:])


def _columns(store: ProjectStore) -> tuple[str, ...]:
    return VOLUME_COLUMNS if getattr(store, "is_volume", False) else COLUMNS


def _rows(store: ProjectStore, view: ProjectView):
    review = read_review(store)
    tables = _Tables(store, view.ids)
    names = {o.id: o.name for o in view.objects}
    volume = getattr(store, "is_volume", False)
    depth = store.volume_shape[1] if volume else 1
    for fr in view:
        for obj_id in view.ids:
            row = tables.row(obj_id, fr.t)
            m = fr.masks.get(obj_id)
            if m is None and obj_id not in fr.occluded and np.isnan(row[COL["state"]]):
                continue  # not run on this frame
            qc = review.decision_at(obj_id, fr.t)
            state = row[COL["state"]]
            rec = {
                "object_id": obj_id, "name": names[obj_id], "category": view.category_of(obj_id),
                "frame": fr.t, "visible": m is not None, "occluded": obj_id in fr.occluded,
                "area": int(m.sum()) if m is not None else 0,
                "presence_logit": None if np.isnan(row[COL["presence"]]) else float(row[COL["presence"]]),
                "state": STATE_NAMES.get(int(state), "not_run") if not np.isnan(state) else "not_run",
                "qc_status": qc.status if qc else "", "qc_reviewer": qc.reviewer if qc else "",
                "qc_time": qc.time.isoformat() if qc else "",
            }
            if volume:
                rec["t"], rec["z"] = divmod(fr.t, depth)
            if m is not None:
                ys, xs = np.nonzero(m)
                rec.update(x0=int(xs.min()), y0=int(ys.min()), x1=int(xs.max()) + 1, y1=int(ys.max()) + 1,
                           centroid_x=float(xs.mean()), centroid_y=float(ys.mean()))
            yield rec


def export_table(store: ProjectStore, out: str | Path, options: ExportOptions | None = None, *,
                 overwrite: bool = False) -> Path:
    """``.csv`` streams rows; ``.parquet`` writes row groups of 10,000 rows (needs pyarrow)."""
    view = ProjectView(store, options)
    parquet = Path(out).suffix.lower() == ".parquet"
    if parquet:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise StoreError("Parquet output needs pyarrow (pip install pyarrow); or write a .csv") from None
    with export_target(store, out, "table", overwrite) as tmp:
        if parquet:
            _write_parquet(store, view, tmp, pa, pq)
        else:
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=_columns(store))
                w.writeheader()
                for rec in _rows(store, view):
                    w.writerow(rec)
    return Path(out)


def _write_parquet(store: ProjectStore, view: ProjectView, out: Path, pa, pq) -> None:
    writer, batch = None, []

    def flush():
        nonlocal writer
        table = pa.Table.from_pylist([{c: r.get(c) for c in _columns(store)} for r in batch])
        if writer is None:
            writer = pq.ParquetWriter(out, table.schema)
        writer.write_table(table.cast(writer.schema))
        batch.clear()

    try:
        for rec in _rows(store, view):
            batch.append(rec)
            if len(batch) >= 10000:
                flush()
        if batch or writer is None:
            flush()
    finally:
        if writer is not None:
            writer.close()


def _is_csv_or_parquet(path: Path) -> bool:
    text = head(path)
    first = text.split(b"\n", 1)[0].rstrip(b"\r")
    return text.startswith(b"PAR1") or first in (",".join(COLUMNS).encode(), ",".join(VOLUME_COLUMNS).encode())


register(FormatRecord("table", "table export (CSV/Parquet)", (".csv", ".parquet"), _is_csv_or_parquet,
                      export_table, aliases=("csv", "parquet")))
