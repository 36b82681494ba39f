"""Third-party synthesizers without forking: ``package.module:ClassName`` and an entry-point group.

A package adds synthesizers by declaring them in the ``mvtec_caption_bench.synthesizers`` entry-point
group of its ``pyproject.toml`` (``my-synth = "my_package.module:MySynthesizer"``); once it is
installed, its names are listed and usable like the built-in ones. A class can also be named directly
as ``--synth my_package.module:MySynthesizer`` (registered under :func:`name_for_class`).

Either way the class is checked against the contract before any work (:func:`check_synthesizer_class`)
and a :class:`PluginError` names everything that is missing, so a broken plugin fails in one line
instead of in the middle of a run.
"""

from __future__ import annotations

import importlib
import re
from importlib.metadata import EntryPoint, entry_points
from typing import Any

SYNTHESIZER_GROUP = "mvtec_caption_bench.synthesizers"
DETECTOR_GROUP = "mvtec_caption_bench.detectors"
CLASS_SPEC = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_]\w*$")


class PluginError(ValueError):
    """A plugin could not be loaded or does not satisfy its contract (the message says what is missing)."""


def is_class_spec(text: str) -> bool:
    """``package.module:ClassName`` (and not ``folder:PATH``, which names an external set)."""
    return bool(CLASS_SPEC.match(text)) and not text.startswith("folder:")


def name_for_class(class_name: str) -> str:
    """The registry name of a class given as ``module:ClassName``: kebab case (``BlurSynthesizer`` -> ``blur-synthesizer``)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", class_name).lower()


def group_entry_points(group: str) -> list[EntryPoint]:
    return sorted(entry_points(group=group), key=lambda ep: ep.name)


def describe_entry_point(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    where = f" of distribution {dist.name} {dist.version}" if dist is not None else ""
    return f"entry point {ep.name!r} ({ep.value}){where} in group {ep.group}"


def import_target(target: str, origin: str) -> Any:
    """The object ``module:attribute`` names, or a :class:`PluginError` saying what could not be found."""
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise PluginError(f"{origin}: cannot import module {module_name!r} ({type(err).__name__}: {err})") from err
    except Exception as err:  # noqa: BLE001 - a plugin module failing at import is reported, not a traceback
        raise PluginError(f"{origin}: importing module {module_name!r} failed ({type(err).__name__}: {err})") from err
    if not hasattr(module, attribute):
        raise PluginError(f"{origin}: module {module_name!r} has no attribute {attribute!r}")
    return getattr(module, attribute)


def _abstract(cls: type) -> list[str]:
    return sorted(getattr(cls, "__abstractmethods__", ()))


def _config_problems(cls: type, base_config: type) -> list[str]:
    from pydantic import BaseModel

    config = getattr(cls, "Config", None)
    if not (isinstance(config, type) and issubclass(config, base_config)):
        what = "a pydantic model" if base_config is BaseModel else f"a subclass of {base_config.__module__}.{base_config.__name__}"
        return [f"Config ({what} class declaring the settings) is missing" if config is None
                else f"Config is {config!r}, not {what} class"]
    return []


def check_synthesizer_class(cls: Any, origin: str) -> None:
    """Raise :class:`PluginError` naming every way ``cls`` falls short of :class:`synthesis.contract.Synthesizer`."""
    from pydantic import BaseModel, ValidationError

    from synthesis.contract import Synthesizer

    if not (isinstance(cls, type) and issubclass(cls, Synthesizer)):
        raise PluginError(f"{origin}: {cls!r} is not a class derived from synthesis.contract.Synthesizer")
    problems = _config_problems(cls, BaseModel)
    missing = _abstract(cls)
    if missing:
        problems.append(f"method(s) not implemented: {', '.join(f'{m}()' for m in missing)}")
    if not isinstance(cls.description, str) or not cls.description.strip():
        problems.append("description (a one-line class attribute saying what it does) is missing")
    if not isinstance(cls.version, str) or not cls.version:
        problems.append("version (a class attribute string) is missing")
    for flag in ("uses_text", "uses_masks", "uses_real_anomalies", "keeps_outside_mask"):
        if not isinstance(getattr(cls, flag, None), bool):
            problems.append(f"{flag} must be a bool class attribute")
    if not problems:
        try:
            cls.Config()
        except ValidationError as err:
            fields = ", ".join(str(e["loc"][0]) for e in err.errors() if e.get("loc"))
            problems.append(f"Config() fails without arguments (give every setting a default): {fields or err}")
    if problems:
        raise PluginError(f"{origin}: {cls.__module__}.{cls.__name__} does not satisfy the synthesis contract: "
                          + "; ".join(problems))


def check_detector_class(cls: Any, origin: str, expected_name: str | None = None) -> None:
    """Raise :class:`PluginError` naming every way ``cls`` falls short of :class:`benchmark.detectors.base.Detector`."""
    from benchmark.detectors.base import Detector, DetectorConfig

    if not (isinstance(cls, type) and issubclass(cls, Detector)):
        raise PluginError(f"{origin}: {cls!r} is not a class derived from benchmark.detectors.base.Detector")
    problems = _config_problems(cls, DetectorConfig)
    missing = _abstract(cls)
    if missing:
        problems.append(f"method(s) not implemented: {', '.join(f'{m}()' for m in missing)}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        problems.append("name (a class attribute string, the detector's registry name) is missing")
    elif expected_name is not None and name != expected_name:
        problems.append(f"its name {name!r} differs from the entry point's name {expected_name!r}")
    if not isinstance(getattr(cls, "uses_synthesis", None), bool):
        problems.append("uses_synthesis (a bool class attribute: trains on generated sets or not) is missing")
    if problems:
        raise PluginError(f"{origin}: {cls.__module__}.{cls.__name__} does not satisfy the detector contract: "
                          + "; ".join(problems))
