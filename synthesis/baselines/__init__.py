"""Baseline synthesizers of the literature: Perlin (DRAEM), CutPaste, Crop&Paste."""
