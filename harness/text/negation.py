"""NegEx/ConText-style context rules: is a term in a report asserted, negated or uncertain?

``assess(text, matcher)`` finds every term of a vocabulary in ``text`` and gives each mention a
``Status``:

- ``negated``: a negation trigger governs it, before it ("no", "without", "negative for",
  "no evidence of", "resolution of") or after it ("is not seen", "has resolved", "unlikely");
- ``uncertain``: an uncertainty trigger governs it, before it ("possible", "may represent",
  "cannot exclude", "suspicious for", "versus") or after it ("cannot be excluded", "is
  suspected");
- ``positive`` otherwise. As in ConText, a *probable* finding ("probable effusion", "likely
  atelectasis", "consistent with pneumonia") is asserted; a finding a sign only *suggests*
  ("hyperexpanded lungs suggesting emphysema", "suggestive of") is uncertain, as in the
  CheXpert labeler's rules for chest X-ray reports.

A trigger's scope is its sentence (split at ``.``, ``!``, ``?`` and line breaks), cut at a
clause boundary (``;``, ``:``) or a terminator ("but", "however", "although", "except", "apart
from", "other than", "there is/are", "which"), and at most ``MAX_SCOPE_WORDS`` words away, so
"No pneumothorax or pleural effusion" negates both findings and "No effusion, but a small
pneumothorax" only the first. Pseudo-triggers ("no change", "no increase", "not only") are
phrases that contain a trigger word without negating anything: "No change in the cardiomegaly"
asserts cardiomegaly. Where several triggers reach a term, the closest one decides.

Terms are matched whole-word and case-insensitively (a hyphen counts as part of a word, so
"pneumonia" does not match "bronchopneumonia"), longest first, without overlaps; a plain term
also matches its plural ("effusions"). A trigger word inside a matched term ("no acute
cardiopulmonary abnormality") is part of that term, not a trigger.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["MAX_SCOPE_WORDS", "Mention", "Status", "TermMatcher", "assess", "sentence_spans"]

MAX_SCOPE_WORDS = 15


class Status(StrEnum):
    """How a report states a finding."""

    POSITIVE = "positive"
    NEGATED = "negated"
    UNCERTAIN = "uncertain"


@dataclass(frozen=True)
class Mention:
    """One occurrence of a vocabulary term: its concept, the text matched, where, and how."""

    concept: str
    term: str
    status: Status
    span: tuple[int, int]
    trigger: str | None = None  # the trigger phrase that decided the status, if any


# Trigger phrases, lowercase; whitespace in a phrase matches any run of whitespace.
PRE_NEGATION = (
    "no",
    "not",
    "nor",
    "neither",
    "without",
    "absence of",
    "absent",
    "negative for",
    "free of",
    "clear of",
    "no evidence of",
    "no signs of",
    "no sign of",
    "no findings of",
    "no radiographic evidence of",
    "there is no",
    "there are no",
    "resolution of",
    "resolved",
    "interval resolution of",
    "unlikely to be",
    "unlikely to represent",
    "ruled out",
    "rules out",
    "no longer",
)
POST_NEGATION = (
    "not seen",
    "not identified",
    "not visualized",
    "not visualised",
    "not appreciated",
    "not demonstrated",
    "not evident",
    "not present",
    "not detected",
    "not noted",
    "is absent",
    "are absent",
    "has resolved",
    "have resolved",
    "resolved",
    "has cleared",
    "have cleared",
    "no longer seen",
    "no longer present",
    "no longer visible",
    "unlikely",
    "ruled out",
    "is excluded",
)
PRE_UNCERTAIN = (
    "possible",
    "possibly",
    "suggest",
    "suggests",
    "suggesting",
    "suggestive of",
    "worrisome for",
    "may",
    "might",
    "could",
    "questionable",
    "question of",
    "equivocal",
    "indeterminate",
    "cannot exclude",
    "can not exclude",
    "cannot rule out",
    "can not rule out",
    "difficult to exclude",
    "difficult to completely exclude",
    "suspicion for",
    "suspicion of",
    "question",
    "correlate for",
    "correlate clinically for",
    "clinical correlation for",
    "cannot be excluded",
    "suspicious for",
    "suspected",
    "suspect",
    "concern for",
    "concerning for",
    "differential diagnosis",
    "differential includes",
    "versus",
    "vs",
    "or possibly",
    "evaluate for",
    "evaluation for",
    "to exclude",
    "rule out",
    "not clear whether",
    "not certain whether",
    "unclear whether",
    "uncertain whether",
    "uncertain",
)
POST_UNCERTAIN = (
    "cannot be excluded",
    "can not be excluded",
    "cannot be ruled out",
    "can not be ruled out",
    "not excluded",
    "not be excluded",
    "not ruled out",
    "not entirely excluded",
    "is possible",
    "is suspected",
    "are suspected",
    "is suggested",
    "suspected",
    "in the differential",
    "a consideration",
    "is questioned",
    "is not excluded",
    "versus",
    "vs",
    "?",
)
PSEUDO = (
    "no change",
    "no changes",
    "no significant change",
    "no interval change",
    "no significant interval change",
    "no substantial change",
    "no definite change",
    "no increase",
    "no decrease",
    "no worsening",
    "no improvement",
    "not changed",
    "not significantly changed",
    "not increased",
    "not decreased",
    "not only",
    "not necessarily",
    "without change",
    "without interval change",
    "without significant change",
    "gram negative",
)
TERMINATORS = (
    "but",
    "however",
    "although",
    "though",
    "yet",
    "except",
    "except for",
    "apart from",
    "aside from",
    "other than",
    "with the exception of",
    "which",
    "there is",
    "there are",
    "there has been",
    "there have been",
)

_PRE = {"pre_neg": PRE_NEGATION, "pre_unc": PRE_UNCERTAIN}
_POST = {"post_neg": POST_NEGATION, "post_unc": POST_UNCERTAIN}
_KIND_STATUS = {
    "pre_neg": Status.NEGATED,
    "post_neg": Status.NEGATED,
    "pre_unc": Status.UNCERTAIN,
    "post_unc": Status.UNCERTAIN,
}
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)|[.!?]+", re.MULTILINE)
_CLAUSE = re.compile(r"[;:]")
_WORD = re.compile(r"[\w'-]+")


_LEFT = r"(?<![\w-])"  # a word starts here; factored out of the alternations (one check a place)


def _phrase_regex(phrase: str, plural: bool = False) -> str:
    """The regex of a phrase, without its left word boundary (see ``_LEFT``)."""
    words = [re.escape(w) for w in phrase.lower().split()]
    body = r"\s+".join(words)
    if plural and words and words[-1][-1:].isalpha():
        body += r"(?:s|es)?"
    return body + (r"(?![\w-])" if phrase[-1:].isalnum() else "")


def _trigger_pattern() -> re.Pattern[str]:
    # Every trigger in one alternation, longest first, so that "not excluded" wins over "not"
    # and "no change" (pseudo) over "no" wherever they start at the same place.
    tagged: list[tuple[str, str]] = []
    for kind, phrases in (*_PRE.items(), *_POST.items()):
        tagged += [(p, kind) for p in phrases]
    tagged += [(p, "pseudo") for p in PSEUDO] + [(p, "term") for p in TERMINATORS]
    tagged.sort(key=lambda pk: (-len(pk[0]), pk[0]))
    words = "|".join(_phrase_regex(p) for p, _ in tagged if p[:1].isalnum())
    other = "|".join(_phrase_regex(p) for p, _ in tagged if not p[:1].isalnum())
    return re.compile(f"{_LEFT}(?:{words})" + (f"|{other}" if other else ""))


_TRIGGER_RE = _trigger_pattern()
_TRIGGER_KINDS: dict[str, set[str]] = {}
for _kind, _phrases in (*_PRE.items(), *_POST.items()):
    for _p in _phrases:
        _TRIGGER_KINDS.setdefault(" ".join(_p.split()), set()).add(_kind)
for _p in PSEUDO:
    _TRIGGER_KINDS.setdefault(_p, set()).add("pseudo")
for _p in TERMINATORS:
    _TRIGGER_KINDS.setdefault(_p, set()).add("term")


class TermMatcher:
    """A compiled vocabulary: ``{concept: [term, ...]}`` plus optional ``{concept: [regex]}``.

    Plain terms match whole-word, case-insensitively, plural included; a regex (lowercase
    text, Python syntax) is used as given, between word boundaries.
    """

    def __init__(
        self,
        terms: Mapping[str, Iterable[str]],
        patterns: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        alternatives: list[tuple[int, str, str]] = []
        for concept, phrases in terms.items():
            for phrase in phrases:
                if phrase.strip():
                    key = " ".join(phrase.lower().split())
                    alternatives.append((len(key), _phrase_regex(key, plural=True), concept))
        for concept, regexes in (patterns or {}).items():
            for regex in regexes:
                re.compile(regex)  # a bad pattern fails here, where its concept is known
                alternatives.append((len(regex), rf"(?:{regex})(?![\w-])", concept))
        alternatives.sort(key=lambda a: -a[0])
        self._concepts = [concept for _, _, concept in alternatives]
        body = "|".join(f"(?P<c{i}>{rx})" for i, (_, rx, _) in enumerate(alternatives))
        self._regex = re.compile(f"{_LEFT}(?:{body})") if alternatives else None

    def find(self, lowered: str) -> list[tuple[str, int, int]]:
        """``(concept, start, end)`` of every match in already-lowercased text."""
        if self._regex is None:
            return []
        # the outer group of the alternative that matched closes last: it is ``lastgroup``
        return [
            (self._concepts[int(m.lastgroup[1:])], m.start(), m.end())  # type: ignore[index]
            for m in self._regex.finditer(lowered)
        ]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of ``text`` (split at . ! ? and line breaks)."""
    return [(m.start(), m.end()) for m in _SENTENCE.finditer(text) if m.group().strip()]


@dataclass(frozen=True)
class _Trigger:
    kinds: frozenset[str]
    phrase: str
    start: int
    end: int


def _triggers(lowered: str, start: int, end: int, terms: list[tuple[int, int]]) -> list[_Trigger]:
    found = []
    for m in _TRIGGER_RE.finditer(lowered, start, end):
        if any(a <= m.start() < b or a < m.end() <= b for a, b in terms):
            continue  # part of a matched term
        phrase = " ".join(m.group().split())
        found.append(_Trigger(frozenset(_TRIGGER_KINDS[phrase]), phrase, m.start(), m.end()))
    for m in _CLAUSE.finditer(lowered, start, end):
        found.append(_Trigger(frozenset({"term"}), m.group(), m.start(), m.end()))
    return sorted(found, key=lambda t: t.start)


def _words(text: str) -> int:
    return len(_WORD.findall(text))


def _status(
    lowered: str, a: int, b: int, triggers: list[_Trigger]
) -> tuple[Status, str | None, int]:
    """The closest trigger reaching the term at [a, b): (status, phrase, distance in words)."""
    best: tuple[Status, str | None, int] = (Status.POSITIVE, None, 1 << 30)
    for t in reversed([t for t in triggers if t.end <= a]):  # backwards from the term
        if "term" in t.kinds or "pseudo" in t.kinds:
            break
        pre = t.kinds & _PRE.keys()
        if pre:
            gap = _words(lowered[t.end : a])
            if gap <= MAX_SCOPE_WORDS:
                best = (_KIND_STATUS[min(pre)], t.phrase, gap)
            break
    for t in [t for t in triggers if t.start >= b]:  # forwards from the term
        if "term" in t.kinds or "pseudo" in t.kinds:
            break
        post = t.kinds & _POST.keys()
        if post:
            gap = _words(lowered[b : t.start])
            if gap <= MAX_SCOPE_WORDS and gap < best[2]:
                best = (_KIND_STATUS[min(post)], t.phrase, gap)
            break
    return best


def assess(text: str, matcher: TermMatcher) -> list[Mention]:
    """Every mention of ``matcher``'s terms in ``text``, in order, each with its status."""
    lowered = text.lower()
    mentions: list[Mention] = []
    for s_start, s_end in sentence_spans(lowered):
        matches = [
            (c, a + s_start, b + s_start) for c, a, b in matcher.find(lowered[s_start:s_end])
        ]
        if not matches:
            continue
        triggers = _triggers(lowered, s_start, s_end, [(a, b) for _, a, b in matches])
        for concept, a, b in matches:
            status, phrase, _ = _status(lowered, a, b, triggers)
            mentions.append(Mention(concept, text[a:b], status, (a, b), phrase))
    return mentions
