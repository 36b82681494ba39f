"""``python -m mvtec_caption``: see :mod:`mvtec_caption.cli`."""

import os
import sys

from mvtec_caption.runtime import configure

configure()  # OpenMP wait policy and threads, before anything imports torch

from mvtec_caption.cli import main  # noqa: E402

if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into `head` and closed early: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
