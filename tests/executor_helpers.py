"""A synthesizer plugin for the executor tests: CutPaste whose first generation stops mid-set until the test
kills its process (named by ``--synth executor_helpers:KilledOnceCutPaste``; the tests folder is on the
workers' ``PYTHONPATH``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from synthesis.baselines.cutpaste import CutPasteSynthesizer
from synthesis.contract import SampleSpec, SynthesisOutput

#: The folder through which the test and the worker meet: the worker writes ``pid`` there and waits; the test
#: writes ``killed`` and kills it. Unset: an ordinary CutPaste.
KILL_DIR_ENV = "MVTEC_TEST_KILL_DIR"
#: Samples made before the worker stops, so that the killed job leaves partial output behind.
SAMPLES_BEFORE_STOP = 3


class KilledOnceCutPaste(CutPasteSynthesizer):
    description = "CutPaste that waits to be killed in the middle of its first generated set (executor tests)"

    def synthesize(self, spec: SampleSpec, normal: np.ndarray, rng: np.random.Generator) -> SynthesisOutput:
        folder = os.environ.get(KILL_DIR_ENV)
        self._made = getattr(self, "_made", 0) + 1
        if folder and self._made > SAMPLES_BEFORE_STOP and not (Path(folder) / "killed").exists():
            pid_file = Path(folder) / "pid"
            pid_file.with_suffix(".tmp").write_text(str(os.getpid()))
            pid_file.with_suffix(".tmp").replace(pid_file)
            time.sleep(600)  # the test kills this process long before
        return super().synthesize(spec, normal, rng)
