"""The child process that runs one point of a sweep: the runner, tied to the life of the Dask worker that started it.

``python -m ambridge.book.worker PARENT_PID CHAPTER [runner options...]`` is :func:`ambridge.book.run.main` on the
runner options, with two guards set up first so that a killed worker leaves no run behind
(``book/reference/scale.md``, "A worker dies"):

- on Linux the kernel sends this process SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), and SIGTERM exits
  through Python's normal unwinding, so papermill shuts the chapter's kernel down on the way out;
- if the parent (``PARENT_PID``, the worker) already died before the guard was set, the run does not start.

:func:`ambridge.book.sweep_task.execute_run` launches it, one child per run; it is a module of its own so that the
child runs code that is imported and tested like any other, not a program held in a string.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Sequence

__all__ = ["EXIT_SIGTERM", "tie_to_parent", "main"]

#: The exit code of a run stopped by SIGTERM (128 + 15, as a shell reports it).
EXIT_SIGTERM = 143
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _exit_on_sigterm(signum, frame) -> None:
    sys.exit(EXIT_SIGTERM)


def tie_to_parent(parent_pid: int) -> bool:
    """Make this process exit (through SIGTERM, cleanly) when its parent dies; return whether the parent is
    ``parent_pid`` and so still alive (the guard cannot catch a death that happened before it was set)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    return os.getppid() == parent_pid


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chapter as ``python -m ambridge.run`` would, unless the parent is gone; return the exit code
    (the runner's, :data:`EXIT_SIGTERM` if stopped, 2 for a bad command line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or not argv[0].isdigit():
        print("usage: python -m ambridge.book.worker PARENT_PID CHAPTER [runner options...]", file=sys.stderr)
        return 2
    if not tie_to_parent(int(argv[0])):
        return EXIT_SIGTERM
    from .run import main as run_chapter

    return run_chapter(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
