"""Reading image files for the loaders: an unreadable file (truncated, empty, not an image) is one
`DataError` line naming it and the cause, never a bare traceback from deep inside PIL or cv2."""
from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from bench.errors import DataError

JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe")
_READ_ERRORS = (OSError, ValueError, SyntaxError, UnidentifiedImageError, Image.DecompressionBombError, EOFError)


def unreadable(path: str | Path, exc: BaseException) -> DataError:
    """The one-line error for an image that could not be decoded."""
    if isinstance(exc, FileNotFoundError):
        return DataError(path, "file not found")
    size = _size(path)
    if size == 0:
        return DataError(path, "empty file (0 bytes)")
    text = str(exc).strip() or type(exc).__name__
    if "truncated" in text.lower():
        return DataError(path, f"truncated image file ({text})")
    return DataError(path, f"unreadable image ({type(exc).__name__}: {text})")


def _size(path) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def open_rgb(path: str | Path) -> Image.Image:
    """The image as a fully decoded RGB `PIL.Image` (truncated files are refused, not grey-filled)."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except _READ_ERRORS as exc:
        raise unreadable(path, exc) from None


def image_header_size(path: str | Path) -> tuple[int, int]:
    """(width, height) read from the header (no decode)."""
    try:
        with Image.open(path) as im:
            return im.size
    except _READ_ERRORS as exc:
        raise unreadable(path, exc) from None


def check_jpeg_complete(path: str | Path) -> None:
    """Refuse a truncated JPEG before a decoder that tolerates truncation (cv2) reads it.

    Cheap: a JPEG ending with its EOI marker (FF D9) is complete. Only a file that does not (a
    truncated one, or a valid one with trailing bytes) is decoded in full by PIL to tell the two apart."""
    if Path(path).suffix.lower() not in JPEG_SUFFIXES:
        return
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size == 0:
                raise DataError(path, "empty file (0 bytes)")
            f.seek(max(0, size - 2))
            if f.read(2) == b"\xff\xd9":
                return
    except OSError as exc:
        raise unreadable(path, exc) from None
    open_rgb(path)  # raises the DataError when it really is truncated


__all__ = ["check_jpeg_complete", "image_header_size", "open_rgb", "unreadable"]
