"""Helpers for the dataset-layer tests: tiny MVTec-format trees, a miniature upstream script,
a loopback HTTP server, a tree fingerprint and an in-process CLI runner.

Everything here is generated in the test's tmp dir; nothing is copied from the real data.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from functools import partial
from io import StringIO
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (12, 10)  # width, height of the tiny images

#: A miniature file in the upstream format: dict literals, the `categories` mapping, then
#: file-writing code that must never run (it would create SENTINEL and then raise).
SENTINEL = "EXECUTED_SENTINEL.txt"
MINI_UPSTREAM = '''import os
import shutil


widget={
    "scratch":[
        "The widget has a long scratch, near the zipper's edge.",
        "There is a red stain on the widget."
    ],
    "dent":[
        "The widget is dented."
    ]
}
gadget = {
    "crack": ["The gadget's lid has two cracks."]
}

categories = {
    "widget": widget,
    "gadget": gadget,
}

open("EXECUTED_SENTINEL.txt", "w").write("the upstream script was executed")
samples = os.listdir('./datasets/mvtec_anomaly_detection/')
raise SystemExit("this code must never run")
'''
MINI_CAPTIONS = {
    "widget": {
        "scratch": ["The widget has a long scratch, near the zipper's edge.", "There is a red stain on the widget."],
        "dent": ["The widget is dented."],
    },
    "gadget": {"crack": ["The gadget's lid has two cracks."]},
}


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_png(path: Path, size: tuple[int, int] = SIZE, mode: str = "RGB", value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = 3 if mode == "RGB" else 1
    array = np.full((size[1], size[0], channels), value, dtype=np.uint8).squeeze()
    Image.fromarray(array, mode=mode if channels == 3 else "L").save(path, format="PNG")
    return path


def write_mask(path: Path, size: tuple[int, int] = SIZE, value: int = 255) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.zeros((size[1], size[0]), dtype=np.uint8)
    array[2:5, 3:7] = value
    Image.fromarray(array, mode="L").save(path, format="PNG")
    return path


def make_tree(root: Path, captions: dict[str, dict[str, list[str]]], *, layout: str = "ad",
              n_train: int = 2, n_test_good: int = 1, n_validation: int = 0) -> Path:
    """A complete MVTec-format tree for ``captions`` (one image and mask per caption)."""
    for category, defects in captions.items():
        base = root / category
        for split, count in (("train", n_train), ("test", n_test_good), ("validation", n_validation)):
            for index in range(count):
                write_png(base / split / "good" / f"{index:03d}.png", value=100 + index)
        for defect, texts in defects.items():
            for index, _ in enumerate(texts):
                write_png(base / "test" / defect / f"{index:03d}.png", value=50 + index)
                if layout == "ad":
                    write_mask(base / "ground_truth" / defect / f"{index:03d}_mask.png")
                else:  # LOCO: a folder per image with one file per defect instance, grey values > 0
                    write_mask(base / "ground_truth" / defect / f"{index:03d}" / "000.png", value=255)
                    write_mask(base / "ground_truth" / defect / f"{index:03d}" / "001.png", value=7)
    return root


def write_captions(path: Path, dataset: str, captions: dict[str, dict[str, list[str]]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({dataset: captions}, indent=1), encoding="utf-8")
    return path


def tree_fingerprint(root: Path, *, content: bool = True) -> dict[str, str]:
    """Relative path -> sha256 (or size and mtime when ``content=False``) of everything under root."""
    result = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        if path.is_dir():
            result[key] = "dir"
        elif content:
            result[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            stat = path.stat()
            result[key] = f"{stat.st_size}:{stat.st_mtime_ns}"
    return result


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's name)
        pass


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 (a free port); yields the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def unused_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class CliRun:
    code: int
    out: str
    err: str


def run_cli(*args: str | Path) -> CliRun:
    """Run ``python -m mvtec_caption`` in-process (argparse errors become their exit code)."""
    from mvtec_caption.cli import main

    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:
            code = int(exit_.code or 0)
    return CliRun(code, out.getvalue(), err.getvalue())


def benchmark_cli(argv: list[str | Path]) -> tuple[int, str, str]:
    """``python -m benchmark`` in this process (exit code, stdout, stderr), dropping the log handlers it adds."""
    import logging

    from benchmark.cli import main

    root = logging.getLogger()
    before = list(root.handlers)
    out, err = StringIO(), StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = main([str(a) for a in argv])
        return code, out.getvalue(), err.getvalue()
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
                handler.close()
