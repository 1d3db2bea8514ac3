"""Small I/O helpers shared by every parser and writer: compressed input, atomic output."""
from __future__ import annotations

import contextlib
import gzip
import lzma
import os
import tempfile
from pathlib import Path

from .errors import ParseError


def find_file(path: str | os.PathLike) -> Path:
    """Return ``path`` or its ``.xz``/``.gz`` sibling, whichever exists.

    Raises :class:`ParseError` naming ``path`` when none exists.
    """
    p = Path(path)
    for cand in (p, p.with_name(p.name + ".xz"), p.with_name(p.name + ".gz")):
        if cand.is_file():
            return cand
    raise ParseError(p, "file not found (also looked for .xz and .gz)")


def file_exists(path: str | os.PathLike) -> bool:
    """True when ``path`` or its ``.xz``/``.gz`` sibling exists (see :func:`find_file`)."""
    try:
        find_file(path)
        return True
    except ParseError:
        return False


def read_bytes(path: str | os.PathLike) -> bytes:
    """Read a file, transparently decompressing ``.xz`` and ``.gz``."""
    p = find_file(path)
    try:
        if p.suffix == ".xz":
            return lzma.decompress(p.read_bytes())
        if p.suffix == ".gz":
            return gzip.decompress(p.read_bytes())
        return p.read_bytes()
    except (lzma.LZMAError, OSError, EOFError) as exc:
        raise ParseError(p, f"cannot read or decompress: {exc}") from exc


def read_text(path: str | os.PathLike) -> str:
    return read_bytes(path).decode("utf-8", errors="replace")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb"):
    """Open a temporary file next to ``path``; rename it onto ``path`` only on success.

    A failure inside the ``with`` block leaves no partial output file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path`` for libraries that open files by name
    (h5py, sisl); it is renamed onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
