"""The report ontology: per class a group name, subtypes, synonyms, typical findings,
location notes and which lateralities / lobes / zones apply, plus shared confidence phrases and
report skeletons.

It also holds the finding vocabulary (``findings``: per finding its terms, optional regular
expressions, and the classes it supports) that the finding extractor (``harness.text.findings``)
reads. The built-in one is ``ontology.toml`` next to this module; ``load_ontology`` reads a user
TOML/JSON file of the same shape (classes it leaves out fall back to the built-in ones; so does
the whole finding vocabulary when it has no ``findings`` table).
``class_keywords(label)`` (group name + subtypes, lowercase) is what the synthesizers and the
text audit use to detect texts that mention another class.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from harness.core.errors import OptionError, SynthesisError

_SLOT_NAMES = ("finding", "location", "confidence", "synonym", "synonym2")
_PLACE_NAMES = ("laterality", "lobe", "zone")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_LIST_FIELDS = ("subtypes", "synonyms", "findings", "locations", "lateralities", "lobes", "zones")


@dataclass(frozen=True)
class ClassEntry:
    """One class of the ontology."""

    label: str
    group: str
    subtypes: tuple[str, ...]
    synonyms: tuple[str, ...]
    findings: tuple[str, ...]
    locations: tuple[str, ...]
    lateralities: tuple[str, ...]
    lobes: tuple[str, ...]
    zones: tuple[str, ...]

    @property
    def keywords(self) -> set[str]:
        return {self.group.lower(), *(s.lower() for s in self.subtypes)}


@dataclass(frozen=True)
class FindingEntry:
    """One finding of the extractor's vocabulary."""

    key: str
    name: str
    terms: tuple[str, ...]
    patterns: tuple[str, ...]
    classes: tuple[str, ...]  # the classes whose reports this finding supports


@dataclass(frozen=True)
class Ontology:
    """Classes plus shared confidence phrases, report skeletons and the finding vocabulary."""

    classes: dict[str, ClassEntry]
    confidence: tuple[str, ...]
    templates: tuple[tuple[str, ...], ...]
    source: str
    findings: dict[str, FindingEntry] = dataclasses.field(default_factory=dict)

    def class_findings(self, label: str) -> tuple[str, ...]:
        """Keys of the findings that support ``label`` (none for a normal class)."""
        return tuple(k for k, f in self.findings.items() if label in f.classes)

    def entry(self, label: str) -> ClassEntry:
        try:
            return self.classes[label]
        except KeyError:
            raise SynthesisError(
                f"No ontology entry for class {label!r} in {self.source}; "
                f"known: {', '.join(self.classes)}."
            ) from None


def _str_list(raw: Any, where: str, source: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise OptionError(f"ontology {source}: {where} must be a list of strings.")
    return tuple(x.strip() for x in raw if x.strip())


def _check_placeholders(text: str, allowed: set[str], where: str, source: str) -> None:
    unknown = set(_PLACEHOLDER.findall(text)) - allowed
    if unknown or text.count("{") != text.count("}"):
        raise OptionError(
            f"ontology {source}: {where} has unknown or broken placeholders "
            f"{sorted(unknown) or text!r}; allowed: {sorted(allowed)}."
        )


def _parse(data: Any, source: str, fallback: Ontology | None) -> Ontology:
    if not isinstance(data, dict) or not isinstance(data.get("classes"), dict):
        raise OptionError(f"ontology {source}: expected a top-level 'classes' table.")
    shared = data.get("shared") or {}
    if fallback is not None:
        confidence = fallback.confidence
        templates: tuple[tuple[str, ...], ...] = fallback.templates
    if "confidence" in shared or fallback is None:
        confidence = _str_list(shared.get("confidence"), "shared.confidence", source)
    if "templates" in shared or fallback is None:
        raw_templates = shared.get("templates")
        if not isinstance(raw_templates, list) or not raw_templates:
            raise OptionError(f"ontology {source}: shared.templates must be a non-empty list.")
        templates = tuple(
            _str_list(t, f"shared.templates[{i}]", source) for i, t in enumerate(raw_templates)
        )
    if not confidence:
        raise OptionError(f"ontology {source}: shared.confidence is empty.")
    for i, tpl in enumerate(templates):
        if not tpl or "{finding}" not in tpl:
            raise OptionError(f"ontology {source}: template {i} needs a '{{finding}}' sentence.")
        for sentence in tpl:
            _check_placeholders(sentence, set(_SLOT_NAMES), f"template {i}", source)

    classes: dict[str, ClassEntry] = {}
    for label, raw in data["classes"].items():
        if not isinstance(raw, dict) or not isinstance(raw.get("group"), str):
            raise OptionError(f"ontology {source}: class {label!r} needs a 'group' string.")
        lists = {f: _str_list(raw.get(f, []), f"{label}.{f}", source) for f in _LIST_FIELDS}
        for required in ("synonyms", "findings", "locations"):
            if not lists[required]:
                raise OptionError(f"ontology {source}: class {label!r} has no {required}.")
        bad_sides = set(lists["lateralities"]) - {"right", "left", "bilateral"}
        bad_lobes = set(lists["lobes"]) - {"upper", "middle", "lower"}
        if bad_sides or bad_lobes:
            raise OptionError(
                f"ontology {source}: class {label!r} has unknown lateralities/lobes "
                f"{sorted(bad_sides | bad_lobes)}."
            )
        available = {"laterality"} if lists["lateralities"] else set()
        if lists["lateralities"] and lists["lobes"]:
            available.add("lobe")
        if lists["lateralities"] and lists["zones"]:
            available.add("zone")
        for field in ("synonyms", "findings", "locations"):
            for text in lists[field]:
                _check_placeholders(text, available, f"{label}.{field}", source)
        classes[label] = ClassEntry(label=label, group=raw["group"].strip(), **lists)
    if "findings" in data or fallback is None:
        findings = _parse_findings(data.get("findings"), source)
    else:
        findings = fallback.findings
    return Ontology(
        classes=classes,
        confidence=confidence,
        templates=templates,
        source=source,
        findings=findings,
    )


def _parse_findings(raw: Any, source: str) -> dict[str, FindingEntry]:
    if not isinstance(raw, dict) or not raw:
        raise OptionError(f"ontology {source}: 'findings' must be a non-empty table.")
    findings: dict[str, FindingEntry] = {}
    for key, entry in raw.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise OptionError(f"ontology {source}: finding {key!r} needs a 'name' string.")
        terms = _str_list(entry.get("terms", []), f"findings.{key}.terms", source)
        patterns = _str_list(entry.get("patterns", []), f"findings.{key}.patterns", source)
        classes = _str_list(entry.get("classes", []), f"findings.{key}.classes", source)
        if not terms and not patterns:
            raise OptionError(f"ontology {source}: finding {key!r} has no terms or patterns.")
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise OptionError(
                    f"ontology {source}: findings.{key}.patterns has a bad regex {pattern!r}: "
                    f"{exc}."
                ) from None
        findings[key] = FindingEntry(key, entry["name"].strip(), terms, patterns, classes)
    return findings


@lru_cache(maxsize=1)
def default_ontology() -> Ontology:
    """The built-in ontology shipped as ``ontology.toml``."""
    text = resources.files("harness.text").joinpath("ontology.toml").read_text(encoding="utf-8")
    return _parse(tomllib.loads(text), "built-in ontology.toml", None)


def load_ontology(path: str | Path | None = None) -> Ontology:
    """Load a user ontology (TOML or JSON); ``None`` gives the built-in one.

    A user file must have a ``classes`` table; its ``shared`` section is optional and falls back
    to the built-in confidence phrases and skeletons. Raises ``OptionError`` naming the path.
    """
    if path is None:
        return default_ontology()
    p = Path(path).expanduser()
    if not p.is_file():
        raise OptionError(f"ontology file not found: {str(p)!r}.")
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(p.read_text(encoding="utf-8"))
        else:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise OptionError(f"ontology file {str(p)!r} cannot be parsed: {exc}") from None
    return _parse(data, repr(str(p)), default_ontology())


def class_keywords(label: str, ontology: Ontology | None = None) -> set[str]:
    """Group name and subtypes of ``label``, lowercase."""
    return (ontology or default_ontology()).entry(label).keywords


def keywords_by_class(ontology: Ontology | None = None) -> dict[str, set[str]]:
    """``class_keywords`` for every class of the ontology."""
    onto = ontology or default_ontology()
    return {label: entry.keywords for label, entry in onto.classes.items()}
