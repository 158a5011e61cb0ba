"""Writing files so that nothing is ever half-written: write beside the target, then rename.

A rename within one folder is atomic, so a reader (or a crash) sees the old file or the new one.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from pathlib import Path

from safetensors import SafetensorError

# What a write on a full disk, over a quota or into a vanished folder raises: the operating system's error,
# or safetensors' (Rust) one around it
WRITE_ERRORS = (OSError, SafetensorError)


class SaveError(OSError):
    """A file could not be written (a full disk, a Google Drive quota, a folder that vanished)."""


def free_space(path: Path) -> str:
    """The free space on the disk that holds `path` (or its nearest folder that still exists), readably."""
    place = Path(path).absolute()
    while not place.exists() and place != place.parent:
        place = place.parent
    try:
        free = shutil.disk_usage(place).free
    except OSError:
        return "unknown space"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if free >= size:
            return f"{free / size:.1f} {unit}"
    return f"{free} bytes"


@contextlib.contextmanager
def saving(what: str, path: Path):
    """Turn a write error inside the block into one line: which file, what was being saved, the free space.

    The files written beside their place are removed, so the file or folder that was there stays whole."""
    try:
        yield
    except SaveError:
        raise
    except WRITE_ERRORS as error:
        reason = getattr(error, "strerror", None) or (str(error).splitlines() or [type(error).__name__])[0]
        free = free_space(path)
        raise SaveError(f"could not save {what} to {path}: {reason} ({free} free there)") from error


def write_atomically(path: Path, writer) -> None:
    """Call `writer(temporary_path)`, then move the finished file to `path`."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(handle)
    try:
        writer(Path(temporary))
        os.chmod(temporary, 0o644)  # mkstemp makes files private; results are for everyone to read
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_json_atomically(data, path: Path) -> None:
    text = json.dumps(data, indent=1, ensure_ascii=False)
    write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


@contextlib.contextmanager
def staged_folder(folder: Path):
    """Yield an empty folder to fill; on success it replaces `folder`, on error it is removed."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".partial"))
    try:
        yield staging
        staging.chmod(0o755)
        for path in staging.iterdir():
            path.chmod(0o755 if path.is_dir() else 0o644)
        replace_folder(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def replace_folder(new: Path, old: Path) -> None:
    """Put folder `new` where `old` is; `old`, if any, is moved aside first and then deleted."""
    if old.exists():
        trash = old.with_name(f".{old.name}.old")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(old, trash)
        os.replace(new, old)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(new, old)


def recover_interrupted_writes(folder: Path, name: str = "*") -> None:
    """Tidy `folder` after a crash: put back a folder that `replace_folder` had moved aside but not
    yet replaced, and delete the unfinished temporary files and folders of the functions above
    (of every file in `folder`, or of the one called `name`)."""
    name = name if name == "*" else glob.escape(name)
    for moved_aside in Path(folder).glob(f".{name}.old"):
        original = moved_aside.with_name(moved_aside.name[1:].removesuffix(".old"))
        if original.exists():
            shutil.rmtree(moved_aside, ignore_errors=True)
        else:
            os.replace(moved_aside, original)
    for partial in Path(folder).glob(f".{name}.*partial"):
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
