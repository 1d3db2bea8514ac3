"""Small I/O helpers shared by every parser and writer: compressed input, atomic output."""
from __future__ import annotations

import contextlib
import gzip
import lzma
import os
import shutil
import tempfile
from pathlib import Path

from .errors import DftplugError, ParseError


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


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give ``tmp`` the permissions of a newly created file or folder (0666 / 0777 less the
    umask: usually 0644 / 0755, as the DFT codes write; mkstemp/mkdtemp make 0600 / 0700) and
    rename it onto ``path``."""
    os.chmod(tmp, (0o777 if os.path.isdir(tmp) else 0o666) & ~_umask())
    os.replace(tmp, path)


def check_output(path: str | os.PathLike, folder: bool = False, force: bool = False) -> Path:
    """Refuse an output that would clobber what it should not: a folder where a file is to be
    written, a file where a folder is, or (``folder``) an existing non-empty folder unless ``force``.
    Commands call it before their work, the atomic writers again before renaming."""
    path = Path(path)
    if not folder and path.is_dir():
        raise DftplugError(f"{path}: is a folder; give a file name")
    if folder and path.exists() and not path.is_dir():
        raise DftplugError(f"{path}: exists and is not a folder")
    if folder and path.is_dir() and any(path.iterdir()) and not force:
        raise DftplugError(f"{path}: output folder exists and is not empty (give --force to replace it)")
    return path


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb"):
    """Open a temporary file next to ``path``; rename it onto ``path`` only on success.

    A failure inside the ``with`` block leaves no partial output file behind.
    """
    path = check_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
        publish(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path`` for libraries that open files by name
    (h5py, sisl); it is renamed onto ``path`` only on success."""
    path = check_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        publish(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, force: bool = False):
    """Yield a temporary folder next to ``path`` that replaces ``path`` as a whole on success.

    An existing non-empty ``path`` is refused unless ``force`` (then it is replaced, never mixed
    with the new files); on failure the temporary folder is removed and ``path`` is untouched.
    """
    path = check_output(path, folder=True, force=force)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
        publish(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
