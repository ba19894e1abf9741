"""Every knob of the depth probes (`--set TASK.key=value`, e.g. `nyud-depth-linear.train.iterations=200`);
the fields become the run's `protocol.*` params. Per-task defaults: `default_config(dataset, head, synthetic)`."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from bench.config import RUNTIME, ConfigError
from bench.data.kitti import KITTI_MAX_DEPTH
from bench.data.nyu import NYU_MAX_DEPTH
from heads.depth import TrainConfig
from heads.depth_bank import LAYER_CHOICES

MAX_DEPTH = {"nyu": NYU_MAX_DEPTH, "kitti": KITTI_MAX_DEPTH}


@dataclass(frozen=True)
class DepthProbeConfig:
    lrs: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3)
    layer_choices: tuple[str, ...] = ("last", "last4")  # linear heads only; DPT always reads 4 blocks
    use_cls: bool = True  # linear: concat CLS to each patch; DPT: readout "project"
    linear_upsample: int = 4  # DINOv2 BNHead upsample=4
    linear_bn: bool = True
    dpt_channels: int = 256  # DINOv2 DPT "channels"
    dpt_head_upsample: bool = True  # False: output at 8x the patch grid (CPU-sized synthetic twin only)
    n_bins: int = 256
    min_depth: float = 1e-3
    max_depth: float = 10.0  # the bins' range and the validity cap: 10 m NYU, 80 m KITTI
    train: TrainConfig = field(default_factory=TrainConfig)
    val_fraction: float = 0.1  # of the scenes / drives, held out of train for selection
    max_train_images: int = 0  # 0 = all; else an evenly strided subset of the (sorted) train list
    flip_tta: bool = False
    examples: int = field(default=4, metadata=RUNTIME)  # test images in depth_examples.png
    eval_batch: int = field(default=8, metadata=RUNTIME)
    threads: int = field(default=0, metadata=RUNTIME)  # CPU threads while heads train; 0 = bench.runtime's policy (1 on <= 4 cores)

    def __post_init__(self) -> None:
        t = self.train
        problems = [
            *(["lrs: at least one, all > 0"] if not self.lrs or min(self.lrs) <= 0 else []),
            *([f"layer_choices: each one of {sorted(LAYER_CHOICES)}"]
              if not self.layer_choices or not set(self.layer_choices) <= set(LAYER_CHOICES) else []),
            *(["train.iterations >= 1"] if t.iterations < 1 else []),
            *(["train.batch_size >= 1"] if t.batch_size < 1 else []),
            *(["train.warmup_fraction in [0, 1]"] if not 0 <= t.warmup_fraction <= 1 else []),
            *(["train.target_stride >= 1"] if t.target_stride < 1 else []),
            *(["train.sigloss_warmup >= 0"] if t.sigloss_warmup < 0 else []),
            *(["val_fraction in (0, 1)"] if not 0 < self.val_fraction < 1 else []),
            *(["0 < min_depth < max_depth"] if not 0 < self.min_depth < self.max_depth else []),
            *(["n_bins >= 2"] if self.n_bins < 2 else []),
            *(["linear_upsample >= 1"] if self.linear_upsample < 1 else []),
            *(["dpt_channels >= 8"] if self.dpt_channels < 8 else []),
            *(["max_train_images >= 0 (0 = all)"] if self.max_train_images < 0 else []),
            *(["examples >= 0"] if self.examples < 0 else []),
            *(["eval_batch >= 1"] if self.eval_batch < 1 else []),
            *(["threads >= 0 (0 = auto)"] if self.threads < 0 else []),
        ]
        if problems:
            raise ConfigError("depth probe config: " + "; ".join(problems))


# Real data: DINOv2 trains 38,400 iterations x 16 images; here a fixed 8,000 x 16 over every train frame
# (the feature cache is memory-mapped, so the full NYU / KITTI train split fits: bench/feature_store.py).
# The earlier default, an evenly strided 4,000-frame subset, stays an explicit variant recorded in the
# params: `--set nyud-depth-linear.max_train_images=4000` (see SUBSET_VARIANT).
SUBSET_VARIANT = 4000
REAL = DepthProbeConfig(train=TrainConfig(iterations=8000, batch_size=16, warmup_fraction=0.1, sigloss_warmup=100),
                        max_train_images=0, flip_tta=True)
# Synthetic twins: sized for 2 CPU cores (see docs/depth.md for timings).
SYNTH = {
    "linear": DepthProbeConfig(lrs=(1e-3, 3e-3, 1e-2, 3e-2), linear_upsample=1,
                               train=TrainConfig(iterations=150, batch_size=4, warmup_fraction=0.1, sigloss_warmup=10,
                                                 target_stride=4)),
    "dpt": DepthProbeConfig(lrs=(1e-3, 3e-3), dpt_channels=32, dpt_head_upsample=False,
                            train=TrainConfig(iterations=60, batch_size=2, warmup_fraction=0.1, sigloss_warmup=5,
                                              target_stride=2)),
}


def default_config(dataset: str, head: str, synthetic: bool) -> DepthProbeConfig:
    cfg = SYNTH[head] if synthetic else REAL
    return replace(cfg, max_depth=MAX_DEPTH[dataset])


__all__ = ["DepthProbeConfig", "MAX_DEPTH", "default_config"]
