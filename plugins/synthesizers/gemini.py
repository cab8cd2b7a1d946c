"""The ``gemini`` synthesizer: report texts written by a Gemini model (google-genai SDK).

Per class, a pool of ``total_per_class`` items (default: ``n``) is requested in calls of
``items_per_call`` reports. The system instruction and each request are built from that class's
ontology entry (group, subtypes, synonyms, typical findings, location notes) and name the other
classes' keywords as forbidden, so nothing is hard-coded to one disease. Call ``i`` of a class
has seed ``seed + i`` and focuses on one subtype, for diversity.

* Key: ``GEMINI_API_KEY`` or ``GOOGLE_API_KEY``; missing -> ``SynthesisError`` before any work.
  The key is never logged, cached, put into ``stats`` or into error messages.
* Up to ``concurrency`` requests in flight (threads). 429, 5xx, timeouts, connection errors,
  malformed replies (not JSON, or not shaped like a response) and empty replies (no text in any
  candidate, e.g. blocked) are retried ``max_retries`` times with exponential backoff from
  ``retry_base_delay_s``; each malformed or empty reply is counted in ``stats["malformed"]`` /
  ``stats["empty"]``. 401/403 abort with ``SynthesisError``; a request that still fails is
  counted in ``stats["failures"]`` and the run goes on.
* Cache: one JSON file per successful call in ``cache_dir``, named by the sha256 of model,
  prompt (system + request), temperature and seed, written atomically (tmp + ``os.replace``).
  A rerun makes zero calls; an interrupted run keeps every call that finished.
* Outputs are split into paragraphs, deduplicated and validated (3-8 sentences, no other
  class's keywords stated as present or hedged: "no pneumothorax" passes);
  ``stats["rejected_items"]`` records each rejection's reason, matched words and place in the
  cache (the text stays in the cache only). ``synthesize`` returns ``n`` texts
  drawn from the accepted pool with ``rng``; an empty pool raises ``SynthesisError``. A pool
  smaller than ``n`` is drawn with replacement and warned about (logged, ``stats["warnings"]``),
  or, below ``min_unique`` (a fraction of ``n``), raises ``SynthesisError``.
* ``stats``: requests, calls (HTTP attempts), retries, failures, malformed, empty, cache_hits,
  items, duplicates, rejected (by reason), accepted, tokens from ``usage_metadata``; per class.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from harness import components
from harness.core.atomic import write_text_atomic
from harness.core.cache_dir import harness_cache_dir
from harness.core.errors import SynthesisError
from harness.hookspecs import hookimpl
from harness.text.ontology import keywords_by_class, load_ontology

from .gemini_replies import classify, reply_text
from .gemini_text import (
    build_request,
    build_system_instruction,
    rejection_summary,
    screen_items,
)

logger = logging.getLogger(__name__)

KEY_ENV_VARS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
_TOKEN_FIELDS = {
    "prompt_token_count": "prompt_tokens",
    "candidates_token_count": "output_tokens",
    "thoughts_token_count": "thoughts_tokens",
    "total_token_count": "total_tokens",
}
_COUNTERS = (
    *"requests calls retries failures malformed empty cache_hits items duplicates".split(),
    *"items_requested rejected accepted".split(),
    *_TOKEN_FIELDS.values(),
)


def api_key() -> str:
    """The Gemini key from the environment, or ``SynthesisError`` (names the variables only)."""
    for var in KEY_ENV_VARS:
        value = os.environ.get(var, "").strip()
        if value:
            return value
    raise SynthesisError(
        f"The gemini synthesizer needs an API key in {' or '.join(KEY_ENV_VARS)}; none is set."
    )


def default_cache_dir() -> Path:
    return harness_cache_dir() / "gemini"


def cache_key(model: str, prompt: str, temperature: float, seed: int) -> str:
    """sha256 of what determines a response: model, full prompt, temperature and seed."""
    payload = json.dumps([model, prompt, temperature, seed], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class _Abort(Exception):
    """Non-retryable configuration failure (bad key, forbidden)."""


class GeminiSynthesizer(components.Synthesizer):
    """Reports from a Gemini model, cached on disk, validated against the ontology."""

    name = "gemini"
    description = (
        "Report texts from Gemini (google-genai SDK; key in GEMINI_API_KEY or GOOGLE_API_KEY), "
        "prompted per class from the ontology, cached on disk, deduplicated and validated."
    )

    class Options(components.Options):
        model: str = "gemini-2.5-flash"
        temperature: float = Field(default=1.0, ge=0.0, le=2.0)
        thinking_budget: int | None = Field(
            default=0, ge=-1, description="0 disables thinking, -1 automatic, None model default."
        )
        items_per_call: int = Field(default=10, ge=1, le=50)
        total_per_class: int | None = Field(
            default=None, ge=1, description="Pool size requested per class (None: n)."
        )
        concurrency: int = Field(default=4, ge=1, le=64)
        max_retries: int = Field(default=5, ge=0, le=20)
        retry_base_delay_s: float = Field(default=1.0, ge=0.0)
        retry_max_delay_s: float = Field(default=60.0, ge=0.0)
        base_url: str | None = Field(default=None, description="None: the SDK's default.")
        api_version: str = "v1beta"
        cache_dir: str | None = Field(default=None, description="None: ~/.cache/cxr-harness.")
        timeout_s: float = Field(default=120.0, gt=0.0)
        seed: int = 0
        ontology: str | None = None
        min_item_sentences: int = Field(default=3, ge=1)
        max_item_sentences: int = Field(default=8, ge=1)
        min_unique: float | None = Field(
            default=None,
            gt=0.0,
            le=1.0,
            description="Least fraction of a class's n texts that must be distinct (e.g. 0.9); "
            "fewer is an error. None: fewer only warns (texts are drawn with replacement).",
        )

    def __init__(self, options: components.Options | None = None) -> None:
        super().__init__(options)
        self.ontology = load_ontology(self.options.ontology)
        self.cache_dir = Path(self.options.cache_dir or default_cache_dir()).expanduser()
        self.stats: dict[str, Any] = {k: 0 for k in _COUNTERS}
        self.stats["rejected_reasons"] = {"sentences": 0, "keywords": 0}
        self.stats["per_class"] = {}
        self.stats["last_error"] = None
        self.stats["warnings"] = []
        self.stats["rejected_items"] = []
        self._lock = threading.Lock()
        self._key: str | None = None

    # -- bookkeeping -------------------------------------------------------------------------
    def _count(self, label: str, name: str, amount: int = 1) -> None:
        with self._lock:
            self.stats[name] = self.stats.get(name, 0) + amount
            per = self.stats["per_class"].setdefault(label, {})
            per[name] = per.get(name, 0) + amount

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    # -- cache -------------------------------------------------------------------------------
    def _cache_path(self, key: str) -> Path:
        return self.cache_dir / f"{key}.json"

    def _cache_get(self, key: str) -> str | None:
        try:
            data = json.loads(self._cache_path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data.get("text") if isinstance(data, dict) else None

    def _cache_put(self, key: str, record: dict[str, Any]) -> None:
        write_text_atomic(self._cache_path(key), json.dumps(record, ensure_ascii=False, indent=1))

    # -- calls -------------------------------------------------------------------------------
    def _client(self) -> Any:
        from google import genai
        from google.genai import types

        http = types.HttpOptions(
            base_url=self.options.base_url,
            api_version=self.options.api_version,
            timeout=int(self.options.timeout_s * 1000),
        )
        return genai.Client(api_key=self._key, vertexai=False, http_options=http)

    def _config(self, system: str, seed: int) -> Any:
        from google.genai import types

        thinking = None
        if self.options.thinking_budget is not None:
            thinking = types.ThinkingConfig(thinking_budget=self.options.thinking_budget)
        return types.GenerateContentConfig(
            system_instruction=system,
            temperature=self.options.temperature,
            seed=seed,
            candidate_count=1,
            thinking_config=thinking,
        )

    def _call(
        self, client: Any, label: str, system: str, request: str, seed: int, abort: threading.Event
    ) -> str | None:
        """One request with retries; returns the text or None (counted failure)."""
        config = self._config(system, seed)
        for attempt in range(self.options.max_retries + 1):
            if abort.is_set():
                return None
            self._count(label, "calls")
            try:
                response = client.models.generate_content(
                    model=self.options.model, contents=request, config=config
                )
                text = reply_text(response)
            except Exception as exc:  # classified below; a bad reply never crashes the run
                verdict = classify(exc)
                message = self._redact(f"{type(exc).__name__}: {exc}")[:500]
                with self._lock:
                    self.stats["last_error"] = message
                    self.stats["per_class"].setdefault(label, {})["last_error"] = message
                if verdict == "abort":
                    abort.set()
                    raise _Abort(message) from None
                if verdict in ("malformed", "empty"):
                    self._count(label, verdict)
                if verdict != "fail" and attempt < self.options.max_retries:
                    self._count(label, "retries")
                    base = self.options.retry_base_delay_s * (2**attempt)
                    time.sleep(min(self.options.retry_max_delay_s, base) * random.uniform(0.5, 1.0))
                    continue
                logger.warning("gemini request for %s failed: %s", label, message)
                self._count(label, "failures")
                return None
            usage = getattr(response, "usage_metadata", None)
            for field, stat in _TOKEN_FIELDS.items():
                value = getattr(usage, field, None) if usage is not None else None
                if isinstance(value, int):
                    self._count(label, stat, value)
            return text
        return None  # pragma: no cover - loop always returns

    # -- public ------------------------------------------------------------------------------
    def generate_pool(self, label: str, target: int) -> list[str]:
        """Accepted, deduplicated texts for ``label`` from ``ceil(target / items_per_call)``
        requests (cached ones are read, not sent)."""
        self._key = api_key()
        entry = self.ontology.entry(label)
        opts = self.options
        per_call = min(opts.items_per_call, max(1, target))
        system = build_system_instruction(entry, self.ontology, per_call)
        jobs: list[tuple[str, str, int]] = []
        for i in range(math.ceil(target / per_call)):
            request, seed = build_request(entry, i, per_call), opts.seed + i
            key = cache_key(opts.model, f"{system}\n\n{request}", opts.temperature, seed)
            jobs.append((key, request, seed))
        self._count(label, "requests", len(jobs))
        self._count(label, "items_requested", len(jobs) * per_call)

        texts: dict[str, str] = {}
        missing = []
        for key, request, seed in jobs:
            cached = self._cache_get(key)
            if cached is not None:
                texts[key] = cached
                self._count(label, "cache_hits")
            else:
                missing.append((key, request, seed))

        if missing:
            client = self._client()
            abort = threading.Event()

            def work(job: tuple[str, str, int]) -> None:
                key, request, seed = job
                text = self._call(client, label, system, request, seed, abort)
                if text is None:
                    return
                texts[key] = text
                self._cache_put(
                    key,
                    {
                        "model": opts.model,
                        "label": label,
                        "temperature": opts.temperature,
                        "seed": seed,
                        "system_instruction": system,
                        "request": request,
                        "text": text,
                    },
                )

            with ThreadPoolExecutor(max_workers=opts.concurrency) as pool:
                futures = [pool.submit(work, job) for job in missing]
            try:
                for future in futures:
                    future.result()
            except _Abort as exc:
                raise SynthesisError(
                    f"Gemini rejected the request for {label!r} (check the API key): {exc}"
                ) from None
            except OSError as exc:
                raise SynthesisError(
                    f"Cannot write the gemini cache in {self.cache_dir}: {exc}"
                ) from None

        return self._validate(
            label, [(self._cache_path(k).name, texts[k]) for k, _, _ in jobs if k in texts]
        )

    def _validate(self, label: str, responses: list[tuple[str, str]]) -> list[str]:
        kws = keywords_by_class(self.ontology)
        bounds = (self.options.min_item_sentences, self.options.max_item_sentences)
        screened = screen_items(responses, label, kws, bounds)
        self._count(label, "items", screened.items)
        self._count(label, "duplicates", screened.duplicates)
        self._count(label, "rejected", len(screened.rejected))
        self._count(label, "accepted", len(screened.accepted))
        with self._lock:
            for record in screened.rejected:
                self.stats["rejected_reasons"][record["reason"]] += 1
            self.stats["rejected_items"].extend(screened.rejected)
        return screened.accepted

    def check_classes(self, classes: Sequence[str]) -> None:
        """Every benchmark class needs an ontology entry (SynthesisError names the first gap)."""
        for label in classes:
            self.ontology.entry(label)

    def synthesize(self, label: str, n: int, rng: np.random.Generator) -> list[str]:
        """``n`` texts for ``label`` drawn with ``rng`` from the validated pool."""
        if n <= 0:
            return []
        pool = self.generate_pool(label, self.options.total_per_class or n)
        if not pool:
            why = self._why(label)
            raise SynthesisError(f"Gemini produced no usable text for {label!r}: {why}")
        if len(pool) < n:
            self._short_pool(label, len(pool), n)
        idx = rng.choice(len(pool), size=n, replace=len(pool) < n)
        return [pool[int(i)] for i in idx]

    def _why(self, label: str) -> str:
        """What became of ``label``'s requests and items (no text, no key)."""
        per = self.stats["per_class"].get(label, {})
        rejected = rejection_summary(self.stats["rejected_items"], label)
        return (
            f"{per.get('items', 0)} of {per.get('items_requested', 0)} requested items received, "
            f"{per.get('failures', 0)} failed requests ({per.get('malformed', 0)} malformed and "
            f"{per.get('empty', 0)} empty replies), {per.get('rejected', 0)} rejected "
            f"items{rejected}, {per.get('duplicates', 0)} repeated; last error: "
            f"{per.get('last_error') or 'none'}."
        )

    def _short_pool(self, label: str, unique: int, n: int) -> None:
        """Fewer distinct texts than needed: an error below ``min_unique``, else a warning."""
        message = (
            f"gemini: only {unique} distinct texts for {label!r} of the {n} needed "
            f"({unique / n:.0%}): {self._why(label)}"
        )
        floor = self.options.min_unique
        if floor is not None and unique < floor * n:
            raise SynthesisError(
                f"{message} This is below synthesizer.min_unique={floor}: raise "
                "synthesizer.total_per_class or lower min_unique."
            )
        message += (
            " The texts repeat in training: raise synthesizer.total_per_class, or set "
            "synthesizer.min_unique to make this an error."
        )
        with self._lock:
            self.stats["warnings"].append(message)
        logger.warning("%s", message)


@hookimpl
def register_synthesizers(register: Callable[[type], None]) -> None:
    register(GeminiSynthesizer)
