"""Every knob of the CortexBench behaviour-cloning loop (`--set TASK.key=value`). Counts left at
None come from `protocol`: "paper" = the eai-vc numbers (docs/robot.md, /work/shared/docs/cortexbench.md
§2, §3.1), "small" = the faithful small variant of §6 (the CI / laptop default). `counts()` gives the
resolved numbers (logged as `bc.*` params); everything else is the same in both variants."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from bench.config import ConfigError

# protocol -> suite -> resolved counts; seeds are the protocol seeds (also each eval's base seed)
PROTOCOLS: dict[str, dict[str, dict[str, object]]] = {
    "paper": {
        "metaworld": dict(demos=25, eval_episodes=25, epochs=100, eval_every=5, seeds=(100, 200, 300)),
        "adroit": dict(demos=100, eval_episodes=25, epochs=100, eval_every=5, seeds=(100, 200, 300)),
        "dmc": dict(demos=100, eval_episodes=10, epochs=100, eval_every=5, seeds=(100, 200, 300)),
        "trifinger": dict(demos=100, eval_episodes=25, epochs=100, eval_every=5, seeds=(100, 200, 300)),
    },
    "small": {  # cortexbench.md §6: only counts shrink; horizons and success rules never do
        "metaworld": dict(demos=5, eval_episodes=5, epochs=20, eval_every=5, seeds=(100, 200)),
        "adroit": dict(demos=10, eval_episodes=5, epochs=20, eval_every=5, seeds=(100, 200)),
        "dmc": dict(demos=5, eval_episodes=3, epochs=20, eval_every=5, seeds=(100, 200)),
        "trifinger": dict(demos=20, eval_episodes=10, epochs=20, eval_every=5, seeds=(100, 200)),
    },
}


@dataclass(frozen=True)
class Counts:
    demos: int
    eval_episodes: int
    epochs: int
    eval_every: int
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class BCConfig:
    HISTORIES: ClassVar[tuple[int, ...]] = (3,)  # history windows this loop implements
    protocol: str = "small"  # "paper" | "small": the counts below when left at None
    demos: Optional[int] = None  # demonstrations (paper MW 25; small 5)
    eval_episodes: Optional[int] = None  # episodes per evaluation (paper 25; small 5)
    epochs: Optional[int] = None  # passes over the T x N demo samples (paper 100; small 20)
    eval_every: Optional[int] = None  # eval after 0-based epoch e if (e % k == 0 and e > 0) or e == last (paper 5)
    seeds: Optional[tuple[int, ...]] = None  # protocol seeds (paper 100, 200, 300; small 100, 200)
    # the fixed eai-vc loop (every knob a field; defaults = the paper)
    history: int = 3  # FLARE window (only 3 is implemented: [e(t-1)-e(t-2), e(t)-e(t-1), e(t)])
    proprio: bool = True  # append the suite's proprioception (MetaWorld obs[:4])
    hidden: tuple[int, ...] = (256, 256, 256)
    batch_size: int = 256
    lr: float = 1e-3
    last_layer_scale: float = 0.01  # last Linear's weight and bias x this after PyTorch's default init
    demo_seed: int = 54321  # demo episode i uses layout seed demo_seed + i (failures skipped)
    demo_attempts: int = 4  # at most demo_attempts x demos expert episodes before giving up
    image_size: int = 256  # render size (CortexBench 256; the encoder sees its own resize/crop)
    shadowsize: int = 0  # MuJoCo shadow map; 0 = 4096 (the scene's) on CUDA, 1024 on CPU
    reflection: bool = True  # the scene's reflections (False: ~4x cheaper CPU renders, different images; tests only)
    encode_chunk: int = 100  # demo frames per ctx.encode call (memory only)
    gif: bool = True  # a short GIF of one evaluation episode (when the run is tracked)

    def __post_init__(self) -> None:
        problems = [
            *([f"protocol: one of {sorted(PROTOCOLS)}"] if self.protocol not in PROTOCOLS else []),
            *(["demos >= 1"] if self.demos is not None and self.demos < 1 else []),
            *(["eval_episodes >= 1"] if self.eval_episodes is not None and self.eval_episodes < 1 else []),
            *(["epochs >= 1"] if self.epochs is not None and self.epochs < 1 else []),
            *(["eval_every >= 1"] if self.eval_every is not None and self.eval_every < 1 else []),
            *(["seeds: at least one, no repeats"] if self.seeds is not None
              and (not self.seeds or len(set(self.seeds)) != len(self.seeds)) else []),
            *([f"history: only {self.HISTORIES} is implemented"] if self.history not in self.HISTORIES else []),
            *(["hidden: at least one layer, sizes >= 1"] if not self.hidden or min(self.hidden) < 1 else []),
            *(["batch_size >= 1"] if self.batch_size < 1 else []),
            *(["lr > 0"] if self.lr <= 0 else []),
            *(["demo_attempts >= 1"] if self.demo_attempts < 1 else []),
            *(["image_size >= 16"] if self.image_size < 16 else []),
            *(["shadowsize >= 0 (0 = auto)"] if self.shadowsize < 0 else []),
            *(["encode_chunk >= 1"] if self.encode_chunk < 1 else []),
        ]
        if problems:
            raise ConfigError("behaviour-cloning config: " + "; ".join(problems))

    def counts(self, suite: str) -> Counts:
        base = PROTOCOLS[self.protocol][suite]
        pick = {k: getattr(self, k) if getattr(self, k) is not None else base[k] for k in base}
        pick["seeds"] = tuple(int(s) for s in pick["seeds"])  # type: ignore[union-attr]
        return Counts(**pick)  # type: ignore[arg-type]


def eval_epochs(epochs: int, every: int) -> list[int]:
    """0-based epochs after whose update the policy is evaluated (eai-vc train_loop.py):
    paper (100, 5) -> 5, 10, ..., 95, 99 = 20 evaluations."""
    return [e for e in range(epochs) if (e % every == 0 and e > 0) or e == epochs - 1]


__all__ = ["BCConfig", "Counts", "PROTOCOLS", "eval_epochs"]
