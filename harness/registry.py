"""Name -> component class, per kind. Duplicates fail loudly; unknown names get suggestions."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from harness.components import (
    Augmenter,
    BenchmarkSource,
    Component,
    Metric,
    Options,
    Synthesizer,
    Trainer,
)
from harness.core.errors import OptionError, PluginError, UnknownComponentError

KINDS: dict[str, type[Component]] = {
    "augmenter": Augmenter,
    "synthesizer": Synthesizer,
    "trainer": Trainer,
    "benchmark": BenchmarkSource,
    "metric": Metric,
}


@dataclass(frozen=True)
class Entry:
    """One registered component and where it came from."""

    kind: str
    name: str
    cls: type[Component]
    plugin: str
    distribution: str
    version: str


@dataclass
class Registry:
    """All registered components, keyed by kind then name."""

    entries: dict[str, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})

    def add(self, kind: str, cls: type, plugin: str, distribution: str, version: str) -> None:
        base = KINDS[kind]
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise PluginError(
                f"Plugin {plugin!r} registered {cls!r} as a {kind}, "
                f"but it is not a subclass of {base.__module__}.{base.__name__}."
            )
        name = getattr(cls, "name", "")
        if not name or not isinstance(name, str):
            raise PluginError(f"Plugin {plugin!r} registered a {kind} without a name: {cls!r}.")
        if not (isinstance(cls.Options, type) and issubclass(cls.Options, Options)):
            raise PluginError(f"{kind} {name!r}: Options must subclass harness.components.Options.")
        if cls.Options.model_config.get("extra") != "forbid":
            raise PluginError(f"{kind} {name!r}: Options must forbid unknown keys.")
        existing = self.entries[kind].get(name)
        if existing is not None:
            raise PluginError(
                f"Duplicate {kind} name {name!r}: registered by {existing.plugin!r} "
                f"({existing.distribution}) and by {plugin!r} ({distribution})."
            )
        self.entries[kind][name] = Entry(kind, name, cls, plugin, distribution, version)

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def get(self, kind: str, name: str) -> Entry:
        try:
            return self.entries[kind][name]
        except KeyError:
            known = self.names(kind)
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            raise UnknownComponentError(kind, name, close, known) from None

    def create(self, kind: str, name: str, options: Mapping[str, Any] | None = None) -> Any:
        """Instantiate component ``name`` with validated options (OptionError names bad keys)."""
        entry = self.get(kind, name)
        return entry.cls(validate_options(entry, dict(options or {})))

    def all(self) -> list[Entry]:
        return [e for kind in KINDS for e in sorted(self.entries[kind].values(), key=_by_name)]

    def provenance(self, configurations: Iterable[Any]) -> list[dict[str, str]]:
        """Where each component the configurations use came from, once per (kind, name):
        ``[{kind, name, distribution, version, plugin}]`` sorted by kind and name.

        A configuration has ``trainer``, ``augmenter`` and ``synthesizer`` names; a row whose
        trainer does not train (``base``, ``adapter``) uses its trainer only, as the runner does.
        """
        used: set[tuple[str, str]] = set()
        for config in configurations:
            used.add(("trainer", config.trainer))
            if getattr(config, "trains", config.trainer != "base"):
                used |= {("augmenter", config.augmenter), ("synthesizer", config.synthesizer)}
        out = []
        for kind, name in sorted(used):
            e = self.get(kind, name)
            out.append(
                {
                    "kind": kind,
                    "name": name,
                    "distribution": e.distribution,
                    "version": e.version,
                    "plugin": e.plugin,
                }
            )
        return out


def _by_name(entry: Entry) -> str:
    return entry.name


def validate_options(entry: Entry, values: dict[str, Any]) -> Options:
    """Validate ``values`` against the component's strict Options model."""
    try:
        return entry.cls.Options.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(options)"
            if err["type"] == "extra_forbidden":
                allowed = ", ".join(entry.cls.Options.model_fields)
                hint = (
                    f"allowed: {allowed}"
                    if allowed
                    else f"{entry.kind} {entry.name!r} takes no options; did you mean to pick "
                    f"another {entry.kind} with --{entry.kind}?"
                )
                problems.append(f"unknown option {entry.kind}.{key} ({hint})")
            else:
                got = err.get("input")
                problems.append(f"bad value for {entry.kind}.{key}={got!r}: {err['msg']}")
        raise OptionError(f"{entry.kind} {entry.name!r}: " + "; ".join(problems)) from None
