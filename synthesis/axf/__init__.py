"""AnomalyXFusion (AXF, arXiv 2404.19444): multi-modal conditioned diffusion for anomaly synthesis.

Modules: :mod:`~synthesis.axf.model` (MIF, DDF, U-Net wiring), :mod:`~synthesis.axf.encoders`
(frozen text/image encoders by name), :mod:`~synthesis.axf.train` (training loop, snapshots),
:mod:`~synthesis.axf.sample` (DDIM + RePaint, SDEdit start), :mod:`~synthesis.axf.windows`
(windows, blending, reference pastes), :mod:`~synthesis.axf.latent` (pixel / pretrained-LDM
model spaces) and :mod:`~synthesis.axf.synthesizer` (the contract adapter).
"""
