"""Ground floor: file I/O every stage uses — atomic writes, content hashes, safetensors files.

Atomic writes: write to a temporary file in the same folder, fsync, then `os.replace`. A reader (or a
resumed run) therefore sees either the old complete file or the new complete file, never a torn one,
whatever moment the process is killed at.

This module imports nothing from vlogger_cli (docs/ARCHITECTURE.md, "Layers").
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

TMP_MARKER = ".tmp"
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it is moved over `path` atomically.

    The temporary name keeps the real file's suffix by default, because some writers (ffmpeg,
    soundfile, PIL) choose the format from the extension. On error the temporary file is removed
    and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # ".name.<random>.tmp.ext": hidden, recognisably ours (TMP_MARKER), and still ending in the real suffix.
    ext = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_MARKER + ext)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600; outputs are ordinary files, so give them the usual umask-based mode.
    os.chmod(tmp_path, 0o666 & ~_UMASK)
    try:
        yield tmp_path
        _fsync_file(tmp_path)
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; not every platform allows opening a directory.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content, read in 1 MiB blocks (cache keys, config hashes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def atomic_save_safetensors(path: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None) -> Path:
    """Write numpy arrays as a safetensors file, atomically; returns the path."""
    from safetensors.numpy import save_file

    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)
