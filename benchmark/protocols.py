"""Named, versioned protocols: every setting of a benchmark run, pinned under one id.

A protocol fixes the resolution, the few-shot rule, how many images each synthesizer
generates per defect type, the synthesizers' training budgets, the detectors and their
budgets, the fidelity metrics, and the seeds. Results carry the protocol id and its config
hash; results of different protocols are never put in one table. Changing any setting means a
new version (``.../v2``), never an edit of a published one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from benchmark.detectors.budgets import CPU_BUDGET, GPU_BUDGET
from synthesis.contract import canonical_hash


class Protocol(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9-]+/v\d+$")
    title: str
    hardware: Literal["cpu", "gpu"]
    description: str
    image_size: int = Field(description="Square resolution for synthesis, detectors and metrics.")
    fewshot_rule: Literal["first-third-floor"] = "first-third-floor"
    n_generated_per_defect: int
    synthesizer_overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Pinned synthesizer config per registered name (ablations fall back to their base name).",
    )
    detectors: dict[str, dict[str, Any]] = Field(description="Detector name -> pinned config.")
    default_detectors: list[str]
    fidelity_metrics: list[str]
    generation_seed: int = Field(default=0, description="Base seed of generation (repetition r uses base + r).")
    detector_seed: int = Field(default=0, description="Base seed of detector training (repetition r uses base + r).")
    repetitions: int = Field(default=1, ge=1, description="How many times every random step of a cell is re-run "
                             "(synthesizer fit, generation, detector training), each with its own seed.")
    seed_rule: Literal["base-plus-index"] = Field(
        default="base-plus-index",
        description="Repetition r (0-based) uses seed base + r for generation, for the detector and, when the "
                    "synthesizer's config has a `seed`, for its fit; base is the protocol's seed or --seed.")
    demo_only: bool = Field(default=False, description="For the embedded demo and tests; never on the leaderboard.")

    @property
    def slug(self) -> str:
        """Path-safe id for folders (``mvtec-caption-cpu/v1`` -> ``mvtec-caption-cpu--v1``)."""
        return self.id.replace("/", "--")

    @property
    def config_hash(self) -> str:
        return canonical_hash(self.hashed_settings())

    def hashed_settings(self) -> dict[str, Any]:
        """The settings the config hash covers: fields added after v1 are left out while they hold the value
        that v1 implied, so the hashes of published protocols (and their records) never change."""
        data = self.model_dump(mode="json")
        for name, implied in FIELDS_ADDED_AFTER_V1.items():
            if data.get(name) == implied:
                data.pop(name)
        return data

    def repetition_seeds(self, base: int, repetitions: int | None = None) -> list[int]:
        """The seed of each repetition (see ``seed_rule``); adding repetitions never changes earlier seeds."""
        return [base + index for index in range(self.repetitions if repetitions is None else repetitions)]

    def synthesizer_config(self, name: str, ablation_of: str | None = None) -> dict[str, Any]:
        base = self.synthesizer_overrides.get(ablation_of, {}) if ablation_of else {}
        return {**base, **self.synthesizer_overrides.get(name, {})}


#: Protocol fields introduced after the v1 protocols were published, with the value v1 implied.
FIELDS_ADDED_AFTER_V1: dict[str, Any] = {"repetitions": 1, "seed_rule": "base-plus-index"}

FIDELITY = ["is", "ic-lpips-ad", "ic-lpips-dfmgan", "caption-faithfulness"]

PROTOCOLS: dict[str, Protocol] = {}


def register_protocol(protocol: Protocol) -> Protocol:
    if protocol.id in PROTOCOLS and PROTOCOLS[protocol.id] != protocol:
        raise ValueError(f"protocol {protocol.id} is already defined differently; publish a new version instead")
    PROTOCOLS[protocol.id] = protocol
    return protocol


def get_protocol(protocol_id: str) -> Protocol:
    if protocol_id not in PROTOCOLS:
        raise KeyError(f"unknown protocol {protocol_id!r}; known: {', '.join(sorted(PROTOCOLS))}")
    return PROTOCOLS[protocol_id]


def protocol_from_slug(slug: str) -> Protocol:
    return get_protocol(slug.replace("--", "/"))


register_protocol(Protocol(
    id="mvtec-caption/v1",
    title="MVTec Caption, paper budgets (GPU)",
    hardware="gpu",
    description="The literature's budgets at 256x256: 1,000 generated images per defect type; U-Net and DRAEM "
                "detectors trained for 200 epochs of 500 samples, last epoch evaluated (never selected on test).",
    image_size=256,
    n_generated_per_defect=1000,
    detectors={
        "unet": {"image_size": 256, "base_width": 64, "epochs": 200, "samples_per_epoch": 500, "batch_size": 8, "lr": 1e-4},
        "draem": {"image_size": 256, "epochs": 200, "samples_per_epoch": 500, "batch_size": 8, "lr": 1e-4},
        "padim-effnetlite0": {"image_size": 256},
    },
    default_detectors=["unet", "padim-effnetlite0"],
    fidelity_metrics=FIDELITY,
))

register_protocol(Protocol(
    id="mvtec-caption-cpu/v1",
    title="MVTec Caption, pinned CPU budget",
    hardware="cpu",
    description="A smaller pinned budget so one category's full run fits in about 30 minutes on 2 CPU cores: "
                "128x128, 32 generated images per defect type, a slim U-Net (base width 16) trained for 1,000 "
                "steps of batch 8, last step evaluated. Not comparable with GPU-protocol numbers.",
    image_size=128,
    n_generated_per_defect=32,
    detectors={
        "unet": {"image_size": 128, "base_width": 16, "epochs": 50, "samples_per_epoch": 160, "batch_size": 8, "lr": 2e-4},
        "draem": {"image_size": 128, "reconstructive_width": 32, "discriminative_width": 16, "epochs": 12,
                  "samples_per_epoch": 160, "batch_size": 8, "lr": 1e-4},
        "padim-effnetlite0": {"image_size": 128},
    },
    default_detectors=["unet", "padim-effnetlite0"],
    fidelity_metrics=FIDELITY,
))

register_protocol(Protocol(
    id="mvtec-caption-smoke/v1",
    title="Smoke test (embedded demo data)",
    hardware="cpu",
    description="Minutes-long budgets for the embedded demo data and tests: 64x64, 12 images per defect type, "
                "tiny networks. Shows the machinery works; its numbers mean nothing.",
    image_size=64,
    n_generated_per_defect=12,
    detectors={
        "unet": {"image_size": 64, "base_width": 8, "epochs": 25, "samples_per_epoch": 64, "batch_size": 8, "lr": 5e-4},
        "draem": {"image_size": 64, "reconstructive_width": 16, "discriminative_width": 8, "epochs": 1,
                  "samples_per_epoch": 16, "batch_size": 4, "lr": 1e-4},
        "padim-effnetlite0": {"image_size": 64},
    },
    default_detectors=["unet", "padim-effnetlite0"],
    fidelity_metrics=FIDELITY,
    synthesizer_overrides={
        "axf": {"window_size": 32, "unet_channels": [16, 32, 64], "unet_attention_levels": [1, 2], "head_dim": 16,
                "width": 64, "fusion_heads": 2, "mask_grid": 2, "train_steps": 400, "batch_size": 8,
                "sample_steps": 20, "snapshot_every": 50},
    },
    demo_only=True,
))


def _repeated(base: Protocol, version: str, repetitions: int, title: str, description: str, **changes: Any) -> Protocol:
    """A new protocol version: the base's settings with repetitions (and any other pinned changes)."""
    settings = base.model_dump()
    settings.update(id=base.id.rsplit("/", 1)[0] + "/" + version, title=title, repetitions=repetitions,
                    description=description, **changes)
    return Protocol(**settings)


#: What v2 adds to v1 besides repetitions: the AXF paper's defect-type classification (its third table) and the
#: fidelity measurements newer papers report (KID) or that need no CLIP (caption attributes checked by rule).
FIDELITY_V2 = [*FIDELITY, "kid", "caption-attribute-faithfulness-v1"]
V2_NOTE = (" Besides v1's measurements: the defect-type classifier (trained on the generated set only, tested on the "
           "real anomalies; not applicable to a category with one defect type), KID and caption faithfulness by "
           "attribute.")


def _with_classifier(base: Protocol, budget: dict[str, Any]) -> dict[str, Any]:
    return {"detectors": {**base.detectors, "classifier": dict(budget)},
            "default_detectors": [*base.default_detectors, "classifier"], "fidelity_metrics": FIDELITY_V2}


REPETITIONS_NOTE = ("Every cell is run {n} times: repetition r (0-based) re-runs the synthesizer fit, the generation and "
                    "the detector training with seed base + r; results give each repetition, the mean, the standard "
                    "deviation and a 95 % t-interval.")

register_protocol(_repeated(
    PROTOCOLS["mvtec-caption/v1"], "v2", 5, "MVTec Caption, paper budgets (GPU), 5 repetitions",
    PROTOCOLS["mvtec-caption/v1"].description + " " + REPETITIONS_NOTE.format(n=5) + V2_NOTE,
    **_with_classifier(PROTOCOLS["mvtec-caption/v1"], GPU_BUDGET)))

register_protocol(_repeated(
    PROTOCOLS["mvtec-caption-cpu/v1"], "v2", 3, "MVTec Caption, pinned CPU budget, 3 repetitions",
    PROTOCOLS["mvtec-caption-cpu/v1"].description + " " + REPETITIONS_NOTE.format(n=3) + V2_NOTE,
    **_with_classifier(PROTOCOLS["mvtec-caption-cpu/v1"], CPU_BUDGET)))

register_protocol(_repeated(
    PROTOCOLS["mvtec-caption-smoke/v1"], "v2", 2, "Smoke test (embedded demo data), 2 repetitions",
    PROTOCOLS["mvtec-caption-smoke/v1"].description + " " + REPETITIONS_NOTE.format(n=2) + V2_NOTE,
    **_with_classifier(PROTOCOLS["mvtec-caption-smoke/v1"], {**CPU_BUDGET, "epochs": 50})))

#: What `benchmark run` uses when no --protocol is given.
DEFAULT_PROTOCOLS = {"demo": "mvtec-caption-smoke/v1", "cpu": "mvtec-caption-cpu/v2", "gpu": "mvtec-caption/v2"}
