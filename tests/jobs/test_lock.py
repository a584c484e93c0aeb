import os
import signal
import subprocess
import sys
import time

from vlogger_cli.jobs.lock import JobLock


def test_second_owner_is_refused_until_release(tmp_path):
    a, b = JobLock(tmp_path), JobLock(tmp_path)
    assert a.try_acquire()
    assert not b.try_acquire()
    assert b.owner()["pid"] == os.getpid()
    a.release()
    assert b.try_acquire()
    b.release()


def test_lock_of_killed_owner_is_taken_over(tmp_path):
    code = (
        "import sys, time; from vlogger_cli.jobs.lock import JobLock\n"
        f"l = JobLock({str(tmp_path)!r}); assert l.try_acquire(); print('locked', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        lock = JobLock(tmp_path)
        assert not lock.try_acquire()
        assert lock.owner()["pid"] == proc.pid
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.time() + 5
        while not lock.try_acquire():
            assert time.time() < deadline, "lock of a SIGKILLed owner was not released"
            time.sleep(0.05)
        assert lock.owner()["pid"] == os.getpid()
        lock.release()
    finally:
        proc.kill()
