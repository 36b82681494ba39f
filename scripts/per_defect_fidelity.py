"""Per-defect-type table of a fidelity metric over the result records below one or more folders.

The leaderboard and ``benchmark table`` show a category's value (the mean over its defect types). A
diagnostic like label fidelity is read per defect type: a synthesizer can keep large defects visible
and lose the thin ones, which the category's mean hides. Every record keeps each repetition's
per-defect values (``repetitions[i].fidelity[j].per_defect``); this prints, per (dataset, category),
one row per synthesizer and one column per defect type: mean ± standard deviation over the
repetitions (sample std, ``ddof=1``; a plain mean with one repetition).

    .venv/bin/python scripts/per_defect_fidelity.py runs/v2/results --metric label-fidelity
    .venv/bin/python scripts/per_defect_fidelity.py runs/v2/results runs/other/results --metric colour-added-share
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.results import ResultRecord  # noqa: E402
from benchmark.statistics import summarize  # noqa: E402

Values = dict[str, list[float]]  # defect type -> one value per repetition


def per_defect_values(record: ResultRecord, metric: str) -> Values:
    """``{defect: [value of repetition 0, 1, ...]}`` of ``metric``; defects without a value are left out."""
    values: Values = defaultdict(list)
    for repetition in record.repetitions:
        for result in repetition.fidelity:
            if result.id == metric and result.computed:
                for defect, value in (result.per_defect or {}).items():
                    if value is not None:
                        values[defect].append(float(value))
    return dict(values)


def format_cell(values: list[float], digits: int = 3) -> str:
    """``mean ± sample std`` (the spread of the values, not an interval); the mean alone for one value."""
    if not values:
        return "–"
    summary = summarize(values)
    if summary.std is None:
        return f"{summary.mean:.{digits}f}"
    return f"{summary.mean:.{digits}f} ± {summary.std:.{digits}f}"


def table(records: list[ResultRecord], metric: str) -> str:
    """Markdown tables, one per (dataset, category), synthesizers sorted by name and version."""
    groups: dict[tuple[str, str], list[ResultRecord]] = defaultdict(list)
    for record in records:
        if record.synthesizer is not None:
            groups[(record.dataset.name, record.dataset.category)].append(record)
    out = []
    for (dataset, category), group in sorted(groups.items()):
        rows = {(r.synthesizer.meta.name, r.synthesizer.meta.version): per_defect_values(r, metric) for r in group}
        defects = sorted({d for values in rows.values() for d in values})
        if not defects:
            continue
        out.append(f"{dataset} / {category}: {metric} per defect type (mean ± std over repetitions, n)")
        out.append("| synthesizer | " + " | ".join(defects) + " | n |")
        out.append("|---|" + "---:|" * (len(defects) + 1))
        for (name, version), values in sorted(rows.items()):
            n = max((len(v) for v in values.values()), default=0)
            out.append(f"| `{name}` ({version}) | " + " | ".join(format_cell(values.get(d, [])) for d in defects)
                       + f" | {n} |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    from benchmark.compare import load_records

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="folders searched recursively for result JSON")
    parser.add_argument("--metric", default="label-fidelity", help="a fidelity metric id (default: label-fidelity)")
    args = parser.parse_args(argv)
    records = [record for folder in args.results for record in load_records(folder)]
    text = table(records, args.metric)
    if not text:
        print(f"no record below {', '.join(map(str, args.results))} has per-defect values of {args.metric}",
              file=sys.stderr)
        return 1
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
