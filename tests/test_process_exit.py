"""Ending the command-line process without the interpreter's teardown: nothing written is lost, threads are
waited for, the status is Python's (real subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from exactcompress.process_exit import exit_status

#: a child that leaves output in every buffer an exit could lose, then ends with status 3
BUFFERED_EVERYWHERE = """
import atexit, ctypes, pathlib, sys
from exactcompress.process_exit import end_process
marker = pathlib.Path(sys.argv[1])
atexit.register(marker.write_text, "atexit ran")
sys.stdout.write("python buffered;")
ctypes.CDLL(None).printf(b"c buffered;")
end_process(3)
"""

#: a child whose non-daemon thread is still working when it asks to end
THREAD_STILL_WORKING = """
import pathlib, sys, threading, time
from exactcompress.process_exit import end_process
marker = pathlib.Path(sys.argv[1])
def late_write():
    time.sleep(0.5)
    marker.write_text("thread finished")
threading.Thread(target=late_write).start()
end_process(0)
"""


def run_child(code: str, marker) -> subprocess.CompletedProcess:
    """Run ``code`` with buffered standard streams (as a user's shell has them; PYTHONUNBUFFERED would hide a
    lost buffer)."""
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    return subprocess.run([sys.executable, "-c", code, str(marker)], capture_output=True, text=True, timeout=60,
                          env=environment)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="C stdio of glibc through ctypes")
def test_the_exit_handlers_run_and_python_and_c_buffers_reach_the_pipe(tmp_path):
    child = run_child(BUFFERED_EVERYWHERE, tmp_path / "marker")
    assert child.returncode == 3, child.stderr
    assert "python buffered;" in child.stdout and "c buffered;" in child.stdout
    assert (tmp_path / "marker").read_text() == "atexit ran"


def test_a_running_non_daemon_thread_is_waited_for(tmp_path):
    child = run_child(THREAD_STILL_WORKING, tmp_path / "marker")
    assert child.returncode == 0, child.stderr
    assert (tmp_path / "marker").read_text() == "thread finished"


def test_the_status_of_a_system_exit_is_pythons(capsys):
    assert exit_status(SystemExit()) == 0
    assert exit_status(SystemExit(2)) == 2
    assert exit_status(SystemExit("broken spec")) == 1
    assert capsys.readouterr().err == "broken spec\n"
