"""Moved to :mod:`mvtec_caption.split` (below both the synthesis and benchmark packages); kept importable here."""

from mvtec_caption.split import (  # noqa: F401
    ProtocolSplit,
    SplitItem,
    fewshot_count,
    load_items,
    make_split,
    train_view,
)
