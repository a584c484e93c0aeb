"""Keep third-party native libraries quiet on the terminal.

mediapipe/TFLite print INFO and WARNING lines through absl's C++ logger on every image ("Feedback
manager requires a model with a single signature..."), and warp prints "Could not find the CUDA
driver" on CPU machines. They are noise for users; real problems still reach us as Python exceptions
(and the job's log). glog/TF honour environment variables; absl's C++ logger does not, so the calls
that trigger it run with file descriptor 2 pointed at /dev/null (`silenced_stderr`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

_LOCK = threading.Lock()


def quiet_native_logs() -> None:
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def silenced_stderr():
    """Redirect the process's fd 2 to /dev/null for the duration (VLOGGER_NATIVE_LOGS=1 keeps it)."""
    if os.environ.get("VLOGGER_NATIVE_LOGS") == "1":
        yield
        return
    with _LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no real fd 2 (embedded interpreters): nothing to silence
            yield
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)
