"""A generated set in anomalib's ``Folder`` layout, so anomalib reads it without this package.

Why: a generated set keeps each mask beside its image (``<defect>/<index>.png`` and
``<index>_mask.png``) with a manifest; anomalib's ``Folder`` datamodule wants images and masks in
separate folders. The export copies the files (byte for byte, after the set's hash is checked)::

    <out>/abnormal/<defect>_<index>.png   the synthesized images
    <out>/mask/<defect>_<index>.png       their binary masks (0/255 PNG), under the image's name
    <out>/export.json                     what was exported (set hash, category, counts) and the
                                          ``Folder`` arguments that read it

``Folder`` pairs the sorted image paths with the sorted mask paths and requires each image's
stem to be part of its mask's stem: identical names satisfy both, for any defect-type name.
Normal images are not copied (they are the user's MVTec data, which is never redistributed):
point ``normal_dir`` at the category's ``train/good`` folder::

    >>> from anomalib.data import Folder
    >>> data = Folder(name="bottle-axf", root="export/", normal_dir="~/data/mvtec_ad/bottle/train/good",
    ...               abnormal_dir="abnormal", mask_dir="mask")

Re-exporting into the same folder replaces the previous export's images and masks (only files
it wrote: ``<name>.png`` in ``abnormal/`` and ``mask/``).
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from mvtec_caption.atomic import write_bytes
from synthesis.generated_set import read_manifest, require_intact

ABNORMAL_DIR = "abnormal"
MASK_DIR = "mask"
EXPORT_INFO = "export.json"
EXPORT_SCHEMA_VERSION = 1
#: What an export writes inside ``abnormal/`` and ``mask/``; anything else there is left alone.
_EXPORTED_FILE = re.compile(r"^.+_\d{4,}\.png$")


class FolderExport(BaseModel):
    """``export.json``: where the files came from, and how anomalib's ``Folder`` reads them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = EXPORT_SCHEMA_VERSION
    source_set: str  # the generated set folder, as given
    set_sha256: str
    synthesizer: str
    synthesizer_version: str
    dataset: str
    category: str
    image_size: int
    samples: int
    per_defect: dict[str, int]
    folder_arguments: dict[str, str]


def exported_name(defect_type: str, index: int) -> str:
    """File name of a sample in both ``abnormal/`` and ``mask/`` (the same name pairs them)."""
    return f"{defect_type}_{index:04d}.png"


def export_folder(set_folder: str | Path, out: str | Path) -> FolderExport:
    """Copy a complete, hash-verified generated set into ``out`` in ``Folder``'s layout (module docstring).

    ``out`` must already be checked by the caller (the CLI claims it: :mod:`mvtec_caption.output_folder`).
    """
    set_folder, out = Path(set_folder), Path(out)
    info = require_intact(set_folder)
    samples = read_manifest(set_folder)
    names = {exported_name(s.defect_type, s.index) for s in samples}
    for sub in (ABNORMAL_DIR, MASK_DIR):  # an earlier export's files that this one does not have
        folder = out / sub
        if folder.is_dir():
            for path in folder.iterdir():
                if path.is_file() and _EXPORTED_FILE.match(path.name) and path.name not in names:
                    path.unlink()
    per_defect: dict[str, int] = {}
    for sample in samples:
        name = exported_name(sample.defect_type, sample.index)
        write_bytes(out / ABNORMAL_DIR / name, (set_folder / sample.image_file).read_bytes())
        write_bytes(out / MASK_DIR / name, (set_folder / sample.mask_file).read_bytes())
        per_defect[sample.defect_type] = per_defect.get(sample.defect_type, 0) + 1
    export = FolderExport(
        source_set=str(set_folder), set_sha256=info.set_sha256, synthesizer=info.synthesizer.name,
        synthesizer_version=str(info.synthesizer.version), dataset=info.dataset, category=info.category,
        image_size=info.image_size, samples=len(samples), per_defect=per_defect,
        folder_arguments={"root": str(out), "abnormal_dir": ABNORMAL_DIR, "mask_dir": MASK_DIR,
                          "normal_dir": f"<your {info.dataset} data>/{info.category}/train/good"},
    )
    write_bytes(out / EXPORT_INFO, (export.model_dump_json(indent=2) + "\n").encode())
    return export
