"""Process set-up shared by the four command lines: sleeping OpenMP waits and a thread count that survives sharing.

torch's OpenMP threads spin at every barrier by default. On a machine whose cores are shared with
another busy process that turns each parallel region into a wait for a descheduled thread: the
``unet`` detector ran 4x slower with torch's default threads than with one (1,598 s against
387 s on 2 shared cores). :func:`configure` runs first in every ``__main__`` (before torch is
imported, which is when OpenMP reads its settings) and sets, unless the user already has:

* ``OMP_WAIT_POLICY=PASSIVE``: waiting threads sleep (no numerical effect);
* ``OMP_NUM_THREADS`` = :func:`default_threads`, ``min(usable cores, MAX_DEFAULT_THREADS)``:
  more threads than that buy little for this project's small networks and cost a lot when the
  machine is shared.

``--threads N`` (every command that computes) overrides it for the run (:func:`set_threads`).
"""

from __future__ import annotations

import os
import sys

MAX_DEFAULT_THREADS = 4
THREADS_HELP = ("CPU threads for torch and OpenMP (default: $OMP_NUM_THREADS, else min(cores, "
                f"{MAX_DEFAULT_THREADS})); 1 when several runs share a machine")


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    return max(1, min(usable_cores(), MAX_DEFAULT_THREADS))


def configure() -> None:
    """Set the OpenMP wait policy and thread count for this process (the user's environment wins)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OMP_NUM_THREADS", str(default_threads()))


def set_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads from now on (None: keep the configured count)."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)  # otherwise torch reads OMP_NUM_THREADS when it is first imported
