"""The in-memory dataset representation shared by benchmarks, synthesizers and trainers."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from PIL import Image


@dataclass(frozen=True)
class Sample:
    """One image with its label and (reference or training-target) report text."""

    id: str
    label: str
    image: Image.Image = field(compare=False, repr=False)
    report: str = ""
    group: str = ""
    prompt: str | None = None  # training-time prompt variant; None means the fixed eval prompt

    def with_(self, **changes: object) -> Sample:
        return replace(self, **changes)
