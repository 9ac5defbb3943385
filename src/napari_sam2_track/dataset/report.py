"""The dataset report: progress and ETA, annotator analytics beside the SAM 2 paper's rows,
agreement between two annotators, reviewers' accuracy on check frames.

:func:`dataset_report` gathers the numbers (``dataset report --json`` prints them);
:func:`write_html` writes them as one self-contained page: tables, and matplotlib plots
embedded as base64 PNG, readable in any browser without this package.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
from pathlib import Path

from .analytics import add_accuracy, annotator_analytics, iter_rows, owners
from .checks import IOU_THRESHOLD, dataset_check_calls

#: Columns of the annotator table, with their headings.
COLUMNS = (
    ("seconds_per_frame", "s / frame"), ("percent_frames_edited", "% frames edited"),
    ("clicks_per_clicked_frame", "clicks / clicked frame"), ("corrections", "corrections"),
    ("qc_pass_rate", "QC pass %"), ("review_seconds_per_masklet", "review s / masklet"),
    ("check_accuracy", "check accuracy %"), ("annotated_frames", "frames"),
    ("active_seconds", "active s"),
)


def dataset_report(dataset, *, idle_seconds: float | None = None,
                   iou_threshold: float = IOU_THRESHOLD) -> dict:
    """Every number of the dataset report (JSON-ready): ``items`` and ``totals`` (progress and
    ETA) as ``dataset status`` gives them, ``analytics``, ``agreement`` and ``checks``."""
    from .agreement import item_agreement
    from .status import status

    analytics = annotator_analytics(owners(dataset), idle_seconds=idle_seconds)
    calls = dataset_check_calls(dataset, iou_threshold=iou_threshold)
    add_accuracy(analytics, calls)
    agreement = [a for item in dataset.items if len(item.copies) >= 2
                 if (a := item_agreement(item)) is not None]
    return {
        "dataset": dataset.name,
        "folder": str(dataset.folder),
        "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **{k: v for k, v in status(dataset).items() if k in ("items", "totals")},
        "analytics": analytics,
        "agreement": agreement,
        "checks": {"iou_threshold": iou_threshold, "calls": [c.as_dict() for c in calls],
                   "mistakes": [c.as_dict() for c in calls if not c.correct]},
    }


def to_json(result: dict) -> str:
    """The report as JSON (NaN written as null)."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(result), indent=2)


# ----------------------------------------------------------------------------- HTML
def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.2f}"
    return html.escape(str(v))


def _table(headings: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _plots(result: dict) -> list[str]:
    from matplotlib import dates as mdates
    from matplotlib.figure import Figure

    out = []
    analytics = result["analytics"]
    names = list(analytics["annotators"])
    refs = analytics["reference"]
    measures = [("seconds_per_frame", "seconds per frame"), ("percent_frames_edited", "% frames edited"),
                ("clicks_per_clicked_frame", "clicks per clicked frame")]
    fig = Figure(figsize=(10, 3.2))
    for k, (key, title) in enumerate(measures):
        ax = fig.add_subplot(1, 3, k + 1)
        rows = [(n, analytics["annotators"][n].get(key)) for n in names]
        rows = [(n, v) for n, v in rows if v is not None] + [("dataset", analytics["dataset"].get(key) or 0)]
        labels, values = [n for n, _ in rows], [v for _, v in rows]
        ax.bar(range(len(labels)), values, color="tab:blue")
        for ref, style in zip(refs, ("--", ":")):
            if ref.get(key) is not None:
                ax.axhline(ref[key], linestyle=style, color="grey", label=ref["method"])
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        if k == 0:
            ax.legend(fontsize=7)
    out.append(_png(fig))
    daily = analytics["daily"]
    if daily:
        fig = Figure(figsize=(12, 3))
        for k, (key, title) in enumerate([*measures[:2], ("qc_pass_rate", "QC pass %")]):
            ax = fig.add_subplot(1, 3, k + 1)
            for name, days in sorted(daily.items()):
                xs = [_dt.date.fromisoformat(d) for d, m in days.items() if m.get(key) is not None]
                ys = [m[key] for m in days.values() if m.get(key) is not None]
                if xs:
                    ax.plot(xs, ys, marker="o", label=name)
            ax.set_title(f"{title}, per day", fontsize=10)
            ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=2, maxticks=8))
            ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
            ax.tick_params(axis="x", labelsize=7, rotation=30)
            if k == 0 and ax.get_lines():
                ax.legend(fontsize=7)
        out.append(_png(fig))
    stages = {k: v for k, v in result["totals"]["stages"].items() if v}
    if stages:
        from .records import STAGES

        fig = Figure(figsize=(6, 2.4))
        ax = fig.add_subplot(1, 1, 1)
        order = [s for s in STAGES if s in stages] + [s for s in stages if s not in STAGES]
        ax.barh(order, [stages[s] for s in order], color="tab:green")
        ax.set_title("items per stage", fontsize=10)
        out.append(_png(fig))
    return out


def write_html(result: dict, path: str | Path) -> Path:
    """Write the report as one self-contained HTML page (built beside, renamed into place)."""
    from ..project.placement import build_beside

    analytics = result["analytics"]
    rows = [[r["who"], *[r.get(k) for k, _ in COLUMNS]] for r in iter_rows(analytics)]
    p = result["totals"]
    eta = p["eta_seconds"]
    parts = [
        f"<h1>Dataset {html.escape(result['dataset'])}</h1>",
        f"<p>{html.escape(result['folder'])} — generated {html.escape(result['generated'])}</p>",
        "<h2>Progress</h2>",
        f"<p>{p['items']} items, {p['frames']} frames; {p['covered_frames']} of {p['visible_frames']} "
        f"visible (object, frame) pairs under a valid QC decision; {p['frames_left']} left. ETA at "
        f"the measured {_cell(p['seconds_per_frame'])} s per frame: "
        f"{'–' if eta is None else f'{eta / 3600:.1f} h'}.</p>",
        _table(["item", "stage", "frames", "QC coverage %", "annotator", "reviewer"],
               [[i["id"], i["stage"], i["frames"], i["qc_coverage"], i["assignee"], i["reviewer"]]
                for i in result["items"]]),
        "<h2>Annotators</h2>",
        "<p>Per annotator, the dataset, and the SAM 2 paper's data-engine rows (Table 1).</p>",
        _table(["who", *[h for _, h in COLUMNS]], rows),
        *_plots(result),
    ]
    if result["agreement"]:
        parts.append("<h2>Agreement between annotators</h2>")
        rows = []
        for a in result["agreement"]:
            for obj, o in sorted(a["objects"].items(), key=lambda kv: int(kv[0])):
                worst = ", ".join(f"{w['frame']} (J {w['J']:.2f})" for w in o["worst_frames"])
                rows.append([a["item"], " vs ".join(a["annotators"]), obj, o["J"], o["F"], o["J&F"],
                             o["frames_disagreeing"], worst])
        parts.append(_table(["item", "annotators", "object", "J", "F", "J&F", "frames disagreeing",
                             "most disagreeing frames"], rows))
    checks = result["checks"]
    if checks["calls"]:
        parts.append(f"<h2>Check frames</h2><p>A call is wrong when a reviewer approves a mask with IoU "
                     f"below {checks['iou_threshold']:.2f} against the reference, or rejects one at or "
                     "above it.</p>")
        wrong = [[c["reviewer"], Path(c["project"]).name, c["object"], c["frame"], c["status"], c["iou"]]
                 for c in checks["mistakes"]]
        parts.append(_table(["reviewer", "project", "object", "frame", "call", "IoU"], wrong)
                     if wrong else "<p>No wrong calls.</p>")
    style = ("body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}"
             "td:first-child,th:first-child{text-align:left}img{max-width:100%}")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Dataset "
            f"{html.escape(result['dataset'])}</title><style>{style}</style></head><body>"
            + "\n".join(parts) + "</body></html>")
    path = Path(path)
    with build_beside(path, _PAGE, overwrite=True) as staging:
        Path(staging).write_text(page, encoding="utf-8")
    return path


class _Page:
    title = "HTML report"
    is_dir = False

    def recognises(self, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() in (".html", ".htm")


_PAGE = _Page()


def main(dataset, *, json_out: bool = False, html: str | None = None) -> int:
    """``dataset report DIR [--json | --html FILE]``: print the report (text or JSON), or write
    it as one HTML page."""
    from .analytics import iter_rows

    result = dataset_report(dataset)
    if json_out:
        print(to_json(result))
        return 0
    if html:
        print(f"wrote {write_html(result, html)}")
        return 0
    p = result["totals"]
    eta = "–" if p["eta_seconds"] is None else f"{p['eta_seconds'] / 3600:.1f} h"
    print(f"dataset {result['dataset']}: {p['items']} items, {p['frames']} frames, {p['frames_left']} "
          f"(object, frame) pairs left, ETA {eta}")
    print(f"{'who':<36}" + "".join(f"{h:>20}" for _, h in COLUMNS))
    for row in iter_rows(result["analytics"]):
        print(f"{row['who'][:35]:<36}" + "".join(f"{_cell(row.get(k)):>20}" for k, _ in COLUMNS))
    for a in result["agreement"]:
        for obj, o in sorted(a["objects"].items()):
            worst = " ".join(str(w["frame"]) for w in o["worst_frames"])
            print(f"agreement {a['item']} {' vs '.join(a['annotators'])} object {obj}: J&F {o['J&F']:.3f}"
                  + (f", most disagreeing frames {worst}" if worst else ""))
    for c in result["checks"]["mistakes"]:
        print(f"check frame: {c['reviewer']} {'approved' if c['status'] == 'satisfactory' else 'rejected'} "
              f"object {c['object']} frame {c['frame']} of {Path(c['project']).name} (IoU {c['iou']:.2f})")
    return 0
