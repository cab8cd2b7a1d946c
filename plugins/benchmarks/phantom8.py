"""``phantom8``: the embedded, procedurally generated benchmark (a machinery test, not a medical
result). Frozen: its seed and sizes never follow a run's ``--seed``."""

from __future__ import annotations

from harness.components import BenchmarkSource
from harness.data.benchmark import Benchmark, fingerprint
from harness.data.labels import PHANTOM8_CLASSES
from harness.data.phantoms import phantom8_split
from harness.hookspecs import hookimpl

NAME = "phantom8"
SEED = 20241125
TEST_PER_CLASS = 20
VAL_PER_CLASS = 5
SIZE = 112
# What SEED and the sizes above build; `harness benchmark verify phantom8` rebuilds and compares.
FINGERPRINT = "674cf9ebe3186619"

CAVEATS = [
    "phantom8 images are procedurally generated phantoms, not radiographs: "
    "scores test the machinery and are not a medical result.",
    "Reference reports are generated from the phantom's drawn findings (synthetic).",
    "Every phantom is drawn from its own seed, so nothing is de-duplicated; "
    "`harness benchmark check-leakage phantom8` finds no near-duplicate pair across "
    "train and test.",
]


def load_phantom8() -> Benchmark:
    """Build phantom8: 8 classes, 20 test and 5 validation phantoms per class, 112 px."""
    splits = phantom8_split(
        seed=SEED,
        n_train_per_class=None,
        n_test_per_class=TEST_PER_CLASS,
        n_val_per_class=VAL_PER_CLASS,
        size=SIZE,
    )
    return Benchmark(
        name=NAME,
        classes=PHANTOM8_CLASSES,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        fingerprint=fingerprint(splits, PHANTOM8_CLASSES),
        caveats=list(CAVEATS),
    )


class Phantom8(BenchmarkSource):
    name = NAME
    description = (
        "Embedded procedural chest-radiograph phantoms, 8 classes (608 train, 40 val, 160 test). "
        "A machinery test, not a medical result."
    )
    expected_fingerprint = FINGERPRINT

    def load(self) -> Benchmark:
        return load_phantom8()


@hookimpl
def register_benchmarks(register) -> None:
    register(Phantom8)
