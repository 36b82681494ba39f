"""``python -m leaderboard render``: deterministic README.md, index.html and PNG plots; one table group per
protocol and dataset; non-comparable results apart; demo data never shown."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from leaderboard_helpers import make_board, make_record, populate, sample_records

from benchmark.protocols import get_protocol
from leaderboard.cli import main
from leaderboard.render import InvalidLeaderboardError, render_outputs, stale_outputs, write_outputs
from leaderboard.render_markdown import render_markdown
from leaderboard.tables import build_sections
from leaderboard.validate import validate_tree

pytestmark = pytest.mark.usefixtures("pinned_clip")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("render")
    return populate(make_board(tmp), tmp)


@pytest.fixture(scope="module")
def outputs(board: Path) -> dict[str, bytes]:
    return render_outputs(validate_tree(board))


def _section(readme: str, title: str) -> str:
    start = readme.index(f"## {title}\n")
    end = readme.find("\n## ", start + 1)
    return readme[start:end]


def test_rendering_twice_gives_identical_bytes(board: Path, outputs: dict[str, bytes]) -> None:
    again = render_outputs(validate_tree(board))
    assert list(again) == list(outputs)
    assert {"README.md", "index.html"} <= set(outputs)
    pngs = [path for path in outputs if path.endswith(".png")]
    assert {Path(p).name for p in pngs} == {"pixel_ap_per_category.png", "fidelity_vs_downstream.png"}
    assert len(pngs) == 6  # two plots for each of the three (protocol, dataset) sections
    for path, data in outputs.items():
        assert again[path] == data, f"{path} differs between two renders"


def test_a_fresh_process_renders_the_same_bytes(tmp_path: Path, board: Path, outputs: dict[str, bytes]) -> None:
    """Same inputs, same bytes, also across processes (fonts, caches and matplotlib state start cold)."""
    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path / "mpl"), "PYTHONHASHSEED": "12345",
           "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)])}
    # `python -m leaderboard render`, with the test pin of CLIP the board's comparable rows need
    script = ("import sys; from leaderboard_helpers import clip_pinned_for_tests; from leaderboard.cli import main\n"
              "with clip_pinned_for_tests():\n    sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", script, "render", "--root", str(board)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert stale_outputs(board, outputs) == []
    assert main(["render", "--check", "--root", str(board)]) == 0


def test_pngs_carry_no_software_version_or_timestamp(outputs: dict[str, bytes]) -> None:
    for path, data in outputs.items():
        if path.endswith(".png"):
            assert data.startswith(b"\x89PNG") and b"Software" not in data and b"tIME" not in data, path
            assert b"matplotlib" not in data.lower()


def test_one_section_per_protocol_and_dataset_never_mixed(board: Path, outputs: dict[str, bytes]) -> None:
    sections = build_sections([r for _, r in validate_tree(board).records()], {})
    assert [s.title for s in sections] == ["mvtec-caption-cpu/v1 · mvtec_ad", "mvtec-caption-cpu/v1 · mvtec_loco",
                                          "mvtec-caption/v1 · mvtec_ad"]
    for section in sections:
        assert {r.protocol.id for r in section.records()} == {section.protocol.id}
        assert {r.dataset.name for r in section.records()} == {section.dataset}
    readme = outputs["README.md"].decode()
    gpu = _section(readme, "mvtec-caption/v1 · mvtec_ad")
    assert "cutpaste" not in gpu.split("### Plots")[0]  # cutpaste only ran the CPU protocol
    assert "hazelnut" not in gpu  # and the GPU protocol only bottle


def test_tables_means_and_per_category(outputs: dict[str, bytes]) -> None:
    readme = outputs["README.md"].decode()
    cpu = _section(readme, "mvtec-caption-cpu/v1 · mvtec_ad")
    for heading in ("**Downstream detectors**", "**Fidelity**", "**Caption faithfulness**", "<summary>Per category</summary>",
                    "**unet P-AP**", "**ic-lpips-ad**", "| synthesizer | bottle | cable | hazelnut | mean |"):
        assert heading in cpu
    records = [r for r in sample_records() if r.protocol.id == "mvtec-caption-cpu/v1" and r.dataset.name == "mvtec_ad"
               and r.synthesizer_name == "axf"]
    mean = sum(next(d for d in r.detectors if d.name == "unet").overall.pixel_ap for r in records) / len(records)
    row = next(line for line in cpu.splitlines() if line.startswith("| axf v1 | yes | yes | yes | 3/3 |"))
    assert f"{mean:.3f}" in row


def test_non_comparable_results_are_separated_and_marked(outputs: dict[str, bytes]) -> None:
    cpu = _section(outputs["README.md"].decode(), "mvtec-caption-cpu/v1 · mvtec_ad")
    comparable, rest = cpu.split("### Not comparable with published values †")
    comparable = comparable.split("### Comparable results")[1]
    assert "perlin" not in comparable and "axf v1" in comparable
    means = rest.split("### Per category")[0]
    assert "perlin v1 † | no | no | no | 3/3" in means and "axf v1" not in means
    assert "- is not comparable: reference Inception weights not available; substitute network (perlin v1 †)" in means


def test_each_section_says_how_it_was_made(outputs: dict[str, bytes]) -> None:
    cpu = _section(outputs["README.md"].decode(), "mvtec-caption-cpu/v1 · mvtec_ad")
    made = cpu.split("### How it was made")[1].split("### Comparable results")[0]
    assert get_protocol("mvtec-caption-cpu/v1").config_hash in made
    assert "**Seeds:** detector=0, generation=0" in made
    assert "lpips-alex-heads-v0.1 sha256 df73285e35b2" in made and "torch 2.14.1" in made
    assert "plots/mvtec-caption-cpu--v1/mvtec_ad/pixel_ap_per_category.png" in cpu
    html = outputs["index.html"].decode()
    assert get_protocol("mvtec-caption-cpu/v1").config_hash in html


def test_demo_results_are_never_shown() -> None:
    demo = make_record("axf", "1", "bottle", comparable=False)
    demo = demo.model_copy(update={"dataset": demo.dataset.model_copy(update={"is_demo": True, "name": "demo"})})
    smoke = make_record("axf", "1", "bottle", protocol_id="mvtec-caption-smoke/v1", comparable=False)
    real = make_record("cutpaste", "2", "bottle")
    sections = build_sections([demo, smoke, real], {})
    assert [s.title for s in sections] == ["mvtec-caption-cpu/v1 · mvtec_ad"]
    readme = render_markdown(sections, {}, {})
    assert "axf" not in readme and "smoke" not in readme and "demo ·" not in readme and "cutpaste v2" in readme


def test_the_html_page_is_self_contained(outputs: dict[str, bytes]) -> None:
    html = outputs["index.html"].decode()
    assert 'class="sortable"' in html and "<script>" in html and "Content-Security-Policy" in html
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith(("#", "plots/")) for s in sources), sources
    assert "http://" not in html.split("<body>")[0] and "https://" not in html.split("<body>")[0]


def test_an_empty_leaderboard_says_so_and_how_to_submit(tmp_path: Path) -> None:
    root = make_board(tmp_path)
    outputs = render_outputs(validate_tree(root))
    assert set(outputs) == {"README.md", "index.html"}
    readme = outputs["README.md"].decode()
    assert "**No results yet.**" in readme and "## How to submit" in readme and "python -m leaderboard submit" in readme
    assert "`names-match`" in readme  # the rule list is rendered from the registry
    assert 'id="no-results"' in outputs["index.html"].decode()


def test_render_refuses_an_invalid_leaderboard_and_check_finds_stale_files(tmp_path: Path) -> None:
    root = populate(make_board(tmp_path), tmp_path, [make_record("axf", "1", "bottle"), make_record(None, "0", "bottle")])
    assert main(["render", "--check", "--root", str(root)]) == 1  # never rendered
    assert main(["render", "--root", str(root)]) == 0
    assert main(["render", "--check", "--root", str(root)]) == 0
    (root / "README.md").write_text("hand edit\n")
    orphan = root / "plots" / "old-protocol--v1" / "mvtec_ad" / "pixel_ap_per_category.png"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"old")
    outputs = render_outputs(validate_tree(root))
    assert stale_outputs(root, outputs) == ["README.md", "plots/old-protocol--v1/mvtec_ad/pixel_ap_per_category.png"]
    assert write_outputs(root, outputs) and not orphan.parent.parent.exists()
    assert stale_outputs(root, outputs) == []
    (root / "results" / "axf" / "1" / "meta.json").unlink()
    with pytest.raises(InvalidLeaderboardError, match="meta-present"):
        render_outputs(validate_tree(root))
    assert main(["render", "--root", str(root)]) == 1


HOSTILE = {
    "description": "Fast <script>alert('description')</script> *bold* _it_ `code` ~~gone~~ \\ &lt;b&gt;",
    "authors": ["<img src=x onerror=alert('authors')>", "Eve | extra cell"],
    "code": "[click me](javascript:alert('code'))",
    "compute": "![tracker](https://evil.example/pixel.png) 2 cores\n# a heading\n<iframe src=x>",
}


def test_free_text_from_records_and_meta_is_inert_in_the_markdown(tmp_path: Path) -> None:
    """Raw HTML, links, images and pipes from meta.json or a record reach README.md escaped, as in index.html."""
    from markdown_it import MarkdownIt

    note = "weights missing <script>alert('note')</script> [x](javascript:alert(1)) | cell"
    cpu = make_record("perlin", "1", "bottle", comparable=False)
    cpu = cpu.model_copy(update={"comparable_notes": [note],
                                 "environment": cpu.environment.model_copy(update={"cpu": "EPYC <b onmouseover=x>\n## h"})})
    root = populate(make_board(tmp_path), tmp_path, [cpu, make_record(None, "0", "bottle")])
    meta = root / "results" / "perlin" / "1" / "meta.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), **HOSTILE}))
    assert validate_tree(root).ok
    outputs = render_outputs(validate_tree(root))
    readme = outputs["README.md"].decode()
    rendered = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(readme)
    assert not re.search(r"<[^>]*onerror", rendered)
    for active in ("<script", "<img src=x", "<iframe", "<b onmouseover", "<b>", 'href="javascript',
                   'src="https://evil', "<em>bold", "<em>it", "<s>gone", "<h1>a heading", "<h2>h</h2>"):
        assert active not in rendered, active
    # the texts are still there, readable as written
    for text in ("&lt;script&gt;alert('description')&lt;/script&gt;", "onerror=alert('authors')",
                 "[click me](javascript:alert('code'))", "*bold* _it_ `code` ~~gone~~", "&amp;lt;b&amp;gt;"):
        assert text in rendered, text
    # a pipe in a cell does not add a column: every row of the synthesizers table has its 9 cells
    table = rendered.split("<h2>Synthesizers</h2>")[1].split("</table>")[0]
    assert [row.count("<td") for row in table.split("<tr>")[2:]] == [9, 9]
    html = outputs["index.html"].decode()
    assert "<script>alert" not in html and "<img src=x" not in html and "&lt;script&gt;alert(&#x27;description" in html
