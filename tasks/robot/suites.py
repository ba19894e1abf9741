"""Suite lookup by name: the BC core builds envs and experts through here. Suite modules are
imported lazily (each imports its simulator); they may import `tasks.robot.env`, never this file.
Env constructors get the render keywords image_size, shadowsize, reflection and render (False: no
GL context; a state-only oracle) and may ignore those their simulator lacks."""
from __future__ import annotations

from typing import Any

from tasks.robot.env import Expert, SuiteEnv


def make_env(suite: str, name: str, **kwargs: Any) -> SuiteEnv:
    if suite == "metaworld":
        from tasks.robot.metaworld import MetaWorldEnv
        return MetaWorldEnv(name, **kwargs)
    kwargs.pop("reflection", None)  # a MetaWorld scene knob (its table's reflection); the others have none
    if suite == "dmc":
        from tasks.robot.dmc import make_dmc_env  # type: ignore[import-not-found]
        return make_dmc_env(name, **kwargs)
    if suite == "adroit":
        from tasks.robot.adroit import make_adroit_env  # type: ignore[import-not-found]
        return make_adroit_env(name, **kwargs)
    if suite == "trifinger":
        from tasks.robot.trifinger import make_trifinger_env
        return make_trifinger_env(name, **kwargs)
    raise ValueError(f"unknown CortexBench suite {suite!r} (metaworld, dmc, adroit, trifinger)")


def make_expert(suite: str, name: str, env: SuiteEnv) -> Expert:
    if suite == "metaworld":
        from tasks.robot.metaworld import MetaWorldExpert
        return MetaWorldExpert(name)
    if suite == "dmc":
        from tasks.robot.dmc import make_dmc_expert  # type: ignore[import-not-found]
        return make_dmc_expert(name, env)
    if suite == "adroit":
        from tasks.robot.adroit import make_adroit_expert  # type: ignore[import-not-found]
        return make_adroit_expert(name, env)
    if suite == "trifinger":
        from tasks.robot.trifinger import make_trifinger_expert
        return make_trifinger_expert(name, env)
    raise ValueError(f"unknown CortexBench suite {suite!r} (metaworld, dmc, adroit, trifinger)")


def expert_id(suite: str, name: str) -> str:
    """Identity of a trained expert (part of the demo cache key): DMC SAC "sac<steps>-<sha12>", else ""."""
    from tasks.robot.sources import SAC_ENVS, sac_expert_id

    return sac_expert_id(name) if suite == "dmc" and name in SAC_ENVS else ""


__all__ = ["expert_id", "make_env", "make_expert"]
