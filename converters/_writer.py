"""The one writer pipeline: what every format's ``write`` does around the files it writes.

A format module holds only what is particular to its format::

    @writer("yolo")
    def write(labels, out, /, *, task: Task = "detect", clip: bool = True) -> None:
        ...write files under out.folder, add entries to out.report...

and callers see ``write(labels, dest, /, *, on_unsupported="raise", task=..., clip=...) -> Report``.
The pipeline owns, in this order: checking option names and types, the report, the format's
registry entry, the unsupported-kinds policy, the staged destination (:func:`atomic_dir`, so a
URI or a failure never leaves half an output), ``report.json`` and the paused garbage collector.

Option types come from the body's annotations, so the CLI's ``-O key=value`` strings are turned
into the same real types (:func:`typed_options`) a library caller passes.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import types
import typing
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from converters._base import OnUnsupported, apply_policy, atomic_dir, finish, paused_gc
from converters._registry import get_format
from deepen_export.errors import ConversionError
from deepen_export.model import LabelSet
from deepen_export.report import Report

__all__ = ["Output", "WriteFn", "option_types", "typed_options", "writer"]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_NONE = ("none", "null", "")


@dataclass(frozen=True)
class Output:
    """Where a format body writes: a local staging folder and the report of this write.

    Parameters
    ----------
    folder : Path
        Local folder that becomes the destination as a whole when the body returns.
    report : Report
        The report returned to the caller (and written as ``report.json``).
    """

    folder: Path
    report: Report


class WriteFn(Protocol):
    """The public shape of every format's ``write``."""

    def __call__(
        self,
        labels: LabelSet,
        dest: str | os.PathLike[str],
        /,
        *,
        on_unsupported: OnUnsupported = ...,
        **options: Any,
    ) -> Report: ...


def writer(format_name: str) -> Callable[[Callable[..., None]], WriteFn]:
    """Turn a format body ``body(labels, out, /, **options)`` into the format's ``write``.

    Parameters
    ----------
    format_name : str
        Registered format name (see :data:`converters._registry.FORMATS`); its kinds drive the
        unsupported-kinds policy.

    Returns
    -------
    callable
        ``write(labels, dest, /, *, on_unsupported="raise", **options) -> Report``, with the
        body's docstring and a signature made of the body's keyword-only options.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from deepen_export.model import LabelSet
    >>> @writer("deepen")
    ... def write(labels, out, /, *, greeting: str = "hi") -> None:
    ...     (out.folder / "hello.txt").write_text(greeting)
    >>> dest = pathlib.Path(tempfile.mkdtemp(), "out")
    >>> write(LabelSet(), dest, greeting="hello").format
    'deepen'
    >>> sorted(p.name for p in dest.iterdir())
    ['hello.txt', 'report.json']
    >>> str(inspect.signature(write))
    "(labels, dest, /, *, on_unsupported: 'OnUnsupported' = 'raise', greeting: 'str' = 'hi') -> 'Report'"
    """

    def wrap(body: Callable[..., None]) -> WriteFn:
        types_of = option_types(body)

        @functools.wraps(body)
        def write(
            labels: LabelSet,
            dest: str | os.PathLike[str],
            /,
            *,
            on_unsupported: OnUnsupported = "raise",
            **options: Any,
        ) -> Report:
            options = _library_options(format_name, types_of, options)
            report = Report(format_name)
            kinds = get_format(format_name).kinds
            labels = apply_policy(labels, format_name, kinds, on_unsupported, report)
            with paused_gc(), atomic_dir(dest) as tmp:
                body(labels, Output(tmp, report), **options)
                finish(report, tmp)
            return report

        write.__signature__ = _public_signature(body)  # type: ignore[attr-defined]
        write.option_types = types_of  # type: ignore[attr-defined]
        return typing.cast(WriteFn, write)

    return wrap


def _public_signature(body: Callable[..., None]) -> inspect.Signature:
    kw = inspect.Parameter.KEYWORD_ONLY
    pos = inspect.Parameter.POSITIONAL_ONLY
    own = [p for p in inspect.signature(body).parameters.values() if p.kind is kw]
    head = [
        inspect.Parameter("labels", pos),
        inspect.Parameter("dest", pos),
        inspect.Parameter("on_unsupported", kw, default="raise", annotation="OnUnsupported"),
    ]
    return inspect.Signature(head + own, return_annotation="Report")


def option_types(fn: Callable[..., Any]) -> dict[str, Any]:
    """``{option: annotation}`` of a writer's keyword-only options (resolved type hints).

    Examples
    --------
    >>> def body(labels, out, /, *, clip: bool = True, seed: int = 0) -> None: ...
    >>> option_types(body)
    {'clip': <class 'bool'>, 'seed': <class 'int'>}
    """
    fn = inspect.unwrap(fn)
    hints = typing.get_type_hints(fn)  # a name it cannot resolve is a bug: no silent "any"
    kw = inspect.Parameter.KEYWORD_ONLY
    return {
        name: hints.get(name, Any)
        for name, p in inspect.signature(fn).parameters.items()
        if p.kind is kw and name != "on_unsupported"
    }


def typed_options(format_name: str, write: Callable[..., Any], raw: Mapping[str, Any]) -> dict:
    """Options given as text (``-O clip=false``) turned into the types ``write`` declares.

    Unknown names and values that do not fit the declared type are refused with one line
    naming the option and what it takes.

    Examples
    --------
    >>> def body(labels, out, /, *, clip: bool = True, camera: str | None = "c0") -> None: ...
    >>> typed_options("kitti", body, {"clip": "false", "camera": "none"})
    {'clip': False, 'camera': None}
    >>> typed_options("kitti", body, {"clp": "1"})
    Traceback (most recent call last):
    ...
    deepen_export.errors.ConversionError: kitti has no option(s) clp; it takes: camera, clip
    """
    types_of = getattr(write, "option_types", None) or option_types(write)
    unknown = [k for k in raw if k not in types_of]
    if unknown:
        raise ConversionError(
            f"{format_name} has no option(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(sorted(types_of))}",
            format=format_name,
        )
    out: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            out[key] = coerce(value, types_of[key])
        except ValueError as exc:
            raise ConversionError(
                f"{format_name}: option {key}: {exc}", format=format_name
            ) from None
    return out


def _library_options(fmt: str, types_of: Mapping[str, Any], options: dict) -> dict:
    unknown = sorted(set(options) - set(types_of))
    if unknown:
        raise TypeError(
            f"{fmt}.write() got unexpected option(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(sorted(types_of))}"
        )
    fixed = {}
    for key, value in options.items():
        if isinstance(value, str) and not _accepts(types_of[key], str):
            warnings.warn(
                f"{fmt}.write({key}={value!r}): pass a {_type_name(types_of[key])}, not text; "
                "text values are deprecated outside the CLI",
                DeprecationWarning,
                stacklevel=3,
            )
            value = coerce(value, types_of[key])
        fixed[key] = value
    return fixed


def coerce(value: Any, annotation: Any) -> Any:
    """``value`` as ``annotation`` wants it; text is parsed, other values pass unchanged.

    Examples
    --------
    >>> coerce("yes", bool), coerce("3", int | None), coerce("none", str | None)
    (True, 3, None)
    >>> coerce("big", Literal["detect", "segment"])
    Traceback (most recent call last):
    ...
    ValueError: expected one of detect, segment, got 'big'
    """
    if not isinstance(value, str) or annotation is Any:
        return value
    choices = _union(annotation)
    if type(None) in choices and value.strip().lower() in _NONE:
        return None
    literals = [c for c in choices if typing.get_origin(c) is Literal]
    for lit in literals:
        if value in typing.get_args(lit):
            return value
    if str in choices or any(_is_path(c) for c in choices):
        return value
    for kind in (bool, int, float):
        if kind in choices:
            return _parse_scalar(value, kind)
    if literals:
        allowed = ", ".join(str(a) for lit in literals for a in typing.get_args(lit))
        raise ValueError(f"expected one of {allowed}, got {value!r}")
    try:  # a mapping or a list: JSON text (the writer checks what it gets)
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _parse_scalar(value: str, kind: type) -> Any:
    v = value.strip().lower()
    if kind is bool:
        if v in _TRUE or v in _FALSE:
            return v in _TRUE
        raise ValueError(f"expected true or false, got {value!r}")
    try:
        return kind(v)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"expected {what}, got {value!r}") from None


def _union(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _is_path(annotation: Any) -> bool:
    origin = typing.get_origin(annotation) or annotation
    return isinstance(origin, type) and issubclass(origin, os.PathLike | Path)


def _accepts(annotation: Any, kind: type) -> bool:
    choices = _union(annotation)
    literal = any(
        typing.get_origin(c) is Literal and any(isinstance(a, kind) for a in typing.get_args(c))
        for c in choices
    )
    return annotation is Any or kind in choices or literal or any(_is_path(c) for c in choices)


def _type_name(annotation: Any) -> str:
    names = [getattr(c, "__name__", str(c)) for c in _union(annotation) if c is not type(None)]
    return " or ".join(names)
