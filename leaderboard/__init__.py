"""The leaderboard: submitted benchmark results in a layout that says what each file is.

``leaderboard/results/<synthesizer>/<version>/<protocol slug>/<dataset>/<category>.json`` holds one
:class:`benchmark.results.ResultRecord`; ``<synthesizer>/<version>/meta.json`` describes that
synthesizer version (:mod:`leaderboard.meta`). ``python -m leaderboard validate`` checks the folder
rule by rule (:mod:`leaderboard.validate`), ``submit`` adds a run's results, ``render`` writes
``README.md``, ``index.html`` and ``plots/`` from the records, byte for byte reproducibly.
"""
