"""Safe files: atomic writes (temporary file, fsync, os.replace) and one-run-at-a-time lock files.

A reader never sees a half-written file: it finds either the old file or the new one.
A failed write (a full disk, Ctrl-C) removes its temporary file before the error propagates.
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
from typing import BinaryIO, Callable, Iterator

from ntkode.errors import NtkodeError

#: temporary files are named '.<target name>.<TMP_TAG>-<pid>-<random>'
TMP_TAG = "ntkode-tmp"


def temporary_name(path: str) -> str:
    """A fresh temporary name next to `path` (same folder, hence same filesystem for os.replace)."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.{TMP_TAG}-{os.getpid()}-{secrets.token_hex(4)}")


def is_temporary(name: str) -> bool:
    """Whether a file name is one of `temporary_name`'s."""
    return name.startswith(".") and f".{TMP_TAG}-" in name


def _why(err: OSError) -> str:
    return "no space left on the device" if err.errno == errno.ENOSPC else (err.strerror or str(err))


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """write(handle) into a temporary file, fsync it, then os.replace it onto `path`.

    On any error the temporary file is removed; an OSError (ENOSPC, EACCES, ...) becomes an
    NtkodeError naming `path`, anything else (KeyboardInterrupt) propagates unchanged.
    """
    path = os.fspath(path)
    tmp = temporary_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as err:
        raise NtkodeError(f"cannot write {path}: {_why(err)}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise NtkodeError(f"cannot write {path}: {_why(err)}") from None
        raise
    _fsync_folder(os.path.dirname(os.path.abspath(path)))


def _fsync_folder(folder: str) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_temporaries(folder: str) -> int:
    """Delete the temporary files an earlier, killed run left in `folder`; how many there were.
    Call it only while holding the folder's lock."""
    names = [name for name in os.listdir(folder) if is_temporary(name)]
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(folder, name))
    return len(names)


@contextlib.contextmanager
def exclusive(lock_path: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (flock; created, and removed on release).

    A second holder is refused at once with one line: NtkodeError naming `what`.
    After locking, the file is checked to still be the one on disk (a releasing holder
    may have removed it in between); otherwise locking is retried on the new file.
    """
    import fcntl  # POSIX only; imported here so that the module imports everywhere

    lock_path = os.fspath(lock_path)
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            raise NtkodeError(f"cannot create lock file {lock_path}: {_why(err)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise NtkodeError(f"{what} is in use by another ntkode run (lock file {lock_path}); "
                              "wait for it to finish") from None
        try:
            current = os.stat(lock_path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path)
        os.close(fd)


@contextlib.contextmanager
def locked_folder(folder: str, lock_name: str) -> Iterator[None]:
    """Create `folder` if needed (NtkodeError naming out_dir if it cannot be), hold its lock file
    `lock_name` (`exclusive`), and remove the folder again on exit if this call created it and it
    stayed empty: refused input leaves nothing behind."""
    created = not os.path.isdir(folder)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise NtkodeError(f"out_dir {folder}: cannot create the folder ({err.strerror or err})",
                          param="out_dir") from None
    try:
        with exclusive(os.path.join(folder, lock_name), f"folder {folder}"):
            yield
    finally:
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(folder)  # only succeeds when nothing was written
