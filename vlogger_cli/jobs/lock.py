"""One owner per job: an advisory lock on `OUTPUT/<id>/.lock` that names its owner.

Several `vlogger render` processes may share an output root; each job is rendered by exactly one
of them. We use `flock(LOCK_EX | LOCK_NB)` on the lock file: the kernel releases it the moment the
owner dies, SIGKILL included, so a dead owner's lock is taken over by the next contender with no
staleness guess (a heartbeat + timeout scheme would either wait minutes or steal live locks).
The file's content (pid, host, start time) is only for people and for `--dry-run` reports.
The file itself is never deleted: deleting would let two processes lock two different inodes.

Limit: flock is per host. Processes on different hosts sharing an output root over NFS must use
the Ray runner, which gives each job to one worker.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

LOCK_NAME = ".lock"


class JobLock:
    """`with JobLock(job_folder) as lock: if lock.acquired: ...`"""

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK_NAME
        self.acquired = False
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        owner = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, owner.encode(), 0)
        self._fd, self.acquired = fd, True
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd, self.acquired = None, False

    def owner(self) -> dict | None:
        """Who holds (or last held) the lock, as written in the file."""
        try:
            return json.loads(self.path.read_text() or "null")
        except (OSError, ValueError):
            return None

    def __enter__(self) -> "JobLock":
        self.try_acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
