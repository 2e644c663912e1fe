"""The parent of a pre-created container: runs ``crun create``, then waits for the container's exit.

``crun run`` stays the parent of its container and exits with its status; a
container made ahead with ``crun create`` has no such parent, because crun
exits as soon as the container exists. This small process takes that place:
it marks itself a child subreaper (so the container's init is reparented to it
when ``crun create`` exits), reports ``created <pid>`` (or ``failed <code>``)
on the status descriptor given as its first argument, and after the worker's
``crun start`` exits with the container's status, as ``crun run`` would
(``128 + N`` for a signal). SIGTERM is forwarded to the container.

Started with ``python -I -S`` off the request path; standard library only, so
it runs under any interpreter the worker has. Arguments: the status fd, the pid
file crun writes, then the whole ``crun ... create ...`` command line.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36


def _subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _report(status_fd: int, line: str) -> None:
    os.write(status_fd, line.encode() + b"\n")
    os.close(status_fd)


def _quiet_inherited(passed: int) -> None:
    """Let go of every descriptor the container holds, so EOF and socket death follow the container only."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (1, 2):
        os.dup2(null, fd)
    os.close(null)
    for fd in range(3, 3 + passed):
        with contextlib.suppress(OSError):
            os.close(fd)


def main(argv: list[str]) -> int:
    status_fd, pid_file, passed, command = int(argv[0]), argv[1], int(argv[2]), argv[3:]
    os.set_inheritable(status_fd, False)
    _subreaper()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # until the container exists, the worker deletes, not signals
    code = subprocess.run(command, pass_fds=tuple(range(3, 3 + passed)), check=False).returncode
    if code != 0:
        _report(status_fd, f"failed {code}")
        return code
    try:
        with open(pid_file) as handle:
            init = int(handle.read().strip())
    except (OSError, ValueError):
        _report(status_fd, "failed 125")
        return 125
    _quiet_inherited(passed)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(init, signum)

    signal.signal(signal.SIGTERM, forward)
    _report(status_fd, f"created {init}")
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 125  # the init was never ours (it cannot happen with the subreaper bit set)
        except InterruptedError:
            continue
        if pid == init:
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
