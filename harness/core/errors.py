"""Typed errors. Library code raises these; only the CLI prints them and exits."""


class HarnessError(Exception):
    """Base of every error the harness raises on purpose (exit code 2 in the CLI)."""


class PluginError(HarnessError):
    """A plugin failed to load, registered a duplicate name, or is unknown."""


class UnknownComponentError(PluginError):
    """A component name that no plugin registered; carries close-name suggestions."""

    def __init__(self, kind: str, name: str, suggestions: list[str], known: list[str]):
        self.kind, self.name, self.suggestions, self.known = kind, name, suggestions, known
        hint = f" Did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        super().__init__(
            f"Unknown {kind} {name!r}.{hint} Known {kind}s: {', '.join(known) or '(none)'}."
        )


class OptionError(HarnessError):
    """An option is unknown, malformed, or has a bad value; the message names it."""


class DataError(HarnessError):
    """A dataset, benchmark or image is missing, corrupt or inconsistent."""


class ModelError(HarnessError):
    """A model path/id cannot be resolved or loaded."""


class BackendUnavailableError(HarnessError):
    """A requested backend (CUDA, 4-bit, unsloth) is not available on this machine."""


class SynthesisError(HarnessError):
    """A synthesizer could not produce text (missing key, service failure)."""


class ExecutionError(HarnessError):
    """Some configurations of a grid failed; the others finished and are saved."""
