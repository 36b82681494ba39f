"""``meta.json``: what a synthesizer version is, who made it and what it needed.

The result records say *what* was measured; this sidecar says what a reader needs to weigh the
numbers: authors, paper or code, whether the method uses text, masks and real anomalies (and how
many), and the compute it took. ``submit`` pre-fills it from the records and marks with
``TODO`` what only the submitter can know; ``validate`` refuses a leaderboard until those are
filled and checks the flags agree with every record in the folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from benchmark import strict_json
from benchmark.results import NO_SYNTHESIS, ResultRecord
from mvtec_caption.migrations import Migrations

META_SCHEMA_VERSION = 1
#: Values starting with this are placeholders the submitter must replace.
TODO = "TODO"


class SynthesizerVersionMeta(BaseModel):
    """Metadata of one synthesizer version (``results/<synthesizer>/<version>/meta.json``)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = META_SCHEMA_VERSION
    name: str = Field(description="Registered synthesizer name; equals the folder name.")
    version: str = Field(description="Synthesizer version; equals the folder name.")
    description: str
    authors: list[str] = Field(min_length=1, description="People or group responsible for the method and the runs.")
    paper: str | None = Field(description="Paper link (DOI, arXiv), or null when there is none.")
    code: str | None = Field(description="Code link (repository at a commit), or null when there is none.")
    uses_text: bool = Field(description="Conditions on the defect captions.")
    uses_masks: bool = Field(description="Uses the planned masks (False: makes its own, e.g. Perlin noise).")
    uses_real_anomalies: bool = Field(description="Learns from the few-shot training third's real anomalies.")
    real_anomalies: str = Field(description="How many real anomalies it learns from, e.g. 'none' or "
                                            "'the protocol's few-shot training third of each defect type'.")
    keeps_outside_mask: bool
    ablation_of: str | None = None
    compute: str = Field(description="Hardware and time used, e.g. '1x A100 40 GB, about 2 h per category'.")
    notes: str | None = None

    @model_validator(mode="after")
    def _paper_or_code(self) -> SynthesizerVersionMeta:
        if not self.paper and not self.code:
            raise ValueError("give a paper or a code link (or both)")
        return self

    def placeholders(self) -> list[str]:
        """Fields still holding a ``TODO`` placeholder."""
        found = []
        for key, value in self.model_dump().items():
            values = value if isinstance(value, list) else [value]
            if any(isinstance(v, str) and v.strip().upper().startswith(TODO) for v in values):
                found.append(key)
        return found

    def disagreements(self, record: ResultRecord) -> list[str]:
        """How this metadata contradicts ``record`` (empty when consistent)."""
        expected = expected_flags(record)
        mine = self.model_dump()
        problems = [f"meta.json has {key}={mine[key]!r} but the record says {value!r}"
                    for key, value in expected.items() if mine[key] != value]
        if record.synthesizer and not self.uses_real_anomalies and record.synthesizer.fit.real_anomalies_seen:
            problems.append(f"meta.json says uses_real_anomalies=false but the fit saw "
                            f"{record.synthesizer.fit.real_anomalies_seen} real anomalies")
        return problems


def expected_flags(record: ResultRecord) -> dict[str, Any]:
    """The meta fields a record determines (the reference row uses nothing)."""
    if record.synthesizer is None:
        return {"name": NO_SYNTHESIS, "version": record.synthesizer_version, "uses_text": False, "uses_masks": False,
                "uses_real_anomalies": False, "ablation_of": None}
    meta = record.synthesizer.meta
    return {"name": meta.name, "version": meta.version, "uses_text": meta.uses_text, "uses_masks": meta.uses_masks,
            "uses_real_anomalies": meta.uses_real_anomalies, "keeps_outside_mask": meta.keeps_outside_mask,
            "ablation_of": meta.ablation_of}


def draft_meta(record: ResultRecord) -> SynthesizerVersionMeta:
    """A meta.json pre-filled from the record; fields only the submitter knows start with ``TODO``."""
    todo = f"{TODO}: "
    if record.synthesizer is None:
        return SynthesizerVersionMeta(
            name=NO_SYNTHESIS, version=record.synthesizer_version,
            description="Reference row: the detectors trained without synthesized anomalies.",
            authors=[todo + "maintainers of the benchmark"], paper=None, code=todo + "link to the benchmark's code",
            uses_text=False, uses_masks=False, uses_real_anomalies=False, real_anomalies="none",
            keeps_outside_mask=True, compute=todo + "hardware and time per category",
        )
    meta = record.synthesizer.meta
    return SynthesizerVersionMeta(
        name=meta.name, version=meta.version, description=meta.description or todo + "one-line description",
        authors=[todo + "authors of the method and of these runs"],
        paper=meta.reference or todo + "paper link, or null",
        code=todo + "code link (repository at a commit), or null",
        uses_text=meta.uses_text, uses_masks=meta.uses_masks, uses_real_anomalies=meta.uses_real_anomalies,
        real_anomalies=(todo + "how many real anomalies per defect type (e.g. the protocol's few-shot training third)")
        if meta.uses_real_anomalies else "none",
        keeps_outside_mask=meta.keeps_outside_mask, ablation_of=meta.ablation_of,
        compute=todo + "hardware and time per category (fit + generation)",
    )


meta_migrations = Migrations(what="leaderboard meta.json", current=META_SCHEMA_VERSION)


def parse_meta(data: Any) -> SynthesizerVersionMeta:
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    return SynthesizerVersionMeta.model_validate(meta_migrations.upgrade(data))


def load_meta(path: Path) -> SynthesizerVersionMeta:
    return parse_meta(strict_json.loads(Path(path).read_text(encoding="utf-8")))


def dump_meta(meta: SynthesizerVersionMeta) -> str:
    """Fields in model order (reads top to bottom like a form), two-space indent, trailing newline; standard JSON."""
    return strict_json.dumps(meta.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"
