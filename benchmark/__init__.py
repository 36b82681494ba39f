"""The benchmark harness: protocols, splits, fidelity metrics, downstream detectors, results.

Kept import-light: heavy libraries load inside the functions that need them.
"""
