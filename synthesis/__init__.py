"""Anomaly synthesizers behind one contract (see :mod:`synthesis.contract`).

>>> from synthesis import registry
>>> registry.available()  # doctest: +SKIP
['axf', 'croppaste', 'cutpaste', 'perlin', ...]
"""
