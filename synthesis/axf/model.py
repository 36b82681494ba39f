"""The AnomalyXFusion network: Multi-modal In-Fusion, Dynamic Dif-Fusion and the U-Net wiring.

Read top to bottom::

    caption ──frozen text encoder──► text tokens ─┐
    I ⊙ M ───frozen image encoder──► image tokens ├─ project to `width`, + modality embeddings
    defect type ──► learnable defect tokens ──────┤   (initialised from image features)
    mask M ──trainable conv encoder──► mask tokens┘
                     │ concatenate
                     ▼
    MultiModalInFusion: self-attention + MLP (residual) ──► X-embedding  (timestep independent)
                     │
    DynamicDifFusion: FiLM by the timestep embedding, per-modality gates ──► X_t
                     │ (encoder_hidden_states of every cross-attention layer)
                     ▼
    UNet2DConditionModel(x_t, t, X_t) ──► predicted noise ε

The frozen encoders are not part of this module: their outputs come in as tensors (and are
cached per caption / per training anomaly by the caller). Everything here is trainable except
a pretrained U-Net handed in for the paper-scale latent mode, which is frozen.

Ablations switch branches off so that their parameters do not exist: ``use_text``,
``use_image`` (image tokens and the image-initialised defect tokens), ``use_mask_tokens`` (the
location branch) and ``use_ddf`` (the X-embedding enters the U-Net unchanged at every step).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import ConfigMixin, ModelMixin, UNet2DConditionModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn

from synthesis.axf.config import DEFAULTS

TEXT, IMAGE, DEFECT, MASK, REGISTER = range(5)  # modality ids of X-embedding tokens


@dataclass
class AXFCondition:
    """The inputs of the X-embedding for a batch (all on the model's device).

    ``text``/``text_valid``: frozen text-encoder tokens ``[B, L, Dt]`` and their mask ``[B, L]``;
    ``image``: frozen image-encoder tokens of the masked defect image ``[B, K, Di]``;
    ``defect``: defect-type index ``[B]`` (the last index is "unknown type");
    ``mask``: the defect mask ``[B, 1, H, W]`` in [0, 1];
    ``keep``: optional ``[B, 4]`` bool, which branches (text, image, defect, mask) a sample keeps
    (branch dropout in training; all True at sampling).
    """

    text: torch.Tensor | None
    text_valid: torch.Tensor | None
    image: torch.Tensor | None
    defect: torch.Tensor
    mask: torch.Tensor
    keep: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> AXFCondition:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return AXFCondition(move(self.text), move(self.text_valid), move(self.image), self.defect.to(device),
                            self.mask.to(device), move(self.keep))


class LocationEncoder(nn.Module):
    """The location branch: a small trainable CNN from the mask to ``grid * grid`` tokens."""

    def __init__(self, width: int, grid: int = DEFAULTS.mask_grid, channels: tuple[int, ...] = (16, 32, 64)):
        super().__init__()
        layers: list[nn.Module] = []
        previous = 1
        for channel in channels:
            layers += [nn.Conv2d(previous, channel, 3, stride=2, padding=1), nn.SiLU()]
            previous = channel
        self.convs = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.proj = nn.Linear(previous, width)
        self.position = nn.Parameter(torch.randn(grid * grid, width) * 0.02)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        features = self.pool(self.convs(mask * 2.0 - 1.0))  # [B, C, g, g]
        return self.proj(features.flatten(2).transpose(1, 2)) + self.position


class FusionLayer(nn.Module):
    """Pre-norm transformer layer: self-attention and an MLP, each with a residual connection."""

    def __init__(self, width: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, width * mlp_ratio), nn.GELU(), nn.Linear(width * mlp_ratio, width))

    def forward(self, tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        h = self.norm1(tokens)
        attended, _ = self.attn(h, h, h, key_padding_mask=~valid, need_weights=False)
        tokens = tokens + attended
        return tokens + self.mlp(self.norm2(tokens))


class MultiModalInFusion(nn.Module):
    """MIF: text, texture (image + defect tokens) and location branches fused into the X-embedding.

    Returns the X-embedding ``[B, N, width]`` and its validity mask ``[B, N]``. One learned
    "register" token is always present, so a sample with every branch dropped still has a key
    to attend to (and that is the unconditional embedding).
    """

    def __init__(
        self,
        width: int = DEFAULTS.width,
        text_dim: int = 384,
        image_dim: int = 1280,
        num_defect_types: int = 1,
        defect_tokens: int = DEFAULTS.defect_tokens,
        mask_grid: int = DEFAULTS.mask_grid,
        fusion_layers: int = DEFAULTS.fusion_layers,
        heads: int = DEFAULTS.fusion_heads,
        use_text: bool = DEFAULTS.use_text,
        use_image: bool = DEFAULTS.use_image,
        use_mask_tokens: bool = DEFAULTS.use_mask_tokens,
        defect_init: torch.Tensor | None = None,
    ):
        super().__init__()
        self.width = width
        self.use_text, self.use_image, self.use_mask_tokens = use_text, use_image, use_mask_tokens
        if use_text:
            self.text_proj = nn.Sequential(nn.LayerNorm(text_dim), nn.Linear(text_dim, width))
        if use_image:
            self.image_proj = nn.Sequential(nn.LayerNorm(image_dim), nn.Linear(image_dim, width))
            # Textual-inversion style tokens per defect type (+1 row: unknown type), living in the
            # frozen image encoder's feature space and initialised from its features of that type.
            init = torch.zeros(num_defect_types + 1, defect_tokens, image_dim)
            if defect_init is not None:
                init.copy_(defect_init.reshape(num_defect_types + 1, 1, image_dim).expand_as(init))
            self.defect_embeddings = nn.Parameter(init + 0.01 * torch.randn_like(init))
        if use_mask_tokens:
            self.location = LocationEncoder(width, mask_grid)
        self.modality = nn.Parameter(torch.randn(5, width) * 0.02)
        self.null_token = nn.Parameter(torch.randn(1, width) * 0.02)
        self.layers = nn.ModuleList(FusionLayer(width, heads) for _ in range(fusion_layers))
        self.norm = nn.LayerNorm(width)

    def forward(self, cond: AXFCondition) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """X-embedding ``[B, N, width]``, validity ``[B, N]`` and modality id per token ``[N]``."""
        batch = cond.defect.shape[0]
        device = self.null_token.device
        keep = cond.keep if cond.keep is not None else torch.ones(batch, 4, dtype=torch.bool, device=device)
        parts: list[tuple[torch.Tensor, torch.Tensor, int]] = []  # (tokens, valid, modality)
        if self.use_text:
            parts.append((self.text_proj(cond.text), cond.text_valid & keep[:, 0:1], TEXT))
        if self.use_image:
            image = self.image_proj(cond.image)
            parts.append((image, keep[:, 1:2].expand(-1, image.shape[1]), IMAGE))
            defect = self.image_proj(self.defect_embeddings[cond.defect])
            parts.append((defect, keep[:, 2:3].expand(-1, defect.shape[1]), DEFECT))
        if self.use_mask_tokens:
            location = self.location(cond.mask)
            parts.append((location, keep[:, 3:4].expand(-1, location.shape[1]), MASK))
        parts.append((self.null_token.expand(batch, 1, -1), torch.ones(batch, 1, dtype=torch.bool, device=device), REGISTER))
        tokens = torch.cat([t + self.modality[m] for t, _, m in parts], dim=1)
        valid = torch.cat([v for _, v, _ in parts], dim=1)
        modality = torch.cat([torch.full((t.shape[1],), m, dtype=torch.long, device=device) for t, _, m in parts])
        for layer in self.layers:
            tokens = layer(tokens, valid)
        return self.norm(tokens), valid, modality


class DynamicDifFusion(nn.Module):
    """DDF: the timestep re-weights the X-embedding before it enters the cross-attention layers.

    A sinusoidal timestep embedding and an MLP give a FiLM scale and shift per channel and a gate
    per modality (so early, noisy steps can lean on location and late steps on texture). The last
    layer is zero-initialised: training starts from the identity.
    """

    def __init__(self, width: int, time_dim: int | None = None, modalities: int = 5):
        super().__init__()
        time_dim = time_dim or width
        self.modalities = modalities
        self.time_proj = Timesteps(width, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(width, time_dim)
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, 2 * width + modalities))
        nn.init.zeros_(self.out[1].weight)
        nn.init.zeros_(self.out[1].bias)

    def forward(self, x_embed: torch.Tensor, modality: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        width = x_embed.shape[-1]
        emb = self.time_embedding(self.time_proj(timestep.reshape(-1)).to(x_embed.dtype))
        params = self.out(emb)
        scale, shift, gates = params[:, :width], params[:, width:2 * width], params[:, 2 * width:]
        gate = 1.0 + torch.tanh(gates)[:, modality]  # [B, N]
        return (x_embed * (1.0 + scale[:, None]) + shift[:, None]) * gate[..., None]


def build_unet(
    in_channels: int = 3,
    sample_size: int = DEFAULTS.window_size,
    block_out_channels: tuple[int, ...] = tuple(DEFAULTS.unet_channels),
    attention_levels: tuple[int, ...] = tuple(DEFAULTS.unet_attention_levels),
    layers_per_block: int = DEFAULTS.layers_per_block,
    cross_attention_dim: int = DEFAULTS.width,
    head_dim: int = DEFAULTS.head_dim,
    norm_num_groups: int = 8,
) -> UNet2DConditionModel:
    """A small diffusers U-Net trained from scratch: cross-attention only at the levels listed
    (counted from the full-resolution level 0), where the feature map is small enough for CPU."""
    down = tuple("CrossAttnDownBlock2D" if i in attention_levels else "DownBlock2D" for i in range(len(block_out_channels)))
    up = tuple("CrossAttnUpBlock2D" if i in attention_levels else "UpBlock2D" for i in reversed(range(len(block_out_channels))))
    # diffusers' UNet2DConditionModel reads ``attention_head_dim`` as the number of heads.
    heads = tuple(max(1, c // head_dim) for c in block_out_channels)
    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=in_channels, out_channels=in_channels,
        block_out_channels=tuple(block_out_channels), down_block_types=down, up_block_types=up,
        layers_per_block=layers_per_block, cross_attention_dim=cross_attention_dim, attention_head_dim=heads,
        norm_num_groups=norm_num_groups, mid_block_type="UNetMidBlock2DCrossAttn",
    )


class AXFNet(ModelMixin, ConfigMixin):
    """MIF + DDF + a diffusers UNet2DConditionModel predicting noise.

    A diffusers model: the constructor's flat arguments are its configuration (defaults from
    :data:`~synthesis.axf.config.DEFAULTS`), and ``save_pretrained`` / ``from_pretrained`` write
    and read ``config.json`` plus safetensors weights like any other diffusers model::

        net.save_pretrained("axf-bottle")
        net = AXFNet.from_pretrained("axf-bottle")

    With ``unet=None`` a small U-Net is built from the ``unet_*`` arguments and trained from
    scratch (offline mode). A pretrained U-Net given as ``unet`` is frozen and only MIF, DDF and
    the tokens learn (paper mode); its architecture is recorded as ``unet_config`` so that the
    model can be rebuilt from its config alone. ``defect_init`` (per-type image features that
    initialise the defect tokens) only matters before training and is not configuration.

    ``text_encoder``, ``image_encoder``, ``max_text_tokens``, ``image_grid`` and ``defect_types``
    describe the inputs the network was trained on (which frozen encoders, how many tokens, the
    defect type of each token row); :class:`~synthesis.axf.pipeline.AXFPipeline` reads them.
    """

    ignore_for_config = ["defect_init", "unet"]

    @register_to_config
    def __init__(
        self,
        width: int = DEFAULTS.width,
        text_dim: int = 384,
        image_dim: int = 1280,
        num_defect_types: int = 1,
        defect_tokens: int = DEFAULTS.defect_tokens,
        mask_grid: int = DEFAULTS.mask_grid,
        fusion_layers: int = DEFAULTS.fusion_layers,
        fusion_heads: int = DEFAULTS.fusion_heads,
        use_text: bool = DEFAULTS.use_text,
        use_image: bool = DEFAULTS.use_image,
        use_mask_tokens: bool = DEFAULTS.use_mask_tokens,
        use_ddf: bool = DEFAULTS.use_ddf,
        defect_init: torch.Tensor | None = None,
        unet: UNet2DConditionModel | None = None,
        in_channels: int = 3,
        sample_size: int = DEFAULTS.window_size,
        unet_channels: tuple[int, ...] = tuple(DEFAULTS.unet_channels),
        unet_attention_levels: tuple[int, ...] = tuple(DEFAULTS.unet_attention_levels),
        layers_per_block: int = DEFAULTS.layers_per_block,
        head_dim: int = DEFAULTS.head_dim,
        norm_num_groups: int = 8,
        unet_config: dict[str, Any] | None = None,
        text_encoder: str | None = DEFAULTS.text_encoder,
        image_encoder: str | None = DEFAULTS.image_encoder,
        max_text_tokens: int = DEFAULTS.max_text_tokens,
        image_grid: int = DEFAULTS.image_grid,
        defect_types: list[str] | None = None,
    ):
        super().__init__()
        if defect_types is not None and len(defect_types) != num_defect_types:
            raise ValueError(f"defect_types names {len(defect_types)} types, num_defect_types is {num_defect_types}")
        self.mif = MultiModalInFusion(
            width=width, text_dim=text_dim, image_dim=image_dim, num_defect_types=num_defect_types,
            defect_tokens=defect_tokens, mask_grid=mask_grid, fusion_layers=fusion_layers, heads=fusion_heads,
            use_text=use_text, use_image=use_image, use_mask_tokens=use_mask_tokens, defect_init=defect_init,
        )
        self.ddf = DynamicDifFusion(width) if use_ddf else None
        if unet is None and unet_config is not None:  # rebuilt from the config: weights come from the checkpoint
            unet = UNet2DConditionModel.from_config(unet_config)
        self.unet_frozen = unet is not None
        if unet is None:
            unet = build_unet(in_channels, sample_size, tuple(unet_channels), tuple(unet_attention_levels),
                              layers_per_block, width, head_dim, norm_num_groups)
        else:
            unet.requires_grad_(False).eval()
            if unet_config is None:
                self.register_to_config(unet_config=_plain(unet.config))
        self.unet = unet
        cross_dim = int(unet.config.cross_attention_dim)
        self.to_unet = nn.Identity() if cross_dim == width else nn.Linear(width, cross_dim)

    def train(self, mode: bool = True) -> AXFNet:
        super().train(mode)
        if self.unet_frozen:
            self.unet.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights that training changes: everything but a frozen pretrained U-Net (reloaded from its source)."""
        return {k: v.detach().clone() for k, v in self.state_dict().items()
                if not (self.unet_frozen and k.startswith("unet."))}

    def embed(self, cond: AXFCondition) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The timestep-independent X-embedding (computed once per sample when sampling)."""
        return self.mif(cond)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, cond: AXFCondition | None = None,
                embedding: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x_embed, valid, modality = embedding if embedding is not None else self.embed(cond)
        timestep = timestep.reshape(-1).expand(sample.shape[0]) if timestep.numel() == 1 else timestep
        if self.ddf is not None:
            x_embed = self.ddf(x_embed, modality, timestep)
        hidden = self.to_unet(x_embed)
        return self.unet(sample, timestep, encoder_hidden_states=hidden,
                         encoder_attention_mask=valid.to(sample.dtype), return_dict=False)[0]


def _plain(config: Any) -> dict[str, Any]:
    """A diffusers config as JSON-ready values (tuples as lists), to be stored inside another config."""
    return json.loads(json.dumps({k: v for k, v in dict(config).items()}, default=list))


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
