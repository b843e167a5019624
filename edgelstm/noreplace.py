"""No-replace rename: move a file or folder to a path that must not exist, even if it appears meanwhile.

``renameat2(RENAME_NOREPLACE)`` on Linux; elsewhere (or on a filesystem without the flag) an exclusive
``mkdir`` claim then a rename onto that empty folder, or for a file a hard link then an unlink. Of two
publishers racing to one path, one fails with FileExistsError. Standard library only.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from pathlib import Path


def rename_noreplace(src: str | Path, dst: str | Path) -> None:
    """Rename ``src`` to ``dst``, failing with FileExistsError if ``dst`` exists (even appearing meanwhile)."""
    src, dst = os.fspath(src), os.fspath(dst)
    if _renameat2(src, dst):
        return
    if os.path.isdir(src):
        try:
            os.mkdir(dst)  # an exclusive claim: of two racing publishers, one gets it
        except FileExistsError:
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst) from None
        try:
            os.rename(src, dst)  # onto the empty folder just made
        except BaseException:
            with contextlib.suppress(OSError):
                os.rmdir(dst)
            raise
    else:
        os.link(src, dst)  # fails if dst exists
        os.unlink(src)


_RENAME_NOREPLACE, _AT_FDCWD = 1, -100


def _renameat2(src: str, dst: str) -> bool:
    """renameat2(RENAME_NOREPLACE): True if done, False if unavailable here; raises FileExistsError."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EPERM) and not os.path.lexists(dst):
        return False  # the filesystem or kernel lacks the flag: use the fallback
    if err == errno.EEXIST:
        raise FileExistsError(err, os.strerror(err), dst)
    raise OSError(err, os.strerror(err), src)
