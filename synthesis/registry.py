"""Synthesizers by name.

An entry names its class lazily ("module:Class") so listing needs no torch import, plus config
overrides, which is how ablations are registered as their own names. Adding a synthesizer is
one module and one :func:`register` call; the contract tests run for every registered name.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from synthesis.contract import Synthesizer, SynthesizerMeta


@dataclass(frozen=True)
class RegisteredSynthesizer:
    name: str
    target: str  # "package.module:ClassName"
    overrides: dict[str, Any] = field(default_factory=dict)
    ablation_of: str | None = None
    summary: str = ""

    def load_class(self) -> type[Synthesizer]:
        module_name, _, class_name = self.target.partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        if not (isinstance(cls, type) and issubclass(cls, Synthesizer)):
            raise TypeError(f"{self.target} is not a Synthesizer subclass")
        return cls


_REGISTRY: dict[str, RegisteredSynthesizer] = {}


def register(name: str, target: str, *, overrides: dict[str, Any] | None = None,
             ablation_of: str | None = None, summary: str = "") -> RegisteredSynthesizer:
    """Register ``target`` under ``name``; re-registering the same name with another target fails."""
    entry = RegisteredSynthesizer(name, target, dict(overrides or {}), ablation_of, summary)
    if name in _REGISTRY and _REGISTRY[name] != entry:
        raise ValueError(f"synthesizer {name!r} is already registered as {_REGISTRY[name].target}")
    _REGISTRY[name] = entry
    return entry


def available() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def entry(name: str) -> RegisteredSynthesizer:
    _load_builtins()
    if name not in _REGISTRY:
        raise KeyError(f"unknown synthesizer {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create(name: str, config: dict[str, Any] | None = None, device: str = "cpu") -> Synthesizer:
    """Instantiate a registered synthesizer; ``config`` overrides the entry's defaults."""
    item = entry(name)
    cls = item.load_class()
    values = {**item.overrides, **(config or {})}
    return cls(name=name, config=cls.Config(**values), device=device, ablation_of=item.ablation_of)


def describe(name: str) -> SynthesizerMeta:
    return create(name).meta


_BUILTINS_LOADED = False


def _load_builtins() -> None:
    """Import the modules that register the built-in synthesizers (once)."""
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    importlib.import_module("synthesis.builtin")
