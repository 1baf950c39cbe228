"""deepen-export: fetch labels from Deepen AI and convert them to training and analytics formats.

>>> import deepen_export
>>> labels = deepen_export.read_labels({"labels": []})
>>> len(labels)
0
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from deepen_export.errors import DeepenExportError
from deepen_export.model import FrameStatus, LabelSet
from deepen_export.report import Issue, Report

try:
    __version__ = version("deepen-export")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0+unknown"

if TYPE_CHECKING:
    from deepen_export.api import Client

__all__ = [
    "Client",
    "DeepenExportError",
    "FrameStatus",
    "Issue",
    "LabelSet",
    "Report",
    "__version__",
    "read_labels",
]


def read_labels(source: Any, **kwargs: Any) -> LabelSet:
    """Read Deepen labels into a :class:`LabelSet`.

    Parameters
    ----------
    source : str, os.PathLike, bytes or dict
        A labels JSON file as the API returns it, its bytes, the parsed dict, or a snapshot
        folder written by ``deepen-export pull``.
    **kwargs
        Passed to :func:`deepen_export.parse.parse_source`.

    Returns
    -------
    LabelSet

    Examples
    --------
    >>> labels = read_labels({"labels": [{"file_id": "a.png", "label_id": "car:1",
    ...     "label_category_id": "car", "label_type": "box", "box": [1, 2, 3, 4]}]})
    >>> labels.boxes.xyxy.tolist()
    [[1.0, 2.0, 4.0, 6.0]]
    """
    from deepen_export.parse import parse_source

    return parse_source(source, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "Client":
        from deepen_export.api import Client

        return Client
    raise AttributeError(f"module 'deepen_export' has no attribute {name!r}")
