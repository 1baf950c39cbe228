"""Dataset processing status, read from either form of the DatasetResource (deepen-api.md §3.1).

Older form: ``processing_status`` (``files_to_be_uploaded``, ``files_uploaded``,
``preprocessing_error``, ``files_getting_labelled``), ``processing_status_message`` and
``pipeline_stage_status`` / ``pipeline_status``. Newer form: ``current_stage`` (``FileUpload``,
``Processing``, ``Labelling``, ``QA``, ``Audit``...), ``current_stage_status`` (``waiting``,
``ready``, ``in_progress``, ``done``) and ``pipeline_status_by_label_set_id[label_set][stage]``
with counts ``done``, ``failed``, ``in_progress``, ``ready``, ``waiting``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["ProcessingStatus", "Until"]

Until = Literal["processed", "labelled"]
State = Literal["uploading", "processing", "processed", "labelled", "error", "unknown"]

_UPLOAD_STAGES = {"fileupload", "file_upload", "upload"}
_PROCESS_STAGES = {"processing", "preprocessing"}
_ERROR_WORDS = {"error", "failed", "preprocessing_error", "processing_error"}
_COUNT_KEYS = ("waiting", "ready", "in_progress", "done", "failed")
# stages after processing: labelling has started (any stage the dataset's pipeline_spec names too)
_LABEL_STAGES = {"labelling", "labeling", "qa", "audit", "review", "validation", "done"}
# older processing_status values that mean "processed, in labelling"
_OLD_PROCESSED = {"files_getting_labelled", "files_labelled", "labelling", "ready", "processed"}
# older form: the per-stage status is a word, and ``status`` holds finished/total file counts
_OLD_COUNT_WORDS = {"finished": "done", "in_progress": "in_progress", "failed": "failed"}


def _old_counts(dataset: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Counts of the older form: ``status: {finished, in_progress, total}`` as one stage.

    Files neither finished, in progress nor failed are counted as ``waiting``.
    """
    status = dataset.get("status")
    if not isinstance(status, Mapping):
        return {}
    nums = {
        str(k): int(v)
        for k, v in status.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    if "total" not in nums and "finished" not in nums:
        return {}
    counts = {new: nums[old] for old, new in _OLD_COUNT_WORDS.items() if old in nums}
    if "total" in nums:
        counts["waiting"] = max(0, nums["total"] - sum(counts.values()))
    return {"files": counts}


def _counts(value: Any) -> dict[str, dict[str, int]]:
    """``{stage: {count name: int}}`` from a stage → counts mapping; other shapes give ``{}``."""
    out: dict[str, dict[str, int]] = {}
    if not isinstance(value, Mapping):
        return out
    for stage, counts in value.items():
        if isinstance(counts, Mapping):
            out[str(stage)] = {
                str(k): int(v)
                for k, v in counts.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
    return out


@dataclass(frozen=True)
class ProcessingStatus:
    """Where a dataset is in Deepen's pipeline, normalised over both status forms.

    Attributes
    ----------
    state : str
        ``uploading`` (files not yet processed), ``processing``, ``processed`` (ready for
        labelling), ``labelled`` (every file through the last stage), ``error``, or
        ``unknown`` (a status word this client does not know; a wait goes on through it).
    stage, stage_status : str or None
        ``current_stage``/``current_stage_status`` (newer form) or ``processing_status`` (older).
    counts : dict
        Per pipeline stage, the file counts (``waiting``, ``ready``, ``in_progress``, ``done``,
        ``failed``) for the label set.
    message : str or None
        ``processing_status_message`` when the server gives one.

    Examples
    --------
    >>> s = ProcessingStatus.from_dataset({"current_stage": "Labelling",
    ...     "current_stage_status": "ready"})
    >>> s.state, s.finished("processed"), s.finished("labelled")
    ('processed', True, False)
    """

    state: State
    stage: str | None = None
    stage_status: str | None = None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    message: str | None = None

    @classmethod
    def from_dataset(
        cls, dataset: Mapping[str, Any], label_set: str = "default"
    ) -> ProcessingStatus:
        """Read the status out of a DatasetResource (either form)."""
        by_set = dataset.get("pipeline_status_by_label_set_id")
        counts: dict[str, dict[str, int]] = {}
        if isinstance(by_set, Mapping):
            counts = _counts(by_set.get(label_set) or {})
        if not counts:
            counts = (
                _counts(dataset.get("pipeline_stage_status"))
                or _counts(dataset.get("pipeline_status"))
                or _old_counts(dataset)
            )
        message = dataset.get("processing_status_message")
        message = str(message) if message else None
        stage = dataset.get("current_stage")
        stage_status = dataset.get("current_stage_status")
        processing = dataset.get("processing_status")
        stages = {
            str(x.get("stage_id", "")).lower()
            for x in dataset.get("pipeline_spec") or []
            if isinstance(x, Mapping)
        } | {k.lower() for k in counts}
        if stage is not None:
            state = cls._new_form_state(str(stage), str(stage_status or ""), counts, stages)
            if state != "error" and str(processing or "").lower() in _ERROR_WORDS:
                state = "error"
            return cls(
                state, str(stage), str(stage_status) if stage_status else None, counts, message
            )
        if processing is not None:
            words = dataset.get("pipeline_stage_status")
            state = cls._old_form_state(str(processing), counts, words)
            return cls(state, str(processing), None, counts, message)
        return cls("uploading", None, None, counts, message)

    @staticmethod
    def _labelled(counts: Mapping[str, Mapping[str, int]]) -> bool:
        if not counts:
            return False
        pending = sum(
            c.get(k, 0) for c in counts.values() for k in ("waiting", "ready", "in_progress")
        )
        last = list(counts.values())[-1]
        return pending == 0 and last.get("done", 0) > 0

    @classmethod
    def _new_form_state(
        cls, stage: str, status: str, counts: dict[str, dict[str, int]], stages: set[str]
    ) -> State:
        s, st = stage.lower(), status.lower()
        if st in _ERROR_WORDS:
            return "error"
        if s in _UPLOAD_STAGES:
            return "uploading"
        if s in _PROCESS_STAGES:
            return "processed" if st == "done" else "processing"
        if s not in _LABEL_STAGES and s not in stages:
            return "unknown"  # a stage this client does not know: never taken as processed
        if cls._labelled(counts) or (st == "done" and not counts):
            return "labelled"
        return "processed"

    @classmethod
    def _old_form_state(
        cls, processing: str, counts: dict[str, dict[str, int]], words: Any = None
    ) -> State:
        p = processing.lower()
        if p in _ERROR_WORDS or p.endswith("_error"):
            return "error"
        if p in ("files_to_be_uploaded",):
            return "uploading"
        if p in ("files_uploaded", "preprocessing", "files_getting_processed"):
            return "processing"
        if p not in _OLD_PROCESSED:
            return "unknown"
        if isinstance(words, Mapping) and words and not counts:
            # stage -> "done" / "in_progress" words: labelled once every stage is done
            done = all(str(v).lower() in ("done", "finished", "completed") for v in words.values())
            return "labelled" if done else "processed"
        return "labelled" if cls._labelled(counts) else "processed"

    def finished(self, until: Until = "processed") -> bool:
        """True once the dataset reached ``until`` (``processed`` or ``labelled``) or failed."""
        if self.state == "error":
            return True
        if until == "labelled":
            return self.state == "labelled"
        return self.state in ("processed", "labelled")

    def describe(self) -> str:
        """One line for a terminal: state, stage and the stage counts.

        Examples
        --------
        >>> ProcessingStatus("processed", "Labelling", "ready",
        ...     {"Labelling": {"done": 1, "ready": 2}}).describe()
        'processed · Labelling: ready · Labelling ready 2, done 1'
        """
        parts: list[str] = [self.state]
        if self.stage:
            parts.append(f"{self.stage}: {self.stage_status}" if self.stage_status else self.stage)
        for stage, c in self.counts.items():
            shown = ", ".join(f"{k} {c[k]}" for k in _COUNT_KEYS if c.get(k))
            if shown:
                parts.append(f"{stage} {shown}")
        if self.message:
            parts.append(self.message)
        return " · ".join(parts)
