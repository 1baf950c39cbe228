"""Hand-built label sets for the Parquet / Arrow tests (every kind, edge cases written out)."""

from __future__ import annotations

import numpy as np

from deepen_export.model import (
    Boxes,
    Cameras,
    Cuboids,
    Frames,
    FrameStatus,
    LabelSet,
    Masks2D,
    Points,
    Points3D,
    PointSegmentation,
    Polygons,
    Polygons3D,
    Polylines,
    Polylines3D,
    Poses,
    Scenes,
)

CATEGORIES = ("car", "pedestrian", "lane", "road", "vegetation", "Straße ✓")

# world coordinates near 1e5 m: float32 would lose the centimetres (ulp(1e5) in f32 = 7.8 mm,
# in f64 = 1.5e-11 m), so these values catch any float32 on the way.
E = 100_000.0


def rich(dataset_id: str = "ds1") -> LabelSet:
    """Every kind once or more, a polygon with a hole, a two-part polygon, an empty and an
    unlabelled frame, unicode attributes, typed (bool/int/float) and JSON attributes."""
    frames = Frames.from_columns(
        file_id=["000.png", "001.png", "002.png", "0.pcd", "1.pcd"],
        sensor_id=["cam", "cam", "cam", "lidar", "lidar"],
        dataset_id=[dataset_id] * 5,
        index=[0, 1, 2, 0, 1],
        width=[640, 640, 640, -1, -1],
        height=[480, 480, 480, -1, -1],
        status=[
            FrameStatus.LABELLED,
            FrameStatus.EMPTY,
            FrameStatus.UNLABELLED,
            FrameStatus.LABELLED,
            FrameStatus.LABELLED,
        ],
    )
    boxes = Boxes.from_columns(
        frame=[0, 0, 0],
        category=[0, 0, 1],
        label_id=["car:1", "car: 2", "pedestrian:1"],
        xyxy=[[10, 20, 110, 70], [0.5, 0.25, 4.5, 8.25], [300, 100, 320, 160]],
        stage=["QA", "QA", "L1"],
        label_set=["default"] * 3,
        labeller=["ann@x.com", "ann@x.com", "bob@x.com"],
        create_time=[1_700_000_000_123, -1, 1_700_000_001_000],
        update_time=[1_700_000_000_456, -1, 1_700_000_002_000],
        version=[3, -1, 1],
        attributes={
            "occluded": [True, False, None],
            "Farbe": ["grün", "blau", None],
            "count": [1, 2, None],
            "ratio": [0.5, 2, None],
            "tags": [["a", "b"], None, None],
            "mixed": ["x", 3, None],
            "pose": [None, None, "standing"],
        },
    )
    # label 0: square with a square hole (2 rings); label 1: two disjoint triangles (2 parts);
    # label 2: a single triangle.
    polygons = Polygons.from_columns(
        frame=[0, 0, 0],
        category=[3, 3, 4],
        label_id=["road:1", "road:2", "vegetation:1"],
        offsets=[0, 2, 4, 5],
        ring_offsets=[0, 4, 8, 11, 14, 17],
        coords=[
            [0, 0],
            [10, 0],
            [10, 10],
            [0, 10],
            [2, 2],
            [2, 4],
            [4, 4],
            [4, 2],
            [20, 0],
            [30, 0],
            [25, 5],
            [40, 0],
            [50, 0],
            [45, 5],
            [60, 0],
            [70, 0],
            [65, 5],
        ],
        attributes={"surface": ["asphalt", "gravel", None]},
    )
    polylines = Polylines.from_columns(
        frame=[0, 0],
        category=[2, 2],
        label_id=["lane:1", "lane:2"],
        label_type=["lane", "polyline"],
        offsets=[0, 1, 3],
        part_offsets=[0, 3, 5, 7],
        coords=[[0, 470], [100, 300], [200, 100], [300, 470], [310, 300], [320, 470], [330, 300]],
    )
    points = Points.from_columns(
        frame=[0, 0],
        category=[1, 1],
        label_id=["pedestrian:2", "pedestrian:3"],
        offsets=[0, 1, 4],
        coords=[[5, 5], [1, 1], [2, 2], [3, 3]],
    )
    quat_yaw = np.array([0, 0, np.sin(0.3), np.cos(0.3)])
    cuboids = Cuboids.from_columns(
        frame=[3, 3, 4],
        category=[0, 1, 0],
        label_id=["car:7", "pedestrian:8", "car:7"],
        center=[[E + 10.125, E - 20.5, 1.25], [E + 60.0, E, 0.9], [E + 11.0, E - 20.0, 1.25]],
        size=[[4.5, 1.9, 1.6], [0.6, 0.6, 1.8], [4.5, 1.9, 1.6]],
        quat=[quat_yaw, [0, 0, 0, 1], quat_yaw],
        attributes={"moving": ["yes", "no", "yes"]},
    )
    polylines3d = Polylines3D.from_columns(
        frame=[3],
        category=[2],
        label_id=["lane:9"],
        offsets=[0, 1],
        part_offsets=[0, 3],
        coords=[[E, E, 0.0], [E + 1, E + 0.5, 0.125], [E + 2, E + 1, 0.25]],
    )
    polygons3d = Polygons3D.from_columns(
        frame=[3],
        category=[3],
        label_id=["road:9"],
        offsets=[0, 1],
        ring_offsets=[0, 4],
        coords=[[E, E, 0], [E + 5, E, 0], [E + 5, E + 5, 0], [E, E + 5, 0]],
    )
    points3d = Points3D.from_columns(
        frame=[4],
        category=[1],
        label_id=["pedestrian:9"],
        offsets=[0, 2],
        coords=[[E + 1, E + 2, 3], [E + 4, E + 5, 6]],
    )
    scenes = Scenes.from_columns(
        frame=[3], category=[5], label_id=["Straße ✓:1"], attributes={"wetter": ["sonnig ☀"]}
    )
    seg = PointSegmentation.from_columns(
        frame=[3, 4],
        offsets=[0, 5, 8],
        category=[0, 0, -1, 3, 4, 3, 3, -1],
        instance=[1, 1, -1, -1, -1, -1, -1, -1],
    )
    masks = Masks2D.from_columns(
        frame=[0], height=[2], width=[3], offsets=[0, 6], pixels=[-1, 3, 3, 4, 4, -1]
    )
    poses = Poses.from_columns(
        frame=[3, 4],
        position=[[E + 10.0, E - 20.0, 0.0], [E + 12.0, E - 20.0, 0.0]],
        quat=[[0, 0, 0, 1], [0, 0, 0, 1]],
        timestamp=[1.5, np.nan],
    )
    cameras = Cameras.from_columns(
        frame=[3],
        sensor_id=["camera_0"],
        fx=[1000.0],
        fy=[1001.0],
        cx=[320.0],
        cy=[240.0],
        distortion=[[0.1, -0.01, 0, 0, 0.001, 0]],
        position=[[E, E, 1.5]],
        quat=[[0.5, -0.5, 0.5, -0.5]],
        image_path=["cam0/0.jpg"],
        width=[640],
        height=[480],
    )
    return LabelSet(
        frames=frames,
        categories=CATEGORIES,
        boxes=boxes,
        polygons=polygons,
        polylines=polylines,
        points=points,
        cuboids=cuboids,
        polylines3d=polylines3d,
        polygons3d=polygons3d,
        points3d=points3d,
        scenes=scenes,
        point_segmentation=seg,
        masks2d=masks,
        poses=poses,
        cameras=cameras,
        meta={"dataset_id": dataset_id},
    )


def synthetic(
    n_labels: int, *, seed: int = 0, n_frames: int = 1000, dataset_id: str = "bench"
) -> LabelSet:
    """Seeded boxes + polygons + cuboids, for streaming tests and benchmarks."""
    rng = np.random.default_rng(seed)
    frames = Frames.from_columns(
        file_id=[f"{i:06d}.png" for i in range(n_frames)],
        sensor_id=["cam"] * n_frames,
        dataset_id=[dataset_id] * n_frames,
        index=np.arange(n_frames),
    )
    nb = n_labels // 2
    npoly = n_labels // 4
    nc = n_labels - nb - npoly
    cats = ("car", "pedestrian", "cyclist", "truck")
    xy = rng.uniform(0, 1000, (nb, 2))
    wh = rng.uniform(1, 100, (nb, 2))
    boxes = Boxes.from_columns(
        frame=rng.integers(0, n_frames, nb),
        category=rng.integers(0, 4, nb),
        label_id=[f"car:{i}" for i in range(nb)],
        xyxy=np.hstack([xy, xy + wh]),
        attributes={"occluded": rng.choice(["yes", "no"], nb).astype(object)},
    )
    centre = rng.uniform(0, 1000, (npoly, 1, 2))
    ang = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    ring = np.stack([np.cos(ang), np.sin(ang)], axis=1)[None] * rng.uniform(2, 20, (npoly, 1, 1))
    polygons = Polygons.from_columns(
        frame=rng.integers(0, n_frames, npoly),
        category=rng.integers(0, 4, npoly),
        label_id=[f"p:{i}" for i in range(npoly)],
        offsets=np.arange(npoly + 1),
        ring_offsets=np.arange(npoly + 1) * 6,
        coords=(centre + ring).reshape(-1, 2),
    )
    q = np.zeros((nc, 4))
    yaw = rng.uniform(-np.pi, np.pi, nc)
    q[:, 2], q[:, 3] = np.sin(yaw / 2), np.cos(yaw / 2)
    cuboids = Cuboids.from_columns(
        frame=rng.integers(0, n_frames, nc),
        category=rng.integers(0, 4, nc),
        label_id=[f"c:{i}" for i in range(nc)],
        center=rng.uniform(0, 100, (nc, 3)) + E,
        size=rng.uniform(0.5, 10, (nc, 3)),
        quat=q,
    )
    return LabelSet(frames=frames, categories=cats, boxes=boxes, polygons=polygons, cuboids=cuboids)
