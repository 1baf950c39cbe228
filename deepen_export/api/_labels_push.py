"""Request bodies of the write side of the labelling loop: label import, tasks, user scopes.

The :class:`~deepen_export.api.Client` methods (``post_labels``, ``mark_labelling_done``,
``list_tasks``, ``user_tasks``, ``set_user_scopes``) send what these functions build and check
what comes back, so the shapes live in one place (see ``deepen-api.md`` §2).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from deepen_export.errors import PayloadError

__all__ = ["LABEL_FIELDS", "labels_body", "scopes", "tasks_of", "user_tasks_of"]

LABEL_FIELDS = ("file_id", "label_id", "label_type", "label_category_id")
"""Fields every label of an import must carry (what the label endpoints always return)."""

ScopeSpec = Mapping[str, Iterable[str]] | Iterable[Mapping[str, Any]] | None


def labels_body(labels: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The body of ``POST /datasets/{id}/labels``: ``{"type": "json", "labels": [...]}``.

    Raises ``ValueError`` naming the first label that lacks a required field, before anything
    is sent.

    Examples
    --------
    >>> labels_body([{"file_id": "a.png", "label_id": "car:1", "label_type": "box",
    ...               "label_category_id": "car", "box": [0, 0, 1, 1]}])["type"]
    'json'
    """
    for i, lab in enumerate(labels):
        missing = [k for k in LABEL_FIELDS if not lab.get(k)]
        if missing:
            raise ValueError(
                f"label {i} ({lab.get('label_id') or '?'} on {lab.get('file_id') or '?'}) "
                f"has no {', '.join(missing)}"
            )
    return {"type": "json", "labels": list(labels)}


def scopes(spec: ScopeSpec, key: str) -> list[dict[str, Any]]:
    """``[{key: ..., "scopes": [...]}]`` from a mapping ``{who: scopes}`` or a list of dicts.

    Examples
    --------
    >>> scopes({"ann@example.com": ["labeller"]}, "email")
    [{'email': 'ann@example.com', 'scopes': ['labeller']}]
    >>> scopes([{"user_group_id": "g1", "scopes": ["reviewer"]}], "user_group_id")
    [{'user_group_id': 'g1', 'scopes': ['reviewer']}]
    """
    if spec is None:
        return []
    if isinstance(spec, Mapping):
        return [{key: str(who), "scopes": _scope_list(s, who)} for who, s in spec.items()]
    out = []
    for item in spec:
        if not isinstance(item, Mapping) or not item.get(key):
            raise ValueError(f"a scope entry needs {key!r} and 'scopes', got {item!r}")
        out.append({key: str(item[key]), "scopes": _scope_list(item.get("scopes"), item[key])})
    return out


def _scope_list(value: Any, who: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    items = [str(v) for v in value or ()]
    if not items:
        raise ValueError(f"no scopes given for {who!r}")
    return items


def tasks_of(body: Any, what: str) -> list[dict[str, Any]]:
    """The ``tasks`` list of ``GET /datasets/{id}/tasks`` (PayloadError when missing).

    Examples
    --------
    >>> tasks_of({"tasks": [{"task_id": "t1"}]}, "tasks")
    [{'task_id': 't1'}]
    """
    tasks = body.get("tasks") if isinstance(body, Mapping) else None
    if not isinstance(tasks, list):
        raise PayloadError(f"{what}: the answer has no 'tasks' list")
    return tasks


def user_tasks_of(body: Any, what: str) -> dict[str, list[dict[str, Any]]]:
    """``{"file_tasks": [...], "label_tasks": [...]}`` of ``GET /clients/{id}/user_tasks``.

    Examples
    --------
    >>> user_tasks_of({"file_tasks": [{"file_id": "a"}]}, "user_tasks")["label_tasks"]
    []
    """
    if not isinstance(body, Mapping):
        raise PayloadError(f"{what}: expected a JSON object")
    out: dict[str, list[dict[str, Any]]] = {}
    for key in ("file_tasks", "label_tasks"):
        value = body.get(key) or []
        if not isinstance(value, list):
            raise PayloadError(f"{what}: {key!r} is not a list")
        out[key] = value
    return out
