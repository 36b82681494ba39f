"""Synthesizers by name.

An entry names its class lazily ("module:Class") so listing needs no torch import, plus config
overrides, which is how ablations are registered as their own names. Adding a synthesizer is
one module and one :func:`register` call; the contract tests run for every registered name.
Installed packages add theirs through the ``mvtec_caption_bench.synthesizers`` entry-point group,
and a class can be named as ``package.module:ClassName`` (:mod:`synthesis.plugins`); both are
checked against the contract by :func:`resolve` before a run uses them.
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
    origin: str = ""  # plugins: the entry point or class spec it came from

    def load_class(self) -> type[Synthesizer]:
        if self.origin:  # a plugin: import and contract problems become one clear PluginError
            from synthesis import plugins

            cls = plugins.import_target(self.target, self.origin)
            plugins.check_synthesizer_class(cls, self.origin)
            return cls
        module_name, _, class_name = self.target.partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        if not (isinstance(cls, type) and issubclass(cls, Synthesizer)):
            raise TypeError(f"{self.target} is not a Synthesizer subclass")
        return cls


_REGISTRY: dict[str, RegisteredSynthesizer] = {}


def register(name: str, target: str, *, overrides: dict[str, Any] | None = None,
             ablation_of: str | None = None, summary: str = "", origin: str = "") -> RegisteredSynthesizer:
    """Register ``target`` under ``name``; re-registering the same name with another target fails."""
    entry = RegisteredSynthesizer(name, target, dict(overrides or {}), ablation_of, summary, origin)
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
        hint = f" ({PLUGIN_PROBLEMS[name]})" if name in PLUGIN_PROBLEMS else ""
        raise KeyError(f"unknown synthesizer {name!r}{hint}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def resolve(name_or_class: str) -> str:
    """The registered name of a synthesizer given by name or as ``package.module:ClassName``, checked against
    the contract when it is a plugin (:class:`synthesis.plugins.PluginError` says what is missing)."""
    from synthesis import plugins

    _load_builtins()
    if name_or_class not in _REGISTRY and plugins.is_class_spec(name_or_class):
        origin = f"--synth {name_or_class}"
        cls = plugins.import_target(name_or_class, origin)
        plugins.check_synthesizer_class(cls, origin)
        name = plugins.name_for_class(cls.__name__)
        if name in _REGISTRY and _REGISTRY[name].target != name_or_class:
            raise plugins.PluginError(f"{origin}: its name {name!r} is already taken by {_REGISTRY[name].target}")
        register(name, name_or_class, summary=f"plugin class {name_or_class}: {cls.description}", origin=origin)
        return name
    item = entry(name_or_class)
    item.load_class()  # plugins are imported and checked against the contract here
    return item.name


def create(name: str, config: dict[str, Any] | None = None, device: str = "cpu") -> Synthesizer:
    """Instantiate a registered synthesizer; ``config`` overrides the entry's defaults."""
    item = entry(name)
    cls = item.load_class()
    values = {**item.overrides, **(config or {})}
    return cls(name=name, config=cls.Config(**values), device=device, ablation_of=item.ablation_of)


def describe(name: str) -> SynthesizerMeta:
    return create(name).meta


_BUILTINS_LOADED = False
#: Entry points that could not be registered (a name taken by a built-in synthesizer), by name.
PLUGIN_PROBLEMS: dict[str, str] = {}


def _load_builtins() -> None:
    """Import the modules that register the built-in synthesizers, then list the entry points (once)."""
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    importlib.import_module("synthesis.builtin")
    _load_entry_points()


def _load_entry_points() -> None:
    """Register installed plugins by name without importing them (listing stays cheap); :func:`resolve`
    imports and checks one when a run asks for it."""
    from synthesis import plugins

    for ep in plugins.group_entry_points(plugins.SYNTHESIZER_GROUP):
        origin = plugins.describe_entry_point(ep)
        if ep.name in _REGISTRY and _REGISTRY[ep.name].target != ep.value:
            PLUGIN_PROBLEMS[ep.name] = f"{origin} ignored: the name is taken by {_REGISTRY[ep.name].target}"
            continue
        register(ep.name, ep.value, summary=f"plugin ({origin})", origin=origin)
