"""Versioned pydantic models at the dataset boundary.

Everything that leaves this package as data (records, manifests, exported metadata) is one of
these models, so readers can check the ``schema_version`` and upgrade or refuse old data
instead of guessing. The JSON Schema of each model is exported into ``annotations/schemas``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: Version of :class:`CaptionRecord`. Bump it (and add a migration) when a field changes.
RECORD_SCHEMA_VERSION = 2
#: Version of :class:`DatasetManifest`.
MANIFEST_SCHEMA_VERSION = 1

AnomalyKind = Literal["structural", "logical"]
SplitName = Literal["train", "test", "validation"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CaptionAttributes(_Frozen):
    """Rule-based attributes read off the caption text (see :mod:`mvtec_caption.attributes`)."""

    colors: list[str] = Field(default_factory=list, description="Colour words, normalised (grey, not gray).")
    counts: list[int] = Field(default_factory=list, description="Numbers of things named ('two screws' -> 2).")
    positions: list[str] = Field(default_factory=list, description="Spatial words (top, left, center, edge ...).")
    parts: list[str] = Field(default_factory=list, description="Object parts named (label, cap, thread, lead ...).")
    relations: list[str] = Field(
        default_factory=list,
        description="Logical relations: missing, extra, swapped, misplaced, wrong_type.",
    )
    defect_words: list[str] = Field(default_factory=list, description="Damage words (crack, scratch, stain ...).")
    kind: AnomalyKind = Field(description="Structural (local damage) or logical (violated constraint).")


class CaptionRecord(_Frozen):
    """One annotated anomalous image: where its pixels are and what its caption says.

    Paths are relative to the dataset root (POSIX separators), so a record stays valid when the
    dataset folder moves; the loader joins them with the root it was given.
    """

    schema_version: Literal[2] = RECORD_SCHEMA_VERSION
    dataset: str = Field(description="Subset name: mvtec_ad, mvtec_loco or demo.")
    category: str
    defect_type: str
    image_id: str = Field(pattern=r"^\d{3}$", description="Zero-padded index within the defect type.")
    image_path: str
    mask_paths: list[str] = Field(
        min_length=1,
        description="One mask for MVTec AD; every PNG of the image's ground-truth folder for LOCO "
        "(the binary union of all of them is the mask).",
    )
    caption: str = Field(min_length=1)
    caption_index: int = Field(ge=0, description="Position of the caption in the upstream list.")
    attributes: CaptionAttributes
    is_demo: bool = Field(default=False, description="True for the generated demo data; never mixed with real results.")


class UpstreamFileInfo(_Frozen):
    path: str
    sha256: str
    captions: int


class CaptionSourceInfo(_Frozen):
    """Where a set of captions came from and the hashes that identify it."""

    kind: Literal["upstream", "json", "demo"]
    location: str = Field(description="File, folder or URL the captions were read from.")
    upstream_repository: str | None = None
    upstream_commit: str | None = None
    upstream_files: dict[str, UpstreamFileInfo] = Field(
        default_factory=dict, description="Verified upstream files per dataset (kind=upstream only)."
    )
    captions_sha256: dict[str, str] = Field(
        description="Content hash of the parsed captions per dataset: identical for the upstream "
        "files and the JSON copy of the same captions."
    )


class CategoryCounts(_Frozen):
    defect_types: dict[str, int]
    total: int


class DatasetCounts(_Frozen):
    categories: dict[str, CategoryCounts]
    total: int


class DatasetManifest(_Frozen):
    """Counts and provenance of a caption set: what ``annotations/manifest.json`` holds."""

    schema_version: Literal[1] = MANIFEST_SCHEMA_VERSION
    name: str = "MVTec Caption"
    datasets: dict[str, DatasetCounts]
    total: int
    source: CaptionSourceInfo
    is_demo: bool = False


class Problem(_Frozen):
    """One thing wrong with a dataset root, as ``validate`` reports it."""

    kind: Literal[
        "missing_category",
        "unknown_category",
        "missing_split",
        "missing_image",
        "unreadable_image",
        "missing_mask",
        "unreadable_mask",
        "mask_size_mismatch",
        "non_binary_mask",
        "caption_count_mismatch",
    ]
    severity: Literal["error", "warning"]
    category: str
    defect_type: str | None = None
    path: str | None = None
    detail: str
