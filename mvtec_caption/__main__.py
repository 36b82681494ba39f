"""``python -m mvtec_caption``: see :mod:`mvtec_caption.cli`."""

import os
import sys

from mvtec_caption.cli import main

if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into `head` and closed early: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
