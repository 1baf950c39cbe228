"""The JSON byte scanner of the columnar path: label objects of a response as newline-delimited JSON."""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.json as pj

from deepen_export.errors import ParseError
from deepen_export.model import (
    _ranges,
)
from deepen_export.parse._arrays import pool
from deepen_export.parse._assemble import _Ctx
from deepen_export.parse._shapes import _iter_response, load_json

_PREFIX = re.compile(rb'^\s*\{\s*"(labels|all_labels)"\s*:\s*([\[{])')

_KEY = re.compile(rb'"((?:[^"\\]|\\.)*)"\s*:\s*\[')

_BLOCK = 1 << 25

_WS = np.zeros(256, dtype=bool)
_WS[[9, 10, 13, 32]] = True


class _Unsupported(Exception):
    pass


@dataclass
class Chunk:
    """Newline-delimited label objects, with the ``file_id`` key of each (dict-shaped responses)."""

    data: bytes | memoryview
    keys: list[str] | None
    listed: list[str]
    # lines of any JSON value (the general reading): never for Arrow, which can crash on a
    # bare ``null`` line (pyarrow 26: a segfault after another read)
    general: bool = False


@dataclass
class _State:
    form: str
    depth: int = 0
    in_str: bool = False
    bs_carry: int = 0
    key: str | None = None
    closed_at: int = -1
    bad: bool = False

    def close(self, after: np.ndarray, positions: np.ndarray, base: int) -> None:
        # where the top-level object closes; a brace after that, or a negative depth, is not JSON
        if (after < 0).any() or (self.closed_at >= 0 and len(after)):
            self.bad = True
            return
        zero = np.flatnonzero(after == 0)
        if len(zero):
            self.closed_at = int(positions[zero[0]]) + base
            if zero[0] != len(after) - 1:
                self.bad = True


_NOT_QB = bytes(c for c in range(256) if c not in (34, 123, 125))

_BRACE = bytes(1 if c in (123, 125) else 0 for c in range(256))

_MARK = bytes(
    1 if c == 123 else 2 if c == 125 else 3 if c == 34 else 4 if c == 92 else 0 for c in range(256)
)


def _sparse_nonzero(marks: np.ndarray) -> np.ndarray:
    # braces are ~1% of the bytes: find the non-zero 8-byte words first, then the bytes in them
    n8 = len(marks) // 8 * 8
    words = np.flatnonzero(marks[:n8].view(np.uint64))
    rows, cols = np.nonzero(marks[:n8].reshape(-1, 8)[words])
    head = words[rows] * 8 + cols
    tail = np.flatnonzero(marks[n8:]) + n8
    return np.concatenate([head, tail]) if len(tail) else head


def _scan_plain(
    raw: bytes, base: int, st: _State, label_depth: int
) -> tuple[np.ndarray, np.ndarray]:
    # no backslash: no escaped quotes, so the order of quotes and braces is all that matters
    seq = np.frombuffer(raw.translate(None, _NOT_QB), dtype=np.uint8)
    bpos = _sparse_nonzero(np.frombuffer(raw.translate(_BRACE), dtype=np.uint8))
    empty = np.zeros(0, dtype=np.int64)
    st.bs_carry = 0
    if not len(seq):
        return empty, empty
    is_q = seq == 34
    # only the parity of the quote count matters: a uint8 running sum keeps it (mod 256) at an
    # eighth of the memory traffic of the default int64
    counts = np.cumsum(is_q, dtype=np.uint8)
    parity = (counts & 1).view(bool) ^ st.in_str
    st.in_str ^= bool(int(counts[-1]) & 1)
    outside = ~parity[~is_q]
    bp = bpos[outside]
    if not len(bp):
        return empty, empty
    delta = np.where(seq[~is_q][outside] == 123, 1, -1)
    after = st.depth + np.cumsum(delta)
    before = after - delta
    st.close(after, bp, base)
    st.depth = int(after[-1])
    return bp[(delta == 1) & (before == label_depth)] + base, bp[
        (delta == -1) & (after == label_depth)
    ] + base


def _scan_block(block: bytes | memoryview, base: int, st: _State) -> tuple[np.ndarray, np.ndarray]:
    # bytes.translate marks braces, quotes and backslashes in one C pass; everything after works
    # on those few positions. Only braces change the depth we track: labels are the objects
    # directly inside the labels array (brace depth 1) or inside a file's array (depth 2).
    label_depth = 1 if st.form == "list" else 2
    raw = bytes(block)
    if not st.bs_carry and raw.find(b"\\") < 0:
        return _scan_plain(raw, base, st, label_depth)
    marks = np.frombuffer(raw.translate(_MARK), dtype=np.uint8)
    pos = np.flatnonzero(marks)
    val = marks[pos]
    empty = np.zeros(0, dtype=np.int64)
    if not len(pos):
        return empty, empty
    is_bs = val == 4
    if st.bs_carry or is_bs.any():
        # a quote is escaped when an odd run of backslashes stands right before it
        idx = np.arange(len(pos))
        run_start = np.ones(len(pos), dtype=bool)
        run_start[1:] = ~(is_bs[:-1] & is_bs[1:] & (np.diff(pos) == 1))
        first = np.maximum.accumulate(np.where(run_start, idx, 0))
        run_len = idx - first + 1
        prev_bs = np.zeros(len(pos), dtype=bool)
        prev_bs[1:] = is_bs[:-1] & (np.diff(pos) == 1)
        prev_run = np.zeros(len(pos), dtype=np.int64)
        prev_run[1:] = np.where(prev_bs[1:], run_len[:-1], 0)
        touches_start = prev_bs & (pos - prev_run == 0)
        prev_run += np.where(touches_start | ((pos == 0) & (st.bs_carry > 0)), st.bs_carry, 0)
        escaped = (val == 3) & (prev_run % 2 == 1)
        val = np.where(escaped, 0, val)
        tail = len(marks) - 1
        old_carry = st.bs_carry
        st.bs_carry = int(run_len[-1] % 2) if is_bs[-1] and pos[-1] == tail else 0
        if is_bs[-1] and pos[-1] == tail and pos[-1] - run_len[-1] + 1 == 0:
            st.bs_carry = (int(run_len[-1]) + old_carry) % 2
    else:
        st.bs_carry = 0
    is_q = val == 3
    parity = (np.cumsum(is_q) & 1).astype(bool) ^ st.in_str
    brace = ((val == 1) | (val == 2)) & ~parity
    bp = pos[brace]
    starts = ends = empty
    if len(bp):
        delta = np.where(val[brace] == 1, 1, -1)
        after = st.depth + np.cumsum(delta)
        before = after - delta
        starts = bp[(delta == 1) & (before == label_depth)] + base
        ends = bp[(delta == -1) & (after == label_depth)] + base
        st.close(after, bp, base)
        st.depth = int(after[-1])
    st.in_str ^= bool(is_q.sum() & 1)
    return starts, ends


def _finish_chunk(
    buf: bytearray, lo: int, starts: np.ndarray, ends: np.ndarray, st: _State, tail: bool
) -> Chunk:
    """Blank the gaps between labels in ``buf`` (file bytes from offset ``lo``) and find file keys."""
    a = np.frombuffer(buf, dtype=np.uint8)
    keys: list[str] | None = None
    listed: list[str] = []
    gs = np.concatenate([[lo], ends + 1]) - lo
    ge = np.concatenate([starts, [lo + len(buf)]]) - lo
    if not tail:
        gs, ge = gs[:-1], ge[:-1]
    lengths = ge - gs
    gap_idx = _ranges(gs, lengths)
    nonws = ~_WS[a[gap_idx]]
    counts = (
        np.add.reduceat(nonws, np.concatenate([[0], np.cumsum(lengths)[:-1]]))
        if len(gap_idx)
        else np.zeros(0)
    )
    counts = np.where(lengths > 0, counts, 0)
    _check_gaps(buf, gs, ge, counts, st.form, lo == 0, tail and len(lengths) > len(starts))
    if st.form == "dict":
        keys = []
        special = np.flatnonzero(counts > 1)
        found: dict[int, list[str]] = {}
        for g in special.tolist():
            text = bytes(buf[gs[g] : ge[g]])
            found[g] = [json.loads(b'"' + m + b'"') for m in _KEY.findall(text)]
        for g in range(len(starts)):
            for k in found.get(g, ()):
                listed.append(k)
                st.key = k
            if st.key is None:
                raise _Unsupported("label outside any file")
            keys.append(st.key)
        if tail and len(lengths) > len(starts):
            listed.extend(found.get(len(starts), ()))
    else:
        inner = counts[1 : len(starts)]
        if len(inner) and np.any(inner != 1):
            raise _Unsupported("something other than label objects in the labels array")
    if not len(starts):
        return Chunk(b"", keys, listed)
    if buf.find(b"\n") >= 0 or buf.find(b"\r") >= 0:
        a[(a == 10) | (a == 13)] = 32
    if len(starts) > 1:
        a[_ranges(gs[1 : len(starts)], lengths[1 : len(starts)])] = 32
        a[gs[1 : len(starts)]] = 10
    s0, e1 = int(starts[0]) - lo, int(ends[-1]) - lo + 1
    return Chunk(memoryview(buf)[s0:e1], keys, listed)


def _check_gaps(
    buf: bytearray,
    gs: np.ndarray,
    ge: np.ndarray,
    counts: np.ndarray,
    form: str,
    head: bool,
    tail: bool,
) -> None:
    """Raise :class:`_Unsupported` when a gap between label objects holds anything but JSON
    punctuation and file keys: a ``null``, number, string or list entry among the labels.

    The general path turns such an entry into a report entry; skipping it here would lose it
    without a word (the fast and the general path must give the same issues).
    """
    last = len(gs) - 1
    for g in np.flatnonzero(counts > 1).tolist() + ([0] if head and len(gs) else []):
        text = bytes(buf[gs[g] : ge[g]])
        if tail and g == last:
            pattern = _LIST_END if form == "list" else _DICT_END
        elif head and g == 0:
            pattern = _LIST_HEAD if form == "list" else _DICT_HEAD
        else:
            pattern = _LIST_GAP if form == "list" else _DICT_GAP
        if not pattern.fullmatch(text):
            raise _Unsupported("an entry other than a label object among the labels")


def _form(head: bytes) -> str | None:
    m = _PREFIX.match(head)
    if not m:
        return None
    return "list" if m.group(2) == b"[" else "dict"


def _whole_file(path: str | os.PathLike[str]) -> Chunk | None:
    size = os.path.getsize(path)
    buf = bytearray(size)
    with open(path, "rb") as fh:
        fh.readinto(buf)
    form = _form(bytes(buf[:256]))
    if form is None:
        return None
    st = _State(form)
    starts, ends = [], []
    view = memoryview(buf)
    for o in range(0, size, _BLOCK):
        s_, e_ = _scan_block(view[o : o + _BLOCK], o, st)
        starts.append(s_)
        ends.append(e_)
    st_ = np.concatenate(starts) if starts else np.zeros(0, np.int64)
    en_ = np.concatenate(ends) if ends else np.zeros(0, np.int64)
    if len(st_) != len(en_) or np.any(en_ < st_) or np.any(st_[1:] < en_[:-1]):
        return None
    if not _complete(buf, st, en_):
        return None
    chunk = _finish_chunk(buf, 0, st_, en_, st, tail=True)
    if chunk.keys is not None and len(set(chunk.listed)) != len(chunk.listed):
        return None  # a file key given twice: the general path applies JSON's last-one-wins
    return chunk


_EMPTY_FILE = rb'\s*"(?:[^"\\]|\\.)*"\s*:\s*\[\s*\]\s*'

_LIST_TAIL = re.compile(rb"\s*\]\s*")

_DICT_TAIL = re.compile(rb"\s*\](?:\s*," + _EMPTY_FILE + rb")*\s*\}\s*")

_DICT_EMPTY = re.compile(rb"(?:" + _EMPTY_FILE + rb"(?:," + _EMPTY_FILE + rb")*)?\}\s*")


_KEY_OPEN = rb'\s*"(?:[^"\\]|\\.)*"\s*:\s*\[\s*'
_LIST_HEAD = re.compile(rb'\s*\{\s*"(?:labels|all_labels)"\s*:\s*\[\s*')
_DICT_HEAD = re.compile(
    rb'\s*\{\s*"(?:labels|all_labels)"\s*:\s*\{(?:' + _EMPTY_FILE + rb",)*" + _KEY_OPEN
)
_LIST_GAP = re.compile(rb"\s*,\s*")
_DICT_GAP = re.compile(rb"\s*(?:,|\](?:\s*," + _EMPTY_FILE + rb")*\s*," + _KEY_OPEN + rb")\s*")
_LIST_END = re.compile(_LIST_TAIL.pattern + rb"\}\s*")
_DICT_END = re.compile(_DICT_TAIL.pattern + rb"\}\s*")


def _complete(buf: bytearray, st: _State, ends: np.ndarray) -> bool:
    """Whether the scanned text is one whole response: closed, nothing after it, a proper tail."""
    if st.bad or st.in_str or st.depth != 0 or st.closed_at < 0:
        return False
    if bytes(buf[st.closed_at + 1 :]).strip():
        return False
    if len(ends):
        tail = bytes(buf[int(ends[-1]) + 1 : st.closed_at])
        return bool((_LIST_TAIL if st.form == "list" else _DICT_TAIL).fullmatch(tail))
    m = _PREFIX.match(bytes(buf[:256]))
    assert m is not None
    rest = bytes(buf[m.end() : st.closed_at])
    if st.form == "list":
        return bool(_LIST_TAIL.fullmatch(rest))
    return bool(_DICT_EMPTY.fullmatch(rest))


def iter_label_chunks(
    path: str | os.PathLike[str], *, batch_size: int = 100_000
) -> Iterator[Chunk]:
    """Yield the labels of a response file as newline-delimited JSON, ``batch_size`` at a time.

    Only one block of the file and one batch of labels are in memory at a time.
    """
    with open(path, "rb") as fh, open(path, "rb") as reader:
        form = _form(fh.read(256))
        if form is None:
            yield from _iter_fallback(path, batch_size)
            return
        fh.seek(0)
        st = _State(form)
        lo = 0
        size = os.path.getsize(path)

        done = [0, 0]  # label objects and listed files yielded so far

        def emit(s: np.ndarray, e: np.ndarray, tail: bool) -> Chunk:
            nonlocal lo
            hi = size if tail else int(e[-1]) + 1
            reader.seek(lo)
            buf = bytearray(hi - lo)
            reader.readinto(buf)
            chunk = _finish_chunk(buf, lo, s, e, st, tail)
            lo = hi
            done[0] += len(s)
            done[1] += len(chunk.listed)
            return chunk

        try:
            yield from _scan_chunks(fh, st, emit, batch_size, path, size)
        except _Unsupported:
            # an entry that is not a label object: the general reading, from where this stopped
            # (every label object before it was yielded, and nothing else was skipped)
            yield from _iter_fallback(path, batch_size, skip=done[0], listed_skip=done[1])


def _scan_chunks(
    fh: Any,
    st: _State,
    emit: Callable[[np.ndarray, np.ndarray, bool], Chunk],
    batch_size: int,
    path: str | os.PathLike[str],
    size: int,
) -> Iterator[Chunk]:
    """The scanning loop of :func:`iter_label_chunks`: blocks in, batches of labels out."""
    pend_s: list[np.ndarray] = []
    pend_e: list[np.ndarray] = []
    base = 0

    while True:
        block = fh.read(_BLOCK)
        if not block:
            break
        s_, e_ = _scan_block(block, base, st)
        base += len(block)
        pend_s.append(s_)
        pend_e.append(e_)
        s_all, e_all = np.concatenate(pend_s), np.concatenate(pend_e)
        while len(e_all) >= batch_size:
            yield emit(s_all[:batch_size], e_all[:batch_size], False)
            s_all, e_all = s_all[batch_size:], e_all[batch_size:]
        pend_s, pend_e = [s_all], [e_all]
    s_all, e_all = np.concatenate(pend_s), np.concatenate(pend_e)
    if len(s_all) != len(e_all) or st.depth != 0 or st.in_str or st.bad:
        raise ParseError(
            "the labels array is cut short: the file may be truncated", path=os.fspath(path)
        )
    yield emit(s_all, e_all, True)


def _iter_fallback(
    path: str | os.PathLike[str], batch_size: int, *, skip: int = 0, listed_skip: int = 0
) -> Iterator[Chunk]:
    obj = load_json(path)
    ctx = _Ctx()
    labels = list(_iter_response(obj, ctx, os.fspath(path)))[skip:]
    listed = [f for _, f in ctx.listed_files][listed_skip:]
    for a in range(0, max(len(labels), 1), batch_size):
        part = labels[a : a + batch_size]
        yield Chunk(
            b"\n".join(orjson.dumps(x) for x in part), None, listed if a == 0 else [], general=True
        )


# -- the batched reading: a few label boundaries, Arrow finds the rest --------------------------

_PIECE = 1 << 21
"""Bytes of labels per line of the batched reading (1-4 MB lines parse fastest, measured)."""

_PART = 1 << 26
"""Bytes of lines per Arrow read: the next part is cut while Arrow parses one (peak memory:
two parts, not the file)."""

_ARROW_BLOCK = 1 << 22
"""Arrow's block size for the batched lines (a block holds whole lines; 4 MB measured best)."""

_OPEN = b'{"l":['
_CLOSE = b"]}\n"
_CUT = re.compile(rb"\}[ \t\n\r]*,[ \t\n\r]*\{")  # JSON's whitespace only: \s has more
_NL = bytes.maketrans(b"\n\r", b"  ")
_JSON_WS = b" \t\n\r"


def _outside_strings(buf: bytearray, a: int, c: int) -> bool:
    """Whether ``buf[c]`` is outside every string, ``buf[a]`` being the opening brace of a label."""
    n = buf.count(b'"', a, c)
    # a one-byte find is a memchr; the two-byte one is several times slower, so only when needed
    i = buf.find(b'\\"', a, c) if buf.find(b"\\", a, c) >= 0 else -1
    while i >= 0:
        # a quote after an odd run of backslashes is part of the string
        j = i
        while j > a and buf[j - 1] == 92:
            j -= 1
        n -= (i - j + 1) & 1
        i = buf.find(b'\\"', i + 1, c)
    return n % 2 == 0


def _cut(
    buf: bytearray, text: int, lo: int, hi: int, cut: re.Pattern[bytes]
) -> tuple[int, int] | None:
    """The last label boundary ``}, {`` outside strings in ``buf[lo:hi]``: (after ``}``, at ``{``).

    ``buf[text]`` opens the first label of the line; ``cut`` is :func:`_cut_pattern`'s. A
    boundary one level deeper (between objects in a list inside a label) that also opens with
    the first label's first key is not told apart: the line around it is not valid JSON then,
    so Arrow refuses it and the file goes the per-label scan.
    """
    top, tries = hi, 0
    while top > lo and tries < 16:
        bottom = max(lo, top - (1 << 16))
        for m in reversed(list(cut.finditer(buf, bottom, top))):
            tries += 1
            if _outside_strings(buf, text, m.start()):
                return m.start() + 1, m.end() - 1
            if tries >= 16:
                break
        top = bottom
    return None


class LineStream:
    """A ``{"labels": [...]}`` file as lines ``{"l": [label, ...]}`` of about :data:`_PIECE`
    bytes, in parts of about :data:`_PART` bytes of whole lines.

    The file is read once, in pieces, straight into the parts: only a few label boundaries are
    looked for (quotes counted by ``bytes.count``), not every label's, and no copy of the whole
    file is ever held. ``lines`` and ``longest`` tell what was made so far, ``bad`` whether the
    text after the last label was anything but ``] }``.
    """

    def __init__(self, fh: Any, size: int) -> None:
        self.lines, self.longest, self.bad = 0, 0, False
        self._fh = fh
        self._gen = self._make(fh, size, max(_PIECE, 2), max(_PART, 1))

    def close(self) -> None:
        self._gen.close()
        self._fh.close()

    def next_part(self) -> memoryview | None:
        """The next part (whole lines), ``None`` after the last."""
        return next(self._gen, None)

    def _make(self, fh: Any, size: int, piece: int, part: int) -> Generator[memoryview, None, None]:
        pattern, carry = _CUT, b""
        out, w = bytearray(), 0
        while True:
            start = w
            _reserve(out, w + len(_OPEN) + len(carry) + piece + len(_CLOSE))
            out[w : w + len(_OPEN)] = _OPEN
            text = w = w + len(_OPEN)
            out[w : w + len(carry)] = carry
            w += len(carry)
            lo, cut, eof = text + piece // 2, None, False
            while cut is None and not eof:
                want = max(piece - (w - text), piece // 2)
                _reserve(out, w + want + len(_CLOSE))
                with memoryview(out) as view:
                    n = fh.readinto(view[w : w + want])
                eof = n == 0 or fh.tell() >= size
                if out.find(b"\n", w, w + n) >= 0 or out.find(b"\r", w, w + n) >= 0:
                    out[w : w + n] = bytes(out[w : w + n]).translate(_NL)
                w += n
                if pattern is _CUT and self.lines == 0:
                    pattern = _cut_pattern(bytes(out[text : text + 4096]))
                if not eof:
                    cut = _cut(out, text, lo, w, pattern)
                    lo = max(lo, w - 64)
            self.lines += 1
            if cut is None:  # the end: ``] }`` and nothing else after the last label
                end = _tail(out, text, w)
                if end < 0:
                    self.bad = True
                    return
                out[end : end + len(_CLOSE)] = _CLOSE
                self.longest = max(self.longest, end + len(_CLOSE) - start)
                yield memoryview(out)[: end + len(_CLOSE)]
                return
            carry = bytes(out[cut[1] : w])
            out[cut[0] : cut[0] + len(_CLOSE)] = _CLOSE
            w = cut[0] + len(_CLOSE)
            self.longest = max(self.longest, w - start)
            if w >= part:
                yield memoryview(out)[:w]
                out, w = bytearray(), 0


def _reserve(out: bytearray, n: int) -> None:
    # grown in steps of at least 8 MB: a part is filled piece by piece
    if len(out) < n:
        out.extend(bytes(max(n - len(out), min(1 << 23, n))))


def _tail(line: bytearray, text: int, w: int) -> int:
    """Where the ``]`` closing the labels array is in ``line[text:w]``, or -1 (something else)."""
    base = max(text, w - 256)
    tail = bytes(line[base:w]).rstrip(_JSON_WS)
    if not tail.endswith(b"}") or not tail[:-1].rstrip(_JSON_WS).endswith(b"]"):
        return -1
    return base + len(tail[:-1].rstrip(_JSON_WS)) - 1


def open_lines(path: str | os.PathLike[str]) -> LineStream | None:
    """The :class:`LineStream` of a ``{"labels": [...]}`` file; ``None`` for any other shape."""
    fh = open(path, "rb")  # noqa: SIM115 (the stream owns it: closed by LineStream.close)
    m = _PREFIX.match(fh.read(256))
    if m is None or m.group(2) != b"[":
        fh.close()
        return None
    fh.seek(m.end())
    return LineStream(fh, os.path.getsize(path))


def _cut_pattern(head: bytes) -> re.Pattern[bytes]:
    """``}, {`` followed by the first key of the first label (``head`` opens it).

    Labels of one response share their key order, objects nested in a label mostly do not: the
    key tells a boundary between labels from one between, say, ``{"x", "y"}`` points.
    """
    m = _FIRST_KEY.match(head)
    if m is None:
        return _CUT
    return re.compile(_CUT.pattern + rb"(?=[ \t\n\r]*" + re.escape(m.group(1)) + rb"[ \t\n\r]*:)")


_FIRST_KEY = re.compile(rb'[ \t\n\r]*\{[ \t\n\r]*("(?:[^"\\]|\\.)*")')


def read_batched(path: str | os.PathLike[str]) -> pa.Table | None:
    """The labels of a ``{"labels": [...]}`` file as an Arrow table (one row per label).

    Arrow reads one part while a thread cuts the next; the parts' tables are joined with
    Arrow's type promotion (an int in one part and a float in another: float, as one read
    would give). ``None`` when the file is not that shape or Arrow cannot take it as it is
    (then the per-label scan decides).
    """
    stream = open_lines(path)
    if stream is None:
        return None
    tables = []
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as worker:
            ahead = worker.submit(stream.next_part)
            while (data := ahead.result()) is not None:
                ahead = worker.submit(stream.next_part)
                tables.append(_read_part(data, stream.longest))
                del data  # the part's bytes: Arrow copied what it keeps
            table = (
                pa.concat_tables(tables, promote_options="permissive", memory_pool=pool())
                if tables
                else None
            )
    except pa.ArrowException:
        return None
    finally:
        stream.close()
    del tables
    col = table.column("l") if table is not None and table.column_names == ["l"] else None
    if stream.bad or table is None or col is None or table.num_rows != stream.lines:
        return None
    if col.null_count:
        return None
    if not pa.types.is_list(col.type) or not pa.types.is_struct(col.type.value_type):
        return None
    parts = [p for p in (c.flatten() for c in col.chunks) if len(p)]
    if not parts or any(p.null_count for p in parts):
        return None  # no labels, or a ``null`` among them: the per-label scan and general path
    return pa.Table.from_batches([pa.RecordBatch.from_struct_array(p) for p in parts])


def _read_part(data: memoryview, longest: int) -> pa.Table:
    opts = pj.ReadOptions(block_size=max(_ARROW_BLOCK, longest + 1))
    table = pj.read_json(pa.BufferReader(pa.py_buffer(data)), read_options=opts, memory_pool=pool())
    for c in table.column("l").chunks if table.column_names == ["l"] else ():
        # pyarrow 26 loses a ``null`` that comes before the first label of a line, leaving
        # offsets past the values: refuse such an array (the general path reports the null)
        c.validate()
        if len(c) and c.offsets[-1].as_py() - c.offsets[0].as_py() != len(c.values):
            raise pa.ArrowInvalid("list offsets past the values")
    return table


def _read_ndjson(data: bytes | memoryview) -> pa.Table:
    buf = pa.py_buffer(data)
    try:
        # 16 MB blocks: measured ~15% faster than 4 MB on 473 MB of labels (2 cores)
        return pj.read_json(pa.BufferReader(buf), read_options=pj.ReadOptions(block_size=1 << 24))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        opts = pj.ReadOptions(block_size=max(len(buf), 1 << 20) + 1)
        return pj.read_json(pa.BufferReader(buf), read_options=opts)
