"""Labels back into Deepen: map a source onto a dataset, diff it against the labels there, push.

The steps of ``deepen-export push SOURCE DATASET_ID`` (each usable from Python)::

    target = fetch_target(client, dataset_id, label_set="predictions", calibration=True)
    plan = plan_push(labels, target)          # files, sensors, categories, coordinates, ids, diff
    print(plan.summary())                      # added / changed / unchanged / removed
    result = execute(client, plan)             # bounded batches; nothing sent when nothing changed

Mapping rules
-------------
- **Files**: a source image/frame maps to the dataset file with the same path (``file_id``),
  else to the one file with the same base name; anything else stops the push with a list of
  what did not match. Only frames that carry labels are mapped.
- **Sensors**: the source's sensor when the file has it; otherwise ``--sensor``, the file's only
  sensor, or ``lidar`` for 3D labels on a file that has one.
- **Categories**: ``category_map`` (``--map src=dst``) first; then every category must be listed
  by the dataset's labelling profile for its label type. Unknown ones stop the push, naming them,
  unless ``add_categories`` is set *and* the profile allows new categories (its ``preferences``
  say ``allow_new_categories: true``, an assumption: Deepen does not document such a switch) or
  lists no categories for that label type. A dataset without a profile is not checked.
- **Coordinates**: 2D labels are pixels (YOLO's normalised values were scaled by the reader
  with the image sizes); cuboids in a ``lidar`` frame go to the world with the dataset frame's
  device pose, cuboids in a ``camera`` frame with the camera's pose, both from the dataset's
  uploaded frames (``json_data.zip``); ``world`` cuboids are sent as they are.
- **Label ids** are deterministic, so pushing the same source again changes nothing: a label
  whose id is ``<category>:<n>`` keeps its number (the same object across frames keeps one id);
  every other label, and every category that two source categories were mapped into, is
  numbered ``<category>:1, 2, ...`` in the source's order (kinds in model order, rows in table
  order).

Diff and safety
---------------
Labels are keyed by ``file_id`` + ``sensor_id`` + ``label_id``. A label is *added* when the key
is new, *changed* when it differs from the label there (both read and written the same way, so
``10`` equals ``10.0`` and ``rot_z`` equals its quaternion), *unchanged* otherwise;
labels on the dataset's label set that the source lacks are *removed* from the source's point
of view (listed; the documented API has no call that deletes labels, so a push leaves them).
Only added and changed labels are sent, ``batch_size`` at a time. A POST is retried only when
the server surely did nothing (429, a connection that never opened); a failed batch stops the
push with a message saying which batches landed, and saves a state file so ``--resume`` can
check it continues the same push.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from deepen_export.errors import (
    APIError,
    DeepenExportError,
    NotFoundError,
    RequestRejectedError,
)
from deepen_export.model import LABEL_KINDS, LABEL_TYPE_OF_KIND, Frames, LabelSet, LabelTable
from deepen_export.report import Report

if TYPE_CHECKING:
    from deepen_export.api import Client

__all__ = ["PushError", "PushPlan", "PushResult", "Target", "execute", "fetch_target", "plan_push"]

Key = tuple[str, str, str]
_3D = {"cuboids", "polylines3d", "polygons3d", "points3d"}


class PushError(DeepenExportError):
    """A push that cannot start (bad mapping) or that stopped at a failed batch."""


@dataclass
class Target:
    """What the dataset offers a push: its files, profile, current labels and calibration."""

    dataset_id: str
    label_set: str
    dataset: dict[str, Any]
    files: list[dict[str, Any]]
    profile: dict[str, Any] | None
    current: dict[Key, dict[str, Any]]
    calibration: LabelSet | None = None


def fetch_target(
    client: Client,
    dataset_id: str,
    *,
    label_set: str = "predictions",
    calibration: bool = False,
    snapshot: str | os.PathLike[str] | None = None,
) -> Target:
    """Read the dataset, its files, profile and the labels of ``label_set`` (GETs only).

    ``calibration`` also reads the device and camera poses: from ``snapshot`` (a folder
    ``deepen-export pull`` wrote for this dataset, with its ``media/`` zip) when given, else by
    downloading the uploaded frames zip.

    Examples
    --------
    >>> target = fetch_target(client, "DATASET_ID", label_set="predictions")  # doctest: +SKIP
    >>> len(target.current)  # doctest: +SKIP
    0
    """
    from deepen_export import read_labels
    from deepen_export.api._pull import _iter_labels

    calib = _snapshot_calibration(snapshot, dataset_id) if calibration and snapshot else None
    download = calibration and calib is None
    with tempfile.TemporaryDirectory(prefix="deepen-push-") as tmp:
        snap = Path(tmp, "snapshot")
        try:
            client.pull(dataset_id, snap, label_set=label_set, media=download, paint=False)
        except NotFoundError as exc:
            if not download or "signed_media_link" not in str(exc):
                raise
            raise PushError(
                "the source's cuboids need the dataset's calibration, but its uploaded frames "
                f"could not be downloaded ({exc}); pass --snapshot DIR (a pull with --media)"
            ) from exc
        load = lambda name: _load(snap / name)  # noqa: E731
        dataset, files_doc, body = load("dataset.json"), load("files.json"), load("labels.json")
        profile = load("profile.json") if (snap / "profile.json").is_file() else None
        if download:
            calib = read_labels(snap, points=False)
    current: dict[Key, dict[str, Any]] = {}
    for key_file, lab in _iter_labels(body):
        fid = str(lab.get("file_id") or key_file or "")
        current[(fid, str(lab.get("sensor_id") or ""), str(lab.get("label_id") or ""))] = dict(lab)
    files = files_doc.get("files") if isinstance(files_doc, dict) else files_doc
    return Target(dataset_id, label_set, dataset, list(files or []), profile, current, calib)


def _snapshot_calibration(snapshot: str | os.PathLike[str], dataset_id: str) -> LabelSet:
    from deepen_export import read_labels

    folder = Path(snapshot)
    manifest = folder / "manifest.json"
    ds_file = folder / "dataset.json"
    found = _load(manifest).get("dataset_id") if manifest.is_file() else None
    found = found or (_load(ds_file).get("dataset_id") if ds_file.is_file() else None)
    if found != dataset_id:
        raise PushError(f"--snapshot {folder} is of dataset {found or '?'}, not {dataset_id}")
    calib = read_labels(folder, points=False)
    if not len(calib.poses):
        raise PushError(f"--snapshot {folder} holds no frames zip (pull it with --media)")
    return calib


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class PushPlan:
    """What a push would send, computed against the labels now on the dataset."""

    dataset_id: str
    label_set: str
    records: list[dict[str, Any]]
    added: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0
    removed: list[Key] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    digest: str = ""

    @property
    def to_send(self) -> list[dict[str, Any]]:
        """Added and changed labels, in the source's order."""
        return [*self.added, *self.changed]

    def summary(self, *, dry_run: bool = False) -> str:
        """Lines for the terminal."""
        verb = "would add" if dry_run else "adds"
        lines = [
            f"{self.dataset_id} (label set {self.label_set}): {len(self.records)} labels from the "
            f"source; {verb} {len(self.added)}, changes {len(self.changed)}, "
            f"{self.unchanged} unchanged, {len(self.removed)} on the dataset not in the source "
            "(kept: the API has no label delete)"
        ]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json``)."""
        key = lambda r: {"file_id": r["file_id"], "sensor_id": r.get("sensor_id", ""),  # noqa: E731
                         "label_id": r["label_id"]}  # fmt: skip
        return {
            "dataset_id": self.dataset_id,
            "label_set": self.label_set,
            "labels": len(self.records),
            "added": [key(r) for r in self.added],
            "changed": [key(r) for r in self.changed],
            "unchanged": self.unchanged,
            "removed": [
                dict(zip(("file_id", "sensor_id", "label_id"), k, strict=True))
                for k in self.removed
            ],
            "notes": list(self.notes),
        }


def plan_push(
    labels: LabelSet,
    target: Target,
    *,
    category_map: Mapping[str, str] | None = None,
    add_categories: bool = False,
    sensor: str | None = None,
    camera: str = "camera_0",
) -> PushPlan:
    """Map ``labels`` onto ``target`` (files, sensors, categories, coordinates, ids) and diff.

    Raises :class:`PushError` with one line naming what does not fit, before anything is sent.

    Examples
    --------
    >>> import deepen_export
    >>> labels = deepen_export.read_labels({"labels": [{"file_id": "a.png", "label_id": "7",
    ...     "label_category_id": "vehicle", "label_type": "box", "box": [0, 0, 2, 2]}]})
    >>> files = [{"file_id": "images/a.png", "sensors": ["sensor1"]}]
    >>> plan = plan_push(labels, Target("ds1", "predictions", {}, files, None, {}),
    ...                  category_map={"vehicle": "car"})
    >>> [(r["file_id"], r["sensor_id"], r["label_id"], r["box"]) for r in plan.added]
    [('images/a.png', 'sensor1', 'car:1', [0.0, 0.0, 2.0, 2.0])]
    """
    from converters.deepen import to_records

    notes = [f"{len(labels.issues)} source label(s) could not be read and are not pushed"] * bool(
        labels.issues
    )
    painted = len(labels.point_segmentation) + len(labels.masks2d)
    if painted:
        notes.append(f"{painted} painted frame(s) left out: paint labels are not label JSON")
        labels = labels.without("point_segmentation", "masks2d")
    if not len(labels):
        raise PushError("the source has no labels to push")
    mapped = _map_frames(labels, target, sensor)
    names, cat_notes = _map_categories(mapped, target, category_map or {}, add_categories)
    notes += cat_notes
    mapped = _to_world(mapped, target, camera)
    mapped = _with_ids(mapped, names)
    report = Report("deepen")
    records = to_records(mapped, provenance=False, report=report)
    notes += [f"{n} label(s) {a}: {r}" for a, r, n in report.by_reason()]
    return _diff(target, records, notes)


def _normalized(current: Mapping[Key, Mapping[str, Any]]) -> dict[Key, dict[str, Any]]:
    """The dataset's labels in the shape a push writes (``[10, 8]`` and ``[10.0, 8.0]``, a
    ``point`` and ``points``, ``rot_z`` and its quaternion compare equal), by key; labels the
    parser cannot take are left out (and so always count as changed)."""
    from converters.deepen import to_records
    from deepen_export.parse import parse_labels

    if not current:
        return {}
    labels = parse_labels({"labels": [dict(v) for v in current.values()]}, fast=False)
    return {
        (r["file_id"], r.get("sensor_id", ""), r["label_id"]): r
        for r in to_records(labels, provenance=False)
    }


def _diff(target: Target, records: list[dict[str, Any]], notes: list[str]) -> PushPlan:
    plan = PushPlan(target.dataset_id, target.label_set, records, notes=notes)
    normal = _normalized(target.current)
    seen: set[Key] = set()
    for rec in records:
        key = (rec["file_id"], rec.get("sensor_id", ""), rec["label_id"])
        if key in seen:
            raise PushError(
                f"two source labels map to {rec['label_id']} on {rec['file_id']} "
                f"{rec.get('sensor_id', '')}: give them distinct label ids"
            )
        seen.add(key)
        if key not in target.current:
            plan.added.append(rec)
        elif normal.get(key) != rec:
            plan.changed.append(rec)
        else:
            plan.unchanged += 1
    plan.removed = sorted(k for k in target.current if k not in seen)
    plan.digest = hashlib.sha256(orjson.dumps(records, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return plan


# -- files and sensors ---------------------------------------------------------------------------


def _used_frames(labels: LabelSet) -> dict[int, set[str]]:
    """Frame row -> families (``"2d"``/``"3d"``) of the labels on it."""
    used: dict[int, set[str]] = {}
    for kind in LABEL_KINDS:
        fam = "3d" if kind in _3D else "2d"
        for f in np.unique(labels.table(kind).frame).tolist():  # type: ignore[attr-defined]
            used.setdefault(int(f), set()).add(fam)
    return used


def _match_file(fid: str, by_id: Mapping[str, Any], by_base: Mapping[str, list[str]]) -> str | None:
    if fid in by_id:
        return fid
    cands = by_base.get(PurePosixPath(fid).name, [])
    return cands[0] if len(cands) == 1 else None


def _map_frames(labels: LabelSet, target: Target, sensor: str | None) -> LabelSet:
    """Frames re-keyed to the dataset's ``file_id`` and sensor (one row per frame and family)."""
    by_id = {str(f.get("file_id")): f for f in target.files if f.get("file_id")}
    by_base: dict[str, list[str]] = {}
    for known in by_id:
        by_base.setdefault(PurePosixPath(known).name, []).append(known)
    used = _used_frames(labels)
    src = labels.frames
    unmatched = sorted(
        {
            str(src.file_id[f])
            for f in used
            if _match_file(str(src.file_id[f]), by_id, by_base) is None
        }
    )
    if unmatched:
        shown = ", ".join(unmatched[:10]) + (
            f" (+{len(unmatched) - 10} more)" if len(unmatched) > 10 else ""
        )
        raise PushError(
            f"{len(unmatched)} source file(s) are not in dataset {target.dataset_id} "
            f"(matched by path, then by file name): {shown}"
        )  # fmt: skip
    rows: dict[tuple[str, str], int] = {}
    remap: dict[tuple[int, str], int] = {}
    for f, fams in sorted(used.items()):
        fid = _match_file(str(src.file_id[f]), by_id, by_base) or ""
        sensors = [str(s) for s in by_id[fid].get("sensors") or []]
        for fam in sorted(fams):
            s = _pick_sensor(str(src.sensor_id[f]), sensors, fam, sensor, fid)
            remap[(f, fam)] = rows.setdefault((fid, s), len(rows))
    frames = Frames.from_columns(file_id=[k[0] for k in rows], sensor_id=[k[1] for k in rows])
    changes: dict[str, Any] = {"frames": frames}
    for kind in LABEL_KINDS:
        t: Any = labels.table(kind)
        if len(t):
            fam = "3d" if kind in _3D else "2d"
            new = np.array([remap[(f, fam)] for f in t.frame.tolist()], dtype=np.int64)
            changes[kind] = dataclasses.replace(t, frame=new)
    keep = {"poses", "cameras", "pointclouds"}
    empty = {k: type(getattr(labels, k)).empty() for k in keep}
    return dataclasses.replace(labels, **changes, **empty)


def _pick_sensor(src: str, sensors: list[str], fam: str, forced: str | None, fid: str) -> str:
    if src and (not sensors or src in sensors):
        return src
    if forced:
        if sensors and forced not in sensors:
            raise PushError(f"--sensor {forced} is not a sensor of {fid} ({', '.join(sensors)})")
        return forced
    if not sensors:
        return src
    if src:
        raise PushError(
            f"sensor {src!r} of the source is not a sensor of {fid} ({', '.join(sensors)}); "
            "pass --sensor"
        )
    if len(sensors) == 1:
        return sensors[0]
    if fam == "3d" and "lidar" in sensors:
        return "lidar"
    cams = [s for s in sensors if s != "lidar"]
    if len(cams) == 1:
        return cams[0]
    raise PushError(f"{fid} has sensors {', '.join(sensors)}: pass --sensor to say which one")


# -- categories ----------------------------------------------------------------------------------


def _label_types(kind: str, t: LabelTable) -> list[str]:
    if kind == "polylines":
        return [str(v) for v in t.label_type.tolist()]  # type: ignore[attr-defined]
    return [LABEL_TYPE_OF_KIND[kind]] * len(t)


def _map_categories(
    labels: LabelSet, target: Target, cmap: Mapping[str, str], add: bool
) -> tuple[list[str], list[str]]:
    """Destination category name per source category code; PushError naming unknown ones."""
    unknown_src = sorted(set(cmap) - set(labels.categories))
    if unknown_src:
        raise PushError(
            f"--map names categories the source does not have: {', '.join(unknown_src)}"
        )
    names = [cmap.get(c, c) for c in labels.categories]
    profile = target.profile
    if profile is None:
        return names, ["the dataset has no labelling profile: categories were not checked"]
    features = profile.get("features") or {}
    allows_new = bool((profile.get("preferences") or {}).get("allow_new_categories"))
    missing: dict[str, Counter[str]] = {}
    for kind in LABEL_KINDS:
        t = labels.table(kind)
        if not len(t):
            continue
        assert isinstance(t, LabelTable)
        for lt, code in zip(_label_types(kind, t), t.category.tolist(), strict=True):
            feat = features.get(lt)
            listed = (feat or {}).get("label_category_ids") or [] if isinstance(feat, dict) else []
            known = feat is not None and names[code] in listed
            addable = add and feat is not None and (allows_new or not listed)
            if not known and not addable:
                missing.setdefault(lt, Counter())[names[code]] += 1
    if missing:
        pid = profile.get("profile_id", "?")
        parts = []
        for lt, cnt in missing.items():
            feat = features.get(lt)
            has = (
                ", ".join((feat or {}).get("label_category_ids") or [])
                if feat
                else "no such label type"
            )
            parts.append(
                f"{lt}: {', '.join(f'{c} ({n})' for c, n in sorted(cnt.items()))} [profile has: {has}]"
            )
        hint = "" if add else " or pass --add-categories (if the profile allows new categories)"
        raise PushError(
            f"categories not in labelling profile {pid}: {'; '.join(parts)}; "
            f"map them with --map SRC=DST{hint}"
        )  # fmt: skip
    return names, []


def _with_ids(labels: LabelSet, names: list[str]) -> LabelSet:
    """Destination categories and deterministic ``<category>:<n>`` label ids (see module doc)."""
    cats = list(dict.fromkeys(names))
    code = np.array([cats.index(n) for n in names] or [0], dtype=np.int32)
    sources_of = Counter(names)
    keys: dict[str, dict[Any, int]] = {c: {} for c in cats}
    renumber = {c for c in cats if sources_of[c] > 1}
    parsed: dict[str, list[tuple[int, int]]] = {}
    for kind in LABEL_KINDS:
        t: Any = labels.table(kind)
        out = []
        for c, lid in zip(t.category.tolist(), t.label_id.tolist(), strict=True):
            m = re.fullmatch(rf"\s*{re.escape(labels.categories[c])}\s*:\s*(\d+)\s*", str(lid))
            out.append((c, int(m.group(1)) if m else -1))
            if not m:
                renumber.add(names[c])
        parsed[kind] = out
    changes: dict[str, Any] = {"categories": tuple(cats)}
    for kind in LABEL_KINDS:
        t = labels.table(kind)
        if not len(t):
            continue
        ids = []
        for row, (c, n) in enumerate(parsed[kind]):
            dst = names[c]
            if dst not in renumber:
                ids.append(f"{dst}:{n}")
                continue
            key = (c, n) if n >= 0 else (kind, row)
            num = keys[dst].setdefault(key, len(keys[dst]) + 1)
            ids.append(f"{dst}:{num}")
        changes[kind] = dataclasses.replace(
            t,
            category=code[t.category],
            label_id=np.array(ids, dtype=object),
        )
    return labels.replace(**changes)


# -- coordinates ---------------------------------------------------------------------------------


def _to_world(labels: LabelSet, target: Target, camera: str) -> LabelSet:
    """Cuboids in the dataset's world frame, with its device or camera poses."""
    from deepen_export.geometry import spatial as sp

    cub = labels.cuboids
    ref = cub.frame_of_reference
    if not len(cub) or ref == "world":
        return labels
    calib = target.calibration
    if calib is None or not len(calib.poses):
        raise PushError(
            f"the source's cuboids are in the {ref} frame; placing them in the dataset's world "
            "frame needs its uploaded frames (json_data.zip), which the dataset does not serve"
        )
    fids = [str(labels.frames.file_id[f]) for f in cub.frame.tolist()]
    if ref == "lidar":
        table = calib.poses
        keys = [str(calib.frames.file_id[f]) for f in table.frame.tolist()]
        index = {k: i for i, k in enumerate(keys)}
    else:
        table = calib.cameras  # type: ignore[assignment]
        keys = [
            f"{calib.frames.file_id[f]}|{s}"
            for f, s in zip(table.frame.tolist(), table.sensor_id.tolist(), strict=True)  # type: ignore[attr-defined]
        ]
        index = {k: i for i, k in enumerate(keys)}
        fids = [f"{f}|{camera}" for f in fids]
    missing = sorted({f for f in fids if f not in index})
    if missing:
        raise PushError(f"no {ref} pose in the dataset's frames for: {', '.join(missing[:10])}")
    rows = np.array([index[f] for f in fids], dtype=np.int64)
    center, quat = sp.cuboids_from_sensor(
        cub.center, cub.quat, table.position[rows], table.quat[rows]
    )
    moved = dataclasses.replace(cub, center=center, quat=quat, frame_of_reference="world")
    return labels.replace(cuboids=moved)


# -- sending -------------------------------------------------------------------------------------


@dataclass
class PushResult:
    """What :func:`execute` sent."""

    plan: PushPlan
    sent: int
    batches: int

    def summary(self) -> str:
        """One line for the terminal."""
        if not self.sent:
            return (
                f"{self.plan.dataset_id}: nothing to push (the label set already holds the source)"
            )
        return f"{self.plan.dataset_id}: pushed {self.sent} label(s) in {self.batches} batch(es) into {self.plan.label_set}"


def default_state_path(dataset_id: str, label_set: str) -> Path:
    """Where a stopped push records its progress (in the current folder)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{dataset_id}.{label_set}")
    return Path(f".deepen-push.{safe}.json")


def execute(
    client: Client,
    plan: PushPlan,
    *,
    batch_size: int = 500,
    state: str | os.PathLike[str] | None = None,
    resume: bool = False,
) -> PushResult:
    """Send the plan's added and changed labels in batches of ``batch_size``.

    On a failed batch a state file (``state``, default :func:`default_state_path`) records the
    batches that landed and :class:`PushError` says so; ``resume=True`` checks that file belongs
    to the same push (same dataset, label set and source) before going on. Labels that landed
    are unchanged on the dataset, so the rerun sends only the rest.

    Examples
    --------
    >>> print(execute(client, plan, batch_size=200).summary())  # doctest: +SKIP
    """
    from deepen_export._progress import task

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    path = Path(state) if state else default_state_path(plan.dataset_id, plan.label_set)
    if resume:
        _check_state(path, plan)
    todo = plan.to_send
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    with task(f"pushing into {plan.label_set}", total=len(todo)) as advance:
        for i, batch in enumerate(batches):
            try:
                client.post_labels(plan.dataset_id, batch, label_set=plan.label_set)
            except DeepenExportError as exc:
                _save_state(path, plan, i, sum(len(b) for b in batches[:i]))
                raise PushError(_failure(exc, i, batches, path)) from exc
            advance(len(batch))
    path.unlink(missing_ok=True)
    return PushResult(plan, len(todo), len(batches))


def _failure(exc: Exception, i: int, batches: Sequence[Sequence[Any]], path: Path) -> str:
    n = len(batches)
    landed = (
        "no batch landed before it"
        if i == 0
        else f"batches 1-{i} of {n} landed ({sum(len(b) for b in batches[:i])} labels)"
    )
    from deepen_export.api._client import _not_acted_on

    if isinstance(exc, RequestRejectedError):
        fate = "was refused, so none of its labels were stored"
    elif isinstance(exc, APIError) and _not_acted_on(exc):
        fate = (
            "never reached the server (or was turned away before any work), so nothing of it landed"
        )
    else:
        fate = "may or may not have landed (the server may have stored some of it)"
    return (
        f"push stopped: batch {i + 1} of {n} ({len(batches[i])} labels) {fate}: {exc}; "
        f"{landed}; progress saved to {path}; fix the cause and rerun with --resume"
    )


def _save_state(path: Path, plan: PushPlan, landed_batches: int, landed_labels: int) -> None:
    doc = {
        "dataset_id": plan.dataset_id,
        "label_set": plan.label_set,
        "source_digest": plan.digest,
        "landed_batches": landed_batches,
        "landed_labels": landed_labels,
    }
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def _check_state(path: Path, plan: PushPlan) -> None:
    if not path.is_file():
        raise PushError(f"nothing to resume: no state file {path} (a stopped push writes one)")
    doc = json.loads(path.read_text(encoding="utf-8"))
    same = (doc.get("dataset_id"), doc.get("label_set"), doc.get("source_digest")) == (
        plan.dataset_id,
        plan.label_set,
        plan.digest,
    )
    if not same:
        raise PushError(
            f"{path} belongs to another push (dataset, label set or source differ); "
            "remove it or push without --resume"
        )
