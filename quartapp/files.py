"""Private files: create folders and files that only this user can read or change.

Secrets live in the instance folder (keys, the first-run admin password). A file
opened by name follows a symlink that someone planted there, and a folder that others
can write to lets them plant one, so these helpers never follow a symlink at the last
step, refuse folders others can write to, and set the mode on the open file.

Standard library only: ``python -m quartapp.keys`` uses it without the app.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

__all__ = [
    "NO_FOLLOW",
    "UnsafePathError",
    "check_private",
    "create_private",
    "make_private_dir",
    "open_private_dir",
    "open_private_file",
    "write_private",
    "write_whole",
]

# Flags for opening the last step of a path: a symlink fails with ELOOP, and with
# O_NONBLOCK a FIFO planted under the name cannot hang the open (no effect on a file).
NO_FOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


class UnsafePathError(OSError):
    """A path is a symlink, or others own or can write it; the message says what to do."""


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) with mode 0700 if it does not exist.

    Only the last folder gets 0700, as ``mkdir -p -m 700`` does; an existing folder is
    left as it is (``open_private_dir`` checks it).
    """
    Path(path).mkdir(mode=0o700, parents=True, exist_ok=True)


def open_private_dir(path: Path) -> int:
    """Open the folder ``path`` and return its descriptor, for ``dir_fd`` calls.

    Raises ``UnsafePathError`` when users other than this one (or root) own it or can
    write to it: they could swap or plant files in it. The check is made on the open
    descriptor, so the folder cannot be swapped between the check and its use.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if info.st_uid not in (os.geteuid(), 0):
            raise UnsafePathError(
                f"{path} belongs to another user (uid {info.st_uid}); use a folder of your own"
            )
        if info.st_mode & _OTHERS_WRITE:
            raise UnsafePathError(
                f"{path} can be written by other users (mode {_mode(info)}); "
                f"run `chmod go-w {path}` or use a private folder"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_private(path: Path, fd: int) -> os.stat_result:
    """Check that the open file ``fd`` (named ``path``) is a file only this user controls.

    Raises ``IsADirectoryError`` for a folder, and ``UnsafePathError`` for anything but
    a regular file, a file owned by another user, or one that others can write to.
    """
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if not stat.S_ISREG(info.st_mode):
        raise UnsafePathError(f"{path} is not a regular file")
    if info.st_uid != os.geteuid():
        raise UnsafePathError(
            f"{path} belongs to another user (uid {info.st_uid}), so its contents may not be yours"
        )
    if info.st_mode & _OTHERS_WRITE:
        raise UnsafePathError(
            f"{path} can be written by other users (mode {_mode(info)}), so its contents "
            "may not be yours"
        )
    return info


def open_private_file(path: Path) -> int:
    """Open ``path`` for reading if only this user controls it and the folder it is in.

    The folder is checked as :func:`open_private_dir` does, the file as
    :func:`check_private` does, on open descriptors and without following a symlink
    at the file's name. Raises ``FileNotFoundError`` when either is missing, and
    ``UnsafePathError`` for a symlink or anything the checks refuse.
    """
    path = Path(path)
    dir_fd = open_private_dir(path.parent)
    try:
        try:
            fd = os.open(path.name, os.O_RDONLY | NO_FOLLOW, dir_fd=dir_fd)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise UnsafePathError(f"{path} is a symbolic link") from None
            raise
    finally:
        os.close(dir_fd)
    try:
        check_private(path, fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_private(name: str, dir_fd: int) -> int:
    """Create the new file ``name`` in the folder ``dir_fd``, mode 0600, open for writing.

    O_EXCL fails if anything at all has the name, a symlink included, so the file
    opened is always the one just made. Raises ``FileExistsError`` then.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | NO_FOLLOW
    fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
    # The umask cannot add bits, but a process with umask 0 still gets exactly 0600.
    os.fchmod(fd, 0o600)
    return fd


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that only this user can read it (mode 0600).

    Creates the folder (0700) if missing. Refuses, with ``OSError``, a symlink at
    ``path`` (ELOOP) and a file that another user owns; an existing file of ours is
    truncated and set to 0600 whatever its mode was.
    """
    path = Path(path)
    make_private_dir(path.parent)
    # No O_TRUNC: the file is checked before anything in it is lost.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | NO_FOLLOW, 0o600)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePathError(f"{path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise UnsafePathError(f"{path} belongs to another user (uid {info.st_uid})")
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        with os.fdopen(fd, "w", encoding="utf-8", closefd=False) as handle:
            handle.write(text)
    finally:
        os.close(fd)


def write_whole(dir_fd: int, name: str, text: str, *, replace: bool) -> bool:
    """Write the file ``name`` in the folder ``dir_fd`` whole: readers see none, old or new.

    The text goes to a new temporary file in the same folder first, created 0600 (so
    the secret is never readable by others, not even for a moment) and exclusively (so
    a symlink planted under its name is refused, not followed). The last step is a
    rename when ``replace``, which replaces a name without following it; otherwise a
    hard link, which fails if the name exists (even as a dangling symlink), so of
    several processes racing to create the file exactly one succeeds. Returns False
    when the file existed and was left alone.
    """
    fd, tmp = _new_temporary(dir_fd, name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        else:
            try:
                os.link(
                    tmp,
                    name,
                    src_dir_fd=dir_fd,
                    dst_dir_fd=dir_fd,
                    follow_symlinks=False,
                )
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp, dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    # Persist the new name itself; best effort, as not every platform syncs a folder.
    with contextlib.suppress(OSError):
        os.fsync(dir_fd)
    return True


def _new_temporary(dir_fd: int, name: str) -> tuple[int, str]:
    """Create a temporary file next to ``name``: its descriptor and its own name."""
    for _ in range(100):
        temporary = f".{name}.{secrets.token_hex(8)}.tmp"
        with contextlib.suppress(FileExistsError):
            return create_private(temporary, dir_fd), temporary
    raise FileExistsError(errno.EEXIST, "no free temporary file name")


def _mode(info: os.stat_result) -> str:
    return f"{stat.S_IMODE(info.st_mode):04o}"
