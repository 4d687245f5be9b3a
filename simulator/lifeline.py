"""Processes that die with their parent, so nothing rhin starts outlives the process that started it.

Linux's ``PR_SET_PDEATHSIG`` asks the kernel to signal a process when its parent dies, even when the parent
is killed with SIGKILL and cleans nothing up. Two caveats shape how it is used here: the "parent" is the
*thread* that forked, so children must be started from a thread that lives as long as they should (the
launcher's main thread, the hub's event-loop thread); and a parent that died before the child asked is
missed, so the child compares its parent PID with the one it expected and signals itself if they differ.
Elsewhere (not Linux) this does nothing, and process groups (see :mod:`simulator.network`) are the only net.
"""

from __future__ import annotations

import ctypes
import os
import signal

__all__ = ["PR_SET_PDEATHSIG", "die_with_parent"]

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM, expected_parent: int | None = None) -> bool:
    """Ask for ``sig`` when the parent dies; True if the kernel took the request.

    Safe between fork and exec (``preexec_fn``) and as a ``ProcessPoolExecutor`` initializer. With
    ``expected_parent``, a parent already gone (the child was re-parented) sends ``sig`` at once.
    """
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        done = libc.prctl(PR_SET_PDEATHSIG, int(sig)) == 0
    except OSError:  # not glibc Linux
        return False
    if expected_parent is not None and os.getppid() != expected_parent:
        os.kill(os.getpid(), sig)
    return bool(done)
