"""How the ``gemini`` synthesizer judges a reply: the text of a response, or why there is none,
and what to do about each failure (abort, retry, or count it and go on)."""

from __future__ import annotations

from typing import Any

# What the SDK raises when a 200 reply is not JSON or not shaped like a response.
_MALFORMED_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError)
# httpx / httpx2 transport errors, matched by name so either client library works.
_TRANSIENT_NAMES = frozenset(
    "TimeoutException ConnectTimeout ReadTimeout WriteTimeout PoolTimeout ConnectError "
    "RemoteProtocolError ReadError".split()
)


class EmptyReply(Exception):
    """A well-formed reply without text (no candidate, blocked, or blank)."""


def reply_text(response: Any) -> str:
    """The response's text, or ``EmptyReply`` naming the candidates' finish reasons."""
    text = response.text
    if isinstance(text, str) and text.strip():
        return text
    reasons = [
        str(getattr(c, "finish_reason", None) or "none")
        for c in getattr(response, "candidates", None) or []
    ]
    why = f"finish reason {', '.join(reasons)}" if reasons else "no candidates"
    raise EmptyReply(f"reply has no text ({why})")


def classify(exc: Exception) -> str:
    """``abort`` the run (bad key), ``retry`` (transient), ``malformed`` / ``empty`` (retried
    and counted), or ``fail`` (a counted failure, not retried)."""
    from google.genai import errors

    if isinstance(exc, errors.APIError):
        code = exc.code or 0
        if code in (401, 403):
            return "abort"
        return "retry" if code in (408, 429) or code >= 500 else "fail"
    if isinstance(exc, EmptyReply):
        return "empty"
    if isinstance(exc, TimeoutError | ConnectionError) or type(exc).__name__ in _TRANSIENT_NAMES:
        return "retry"
    return "malformed" if isinstance(exc, _MALFORMED_ERRORS) else "fail"
