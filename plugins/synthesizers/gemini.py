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
  class's keywords per ``class_keywords``); rejections are counted. ``synthesize`` returns ``n``
  texts drawn from the accepted pool with ``rng`` (with replacement only if the pool is smaller
  than ``n``); an empty pool raises ``SynthesisError``.
* ``stats``: requests, calls (HTTP attempts), retries, failures, cache_hits, items, duplicates,
  rejected (by reason), accepted, token counts from ``usage_metadata``; also per class.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from harness import components
from harness.errors import SynthesisError
from harness.hookspecs import hookimpl
from harness.synth_audit import other_class_keywords

from .gemini_text import build_request, build_system_instruction, count_sentences, split_items
from .template import keywords_by_class, load_ontology

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
    *"rejected accepted".split(),
    *_TOKEN_FIELDS.values(),
)
# What the SDK raises when a 200 reply is not JSON or not shaped like a response.
_MALFORMED_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError)
# httpx / httpx2 transport errors, matched by name so either client library works.
_TRANSIENT_NAMES = frozenset(
    "TimeoutException ConnectTimeout ReadTimeout WriteTimeout PoolTimeout ConnectError "
    "RemoteProtocolError ReadError".split()
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
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cxr-harness" / "gemini"


def cache_key(model: str, prompt: str, temperature: float, seed: int) -> str:
    """sha256 of what determines a response: model, full prompt, temperature and seed."""
    payload = json.dumps([model, prompt, temperature, seed], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class _Abort(Exception):
    """Non-retryable configuration failure (bad key, forbidden)."""


class _EmptyReply(Exception):
    """A well-formed reply without text (no candidate, blocked, or blank)."""


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

    def __init__(self, options: components.Options | None = None) -> None:
        super().__init__(options)
        self.ontology = load_ontology(self.options.ontology)
        self.cache_dir = Path(self.options.cache_dir or default_cache_dir()).expanduser()
        self.stats: dict[str, Any] = {k: 0 for k in _COUNTERS}
        self.stats["rejected_reasons"] = {"sentences": 0, "keywords": 0}
        self.stats["per_class"] = {}
        self.stats["last_error"] = None
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
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.cache_dir, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(record, fh, ensure_ascii=False, indent=1)
            os.replace(tmp, self._cache_path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

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

    @staticmethod
    def _classify(exc: Exception) -> str:
        """``abort`` the run, ``retry`` (transient), ``malformed`` / ``empty`` (retried and
        counted), or ``fail`` (a counted failure, not retried)."""
        from google.genai import errors

        if isinstance(exc, errors.APIError):
            code = exc.code or 0
            if code in (401, 403):
                return "abort"
            return "retry" if code in (408, 429) or code >= 500 else "fail"
        if isinstance(exc, _EmptyReply):
            return "empty"
        if isinstance(exc, TimeoutError | ConnectionError):
            return "retry"
        if type(exc).__name__ in _TRANSIENT_NAMES:
            return "retry"
        return "malformed" if isinstance(exc, _MALFORMED_ERRORS) else "fail"

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
                text = response.text
                if not isinstance(text, str) or not text.strip():
                    raise _EmptyReply(f"reply has no text ({_finish_reasons(response)})")
            except Exception as exc:  # classified below; a bad reply never crashes the run
                verdict = self._classify(exc)
                message = self._redact(f"{type(exc).__name__}: {exc}")[:500]
                with self._lock:
                    self.stats["last_error"] = message
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

        return self._validate(label, [texts[k] for k, _, _ in jobs if k in texts])

    def _validate(self, label: str, responses: list[str]) -> list[str]:
        kws = keywords_by_class(self.ontology)
        lo, hi = self.options.min_item_sentences, self.options.max_item_sentences
        accepted: list[str] = []
        seen: set[str] = set()
        for item in (it for text in responses for it in split_items(text)):
            self._count(label, "items")
            norm = item.casefold()
            if norm in seen:
                self._count(label, "duplicates")
                continue
            seen.add(norm)
            reason = None
            if not lo <= count_sentences(item) <= hi:
                reason = "sentences"
            elif other_class_keywords(item, label, kws):
                reason = "keywords"
            if reason:
                self._count(label, "rejected")
                with self._lock:
                    self.stats["rejected_reasons"][reason] += 1
                continue
            accepted.append(item)
        self._count(label, "accepted", len(accepted))
        return accepted

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
            per = self.stats["per_class"].get(label, {})
            raise SynthesisError(
                f"Gemini produced no usable text for {label!r}: {per.get('failures', 0)} failed "
                f"requests ({per.get('malformed', 0)} malformed and {per.get('empty', 0)} empty "
                f"replies), {per.get('rejected', 0)} rejected items; last error: "
                f"{self.stats['last_error'] or 'none'}."
            )
        idx = rng.choice(len(pool), size=n, replace=len(pool) < n)
        return [pool[int(i)] for i in idx]


def _finish_reasons(response: Any) -> str:
    """The candidates' finish reasons (e.g. SAFETY), or that there was no candidate."""
    reasons = [
        str(getattr(c, "finish_reason", None) or "none")
        for c in getattr(response, "candidates", None) or []
    ]
    return f"finish reason {', '.join(reasons)}" if reasons else "no candidates"


@hookimpl
def register_synthesizers(register: Callable[[type], None]) -> None:
    register(GeminiSynthesizer)
