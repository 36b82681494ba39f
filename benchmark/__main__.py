import sys

from mvtec_caption.runtime import configure

configure()  # OpenMP wait policy and threads, before anything imports torch

from benchmark.cli import main  # noqa: E402

sys.exit(main())
