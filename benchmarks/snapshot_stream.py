"""A benchmark labels file as a snapshot folder, converted to Parquet whole and streamed (A B A B).

Usage::

    python benchmarks/snapshot_stream.py                          # run.py's default file, 2 rounds
    python benchmarks/snapshot_stream.py --labels PATH --repeat 3 --snapshot /tmp/snap

Makes ``benchmarks/_data/snapshot_<name>/`` (or ``--snapshot DIR``) once: ``labels.json`` (a symbolic link to the file),
``files.json`` listing every frame of the file (one sensor, with a 1920 x 1080 size),
``dataset.json``, ``manifest.json`` and a profile whose category order is not sorted. Then runs
``deepen-export convert SNAPSHOT --to parquet`` with ``-O stream=false`` and streamed, one after
the other (A B A B), and prints each run's wall time, user + system CPU and peak resident memory
(``/usr/bin/time``: the converting process alone). Outputs go to a temporary folder; the two
outputs of the last round are compared (frames and report byte for byte).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data"
DEFAULT = DATA / "labels_1000000_50000_box0.5_polygon0.5_0_full_h0.05.json"
PROFILE = {"features": {"box": {"label_category_ids": ["truck", "car", "pedestrian"]},
                        "polygon": {"label_category_ids": ["lane_marking", "car"]}}}  # fmt: skip

_FILE_IDS = """
import json, sys
from deepen_export.parse import iter_label_batches
ids = {}
for batch in iter_label_batches(sys.argv[1]):
    ids.update(dict.fromkeys(batch.frames.file_id.tolist()))
json.dump(list(ids), sys.stdout)
"""


def make_snapshot(labels: Path, snap: Path | None = None) -> Path:
    """The snapshot folder of ``labels`` (made once; its file ids read in a child process)."""
    snap = snap or DATA / f"snapshot_{labels.stem}"
    if (snap / "manifest.json").is_file():
        return snap
    tmp = snap.with_name(snap.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "labels.json").symlink_to(labels.resolve())
    out = subprocess.run([sys.executable, "-c", _FILE_IDS, str(labels)], capture_output=True)
    out.check_returncode()
    files = [{"file_id": f, "sensors": ["sensor1"], "status": "done", "width": 1920,
              "height": 1080} for f in json.loads(out.stdout)]  # fmt: skip
    (tmp / "files.json").write_text(json.dumps({"files": files}))
    (tmp / "profile.json").write_text(json.dumps(PROFILE))
    (tmp / "dataset.json").write_text(json.dumps({"dataset_id": "bench", "dataset_type": "images"}))
    (tmp / "manifest.json").write_text(json.dumps({"dataset_id": "bench", "label_set": "default"}))
    tmp.rename(snap)
    return snap


def timed(snap: Path, out: Path, stream: bool) -> dict[str, float]:
    """One ``convert`` run under ``/usr/bin/time``: seconds, CPU seconds, peak RSS in MB."""
    exe = Path(sys.executable).with_name("deepen-export")
    cmd = [str(exe), "convert", str(snap), "--to", "parquet", "-o", str(out)]
    if not stream:
        cmd += ["-O", "stream=false"]
    fmt = "%e %U %S %M"
    done = subprocess.run(["/usr/bin/time", "-f", fmt, *cmd], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    wall, user, system, rss = done.stderr.strip().splitlines()[-1].split()
    return {"wall": float(wall), "cpu": float(user) + float(system), "rss_mb": int(rss) / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labels", type=Path, default=DEFAULT)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--snapshot", type=Path, help="snapshot folder to make or reuse")
    args = ap.parse_args()
    snap = make_snapshot(args.labels, args.snapshot)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            for name, stream in (("whole", False), ("streamed", True)):
                out = Path(tmp, name)
                shutil.rmtree(out, ignore_errors=True)
                t = timed(snap, out, stream)
                print(f"round {r + 1} {name:8}  wall {t['wall']:6.2f} s  cpu {t['cpu']:6.2f} s  "
                      f"peak {t['rss_mb']:7.0f} MB", flush=True)  # fmt: skip
        for f in ("frames.parquet", "report.json"):
            same = Path(tmp, "whole", f).read_bytes() == Path(tmp, "streamed", f).read_bytes()
            print(f"{f}: {'the same bytes' if same else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
