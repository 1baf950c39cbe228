"""Side-by-side benchmark: deepen-export against its peers on the same seeded labels.

One seeded label set is written twice: as a Deepen labels body (what deepen-export reads) and as
a COCO instances file with image sizes (what the peers read). Each run is its own process, so its
peak resident memory is its own; runs alternate (ours, peer, ours, peer, ...) so that a machine
that slows down or speeds up during the benchmark affects both sides alike, and the ratio is
printed pair by pair, then the median. Each run also prints its CPU time, user + system seconds
of the timed part (the child's ``getrusage``) and of the whole process (the parent's
``RUSAGE_CHILDREN``, interpreter start and imports included): on a shared machine wall time is
noisy, and the floor pair's goal is stated in user CPU too.

Pairs:

- ``coco``: polygons, Deepen JSON → COCO (ours) against Datumaro's ``coco_instances`` import +
  export on the same polygons.
- ``yolo`` / ``voc``: boxes, Deepen JSON → YOLO / Pascal VOC (ours) against globox
  ``AnnotationSet.from_coco`` + ``save_yolo_v5`` / ``save_pascal_voc``.
- ``floor``: for the YOLO files, a plain writer that only formats the same lines with numpy and
  writes the same files (no parsing, no checks): the file-system floor.
- ``voc-floor``: the same for the VOC files: a plain numpy writer of the same XML bytes as ours
  (``Annotations/*.xml`` and ``ImageSets/Main/default.txt``; checked equal with ``diff -r``).

The peers run in ``--peer-python`` (default: this interpreter); install them with
``pip install -e '.[bench]'`` or into a separate venv. A peer that is not installed is reported as
such and skipped. Generated data is cached under ``benchmarks/_data/`` (git-ignored).

Usage::

    python benchmarks/peers.py                                   # every pair, default sizes
    python benchmarks/peers.py --pairs coco --labels 500000 --images 20000 --rounds 3
    python benchmarks/peers.py --peer-python /opt/peers/bin/python --pairs yolo,voc,floor,voc-floor
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import orjson

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data"
CATEGORIES = ["car", "truck", "pedestrian", "cyclist", "bus", "traffic_sign", "lane_marking"]
SIZE = (1920, 1080)

# Each child prints one JSON line: labels, seconds, peak_bytes. ``{work}`` is its output folder.
_OURS = r"""
import dataclasses, json, resource, sys, time
sys.path.insert(0, {root!r})
t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
import numpy as np
import converters
from deepen_export.parse import parse_labels
ls = parse_labels({deepen!r})
f = ls.frames
# the Deepen body has no sizes: give every frame the size the COCO file says (as --images would)
ls = ls.replace(frames=dataclasses.replace(
    f, width=np.full(len(f), {w}, np.int32), height=np.full(len(f), {h}, np.int32)))
converters.write(ls, {work!r} + "/out", {fmt!r}, on_unsupported="drop")
dt = time.perf_counter() - t0
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = {{"user": r1.ru_utime - r0.ru_utime, "sys": r1.ru_stime - r0.ru_stime}}
print(json.dumps({{"cpu": cpu, "labels": len(ls), "seconds": dt,
                  "peak_bytes": int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) * 1024}}))
"""

_DATUMARO = r"""
import json, os, resource, shutil, sys, time
t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
import datumaro as dm
ds = dm.Dataset.import_from({coco_dir!r}, "coco_instances")
ds.export({work!r} + "/out", "coco_instances")
n = sum(a.type.name == "polygon" for item in ds for a in item.annotations)
dt = time.perf_counter() - t0
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = {{"user": r1.ru_utime - r0.ru_utime, "sys": r1.ru_stime - r0.ru_stime}}
print(json.dumps({{"cpu": cpu, "labels": n, "seconds": dt,
                  "peak_bytes": int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) * 1024}}))
"""

_GLOBOX = r"""
import json, resource, sys, time
t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
from globox import AnnotationSet
anns = AnnotationSet.from_coco({coco_file!r})
if {fmt!r} == "yolo":
    label_to_id = {{name: i for i, name in enumerate({categories!r})}}
    anns.save_yolo_v5({work!r} + "/out", label_to_id=label_to_id)
else:
    anns.save_pascal_voc({work!r} + "/out")
n = sum(len(a.boxes) for a in anns)
dt = time.perf_counter() - t0
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = {{"user": r1.ru_utime - r0.ru_utime, "sys": r1.ru_stime - r0.ru_stime}}
print(json.dumps({{"cpu": cpu, "labels": n, "seconds": dt,
                  "peak_bytes": int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) * 1024}}))
"""

_FLOOR = r"""
import json, os, resource, sys, time
import numpy as np
data = np.load({arrays!r})
img, cat, xywh = data["image"], data["category"], data["xywh"]
w, h = {w}, {h}
t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
out = {work!r} + "/out"
os.makedirs(out)
cx = (xywh[:, 0] + xywh[:, 2] / 2) / w
cy = (xywh[:, 1] + xywh[:, 3] / 2) / h
cols = [cat.astype(str)] + [np.char.mod("%.6f", v) for v in (cx, cy, xywh[:, 2] / w, xywh[:, 3] / h)]
lines = cols[0]
for c in cols[1:]:
    lines = np.char.add(np.char.add(lines, " "), c)
lines = np.char.add(lines, "\n").tolist()
cuts = np.flatnonzero(np.diff(img)) + 1
starts = np.concatenate([[0], cuts]).tolist()
ends = np.concatenate([cuts, [len(img)]]).tolist()
for s, e in zip(starts, ends):
    with open(f"{{out}}/{{int(img[s]):06d}}.txt", "w") as fh:
        fh.write("".join(lines[s:e]))
dt = time.perf_counter() - t0
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = {{"user": r1.ru_utime - r0.ru_utime, "sys": r1.ru_stime - r0.ru_stime}}
print(json.dumps({{"cpu": cpu, "labels": len(img), "seconds": dt,
                  "peak_bytes": int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) * 1024}}))
"""


# the same Annotations/*.xml and ImageSets/Main/default.txt bytes as ours (checked with diff -r)
_VOC_FLOOR = r"""
import json, os, resource, sys, time
import numpy as np
data = np.load({arrays!r})
img, cat, xywh = data["image"], data["category"], data["xywh"]
names = np.array({categories!r}, dtype="S")  # bytes: 1 byte a character, not 4
w, h = {w}, {h}
t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
out = {work!r} + "/out"
os.makedirs(out + "/Annotations")
os.makedirs(out + "/ImageSets/Main")
# the label ids "<category>:<k>" (k-th label of its category) and track ids k, as ours reads them
order = np.argsort(cat, kind="stable")
first = np.searchsorted(cat[order], np.arange(len(names)))
k = np.empty(len(cat), np.int64)
k[order] = np.arange(len(cat)) - first[cat[order]] + 1
corner = np.column_stack([np.floor(xywh[:, :2]), np.ceil(xywh[:, :2] + xywh[:, 2:])]).astype(np.int64)
ks = k.astype("S")
pieces = [
    b"\n  <object>\n    <name>", names[cat],
    b"</name>\n    <pose>Unspecified</pose>\n    <truncated>0</truncated>\n    <difficult>0</difficult>"
    b"\n    <bndbox>\n      <xmin>", corner[:, 0].astype("S"), b"</xmin>\n      <ymin>",
    corner[:, 1].astype("S"), b"</ymin>\n      <xmax>", corner[:, 2].astype("S"),
    b"</xmax>\n      <ymax>", corner[:, 3].astype("S"),
    b"</ymax>\n    </bndbox>\n    <deepen_label_id>", names[cat], b":", ks,
    b"</deepen_label_id>\n    <track_id>", ks, b"</track_id>\n  </object>",
]
objects = pieces[0]
for p in pieces[1:]:
    objects = np.char.add(objects, p)
objects = objects.tolist()
cuts = np.flatnonzero(np.diff(img)) + 1
starts = np.concatenate([[0], cuts]).tolist()
ends = np.concatenate([cuts, [len(img)]]).tolist()
ids = []
for s, e in zip(starts, ends):
    name = f"{{int(img[s]):06d}}"
    ids.append(name)
    head = (
        f"<annotation>\n  <folder />\n  <filename>{{name}}.png</filename>\n  <size>\n"
        f"    <width>{{w}}</width>\n    <height>{{h}}</height>\n    <depth>3</depth>\n  </size>\n"
        f"  <segmented>0</segmented>\n  <deepen_box_origin>0</deepen_box_origin>\n"
        f"  <deepen_status>labelled</deepen_status>\n  <deepen_file_id>{{name}}.png</deepen_file_id>\n"
        f"  <deepen_sensor_id>sensor1</deepen_sensor_id>\n  <deepen_dataset_id />"
    )
    with open(f"{{out}}/Annotations/{{name}}.xml", "wb") as fh:
        fh.write(head.encode() + b"".join(objects[s:e]) + b"\n</annotation>\n")
with open(out + "/ImageSets/Main/default.txt", "w") as fh:
    fh.write("".join(i + "\n" for i in ids))
dt = time.perf_counter() - t0
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = {{"user": r1.ru_utime - r0.ru_utime, "sys": r1.ru_stime - r0.ru_stime}}
print(json.dumps({{"cpu": cpu, "labels": len(img), "seconds": dt,
                  "peak_bytes": int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) * 1024}}))
"""


def _arrays(n_labels: int, n_images: int, kind: str, seed: int) -> dict[str, np.ndarray]:
    """The seeded label set: image index (sorted), category code, box, and polygon rings."""
    rng = np.random.default_rng(seed)
    image = np.sort(rng.integers(0, n_images, n_labels))
    category = rng.integers(0, len(CATEGORIES), n_labels)
    wh = rng.uniform(8, 300, (n_labels, 2))
    xy = rng.uniform(0, 1, (n_labels, 2)) * (np.array(SIZE) - wh)
    xywh = np.round(np.column_stack([xy, wh]), 2)
    out = {"image": image, "category": category, "xywh": xywh}
    if kind == "polygon":
        ang = np.linspace(0, 2 * np.pi, 12, endpoint=False)
        c = xywh[:, :2] + xywh[:, 2:] / 2
        r = xywh[:, 2:] / 2
        ring = np.stack([c[:, :1] + r[:, :1] * np.cos(ang), c[:, 1:] + r[:, 1:] * np.sin(ang)], -1)
        out["rings"] = np.round(ring, 2)
    return out


def _write_inputs(a: dict[str, np.ndarray], kind: str, folder: Path) -> None:
    """Write the same labels as a Deepen body and as COCO instances (with image sizes)."""
    names = [f"{i:06d}.png" for i in range(int(a["image"].max()) + 1)]
    per_cat = np.zeros(len(CATEGORIES), int)
    deepen, coco_anns = [], []
    rings = a.get("rings")
    for i, (im, c, box) in enumerate(
        zip(a["image"].tolist(), a["category"].tolist(), a["xywh"].tolist(), strict=True)
    ):
        per_cat[c] += 1
        lab = {
            "file_id": names[im],
            "label_category_id": CATEGORIES[c],
            "label_id": f"{CATEGORIES[c]}:{per_cat[c]}",
            "label_type": kind,
            "sensor_id": "sensor1",
            "stage_id": "QA",
        }
        ann = {"id": i + 1, "image_id": im + 1, "category_id": c + 1, "bbox": box, "iscrowd": 0}
        ann["area"] = box[2] * box[3]
        if rings is None:
            lab["box"] = box
            ann["segmentation"] = []
        else:
            ring = rings[i].tolist()
            lab["polygons"] = [ring]
            ann["segmentation"] = [[v for xy in ring for v in xy]]
        deepen.append(lab)
        coco_anns.append(ann)
    coco = {
        "images": [
            {"id": i + 1, "file_name": n, "width": SIZE[0], "height": SIZE[1]}
            for i, n in enumerate(names)
        ],
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CATEGORIES)],
        "annotations": coco_anns,
    }
    # Datumaro's coco_instances layout: annotations/instances_<subset>.json beside images/
    (folder / "coco" / "annotations").mkdir(parents=True)
    (folder / "coco" / "images").mkdir()
    (folder / "deepen.json").write_bytes(orjson.dumps({"labels": deepen}))
    (folder / "coco" / "annotations" / "instances_default.json").write_bytes(orjson.dumps(coco))
    np.savez(folder / "arrays.npz", **a)


def dataset(n_labels: int, n_images: int, kind: str, seed: int) -> Path:
    """The cached input folder for one label set (generated on first use)."""
    folder = DATA / f"peers_{kind}_{n_labels}_{n_images}_{seed}"
    if not (folder / "arrays.npz").exists():
        tmp = Path(tempfile.mkdtemp(dir=DATA.mkdir(exist_ok=True) or DATA))
        _write_inputs(_arrays(n_labels, n_images, kind, seed), kind, tmp)
        tmp.rename(folder)
    return folder


def _child(python: str, code: str) -> dict | str:
    """Run one timed child; its result, or the last line of its error.

    The result holds the child's own ``seconds``, ``peak_bytes`` and ``cpu`` (user and system
    CPU seconds of the timed part, from its ``getrusage``), and ``process_cpu``: the user and
    system CPU of the whole child process (interpreter start and imports included), from the
    parent's ``RUSAGE_CHILDREN`` around the run.
    """
    with tempfile.TemporaryDirectory() as work:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(
            [python, "-c", code.replace("{work!r}", repr(work))], capture_output=True, text=True
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:  # a peer's traceback: its last line says what failed
        lines = (proc.stderr or str(proc.returncode)).strip().splitlines()
        return lines[-1] if lines else f"exit {proc.returncode}"
    result: dict = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_cpu"] = {
        "user": after.ru_utime - before.ru_utime,
        "sys": after.ru_stime - before.ru_stime,
    }
    return result


def _cpu(r: dict) -> str:
    """``user+sys`` CPU seconds of the timed part, then of the whole process."""
    c, p = r["cpu"], r["process_cpu"]
    return f"cpu {c['user']:.2f}+{c['sys']:.2f} s (process {p['user']:.2f}+{p['sys']:.2f})"


_ROOT = [HERE.parent]  # the checkout "ours" runs from (--ours-root: an older one, for before/after)


def _codes(pair: str, folder: Path, python_peer: str) -> tuple[str, str, str]:
    """(our code, the peer's code, the peer's name) for one pair."""
    w, h = SIZE
    fmt = {"coco": "coco", "yolo": "yolo", "voc": "voc", "floor": "yolo", "voc-floor": "voc"}[pair]
    ours = _OURS.replace("{work!r}", "{{work!r}}").format(
        root=str(_ROOT[0]), deepen=str(folder / "deepen.json"), w=w, h=h, fmt=fmt
    )
    if pair == "coco":
        peer = _DATUMARO.replace("{work!r}", "{{work!r}}").format(coco_dir=str(folder / "coco"))
        return ours, peer, "datumaro"
    if pair == "floor":
        peer = _FLOOR.replace("{work!r}", "{{work!r}}").format(
            arrays=str(folder / "arrays.npz"), w=w, h=h
        )
        return ours, peer, "numpy floor"
    if pair == "voc-floor":
        peer = _VOC_FLOOR.replace("{work!r}", "{{work!r}}").format(
            arrays=str(folder / "arrays.npz"), categories=CATEGORIES, w=w, h=h
        )
        return ours, peer, "numpy floor"
    coco_file = str(folder / "coco" / "annotations" / "instances_default.json")
    peer = _GLOBOX.replace("{work!r}", "{{work!r}}").format(
        coco_file=coco_file, fmt=fmt, categories=CATEGORIES
    )
    return ours, peer, "globox"


def run_pair(pair: str, folder: Path, rounds: int, python_peer: str) -> None:
    """Alternate our run and the peer's ``rounds`` times; print each pair and the medians."""
    ours, peer, name = _codes(pair, folder, python_peer)
    peer_python = sys.executable if pair.endswith("floor") else python_peer
    ratios, mem, users = [], [], []
    for r in range(rounds):
        a = _child(sys.executable, ours)
        b = _child(peer_python, peer)
        if isinstance(a, str) or isinstance(b, str):
            print(
                f"  {pair} round {r + 1}: ours: {a if isinstance(a, str) else 'ok'}; "
                f"{name}: {b if isinstance(b, str) else 'ok'}"
            )
            return
        ratios.append(b["seconds"] / a["seconds"])
        mem.append(b["peak_bytes"] / a["peak_bytes"])
        users.append((a["cpu"]["user"], b["cpu"]["user"]))
        print(
            f"  {pair:<6} round {r + 1}: ours {a['seconds']:7.2f} s {a['peak_bytes'] / 2**30:5.2f} GB"
            f" ({a['labels']:,} labels) | {name} {b['seconds']:7.2f} s "
            f"{b['peak_bytes'] / 2**30:5.2f} GB ({b['labels']:,}) | {name}/ours time "
            f"{ratios[-1]:.2f}x, memory {mem[-1]:.2f}x\n"
            f"  {'':<6}          ours {_cpu(a)} | {name} {_cpu(b)}"
        )
    print(
        f"{pair}: median {name}/ours time {statistics.median(ratios):.2f}x, "
        f"peak memory {statistics.median(mem):.2f}x over {rounds} pairs; median user CPU "
        f"ours {statistics.median(u for u, _ in users):.2f} s, "
        f"{name} {statistics.median(u for _, u in users):.2f} s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--pairs", default="coco,yolo,voc,floor,voc-floor")
    ap.add_argument("--labels", type=int, default=500_000)
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3, help="alternating pairs per comparison")
    ap.add_argument("--peer-python", default=sys.executable, help="interpreter with the peers")
    ap.add_argument(
        "--ours-root",
        type=Path,
        default=HERE.parent,
        help="checkout our side runs from (default: this one; an older one for before/after)",
    )
    a = ap.parse_args()
    _ROOT[0] = a.ours_root.resolve()
    for pair in a.pairs.split(","):
        kind = "polygon" if pair == "coco" else "box"
        folder = dataset(a.labels, a.images, kind, a.seed)
        print(f"{pair}: {a.labels:,} {kind} labels over {a.images:,} images ({folder.name})")
        run_pair(pair, folder, a.rounds, a.peer_python)


if __name__ == "__main__":
    main()
