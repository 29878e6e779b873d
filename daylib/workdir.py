"""The monitor's work directory: private to the monitor's user, and never followed through a
symlink someone planted.

The default root lives under a world-writable directory (``/var/tmp``), so anyone on the head
node could create it first, or plant a symlink where the monitor is about to write. So: the
root and each workset's folder are created mode 0700; an existing one must be a real
directory owned by us (it is then tightened to 0700); no component from the root down to a
workset's files may be a symlink; files the monitor writes there are opened with
``O_NOFOLLOW``. Any breach is a ``configuration`` error naming the path: the operator must
look, nothing is retried.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from daylib.errors import Issue, SpecError

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


class WorkdirError(SpecError):
    """The work directory is unsafe to use; carries one configuration issue."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__([Issue("monitor.workdir", f"{path}: {problem}", "configuration")])


def _private_dir(path: Path) -> None:
    """Create ``path`` 0700, or accept an existing real directory of ours (made 0700)."""
    try:
        os.mkdir(path, PRIVATE_DIR)
    except FileExistsError:
        pass
    except OSError as exc:
        raise WorkdirError(path, f"cannot create: {exc.strerror}") from None
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise WorkdirError(path, "is a symlink; refusing to follow it")
    if not stat.S_ISDIR(st.st_mode):
        raise WorkdirError(path, "is not a directory")
    if st.st_uid != os.geteuid():
        raise WorkdirError(path, f"is owned by uid {st.st_uid}, not by this monitor's user "
                                 f"(uid {os.geteuid()}); refusing to use it")
    if stat.S_IMODE(st.st_mode) != PRIVATE_DIR:
        os.chmod(path, PRIVATE_DIR, follow_symlinks=False)


def check_no_symlinks(root: Path, path: Path) -> None:
    """Refuse if any existing component of ``path`` below ``root`` (or ``root``) is a symlink."""
    parts = path.relative_to(root).parts
    for n in range(len(parts) + 1):
        current = root.joinpath(*parts[:n])
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISLNK(mode):
            raise WorkdirError(current, "is a symlink; refusing to follow it")


def prepare(root: Path, workset_id: str) -> Path:
    """The workset's private folder under ``root``, created if needed, checked either way."""
    root.parent.mkdir(parents=True, exist_ok=True)
    _private_dir(root)
    folder = root / workset_id
    _private_dir(folder)
    for entry in folder.iterdir():  # what the monitor and the executor address by name
        check_no_symlinks(root, entry)
    return folder


def write_private(root: Path, path: Path, data: str) -> None:
    """Write a file 0600 without following a symlink at any component under ``root``."""
    check_no_symlinks(root, path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, PRIVATE_FILE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise WorkdirError(path, "is a symlink; refusing to follow it") from None
        raise WorkdirError(path, f"cannot write: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(data)
