"""Atomic output: every file voicefake produces appears whole at its path, or not at all.

    with atomic_output(path) as tmp:     # tmp: a fresh hidden file beside path, .NAME.XXXXXXXX.part
        write_everything_to(tmp)         # any error, Ctrl-C or SystemExit deletes tmp; path is untouched
    # here path is complete, with the mode a file the user asked for gets (0644 under umask 022)

Temporary names are unique (mkstemp), so two runs writing the same target never share one.
Private files (the signing key, consent challenges) pass `mode=0o600` explicitly.
`output_error` is the one translation of a failed write (full disk, read-only or missing folder,
permissions) into the one-line VoicefakeError the CLI prints.
"""

from __future__ import annotations

import errno
import os
import tempfile
import threading
from pathlib import Path

from voicefake.errors import VoicefakeError

_umask_lock = threading.Lock()

_HINTS = {
    errno.ENOSPC: "free some space or choose another output path",
    errno.EDQUOT: "free some space or choose another output path",
    errno.EACCES: "choose another output path",
    errno.EPERM: "choose another output path",
    errno.EROFS: "choose another output path",
    errno.ENOENT: "choose another output path",
}


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux: /proc/self/status)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:  # elsewhere: set and restore; a file made meanwhile by another thread gets 0o077 (private)
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def default_mode() -> int:
    """The mode of a file the user asked for: 0o666 less the umask (0644 under umask 022)."""
    return 0o666 & ~current_umask()


def _full(path: str | os.PathLike) -> bool:
    """Whether the file system holding `path` has (next to) no room left: for libraries that lose the errno."""
    try:
        stat = os.statvfs(Path(path).parent)
    except OSError:
        return False
    free = stat.f_bfree if os.geteuid() == 0 else stat.f_bavail  # root may fill the reserved blocks too
    return stat.f_blocks > 0 and free * stat.f_frsize < 64 * 1024  # /proc and the like have no blocks at all


def output_error(path: str | os.PathLike, error: BaseException) -> VoicefakeError:
    """`error`, met while writing `path`, as the one-line error users see ("cannot write PATH: reason (hint)")."""
    if isinstance(error, VoicefakeError):
        return error
    code = getattr(error, "errno", None)
    if isinstance(error, OSError) and error.strerror:
        reason = error.strerror
    else:
        text = str(error).strip()
        reason = text.splitlines()[0][:160] if text else type(error).__name__
        if code is None and ("no space left" in text.lower() or _full(path)):
            code, reason = errno.ENOSPC, os.strerror(errno.ENOSPC)  # libsndfile says only "System error."
    hint = _HINTS.get(code)
    return VoicefakeError(f"cannot write {path}: {reason}" + (f" ({hint})" if hint else ""))


class atomic_output:
    """Context manager: yields a temporary path beside `path`, renamed onto `path` on success.

    On any exception (KeyboardInterrupt and SystemExit included) the temporary file is removed and
    the exception goes on. Failing to create, chmod or rename the temporary file raises the
    VoicefakeError of `output_error`. `mode` defaults to 0o666 & ~umask; pass 0o600 for private files.
    `exclusive=True` never replaces an existing `path`: the commit raises FileExistsError instead
    (for files that the first of several concurrent writers must win, like the signing key).
    Writers that are themselves context managers may call `__enter__`, then `commit()` or `discard()`.
    """

    def __init__(self, path: str | os.PathLike, suffix: str = ".part", mode: int | None = None,
                 exclusive: bool = False):
        self.path = Path(path)
        self.suffix = suffix
        self.mode = mode
        self.exclusive = exclusive
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        folder = self.path.parent  # Path("x.wav").parent is Path(".")
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=self.suffix, dir=folder)
        except OSError as error:
            raise output_error(self.path, error) from error
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def commit(self) -> Path:
        """Give the temporary file its final mode and rename it onto `path`."""
        try:
            os.chmod(self.tmp, default_mode() if self.mode is None else self.mode)
            if self.exclusive:
                os.link(self.tmp, self.path)  # fails if path exists; the temporary name is dropped below
            else:
                os.replace(self.tmp, self.path)
                self.tmp = None  # renamed: nothing left to drop
        except OSError as error:
            if self.exclusive and isinstance(error, FileExistsError):
                raise
            raise output_error(self.path, error) from error
        finally:
            self.discard()
        return self.path

    def discard(self) -> None:
        """Remove the temporary file if it is still there (safe to call more than once)."""
        if self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass
            except OSError:  # already failing: nothing better to do than leave it
                pass

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.commit()
        else:
            self.discard()
        return False


def write_bytes(path: str | os.PathLike, data: bytes, mode: int | None = None) -> Path:
    """Write `data` to `path` atomically."""
    with atomic_output(path, mode=mode) as tmp:
        try:
            tmp.write_bytes(data)
        except OSError as error:
            raise output_error(path, error) from error
    return Path(path)


def write_text(path: str | os.PathLike, text: str, mode: int | None = None) -> Path:
    """Write UTF-8 `text` to `path` atomically."""
    return write_bytes(path, text.encode("utf-8"), mode=mode)


def check_writable(path: Path, example: str) -> Path:
    """Fail before any work if no file can be written at `path` (a folder, a missing folder, no
    permission, a read-only file system); `example` is a file name to suggest inside a folder."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise VoicefakeError(f"cannot write {path}: it is a folder, give a file name such as {path / example}")
    if not folder.is_dir():
        raise VoicefakeError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise VoicefakeError(f"cannot write {path}: permission denied (choose another output path)")
    try:  # the real test (/proc, read-only file systems, root, network shares): make and drop a file there
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise output_error(path, error) from error
    return path
