import pytest

from bench.registry import Registry, UnknownNameError


def test_register_get_and_lazy_string_target():
    reg = Registry("widget")
    reg.register("alpha", 1)

    @reg.register("beta", colour="blue")
    def beta():
        return 2

    reg.register("gamma", "math:pi")  # imported only when used
    assert reg.get("alpha") == 1 and reg.get("beta")() == 2
    assert reg.entry("beta").meta == {"colour": "blue"}
    assert isinstance(reg.entry("gamma").target, str)
    assert abs(reg.get("gamma") - 3.14159) < 1e-4
    assert reg.names() == ["alpha", "beta", "gamma"]


def test_unknown_name_suggests_close_matches():
    reg = Registry("task")
    for name in ["synth-cls-knn", "imagenet-knn", "nyud-depth-linear"]:
        reg.register(name, name)
    with pytest.raises(UnknownNameError) as err:
        reg.get("imagenet-kn")
    assert err.value.suggestions[0] == "imagenet-knn"
    assert "Did you mean: imagenet-knn" in str(err.value)
    with pytest.raises(UnknownNameError) as err:
        reg.get("zzzz")
    assert err.value.suggestions == []


def test_duplicate_registration_is_an_error():
    reg = Registry("encoder")
    reg.register("a", 1)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a", 2)


def test_real_registries_suggest(monkeypatch):
    from tasks import TASKS

    with pytest.raises(UnknownNameError) as err:
        TASKS.get("synth-cls-kn")
    assert "synth-cls-knn" in err.value.suggestions


def test_alias_resolves_to_one_entry():
    reg = Registry("encoder")
    reg.register("big-model-7b", "math:tau", card="c")
    reg.alias("big", "big-model-7b", note="the paper's")
    reg.alias("bigger", "big")  # an alias of an alias is the same entry
    assert reg.entry("big") is reg.entry("big-model-7b") is reg.entry("bigger")
    assert reg.canonical("big") == "big-model-7b" == reg.canonical("big-model-7b")
    assert reg.names() == ["big-model-7b"] and reg.names(aliases=True) == ["big-model-7b", "big", "bigger"]
    assert [e.name for e in reg.entries()] == ["big-model-7b"]
    assert "big" in reg and reg.aliases("big-model-7b") == {"big": "big-model-7b", "bigger": "big-model-7b"}
    assert reg.alias_meta("big") == {"note": "the paper's"}
    with pytest.raises(ValueError, match="registered twice"):
        reg.alias("big", "big-model-7b")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("big", 1)
    with pytest.raises(ValueError, match="not registered"):
        reg.alias("small", "small-model")
    with pytest.raises(UnknownNameError) as err:
        reg.canonical("bgi")
    assert "big" in err.value.suggestions  # aliases are suggested too
