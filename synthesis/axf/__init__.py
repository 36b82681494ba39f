"""AnomalyXFusion (AXF, arXiv 2404.19444): multi-modal conditioned diffusion for anomaly synthesis.

Modules: :mod:`~synthesis.axf.config` (every setting and its default), :mod:`~synthesis.axf.model`
(MIF, DDF, U-Net wiring; a diffusers ``ModelMixin``), :mod:`~synthesis.axf.pipeline` (``AXFPipeline``,
a diffusers ``DiffusionPipeline``), :mod:`~synthesis.axf.conditions` and :mod:`~synthesis.axf.encoders`
(frozen text/image encoders by name, cached outputs), :mod:`~synthesis.axf.train` (training loop,
snapshots), :mod:`~synthesis.axf.sample` (DDIM + RePaint, SDEdit start), :mod:`~synthesis.axf.adapt`
(per-mask sampler settings), :mod:`~synthesis.axf.windows` (windows, blending, reference pastes),
:mod:`~synthesis.axf.latent` (pixel / pretrained-LDM model spaces) and
:mod:`~synthesis.axf.synthesizer` (the contract adapter).
"""

import os as _os
import sys as _sys

if "torch" not in _sys.modules:
    # On a shared CPU, OpenMP threads that spin while waiting at barriers slow training down
    # tenfold as soon as another process takes a core (measured: 21 s instead of 2 s a step on
    # 2 cores with one other busy process). Sleeping waits avoid that and change no numbers.
    # It only takes effect before torch is first imported; set OMP_WAIT_POLICY to override.
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
