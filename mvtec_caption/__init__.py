"""MVTec Caption: captions of MVTec AD / LOCO AD anomalies paired with images and masks.

>>> from mvtec_caption import load_dataset
>>> ds = load_dataset("mvtec_caption", subset="demo")  # doctest: +SKIP
"""

from mvtec_caption.loader import DatasetProblemsError, load_dataset

__all__ = ["load_dataset", "DatasetProblemsError"]
__version__ = "0.1.0"
