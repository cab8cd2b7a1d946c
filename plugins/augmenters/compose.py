"""``compose``: chains registered augmenters, each applied with a probability.

Steps come as a list of ``{"name": ..., "p": ..., "options": {...}}`` or the short string form
``"affine:0.8,photometric:0.5,equalize"`` (p defaults to 1), e.g.
``-o augmenter.steps=affine:0.8,photometric:0.5``. Steps are looked up in the plugin registry, so
third-party augmenters compose too and no class is needed per combination.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from PIL import Image
from pydantic import Field, field_validator

from harness.components import Augmenter, Options
from harness.core.errors import OptionError, PluginError
from harness.hookspecs import hookimpl


class Step(Options):
    name: str
    p: float = Field(1.0, ge=0.0, le=1.0)
    options: dict[str, Any] = Field(default_factory=dict)


def _default_steps() -> list[Step]:
    return [
        Step(name="affine", p=0.8),
        Step(name="photometric", p=0.8),
        Step(name="crop_pad", p=0.3),
    ]


class ComposeOptions(Options):
    steps: list[Step] = Field(
        default_factory=_default_steps,
        description="Augmenters in order, each with a probability p and its own options.",
    )

    @field_validator("steps", mode="before")
    @classmethod
    def _parse_short_form(cls, value: Any) -> Any:
        if isinstance(value, str):
            steps = []
            for part in filter(None, (p.strip() for p in value.split(","))):
                name, _, p = part.partition(":")
                try:
                    steps.append({"name": name.strip(), "p": float(p) if p else 1.0})
                except ValueError:
                    raise ValueError(f"step {part!r}: expected NAME or NAME:P") from None
            return steps
        return value


@functools.lru_cache(maxsize=1)
def _registry():
    """The plugin registry (built once per process) that resolves the chained steps by name."""
    from harness.plugins import make_registry

    return make_registry()


class Compose(Augmenter):
    name = "compose"
    description = (
        "Chains other augmenters, each with a probability (default affine+photometric+crop_pad)."
    )
    Options = ComposeOptions

    def __init__(self, options: Options | None = None) -> None:
        super().__init__(options)
        opts: ComposeOptions = self.options  # type: ignore[assignment]
        registry = _registry()
        self.children: list[tuple[float, Augmenter]] = []
        for i, step in enumerate(opts.steps):
            try:
                child = registry.create("augmenter", step.name, step.options)
            except (OptionError, PluginError) as exc:
                raise OptionError(f"augmenter.steps[{i}] ({step.name}): {exc}") from None
            self.children.append((step.p, child))

    def augment(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        out = image
        for p, child in self.children:
            if rng.random() < p:
                out = child.augment(out, rng)
        return out.copy() if out is image else out


@hookimpl
def register_augmenters(register) -> None:
    register(Compose)
