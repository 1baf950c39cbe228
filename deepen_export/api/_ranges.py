"""Image sizes out of a remote zip through HTTP range requests, without downloading the images.

The uploaded dataset's signed link (a storage object) answers ``Range`` requests. The zip's
end-of-central-directory record sits in its last bytes and points to the central directory,
which names every member with its offset; each image's size is in its first bytes (PNG ``IHDR``,
JPEG ``SOFn``, WebP, BMP, GIF headers; see :func:`deepen_export._media.size_from_header`).
So a zip of thousands of images costs one request for the directory and one small request
per image, whatever the images weigh. Stored and deflated members are read; a server that
ignores ``Range`` (answers 200 with the whole body) is read from that body instead.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import PurePosixPath

from deepen_export._media import IMAGE_SUFFIXES, Size, size_from_header
from deepen_export.errors import PayloadError

__all__ = ["Fetch", "remote_zip_image_sizes"]

Fetch = Callable[[str], tuple[int, bytes]]
"""``fetch("bytes=START-END")`` → ``(status code, body)``; 206 for a range, 200 for the whole."""

_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_CENTRAL = b"PK\x01\x02"
_TAIL = 1 << 16  # the EOCD record plus the longest zip comment (65535 bytes) fit in 64 KiB + 22
_FIRST = 1 << 12  # first read of an image: PNG, WebP, BMP, GIF and most JPEGs
_MAX_HEAD = 1 << 20  # JPEGs with a large EXIF or ICC block: read up to 1 MiB before giving up


@dataclass(frozen=True)
class _Member:
    name: str
    method: int
    csize: int
    offset: int


def _members(directory: bytes, count: int) -> list[_Member]:
    out, i = [], 0
    for _ in range(count):
        if directory[i : i + 4] != _CENTRAL:
            raise PayloadError("uploaded zip: central directory entry not where the directory says")
        (_, _, _, flags, method, _, _, _, csize, usize, nlen, elen, clen, _, _, _, offset) = (
            struct.unpack("<4sHHHHHHIIIHHHHHII", directory[i : i + 46])
        )
        raw = directory[i + 46 : i + 46 + nlen]
        name = raw.decode("utf-8" if flags & 0x800 else "cp437", "replace")
        extra = directory[i + 46 + nlen : i + 46 + nlen + elen]
        if 0xFFFFFFFF in (csize, usize, offset):
            csize, offset = _zip64(extra, usize, csize, offset)
        out.append(_Member(name, method, csize, offset))
        i += 46 + nlen + elen + clen
    return out


def _zip64(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int]:
    j = 0
    while j + 4 <= len(extra):
        tag, size = struct.unpack("<HH", extra[j : j + 4])
        if tag == 1:
            vals = iter(struct.unpack(f"<{size // 8}Q", extra[j + 4 : j + 4 + size // 8 * 8]))
            if usize == 0xFFFFFFFF:
                next(vals, None)
            if csize == 0xFFFFFFFF:
                csize = next(vals, csize)
            if offset == 0xFFFFFFFF:
                offset = next(vals, offset)
            break
        j += 4 + size
    return csize, offset


def _directory(fetch: Fetch) -> tuple[list[_Member], bytes | None]:
    """The zip's members; the whole zip too when the server ignored the ``Range`` header."""
    # most zips have no comment: a short tail holds the record; else look through 64 KiB
    status, tail = fetch("bytes=-4096")
    if status == 200:
        return [], tail
    if tail.rfind(_EOCD) < 0 and len(tail) == 4096:
        status, tail = fetch(f"bytes=-{_TAIL + 22}")
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        raise PayloadError("uploaded dataset is not a zip (no end of central directory record)")
    _, _, _, _, count, cd_size, cd_offset, _ = struct.unpack("<4sHHHHIIH", tail[at : at + 22])
    if (count == 0xFFFF or cd_offset == 0xFFFFFFFF) and tail[at - 20 : at - 16] == _EOCD64_LOCATOR:
        (eocd64,) = struct.unpack("<Q", tail[at - 12 : at - 4])
        _, rec = fetch(f"bytes={eocd64}-{eocd64 + 55}")
        count, cd_size, cd_offset = struct.unpack("<QQQ", rec[32:56])
    if count == 0:
        return [], None
    _, directory = fetch(f"bytes={cd_offset}-{cd_offset + cd_size - 1}")
    return _members(directory, count), None


def _member_size(fetch: Fetch, m: _Member) -> Size | None:
    want = _FIRST
    while True:
        # local header (30 bytes) + name + extra (up to 64 KiB in theory; rarely more than 100)
        end = m.offset + 30 + len(m.name.encode()) + 256 + min(want, m.csize)
        _, data = fetch(f"bytes={m.offset}-{end - 1}")
        if data[:4] != b"PK\x03\x04":
            return None
        nlen, elen = struct.unpack("<HH", data[26:30])
        start = 30 + nlen + elen
        body = data[start : start + m.csize]
        if m.method == zipfile.ZIP_DEFLATED:
            body = zlib.decompressobj(-15).decompress(body)
        elif m.method != zipfile.ZIP_STORED:
            return None
        size = size_from_header(body)
        if size is not None or want >= min(m.csize, _MAX_HEAD) or len(data) < end - m.offset:
            return size
        want *= 8


def remote_zip_image_sizes(
    fetch: Fetch,
    *,
    workers: int = 8,
    progress: Callable[[int, int | None], None] | None = None,
) -> dict[str, Size]:
    """Member name → ``(width, height)`` of every image in a remote zip, read by ranges.

    Parameters
    ----------
    fetch : callable
        ``fetch(range_header)`` → ``(status, body)`` on the zip's URL.
    workers : int
        Requests in flight at once.
    progress : callable, optional
        ``progress(images_done, images_total)``.

    Examples
    --------
    >>> import io, zipfile, struct
    >>> buf = io.BytesIO()
    >>> with zipfile.ZipFile(buf, "w") as z:
    ...     z.writestr("a.gif", b"GIF89a" + struct.pack("<HH", 7, 5))
    >>> blob = buf.getvalue()
    >>> def fetch(rng):
    ...     a, b = rng[6:].split("-")
    ...     if not a:
    ...         return 206, blob[-int(b):]
    ...     return 206, blob[int(a) : int(b) + 1]
    >>> remote_zip_image_sizes(fetch)
    {'a.gif': (7, 5)}
    """
    members, whole = _directory(fetch)
    if whole is not None:
        return _local_sizes(whole, progress)
    images = [
        m
        for m in members
        if PurePosixPath(m.name).suffix.lower() in IMAGE_SUFFIXES and not m.name.endswith("/")
    ]
    out: dict[str, Size] = {}
    if progress is not None:
        progress(0, len(images))
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="deepen-sizes") as pool:
        for done, (m, size) in enumerate(
            zip(images, pool.map(lambda m: _member_size(fetch, m), images), strict=True), 1
        ):
            if size is not None:
                out[m.name] = size
            if progress is not None:
                progress(done, len(images))
    return out


def _local_sizes(
    blob: bytes, progress: Callable[[int, int | None], None] | None
) -> dict[str, Size]:
    out: dict[str, Size] = {}
    try:
        zf = zipfile.ZipFile(io.BytesIO(blob))
    except zipfile.BadZipFile as exc:
        raise PayloadError(f"uploaded dataset is not a zip: {exc}") from exc
    with zf:
        names = [n for n in zf.namelist() if PurePosixPath(n).suffix.lower() in IMAGE_SUFFIXES]
        for done, name in enumerate(names, 1):
            with zf.open(name) as fh:
                size = size_from_header(fh.read(_MAX_HEAD))
            if size is not None:
                out[name] = size
            if progress is not None:
                progress(done, len(names))
    return out
