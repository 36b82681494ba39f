"""``python -m leaderboard submit | validate | render | rules``.

Every command prints one line per problem (``ERROR <file>: [<rule>] <message>``) and exits
non-zero when there is any, so CI can run ``validate`` and ``render --check`` as they are.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from leaderboard.layout import DEFAULT_ROOT, RESULTS, default_manifest, display
from mvtec_caption.output_folder import OutputKind


def _manifest(args: argparse.Namespace) -> Path | None:
    if args.no_manifest:
        return None
    return Path(args.manifest) if args.manifest else default_manifest(Path(args.root))


#: A folder ``submit`` and ``render`` write into: new, empty, or a leaderboard (it holds ``results/``).
#: No marker is written: the repository's leaderboard folder is also a Python package.
LEADERBOARD_OUTPUT = OutputKind("leaderboard", "root", layout=("*",), requires=(RESULTS,),
                                what=f"a leaderboard folder (one holding {RESULTS}/)")


def _check_root(args: argparse.Namespace) -> None:
    """Refuse a --root that is no leaderboard folder (render would replace its README.md) or lies in or around data."""
    from mvtec_caption.output_folder import check_output_folder, data_roots

    check_output_folder(args.root, LEADERBOARD_OUTPUT, data_roots(), flag="--root")


def _validate(args: argparse.Namespace) -> int:
    from leaderboard.validate import fix_tree, validate_tree

    root = Path(args.root)
    if args.fix:
        for shown in fix_tree(root, _manifest(args)):
            print(f"FIXED {shown}: rewritten at the current schema version")
    report = validate_tree(root, _manifest(args))
    for problem in report.problems:
        print(problem, file=sys.stderr if problem.level == "error" else sys.stdout)
    n_results, n_meta = len(report.records()), len(report.metas())
    if report.ok:
        print(f"OK {display(root / 'results', root)}: {n_results} result(s), {n_meta} meta.json file(s)")
        return 0
    print(f"FAILED {display(root / 'results', root)}: {len(report.errors)} problem(s)", file=sys.stderr)
    return 1


def _submit(args: argparse.Namespace) -> int:
    from leaderboard.submit import submit

    _check_root(args)
    report = submit(Path(args.result_dir), Path(args.root), replace=args.replace, manifest=_manifest(args),
                    dry_run=args.dry_run)
    for skipped in report.skipped:
        print(f"skipped {skipped}")
    for problem in report.problems:
        print(problem, file=sys.stderr if problem.level == "error" else sys.stdout)
    if not report.ok:
        print(f"REFUSED: {len(report.problems)} problem(s); nothing was written", file=sys.stderr)
        return 1
    verb = "would be" if args.dry_run else "were"
    for item in report.planned:
        print(f"{item.action:9s} {display(item.destination, Path(args.root))}")
    for path in report.metas_created:
        print(f"drafted   {display(path, Path(args.root))}: fill the fields marked TODO")
    print(f"{report.count('add')} added, {report.count('replace')} replaced, {report.count('unchanged')} unchanged "
          f"results {verb} in place. Next: fill meta.json TODOs, `python -m leaderboard validate`, "
          "`python -m leaderboard render`.")
    return 0


def _render(args: argparse.Namespace) -> int:
    from leaderboard.render import InvalidLeaderboardError, render_outputs, stale_outputs, write_outputs
    from leaderboard.validate import validate_tree

    root = Path(args.root)
    if not args.check:
        _check_root(args)
    try:
        outputs = render_outputs(validate_tree(root, _manifest(args)))
    except InvalidLeaderboardError as err:
        print(err, file=sys.stderr)
        return 1
    if args.check:
        stale = stale_outputs(root, outputs)
        for path in stale:
            print(f"STALE {display(root / path, root)}: differs from a fresh render", file=sys.stderr)
        if stale:
            print("run `python -m leaderboard render` and commit the result", file=sys.stderr)
            return 1
        print(f"OK: {len(outputs)} rendered file(s) are current")
        return 0
    changed = write_outputs(root, outputs)
    for path in changed:
        print(f"wrote {display(root / path, root)}")
    print(f"{len(changed)} file(s) changed, {len(outputs) - len(changed)} unchanged")
    return 0


def _rules(args: argparse.Namespace) -> int:
    from leaderboard.validate import RULES, rules_markdown

    if args.markdown:
        print(rules_markdown())
    else:
        width = max(len(r.id) for r in RULES)
        for r in RULES:
            print(f"{r.id:{width}s}  {r.stage:6s}  {r.summary}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m leaderboard", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", default=str(DEFAULT_ROOT), help="leaderboard folder (default: %(default)s)")
    common.add_argument("--manifest", help="annotations/manifest.json with the real datasets' caption hashes "
                                           "(default: annotations/manifest.json beside the leaderboard folder)")
    common.add_argument("--no-manifest", action="store_true", help="do not check caption hashes")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("submit", parents=[common], help="check a run's results and copy them into place")
    p.add_argument("result_dir", help="folder with result JSON files written by the benchmark (searched recursively)")
    p.add_argument("--replace", action="store_true", help="replace a different result already at the same path")
    p.add_argument("--dry-run", action="store_true", help="check and report, write nothing")
    p.set_defaults(run=_submit)

    p = commands.add_parser("validate", parents=[common], help="check the whole leaderboard folder")
    p.add_argument("--fix", action="store_true", help="rewrite results stored under an older schema version")
    p.set_defaults(run=_validate)

    p = commands.add_parser("render", parents=[common], help="write README.md, index.html and plots/")
    p.add_argument("--check", action="store_true", help="write nothing; fail when a rendered file is not current")
    p.set_defaults(run=_render)

    p = commands.add_parser("rules", help="list the validation rules")
    p.add_argument("--markdown", action="store_true")
    p.set_defaults(run=_rules)
    return parser


def main(argv: list[str] | None = None) -> int:
    from mvtec_caption.output_folder import OutputFolderError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except OutputFolderError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
