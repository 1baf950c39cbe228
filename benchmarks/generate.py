"""Seeded generator of large synthetic Deepen label responses.

Writes the ``{"labels": [...]}`` body the label endpoint returns, with a mix of boxes, 12-vertex
polygons, lanes and cuboids spread over frames, realistic common fields and attributes.

Usage::

    python benchmarks/generate.py --labels 1000000 --frames 50000 -o benchmarks/_data/labels_1m.json
    python benchmarks/generate.py --labels 1000000 --mix box=0.5,polygon=0.5 -o ...
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import orjson

CATEGORIES = ["car", "truck", "pedestrian", "cyclist", "bus", "traffic_sign", "lane_marking"]


def _fmt(a: np.ndarray) -> list[list[float]]:
    return np.round(a, 2).tolist()


def generate(
    n_labels: int,
    n_frames: int,
    *,
    mix: dict[str, float] | None = None,
    seed: int = 0,
    vertices: int = 12,
    form: str = "list",
    fields: str = "full",
    holes: float = 0.0,
) -> dict:
    """Build a synthetic response dict (deterministic for a seed).

    A ``holes`` fraction of the polygons get a second ring inside the first (a hole).
    """
    mix = mix or {"box": 0.4, "polygon": 0.3, "lane": 0.1, "3d_bbox": 0.2}
    rng = np.random.default_rng(seed)
    kinds = np.array(list(mix))
    p = np.array(list(mix.values()), dtype=float)
    kind = rng.choice(kinds, size=n_labels, p=p / p.sum())
    frame = np.sort(rng.integers(0, n_frames, size=n_labels))
    cat = rng.integers(0, len(CATEGORIES), size=n_labels)
    xy = rng.uniform(0, 1800, size=(n_labels, 2))
    wh = rng.uniform(4, 300, size=(n_labels, 2))
    t0 = 1_700_000_000_000
    labels = []
    per_cat_counter: dict[str, int] = {}
    ang = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    # drawn after everything else, so holes=0 gives the same data as before holes existed
    has_hole = rng.uniform(size=n_labels) < holes if holes > 0 else np.zeros(n_labels, bool)
    for i in range(n_labels):
        c = CATEGORIES[int(cat[i])]
        per_cat_counter[c] = per_cat_counter.get(c, 0) + 1
        k = str(kind[i])
        lab = {
            "file_id": f"{int(frame[i]):06d}.{'pcd' if k == '3d_bbox' else 'png'}",
            "label_category_id": c,
            "label_id": f"{c}:{per_cat_counter[c]}",
            "label_type": k,
            "stage_id": "QA",
            "label_set_id": "default",
            "labeller_email": f"labeller{int(cat[i]) % 3}@example.com",
            "sensor_id": "lidar" if k == "3d_bbox" else "sensor1",
            "create_time_millis": t0 + i,
            "update_time_millis": t0 + i + 1000,
            "version": 1 + i % 5,
            "attributes": {"occlusion": ["none", "partial", "heavy"][i % 3], "truncated": "no"},
        }
        if fields == "minimal":
            lab = {
                k: lab[k]
                for k in (
                    "file_id",
                    "label_category_id",
                    "label_id",
                    "label_type",
                    "sensor_id",
                    "stage_id",
                )
            }
        x, y = xy[i]
        w, h = wh[i]
        if k == "box":
            lab["box"] = [
                round(float(x), 2),
                round(float(y), 2),
                round(float(w), 2),
                round(float(h), 2),
            ]
        elif k == "polygon":
            ring = np.stack([x + w / 2 * (1 + np.cos(ang)), y + h / 2 * (1 + np.sin(ang))], axis=1)
            lab["polygons"] = [_fmt(ring)]
            if has_hole[i]:
                centre = np.array([x + w / 2, y + h / 2])
                lab["polygons"].append(_fmt(centre + 0.4 * (ring - centre)[::-1]))
        elif k == "lane":
            ys = np.linspace(y, y + h, 8)
            lab["polygons"] = [_fmt(np.stack([x + 0.1 * (ys - y), ys], axis=1))]
        else:
            lab["three_d_bbox"] = {
                "cx": round(81500.0 + float(x) / 10, 3),
                "cy": round(50300.0 + float(y) / 10, 3),
                "cz": 35.2,
                "l": round(float(w) / 60 + 1, 3),
                "w": round(float(h) / 150 + 0.5, 3),
                "h": 1.6,
                "quaternion": {"x": 0, "y": 0, "z": round(float(np.sin(x / 2000)), 6), "w": 0},
            }
            q = lab["three_d_bbox"]["quaternion"]
            q["w"] = float(np.sqrt(1 - q["z"] ** 2))
        labels.append(lab)
    if form == "dict":
        by_file: dict[str, list] = {}
        for lab in labels:
            by_file.setdefault(lab["file_id"], []).append(lab)
        return {"labels": by_file}
    return {"labels": labels}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--labels", type=int, default=100_000)
    ap.add_argument("--frames", type=int, default=5_000)
    ap.add_argument("--mix", default="", help="e.g. box=0.5,polygon=0.5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--form", choices=["list", "dict"], default="list")
    ap.add_argument(
        "--fields",
        choices=["full", "minimal"],
        default="full",
        help="full: every common field and two attributes; minimal: ids, type, sensor and stage only",
    )
    ap.add_argument("--holes", type=float, default=0.0, help="fraction of polygons with a hole")
    ap.add_argument("-o", "--output", type=Path, required=True)
    a = ap.parse_args()
    mix = {k: float(v) for k, v in (kv.split("=") for kv in a.mix.split(",") if kv)} or None
    obj = generate(
        a.labels, a.frames, mix=mix, seed=a.seed, form=a.form, fields=a.fields, holes=a.holes
    )
    a.output.parent.mkdir(parents=True, exist_ok=True)
    a.output.write_bytes(orjson.dumps(obj))
    print(f"wrote {a.output} ({os.path.getsize(a.output) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
