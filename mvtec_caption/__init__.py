"""MVTec Caption: captions of MVTec AD / LOCO AD anomalies paired with images and masks.

>>> from mvtec_caption import load_dataset
>>> ds = load_dataset("mvtec_caption", subset="demo")  # doctest: +SKIP

``MVTecCaptionTorchDataset`` imports torch, so it is loaded on first use only: importing this
package (and running its CLI) stays fast.
"""

from typing import Any

from mvtec_caption.loader import DataSource, DatasetProblemsError, ResolvedDataset, load_dataset, locate_dataset, resolve_dataset
from mvtec_caption.prepare import PreparedCategory, prepare_category
from mvtec_caption.pandas_view import to_pandas
from mvtec_caption.records import read_records, write_records
from mvtec_caption.schema import CaptionRecord, DatasetManifest
from mvtec_caption.scan import scan_dataset
from mvtec_caption.sources import CaptionSet, resolve_caption_source

__all__ = [
    "CaptionRecord",
    "CaptionSet",
    "DataSource",
    "DatasetManifest",
    "DatasetProblemsError",
    "MVTecCaptionTorchDataset",
    "PreparedCategory",
    "ResolvedDataset",
    "load_dataset",
    "locate_dataset",
    "prepare_category",
    "read_records",
    "resolve_caption_source",
    "resolve_dataset",
    "scan_dataset",
    "to_pandas",
    "write_records",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "MVTecCaptionTorchDataset":
        from mvtec_caption.torch_dataset import MVTecCaptionTorchDataset

        return MVTecCaptionTorchDataset
    raise AttributeError(f"module 'mvtec_caption' has no attribute {name!r}")
