"""Labelling requirements files: YAML or JSON, short form or Deepen's own profile object.

The short form lists, per label type, its categories and attributes::

    box:
      categories: [bus, car, truck]
      attributes:
        occlusion: [none, partial, heavy]     # a select attribute and its values
        note: {type: text}                    # an attribute of another type, as Deepen spells it
    polygon: [road, sidewalk]                 # categories only
    name: street scenes                       # optional: the profile_name

Deepen's own object (what ``profiles show`` prints) holds the same under ``features``::

    {"profile_name": "...", "features": {"box": {"label_category_ids": [...], "attributes": {...}}}}

Either is checked before any request: an unknown label type, a label type without categories,
an empty or repeated category, and a select attribute without values are errors naming the
file and line (``requirements.yaml:4: ...``).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from deepen_export.errors import DeepenExportError
from deepen_export.model import KIND_OF_LABEL_TYPE

__all__ = ["LABEL_TYPES", "RequirementsError", "load_requirements"]

LABEL_TYPES = (*KIND_OF_LABEL_TYPE, "3d_instance_point")
"""The label types of a profile's ``features``: those of the label JSON, and instance paint
(``3d_instance_point``, deepen-api.md §3.4)."""

_SHORT_KEYS = {"name": "profile_name", "profile_name": "profile_name"}
_PROFILE_KEYS = {
    "profile_name",
    "instructions",
    "notification_url",
    "pipeline_spec",
    "preferences",
    "auto_detect_objects_end_point",
    "profile_id",
    "client_id",
}
_NEEDS_VALUES = {"select", "multi_select", "multiselect", "radio", "dropdown"}


class RequirementsError(DeepenExportError, ValueError):
    """A requirements file that is not a valid labelling profile; the message names file:line."""


class _Reader:
    def __init__(self, path: str) -> None:
        self.path = path
        self.cons = SafeConstructor()

    def fail(self, node: Node | None, message: str) -> RequirementsError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        return RequirementsError(f"{self.path}{line}: {message}")

    def value(self, node: Node) -> Any:
        return self.cons.construct_object(node, deep=True)

    def text(self, node: Node, what: str) -> str:
        """A name as written: ``no`` stays "no" (YAML 1.1 would read a boolean)."""
        if not isinstance(node, ScalarNode):
            raise self.fail(node, f"{what} must be a name, not a list or mapping")
        return str(node.value).strip()

    def mapping(self, node: Node, what: str) -> list[tuple[str, Node, Node]]:
        if not isinstance(node, MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        return [(self.text(k, "a key"), k, v) for k, v in node.value]

    def names(self, node: Node, what: str, owner: str) -> list[str]:
        """The names of a list (``what``: ``categories`` or ``values``), none empty or repeated."""
        if not isinstance(node, SequenceNode):
            raise self.fail(node, f"{what} of {owner} must be a list")
        out: list[str] = []
        for item in node.value:
            name = self.text(item, f"each of the {what}") if not _null(item) else ""
            if not name:
                raise self.fail(item, f"empty name among the {what} of {owner}")
            if name in out:
                one = {"categories": "category", "values": "value"}.get(what, what)
                raise self.fail(item, f"{one} {name!r} given twice for {owner}")
            out.append(name)
        return out


def _null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag.endswith(":null")


def load_requirements(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a requirements file; returns Deepen's labelling profile object.

    Parameters
    ----------
    path : path-like
        A YAML or JSON file, in the short form or as Deepen's profile object.

    Returns
    -------
    dict
        ``{"features": {label_type: {"label_category_ids": [...], "attributes": {...}}}}``
        plus ``profile_name`` and the other profile fields the file gives.

    Raises
    ------
    RequirementsError
        The file cannot be read or parsed, or breaks a rule; the message names file and line.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp(), "req.yaml")
    >>> _ = p.write_text("box: {categories: [bus, car], attributes: {occlusion: [none, heavy]}}")
    >>> load_requirements(p)["features"]["box"]
    {'label_category_ids': ['bus', 'car'], 'attributes': {'occlusion': {'type': 'select', 'values': ['none', 'heavy']}}}
    >>> _ = p.write_text("box:\\n  categories: [bus, bus]\\n")
    >>> load_requirements(p)
    Traceback (most recent call last):
    ...
    deepen_export.api._requirements.RequirementsError: ...req.yaml:2: category 'bus' given twice for box
    """
    shown = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RequirementsError(f"{shown}: cannot read: {exc}") from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RequirementsError(f"{shown}{where}: not YAML or JSON: {problem}") from None
    r = _Reader(shown)
    if root is None:
        raise RequirementsError(f"{shown}: empty; give at least one label type and its categories")
    entries = r.mapping(root, "the file")
    keys = {k for k, _, _ in entries}
    if "features" in keys:
        profile: dict[str, Any] = {}
        for key, _, vnode in entries:
            if key == "features":
                profile["features"] = _features(r, vnode, long_form=True)
            else:  # profile_name, pipeline_spec, ... and fields this client does not know
                profile[key] = r.value(vnode)
        return profile
    profile = {}
    features = []
    for key, knode, vnode in entries:
        if key in _SHORT_KEYS:
            profile[_SHORT_KEYS[key]] = r.text(vnode, key)
        elif key in _PROFILE_KEYS:
            profile[key] = r.value(vnode)
        else:
            features.append((key, knode, vnode))
    profile["features"] = _features_of(r, features, long_form=False, where=root)
    return profile


def _features(r: _Reader, node: Node, *, long_form: bool) -> dict[str, Any]:
    return _features_of(r, r.mapping(node, "features"), long_form=long_form, where=node)


def _features_of(
    r: _Reader, entries: list[tuple[str, Node, Node]], *, long_form: bool, where: Node
) -> dict[str, Any]:
    if not entries:
        raise r.fail(where, "no label type given (for example box: [car, bus])")
    out: dict[str, Any] = {}
    for label_type, knode, vnode in entries:
        if label_type not in LABEL_TYPES:
            close = difflib.get_close_matches(label_type, LABEL_TYPES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise r.fail(
                knode,
                f"unknown label type {label_type!r}{hint} (known: {', '.join(LABEL_TYPES)})",
            )
        if label_type in out:
            raise r.fail(knode, f"label type {label_type!r} given twice")
        out[label_type] = _feature(r, label_type, vnode, long_form)
    return out


def _feature(r: _Reader, label_type: str, node: Node, long_form: bool) -> dict[str, Any]:
    if isinstance(node, SequenceNode) and not long_form:
        return {"label_category_ids": r.names(node, "categories", label_type), "attributes": {}}
    cat_key = "label_category_ids" if long_form else "categories"
    feature: dict[str, Any] = {}
    cats = None
    for key, knode, vnode in r.mapping(node, label_type):
        if key in (cat_key, "label_category_ids", "categories"):
            cats = r.names(vnode, "categories", label_type)
        elif key == "attributes":
            feature["attributes"] = _attributes(r, label_type, vnode)
        elif long_form:
            feature[key] = r.value(vnode)  # e.g. label_category_default_dimensions
        else:
            raise r.fail(knode, f"{label_type} takes categories and attributes, not {key!r}")
    if not cats:
        raise r.fail(node, f"{label_type} has no categories")
    return {"label_category_ids": cats, "attributes": feature.pop("attributes", {}), **feature}


def _attributes(r: _Reader, label_type: str, node: Node) -> dict[str, Any]:
    if _null(node):
        return {}
    out: dict[str, Any] = {}
    for name, knode, vnode in r.mapping(node, f"attributes of {label_type}"):
        owner = f"attribute {name!r} of {label_type}"
        if name in out:
            raise r.fail(knode, f"{owner} given twice")
        if isinstance(vnode, SequenceNode) or _null(vnode):
            values = r.names(vnode, "values", owner) if not _null(vnode) else []
            if not values:
                raise r.fail(vnode, f"{owner} has no values")
            out[name] = {"type": "select", "values": values}
            continue
        spec = {}
        for key, _, v in r.mapping(vnode, owner):
            spec[key] = r.names(v, "values", owner) if key == "values" else r.value(v)
        kind = str(spec.get("type", "select")).lower()
        if kind in _NEEDS_VALUES and not spec.get("values"):
            raise r.fail(vnode, f"{owner} ({kind}) has no values")
        out[name] = spec
    return out
