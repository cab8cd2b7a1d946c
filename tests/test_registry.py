"""harness/registry.py: duplicates, suggestions, subclass and strict-Options checks, create()."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.components import Augmenter, Options, Synthesizer, Trainer
from harness.core.errors import HarnessError, OptionError, PluginError, UnknownComponentError
from harness.plugins import make_plugin_manager, make_registry
from harness.registry import KINDS, Registry


@pytest.fixture(scope="module")
def registry() -> Registry:
    return make_registry(make_plugin_manager(load_entry_points=False, trace=False))


class KnobOptions(Options):
    r: int = Field(4, ge=1)
    mode: str = "a"


class Knob(Augmenter):
    name = "knob"
    Options = KnobOptions


def _add(reg: Registry, cls: type, kind: str = "augmenter", plugin: str = "pkg.mod") -> None:
    reg.add(kind, cls, plugin, "dist-" + plugin, "1.0")


def test_add_and_get_records_origin():
    reg = Registry()
    reg.add("augmenter", Knob, "pkg.mod", "pkg-dist", "2.3")
    entry = reg.get("augmenter", "knob")
    assert (entry.kind, entry.name, entry.cls) == ("augmenter", "knob", Knob)
    assert (entry.plugin, entry.distribution, entry.version) == ("pkg.mod", "pkg-dist", "2.3")
    assert reg.names("augmenter") == ["knob"]
    assert reg.names("trainer") == []


def test_duplicate_name_fails_naming_both_plugins():
    class Knob2(Augmenter):
        name = "knob"

    reg = Registry()
    _add(reg, Knob, plugin="first.plugin")
    with pytest.raises(PluginError) as info:
        _add(reg, Knob2, plugin="second.plugin")
    msg = str(info.value)
    assert "'knob'" in msg and "first.plugin" in msg and "second.plugin" in msg
    assert "dist-first.plugin" in msg and "dist-second.plugin" in msg
    assert reg.get("augmenter", "knob").cls is Knob  # the first registration is kept


def test_same_name_in_different_kinds_is_allowed():
    class T(Trainer):
        name = "knob"

    reg = Registry()
    _add(reg, Knob)
    _add(reg, T, kind="trainer")
    assert reg.get("trainer", "knob").cls is T


def test_unknown_name_suggests_close_names(registry):
    with pytest.raises(UnknownComponentError) as info:
        registry.get("trainer", "rslor")
    err = info.value
    assert err.suggestions[0] == "rslora"
    assert (err.kind, err.name) == ("trainer", "rslor")
    assert "Did you mean 'rslora'" in str(err)
    assert set(err.known) == set(registry.names("trainer"))
    assert isinstance(err, PluginError) and isinstance(err, HarnessError)


def test_unknown_name_far_from_everything_has_no_suggestion(registry):
    with pytest.raises(UnknownComponentError) as info:
        registry.get("augmenter", "zzzzzzzz")
    assert info.value.suggestions == []
    assert "Did you mean" not in str(info.value)
    assert "noise_rotate" in str(info.value)  # the known names are listed


def test_unknown_name_in_empty_registry():
    with pytest.raises(UnknownComponentError, match=r"\(none\)"):
        Registry().get("synthesizer", "template")


@pytest.mark.parametrize(
    "kind, cls",
    [
        ("augmenter", Trainer),  # a component, but of another kind
        ("trainer", Knob),
        ("synthesizer", dict),  # not a component at all
        ("augmenter", Knob()),  # an instance, not a class
    ],
)
def test_non_subclass_registration_fails(kind, cls):
    with pytest.raises(PluginError, match="not a subclass"):
        Registry().add(kind, cls, "pkg.mod", "d", "1")


def test_component_without_name_fails():
    class Nameless(Synthesizer):
        pass

    with pytest.raises(PluginError, match="without a name"):
        _add(Registry(), Nameless, kind="synthesizer")


def test_options_not_deriving_from_harness_options_fails():
    class Loose(BaseModel):
        x: int = 1

    class A(Augmenter):
        name = "loose"
        Options = Loose

    with pytest.raises(PluginError, match="Options must subclass"):
        _add(Registry(), A)


@pytest.mark.parametrize("extra", ["ignore", "allow"])
def test_options_without_extra_forbid_fails(extra):
    class Lax(Options):
        model_config = ConfigDict(extra=extra)
        x: int = 1

    class A(Augmenter):
        name = "lax"
        Options = Lax

    with pytest.raises(PluginError, match="forbid unknown keys"):
        _add(Registry(), A)


def test_create_validates_and_freezes_options():
    reg = Registry()
    _add(reg, Knob)
    comp = reg.create("augmenter", "knob", {"r": "8"})  # lax coercion of a CLI string
    assert isinstance(comp, Knob)
    assert comp.options.r == 8 and comp.options.mode == "a"
    with pytest.raises(ValidationError):
        comp.options.r = 9  # frozen
    assert reg.create("augmenter", "knob").options == KnobOptions()


def test_create_unknown_option_names_it_and_lists_allowed():
    reg = Registry()
    _add(reg, Knob)
    with pytest.raises(OptionError) as info:
        reg.create("augmenter", "knob", {"foo": 1})
    msg = str(info.value)
    assert "augmenter.foo" in msg
    assert "r, mode" in msg


def test_create_unknown_component_raises_unknown_component_error():
    with pytest.raises(UnknownComponentError):
        Registry().create("augmenter", "knob", {})


@pytest.mark.parametrize("value", ["abc", 0, -3, 2.5, None])
def test_trainer_bad_r_value_names_the_option(registry, value):
    with pytest.raises(OptionError) as info:
        registry.create("trainer", "lora", {"r": value})
    assert "trainer.r" in str(info.value)
    assert "bad value" in str(info.value)


def test_several_problems_are_all_reported(registry):
    with pytest.raises(OptionError) as info:
        registry.create("trainer", "lora", {"r": "abc", "lr": -1, "bogus": 1})
    msg = str(info.value)
    for name in ("trainer.r", "trainer.lr", "trainer.bogus"):
        assert name in msg


def test_real_trainer_accepts_valid_options(registry):
    trainer = registry.create("trainer", "rslora", {"r": 32, "max_steps": 2})
    assert trainer.options.r == 32 and trainer.options.max_steps == 2


def test_augmenter_max_deg_over_limit_rejected(registry):
    with pytest.raises(OptionError, match=r"augmenter\.max_deg"):
        registry.create("augmenter", "noise_rotate", {"max_deg": 100})


def test_base_trainer_takes_no_options(registry):
    with pytest.raises(OptionError, match=r"trainer\.r .*takes no options"):
        registry.create("trainer", "base", {"r": 8})


def test_all_is_grouped_by_kind_then_sorted_by_name(registry):
    entries = registry.all()
    kinds = [e.kind for e in entries]
    assert kinds == sorted(kinds, key=list(KINDS).index)
    for kind in KINDS:
        names = [e.name for e in entries if e.kind == kind]
        assert names == sorted(names) == registry.names(kind)


def test_every_registered_component_is_valid(registry):
    for entry in registry.all():
        assert issubclass(entry.cls, KINDS[entry.kind])
        assert entry.cls.Options.model_config.get("extra") == "forbid"
        assert entry.cls.description, entry.name
        entry.cls.Options()  # defaults alone are valid
        assert entry.distribution == "cxr-harness" and entry.version
