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
