"""A dataset: a folder with ``dataset.yaml`` (its items, annotators and schema version), the
schema versions in ``schemas/``, and the append-only ``stages.jsonl`` and ``assignments.jsonl``.

See ``docs/datasets.md`` for the format. Paths inside the dataset folder are stored relative to
it, so the folder can be mounted at another path on another machine.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..project._jsonl import append_records, ensure_log_dir, now_iso, read_records
from .files import (
    DATASET_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    DatasetError,
    changing,
    dataset_lock,
    read_dataset_file,
    write_dataset_file,
)
from .records import (
    ASSIGNMENTS_LOG,
    LOG_DIR,
    ROLES,
    STAGES,
    STAGES_LOG,
    AssignmentRecord,
    StageRecord,
    stage_name,
)

SCHEMAS_DIR = "schemas"
PROJECTS_DIR = "projects"
#: The file in a project that names the dataset and item it belongs to.
MEMBERSHIP_FILE = ".napari_sam2_track.dataset.json"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class Item:
    """One video or volume of a dataset, with absolute paths.

    ``copies``: annotator -> their own project copy (for agreement between two annotators);
    ``check``: the item holds reference masks (check frames).
    """

    id: str
    source: Path
    project: Path
    prompts: Path | None = None
    copies: dict[str, Path] = field(default_factory=dict)
    check: bool = False


def _utc(text: str | None) -> _dt.datetime | None:
    if not text:
        return None
    try:
        value = _dt.datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=_dt.timezone.utc)


def safe_id(text: str) -> str:
    """An item id made from a file name: letters, digits, ``._-``."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "item"
    return cleaned[:100]


class Dataset:
    """A dataset folder. Use :meth:`init` or :meth:`open`; every property reads the files afresh
    when they changed, so a long-lived object (the Dataset dock) sees other processes' changes."""

    def __init__(self, folder: Path, data: dict[str, Any]):
        self.folder = folder
        self._data = data
        self._stamp = self._file_stamp()

    # ------------------------------------------------------------------ create/open
    @classmethod
    def init(cls, folder: str | Path, schema=None, *, name: str | None = None,
             annotators: Sequence[str] = ()) -> "Dataset":
        """Create a dataset in ``folder`` (created if needed; refused if it is a dataset already).

        ``schema``: a :class:`~napari_sam2_track.schema.Schema` or a YAML/JSON file (default:
        the default schema); it becomes schema version 1."""
        from ..schema import Schema

        folder = Path(folder).expanduser().absolute()
        if (folder / DATASET_FILE).exists():
            raise DatasetError(f"{folder} is a dataset already; use it, or choose another folder")
        if folder.exists() and not folder.is_dir():
            raise DatasetError(f"{folder} is a file, not a folder; choose another folder")
        if folder.exists() and _is_project(folder):
            raise DatasetError(f"{folder} is a project store; a dataset is a folder of its own")
        schema = _schema(schema) if schema is not None else Schema.default()
        people = _checked_names(annotators)
        folder.mkdir(parents=True, exist_ok=True)
        with dataset_lock(folder):
            if (folder / DATASET_FILE).exists():
                raise DatasetError(f"{folder} is a dataset already; use it, or choose another folder")
            _write_schema(folder, 1, schema)
            ensure_log_dir(folder / LOG_DIR)
            data = {
                "format": FORMAT_NAME,
                "version": FORMAT_VERSION,
                "id": uuid.uuid4().hex,
                "name": name or folder.name,
                "created": now_iso(),
                "schema_version": 1,
                "annotators": people,
                "items": [],
            }
            write_dataset_file(folder, data)
        return cls(folder, data)

    @classmethod
    def open(cls, folder: str | Path) -> "Dataset":
        """Open the dataset in ``folder``; one line if it is not a dataset."""
        folder = Path(folder).expanduser().absolute()
        return cls(folder, read_dataset_file(folder))

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.folder / DATASET_FILE)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    @property
    def data(self) -> dict[str, Any]:
        """The contents of ``dataset.yaml`` (re-read when the file changed)."""
        stamp = self._file_stamp()
        if stamp != self._stamp:
            self._data = read_dataset_file(self.folder)
            self._stamp = stamp
        return self._data

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def name(self) -> str:
        return str(self.data.get("name") or self.folder.name)

    def __repr__(self) -> str:
        return f"Dataset({str(self.folder)!r}, items={len(self.data.get('items') or [])})"

    # ------------------------------------------------------------------ paths
    def _abs(self, text: str | None) -> Path | None:
        if not text:
            return None
        path = Path(text).expanduser()
        return path if path.is_absolute() else self.folder / path

    def _rel(self, path: str | Path | None) -> str | None:
        if path is None:
            return None
        path = Path(path).expanduser().absolute()
        try:
            return path.relative_to(self.folder).as_posix()
        except ValueError:
            return str(path)

    # ------------------------------------------------------------------ items
    def _item(self, raw: dict) -> Item:
        return Item(
            id=str(raw["id"]),
            source=self._abs(raw["source"]),
            project=self._abs(raw["project"]),
            prompts=self._abs(raw.get("prompts")),
            copies={str(k): self._abs(v) for k, v in (raw.get("copies") or {}).items()},
            check=bool(raw.get("check", False)),
        )

    @property
    def items(self) -> list[Item]:
        """The items, in the order they were added."""
        return [self._item(raw) for raw in self.data.get("items") or []]

    def item(self, item_id: str) -> Item:
        """The item ``item_id``; one line naming the known ones if there is none."""
        for raw in self.data.get("items") or []:
            if raw["id"] == item_id:
                return self._item(raw)
        raise DatasetError(f"no item {item_id!r} in {self.folder}" + _known(self.item_ids()))

    def item_ids(self) -> list[str]:
        return [str(raw["id"]) for raw in self.data.get("items") or []]

    def add(self, source: str | Path, *, prompts: str | Path | None = None,
            project: str | Path | None = None, item_id: str | None = None,
            check: bool = False) -> Item:
        """Add one video or volume (see :meth:`add_many`)."""
        return self.add_many([{"source": source, "prompts": prompts, "project": project,
                               "id": item_id, "check": check}])[0]

    def add_many(self, entries: Iterable[dict]) -> list[Item]:
        """Add items (``source``, and optional ``prompts``, ``project``, ``id``, ``check``).

        The project defaults to ``projects/<id>.zarr`` in the dataset, the id to the source's
        name (made unique). Refused, with nothing added, for a source that does not exist, a
        source or project already in the dataset, two items writing one project, a project or
        prompts file that does not exist where given, and a project that belongs to another
        dataset."""
        entries = list(entries)
        with changing(self.folder) as data:
            raws = data.setdefault("items", [])
            ids = {r["id"] for r in raws}
            projects = {self._abs(r["project"]).resolve(): r["id"] for r in raws}
            sources = {self._abs(r["source"]).resolve(): r["id"] for r in raws}
            added = []
            for entry in entries:
                source = Path(entry["source"]).expanduser().absolute()
                if not source.exists():
                    raise DatasetError(f"{source} not found; nothing was added (check the path)")
                if source.resolve() in sources:
                    raise DatasetError(f"{source} is item {sources[source.resolve()]!r} already; "
                                       "nothing was added")
                item_id = entry.get("id") or safe_id(_stem(source))
                if not _ID_RE.match(item_id):
                    raise DatasetError(f"item id {item_id!r} must be letters, digits, '.', '_' or "
                                       "'-' (at most 100); nothing was added")
                if entry.get("id") and item_id in ids:
                    raise DatasetError(f"item id {item_id!r} is taken; nothing was added")
                base, n = item_id, 2
                while item_id in ids:
                    item_id, n = f"{base}-{n}", n + 1
                project = entry.get("project")
                project = (Path(project).expanduser().absolute() if project
                           else self.folder / PROJECTS_DIR / f"{item_id}.zarr")
                if project.resolve() in projects:
                    raise DatasetError(
                        f"{item_id} would write the project {project} of item "
                        f"{projects[project.resolve()]!r}; give it its own project; nothing was added")
                prompts = entry.get("prompts")
                if prompts:
                    prompts = Path(prompts).expanduser().absolute()
                    if not prompts.is_file():
                        raise DatasetError(f"prompts {prompts} not found; nothing was added")
                owner = project_owner(project)
                if owner is not None and owner.get("dataset") != data["id"]:
                    raise DatasetError(
                        f"{project} belongs to another dataset ({owner.get('path', '?')}, item "
                        f"{owner.get('item', '?')!r}); copy it or remove it from that dataset; "
                        "nothing was added")
                raw = {"id": item_id, "source": self._rel(source), "project": self._rel(project),
                       "prompts": self._rel(prompts) if prompts else None, "copies": {},
                       "check": bool(entry.get("check", False)), "added": now_iso()}
                raws.append(raw)
                ids.add(item_id)
                projects[project.resolve()] = item_id
                sources[source.resolve()] = item_id
                added.append(raw)
        self._data, self._stamp = read_dataset_file(self.folder), self._file_stamp()
        items = [self._item(raw) for raw in added]
        for item in items:
            if item.project.exists():
                self.claim_project(item)
        return items

    def update_item(self, item_id: str, **fields: Any) -> Item:
        """Change an item's ``source``, ``prompts``, ``project``, ``copies`` or ``check``."""
        allowed = {"source", "prompts", "project", "copies", "check"}
        unknown = set(fields) - allowed
        if unknown:
            raise DatasetError(f"cannot change {sorted(unknown)} of an item; only {sorted(allowed)}")
        with changing(self.folder) as data:
            raw = next((r for r in data.get("items") or [] if r["id"] == item_id), None)
            if raw is None:
                raise DatasetError(f"no item {item_id!r} in {self.folder}" + _known(
                    [r["id"] for r in data.get("items") or []]))
            for key, value in fields.items():
                if key == "copies":
                    raw["copies"] = {str(k): self._rel(v) for k, v in value.items()}
                elif key == "check":
                    raw["check"] = bool(value)
                else:
                    raw[key] = self._rel(value) if value is not None else None
        return self.item(item_id)

    def move(self, item_id: str, source: str | Path) -> Item:
        """The item's video or volume moved to ``source``."""
        source = Path(source).expanduser().absolute()
        if not source.exists():
            raise DatasetError(f"{source} not found; the item still points at "
                               f"{self.item(item_id).source}")
        return self.update_item(item_id, source=source)

    def add_copy(self, item_id: str, annotator: str, project: str | Path | None = None) -> Item:
        """Give ``annotator`` a project copy of the item (default ``projects/<id>.<annotator>.zarr``)."""
        self.require_annotator(annotator)
        item = self.item(item_id)
        path = Path(project) if project else self.folder / PROJECTS_DIR / f"{item_id}.{safe_id(annotator)}.zarr"
        return self.update_item(item_id, copies={**item.copies, annotator: path})

    # ------------------------------------------------------------------ annotators
    @property
    def annotators(self) -> list[str]:
        return [str(a) for a in self.data.get("annotators") or []]

    def add_annotators(self, names: Iterable[str]) -> list[str]:
        """Add people who may be assigned items; returns the full list."""
        names = _checked_names(names)
        with changing(self.folder) as data:
            people = data.setdefault("annotators", [])
            people.extend(n for n in names if n not in people)
        return self.annotators

    def require_annotator(self, name: str) -> str:
        """``name`` if it is one of the dataset's annotators; one line otherwise."""
        if name not in self.annotators:
            raise DatasetError(
                f"unknown annotator {name!r}" + _known(self.annotators, "annotators")
                + f"; add them with 'napari-sam2-track dataset annotators {self.folder} --add {name}'")
        return name

    # ------------------------------------------------------------------ schema
    @property
    def schema_version(self) -> int:
        return int(self.data.get("schema_version", 1))

    @property
    def schema(self):
        """The dataset's current annotation schema."""
        return self.schema_of(self.schema_version)

    def schema_path(self, version: int | None = None) -> Path:
        return self.folder / SCHEMAS_DIR / f"{version or self.schema_version}.json"

    def schema_of(self, version: int):
        """The schema of version ``version``."""
        from ..schema import Schema

        path = self.schema_path(version)
        if not path.is_file():
            raise DatasetError(f"{path} not found: schema version {version} of the dataset is missing")
        return Schema.load(path)

    def set_schema(self, schema) -> int:
        """Make ``schema`` (a Schema or a file) the next version; returns the new version.
        :meth:`outdated_projects` then lists the projects made with an older one."""
        schema = _schema(schema)
        with changing(self.folder) as data:
            version = int(data.get("schema_version", 1))
            if _schema_key(schema) == _schema_key(self.schema_of(version)):
                raise DatasetError(f"the schema is the same as the current version {version}; "
                                   "nothing changed")
            version += 1
            _write_schema(self.folder, version, schema)
            data["schema_version"] = version
        return version

    def project_schema_version(self, item: Item | str) -> int | None:
        """The schema version the item's project was made with: the version recorded in the
        project's membership file, else the version whose schema equals the project's stored
        schema; ``None`` when there is no project or its schema matches none of the versions."""
        item = self.item(item) if isinstance(item, str) else item
        owner = project_owner(item.project)
        if owner is not None and isinstance(owner.get("schema_version"), int):
            return owner["schema_version"]
        return self._matching_version(item.project)

    def _matching_version(self, project: Path) -> int | None:
        try:
            meta = json.loads((project / "zarr.json").read_bytes())["attributes"]["napari_sam2_track"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        stored = meta.get("schema")
        from ..schema import Schema

        try:
            key = _schema_key(Schema.model_validate(stored) if stored else Schema.default())
        except ValueError:
            return None
        for version in range(self.schema_version, 0, -1):
            try:
                if _schema_key(self.schema_of(version)) == key:
                    return version
            except Exception:  # noqa: BLE001 - a damaged version file matches nothing
                continue
        return None

    def outdated_projects(self) -> list[tuple[str, int | None]]:
        """``(item id, version)`` of the projects made with an older schema version (or with a
        schema that matches no version: ``None``)."""
        out = []
        for item in self.items:
            if not (item.project / "zarr.json").is_file():
                continue
            version = self.project_schema_version(item)
            if version != self.schema_version:
                out.append((item.id, version))
        return out

    # ------------------------------------------------------------------ membership
    def claim_project(self, item: Item | str) -> None:
        """Record in the item's project that it belongs to this dataset (and its schema
        version); refused if it belongs to another dataset or another item."""
        item = self.item(item) if isinstance(item, str) else item
        problem = self.ownership_problem(item)
        if problem:
            raise DatasetError(problem)
        path = item.project / MEMBERSHIP_FILE
        if path.is_file() or not item.project.is_dir():
            return
        record = {"dataset": self.id, "path": str(self.folder), "item": item.id,
                  "schema_version": self._matching_version(item.project), "claimed": now_iso()}
        tmp = path.with_name(f"{MEMBERSHIP_FILE}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def ownership_problem(self, item: Item) -> str | None:
        """Why the item's project is not this item's, if it is not (one line)."""
        owner = project_owner(item.project)
        if owner is None:
            return None
        if owner.get("dataset") != self.id:
            return (f"{item.project} belongs to another dataset ({owner.get('path', '?')}, item "
                    f"{owner.get('item', '?')!r}); give item {item.id!r} its own project")
        if owner.get("item") != item.id:
            return (f"{item.project} is the project of item {owner.get('item')!r}; give item "
                    f"{item.id!r} its own project")
        return None

    # ------------------------------------------------------------------ stages
    @property
    def stages_log(self) -> Path:
        return self.folder / STAGES_LOG

    @property
    def assignments_log(self) -> Path:
        return self.folder / ASSIGNMENTS_LOG

    def record_stage(self, item_id: str, stage: str, who: str, note: str = "") -> StageRecord:
        """Record that ``who`` moved the item to ``stage``; durable on return."""
        stage = stage_name(stage)
        if stage not in STAGES:
            raise DatasetError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
        self.item(item_id)
        who = _checked_names([who])[0]
        record = StageRecord(item=item_id, stage=stage, who=who, time=now_iso(),
                             note=" ".join(note.split()))
        append_records(self.stages_log, [record.model_dump(mode="json")])
        return record

    def recorded_stages(self) -> dict[str, list[StageRecord]]:
        """Every recorded stage change, per item, oldest first."""
        out: dict[str, list[StageRecord]] = {}
        for r in read_records(self.stages_log, StageRecord.model_validate):
            out.setdefault(r.item, []).append(r)
        for records in out.values():
            records.sort(key=lambda r: r.time)
        return out

    def history(self, item_id: str) -> list[StageRecord]:
        """The item's stage changes, recorded and read from its project, oldest first."""
        from .summary import SummaryCache, derived_stages

        item = self.item(item_id)
        cache = SummaryCache(self.folder)
        records = self.recorded_stages().get(item_id, []) + derived_stages(item, cache=cache)
        cache.save()
        return sorted(records, key=lambda r: r.time)

    def stage(self, item_id: str) -> StageRecord:
        """The item's stage now: the latest of its recorded changes and of what its project
        says (``new`` when neither says anything)."""
        history = self.history(item_id)
        if history:
            return history[-1]
        return StageRecord(item=item_id, stage="new", time=_EPOCH, derived=True)

    # ------------------------------------------------------------------ assignment
    def assign(self, item_ids: Sequence[str], who: str | None, *, role: str = "annotator",
               by: str | None = None) -> list[AssignmentRecord]:
        """Make ``who`` the ``role`` (annotator or reviewer) of the items (``None``: nobody);
        durable on return. Unknown items or annotators are refused with nothing recorded."""
        from ..review.models import default_reviewer

        if role not in ROLES:
            raise DatasetError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        if who is not None:
            self.require_annotator(who)
        known = set(self.item_ids())
        missing = [i for i in item_ids if i not in known]
        if missing:
            raise DatasetError(f"no item {missing[0]!r} in {self.folder}" + _known(sorted(known))
                               + "; nothing was assigned")
        by = by or default_reviewer()
        time = now_iso()
        records = [AssignmentRecord(item=i, role=role, who=who, by=by, time=time) for i in item_ids]
        append_records(self.assignments_log, [r.model_dump(mode="json") for r in records])
        return records

    def assignments(self) -> dict[str, dict[str, AssignmentRecord]]:
        """``{item: {role: latest record}}``."""
        out: dict[str, dict[str, AssignmentRecord]] = {}
        for r in read_records(self.assignments_log, AssignmentRecord.model_validate):
            roles = out.setdefault(r.item, {})
            if r.role not in roles or roles[r.role].time <= r.time:
                roles[r.role] = r
        return out

    def assignee(self, item_id: str) -> str | None:
        """The item's annotator, if any."""
        record = self.assignments().get(item_id, {}).get("annotator")
        return record.who if record is not None else None

    def reviewer(self, item_id: str) -> str | None:
        """The item's reviewer, if any."""
        record = self.assignments().get(item_id, {}).get("reviewer")
        return record.who if record is not None else None

    def locked(self):
        """The dataset's exclusive lock (for a read-then-append that must not interleave)."""
        return dataset_lock(self.folder)


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def project_owner(project: Path) -> dict | None:
    """The membership record of a project (which dataset and item), if it has one."""
    try:
        data = json.loads((Path(project) / MEMBERSHIP_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_project(folder: Path) -> bool:
    from ..project import is_project

    return is_project(folder)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".ome.tiff", ".ome.tif", ".ome.zarr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem or name


def _known(names: Sequence[str], what: str = "items") -> str:
    from ..errors import summarize_list

    if not names:
        return f" (no {what} yet)"
    return f" ({what}: {summarize_list(list(names))})"


def _checked_names(names: Iterable[str]) -> list[str]:
    out = []
    for name in names:
        name = " ".join(str(name).split())
        if not name:
            raise DatasetError("a person's name is empty; give a name")
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise DatasetError(f"the name {name!r} is not UTF-8 text") from None
        out.append(name)
    return out


def _schema(schema):
    from ..schema import Schema

    return schema if isinstance(schema, Schema) else Schema.load(schema)


def _schema_key(schema) -> str:
    return json.dumps(schema.model_dump(mode="json"), sort_keys=True)


def _write_schema(folder: Path, version: int, schema) -> None:
    path = folder / SCHEMAS_DIR / f"{version}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(json.dumps(schema.model_dump(mode="json"), indent=1), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
