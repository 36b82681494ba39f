"""``python -m mvtec_caption``: see :mod:`mvtec_caption.cli`."""

import sys

from mvtec_caption.cli import main

if __name__ == "__main__":
    sys.exit(main())
