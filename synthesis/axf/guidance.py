"""Classifier-free guidance with one scale for the text branch and one for the image branch.

The sampler asks for ``eps = denoiser(x, t, rows)`` (:class:`synthesis.axf.sample.Denoiser`); :func:`guided_denoiser` builds that callable from
the network, the batch's conditions and two scales. The decomposition (InstructPix2Pix's, nested the
way AXF was trained)::

    eps = eps(∅) + s_image · (eps(image) − eps(∅)) + s_text · (eps(image, text) − eps(image))

* ``eps(image, text)``: every branch as given (the unguided sampler's single pass);
* ``eps(image)``: the text branch dropped, everything else kept: the texture branch (masked defect
  image and defect-type tokens) and the location branch (mask tokens);
* ``eps(∅)``: every branch dropped, only the always-present register token left.

Why this nesting and these "dropped" states: the network only knows the conditions that training
showed it (:mod:`synthesis.axf.train`). A branch is dropped there by setting its ``keep`` flag to
False, which removes its tokens from the X-embedding's attention; the same flags make the guidance
terms here, so the unconditional inputs are exactly training's. Training drops each branch with
probability ``branch_dropout`` (0.1), so "text alone dropped" is seen in about 7 % of the defect
windows, and "everything dropped" is what the 20 % normal windows are (the unconditional embedding).
The other order (text kept, image dropped) and a texture-only drop with the mask kept are seen in
under 1 % of the windows (0.1² or 0.1³ of them): their differences would be untrained directions.
So the image scale steers away from training's unconditional state (a normal surface), which moves
texture and location together; the location part is harmless because RePaint blending fixes where
the defect goes anyway. The text scale steers from "this defect without words" to "this defect with
these words", which is what a caption-swap check measures.

The weights of the three terms are ``1 − s_image``, ``s_image − s_text`` and ``s_text`` (they sum to
1). Only terms with a non-zero weight are evaluated, in one batched forward pass; when a single term
is left (scales 1/1, or text 0 / image 1, or 0/0) its weight is exactly 1 and the plain single-pass
path runs, so scales of exactly 1 reproduce the unguided sampler bit for bit and a text scale of 0
is sampling with the text branch dropped. Terms whose drops are the same for this network (the text
drop of an ``axf-no-text`` network) are merged first, so guidance never spends a pass on a no-op.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict

from synthesis.axf.model import AXFCondition, AXFNet
from synthesis.axf.sample import Denoiser, net_denoiser

#: Column of each branch in :attr:`AXFCondition.keep` (the order training's branch dropout uses).
BRANCHES: dict[str, int] = {"text": 0, "image": 1, "defect": 2, "mask": 3}

#: The guidance terms: which branches each one drops (see the module docstring for why these three).
TERMS: dict[str, frozenset[str]] = {
    "full": frozenset(),
    "no_text": frozenset({"text"}),
    "none": frozenset(BRANCHES),
}


class GuidanceScales(BaseModel):
    """The two guidance scales (1.0 / 1.0: no guidance; the pinned defaults are ``AXFConfig.guidance_*``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: float = 1.0
    image: float = 1.0

    def weights(self) -> dict[str, float]:
        """Weight of each term of :data:`TERMS` (summing to 1)."""
        return {"full": self.text, "no_text": self.image - self.text, "none": 1.0 - self.image}


def present_branches(net: AXFNet) -> frozenset[str]:
    """The branches this network has (an ablation without one cannot drop it)."""
    config = net.config
    return frozenset(name for name, on in (("text", config.use_text), ("image", config.use_image),
                                           ("defect", config.use_image), ("mask", config.use_mask_tokens)) if on)


def _with_keep(cond: AXFCondition) -> AXFCondition:
    """``cond`` with an explicit ``keep`` (all True where it had none: the same embedding)."""
    if cond.keep is not None:
        return cond
    keep = torch.ones(cond.defect.shape[0], len(BRANCHES), dtype=torch.bool, device=cond.defect.device)
    return AXFCondition(cond.text, cond.text_valid, cond.image, cond.defect, cond.mask, keep)


def drop(cond: AXFCondition, branches: frozenset[str]) -> AXFCondition:
    """``cond`` with ``branches`` dropped, exactly as training's branch dropout drops them."""
    if not branches:
        return cond
    keep = _with_keep(cond).keep.clone()
    for name in branches:
        keep[:, BRANCHES[name]] = False
    return AXFCondition(cond.text, cond.text_valid, cond.image, cond.defect, cond.mask, keep)


def terms(net: AXFNet, scales: GuidanceScales) -> list[tuple[frozenset[str], float]]:
    """The terms to evaluate: (branches dropped, weight), merged where the drops coincide, zero weights left out."""
    present = present_branches(net)
    merged: dict[frozenset[str], float] = {}
    for name, weight in scales.weights().items():
        dropped = TERMS[name] & present
        merged[dropped] = merged.get(dropped, 0.0) + weight
    return [(dropped, weight) for dropped, weight in merged.items() if weight != 0.0]


def _cat(conds: list[AXFCondition]) -> AXFCondition:
    def cat(values: list[torch.Tensor | None]) -> torch.Tensor | None:
        return None if values[0] is None else torch.cat(values)

    return AXFCondition(cat([c.text for c in conds]), cat([c.text_valid for c in conds]), cat([c.image for c in conds]),
                        torch.cat([c.defect for c in conds]), torch.cat([c.mask for c in conds]),
                        cat([c.keep for c in conds]))


@torch.no_grad()
def guided_denoiser(net: AXFNet, cond: AXFCondition, scales: GuidanceScales | None = None) -> Denoiser:
    """``denoiser(x, t, rows) -> eps`` for the batch ``cond`` under ``scales`` (None: unguided).

    The X-embeddings are computed once here (they do not depend on the timestep); each call runs
    one forward pass over ``len(terms)`` copies of the rows ``rows`` of the batch (the samples the
    sampler has started) and sums the terms with their weights. Built and called without gradients,
    as sampling runs (attention takes another kernel with gradients on, which would change the last bits).
    """
    active = terms(net, scales or GuidanceScales())
    if len(active) == 1 and active[0][1] == 1.0:  # the plain single pass (bit for bit the unguided sampler)
        return net_denoiser(net, drop(cond, active[0][0]))
    full = _with_keep(cond)  # torch.cat needs a ``keep`` on every term
    x_embed, valid, modality = net.embed(_cat([drop(full, dropped) for dropped, _ in active]))
    weights = [weight for _, weight in active]
    batch = cond.defect.shape[0]

    @torch.no_grad()
    def guided(x: torch.Tensor, t: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        k = len(weights)
        t = t.reshape(-1).expand(x.shape[0]) if t.numel() == 1 else t
        index = torch.cat([rows + term * batch for term in range(k)])  # term j's copy of the batch starts at j * B
        eps = net(x.repeat(k, 1, 1, 1), t.repeat(k), embedding=(x_embed[index], valid[index], modality)).chunk(k)
        out = weights[0] * eps[0]
        for weight, part in zip(weights[1:], eps[1:]):
            out = out + weight * part
        return out

    return guided
