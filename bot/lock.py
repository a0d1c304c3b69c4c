"""One running process per channel and bot on a database: a second one would answer every
update again (double replies) and race the first for the outbox.

The lock is an advisory `flock` on a small file beside the database, named for the channel and
the bot (`subsidy.db.telegram-123456.lock`); the kernel releases it when the process ends, even
by SIGKILL, so a crash never leaves a stale lock. Other faces (LINE, console, admin commands)
take their own lock or none, and share the database file freely."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class Busy(Exception):
    """Another process holds the lock; `pid` is the one it wrote (None if unreadable)."""

    def __init__(self, path: Path, pid: int | None) -> None:
        super().__init__(path, pid)
        self.path, self.pid = path, pid


class ProcessLock:
    def __init__(self, db: Path, channel: str, bot: str) -> None:
        self.path = db.with_name(f"{db.name}.{channel}-{bot}.lock")
        self._fd: int | None = None

    def acquire(self) -> ProcessLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise Busy(self.path, int(text) if text.isdigit() else None) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays (harmless, reused)
            self._fd = None

    def __enter__(self) -> ProcessLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
