"""Dynamic balancing: policies, provenance of augmented copies, and the train-only guarantee."""

from __future__ import annotations

import numpy as np
import pytest
from test_manifest import MAX_PIXELS, make_tree, synth

from cxr_harness_plugins.augmenters.basic import NoiseRotate
from cxr_harness_plugins.augmenters.geometric import Affine
from harness.core.errors import OptionError
from harness.core.rng import derive_seed
from harness.data.importers import import_folder
from harness.data.manifest import build_benchmark, load_manifest_benchmark
from harness.data.sample import Sample
from harness.training.balance import balance, parse_policy, source_id, target_count


def _samples(counts: dict[str, int]) -> list[Sample]:
    out = []
    for label, n in counts.items():
        for i in range(n):
            sid = f"{label}-{i}"
            out.append(
                Sample(
                    id=sid, label=label, image=synth(derive_seed(sid) % 1000, 48), group=f"g{sid}"
                )
            )
    return out


COUNTS = {"A": 10, "B": 4, "C": 6}


@pytest.mark.parametrize(("policy", "target"), [("max", 10), ("median", 6), (5, 5), ("7", 7)])
def test_policies(policy, target):
    assert target_count(COUNTS, policy) == target
    out, counts = balance(_samples(COUNTS), policy, NoiseRotate(), seed=1)
    assert counts == dict.fromkeys("ABC", target) and len(out) == 3 * target


@pytest.mark.parametrize("bad", ["mean", 0, -3, "1.5", 2.5])
def test_bad_policy(bad):
    with pytest.raises(OptionError, match="policy"):
        parse_policy(bad)


def test_augmented_copies_keep_source_and_group_and_are_seeded():
    src = _samples(COUNTS)
    by_id = {s.id: s for s in src}
    out, _ = balance(src, "max", Affine(), seed=3)
    aug = [s for s in out if "~" in s.id]
    assert len(aug) == (10 - 4) + (10 - 6)
    for s in aug:
        origin = by_id[source_id(s)]
        assert s.group == origin.group and s.label == origin.label
        assert s.image.size == origin.image.size and s.image.mode == origin.image.mode
    again, _ = balance(src, "max", Affine(), seed=3, workers=2)  # parallel == serial
    assert [s.id for s in again] == [s.id for s in out]
    assert all(
        np.array_equal(np.asarray(a.image), np.asarray(b.image))
        for a, b in zip(out, again, strict=True)
    )
    other, _ = balance(src, "max", Affine(), seed=4)
    assert any(
        not np.array_equal(np.asarray(a.image), np.asarray(b.image))
        for a, b in zip(out, other, strict=True)
        if "~" in a.id
    )


def test_refuses_already_augmented_input():
    s = _samples({"A": 1})[0]
    with pytest.raises(OptionError, match="augmented"):
        balance([s.with_(id=s.id + "~aug0")], "max", Affine(), seed=0)


def test_balanced_train_never_reaches_val_or_test(tmp_path):
    make_tree(tmp_path / "src", per_class=8)
    build_benchmark(
        import_folder(tmp_path / "src"), "b", tmp_path, seed=0, max_pixels=MAX_PIXELS, workers=1
    )
    bench = load_manifest_benchmark("b", tmp_path, workers=1)
    train, counts = balance(bench.train, "max", Affine(), seed=0)
    assert len(set(counts.values())) == 1
    held_out = bench.val + bench.test
    held_ids = {s.id for s in held_out}
    held_groups = {s.group for s in held_out}
    train_groups = {s.group for s in bench.train}
    assert not any("~" in s.id for s in held_out)  # no augmented copy in val/test
    for s in train:
        assert s.id not in held_ids and source_id(s) not in held_ids
        assert s.group in train_groups and s.group not in held_groups
