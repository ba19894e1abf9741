"""Every knob of the segmentation probes, both variants (`--set TASK.key=value`, e.g.
`ade20k-seg-linear.variant=fast` or `synth-seg-linear.fast_iters=300`); the fields become the run's
`protocol.*` params. Per-task defaults: `default_config(synthetic, multiscale)`. No torch here."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from bench.config import RUNTIME, ConfigError

MS_RATIOS = (1.0, 1.32, 1.73, 2.28, 3.0)
VARIANTS = ("fast", "faithful")


@dataclass(frozen=True)
class SegConfig:
    """Defaults = the protocol (see tasks/segmentation/probe.py and docs/segmentation.md)."""

    variant: str = "faithful"  # faithful (the paper protocol, on the fly) | fast (cached features, lr bank)
    dropout: float = 0.1
    ms_ratios: tuple[float, ...] = MS_RATIOS
    # faithful: DINOv2 linear segmentation (mmseg 0.x configs), 8 GPUs x 2 images
    iters: int = 40_000
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_frac: float = 1500 / 40_000  # 1500 linear-warmup iterations at 40k
    crop: int = 512
    stride: int = 341
    scale: tuple[int, int] = (2048, 512)
    ratio_range: tuple[float, float] = (0.5, 2.0)
    cat_max_ratio: float = 0.75
    # fast: cached features, bank of learning rates, lr picked on a held-out part of train
    fast_lrs: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
    fast_epochs: float = 10.0  # iterations = epochs x train images / batch, clamped to [min, max]
    fast_min_iters: int = 200
    fast_max_iters: int = 10_000
    fast_iters: int | None = None  # exact iteration count (overrides the epochs rule)
    fast_batch: int = 16
    fast_size: int | None = None  # None: the encoder's resolution (rounded to the patch size)
    fast_stride_frac: float = 1.0  # slide stride / crop at test time (faithful: 341/512); 1.0 = tiling, ~2x cheaper
    holdout_frac: float = 0.1
    examples: int = field(default=4, metadata=RUNTIME)  # val images in the overlay picture
    # test on this many evenly spaced val images (None = the whole val split); the majority baseline
    # uses the same images. The synthetic +ms twin uses 32 (10 TTA views cost ~2 s per image on a CPU).
    max_val_images: int | None = None

    def __post_init__(self) -> None:
        def positive(*names: str) -> list[str]:
            return [f"{n} > 0" for n in names if not getattr(self, n) > 0]

        problems = [
            *([f"variant must be one of {', '.join(VARIANTS)} (got {self.variant!r})"]
              if self.variant not in VARIANTS else []),
            *(["iters >= 1"] if self.iters < 1 else []), *(["batch_size >= 1"] if self.batch_size < 1 else []),
            *(["fast_batch >= 1"] if self.fast_batch < 1 else []),
            *(["fast_iters >= 1 (or null: the epochs rule)"] if self.fast_iters is not None and self.fast_iters < 1
              else []),
            *(["1 <= fast_min_iters <= fast_max_iters"] if not 1 <= self.fast_min_iters <= self.fast_max_iters else []),
            *positive("lr", "fast_epochs", "crop", "stride"),
            *(["dropout in [0, 1)"] if not 0 <= self.dropout < 1 else []),
            *(["warmup_frac in [0, 1)"] if not 0 <= self.warmup_frac < 1 else []),
            *(["holdout_frac in (0, 1)"] if not 0 < self.holdout_frac < 1 else []),
            *(["fast_stride_frac in (0, 1]"] if not 0 < self.fast_stride_frac <= 1 else []),
            *(["cat_max_ratio in (0, 1]"] if not 0 < self.cat_max_ratio <= 1 else []),
            *(["weight_decay >= 0"] if self.weight_decay < 0 else []),
            *(["ms_ratios: at least one, all > 0"] if not self.ms_ratios or min(self.ms_ratios) <= 0 else []),
            *(["fast_lrs: at least one, all > 0"] if not self.fast_lrs or min(self.fast_lrs) <= 0 else []),
            *(["ratio_range: 0 < low <= high"] if not 0 < self.ratio_range[0] <= self.ratio_range[1] else []),
            *(["scale: two sides >= 1"] if len(self.scale) != 2 or min(self.scale) < 1 else []),
            *(["fast_size >= 1 (or null: the encoder's resolution)"]
              if self.fast_size is not None and self.fast_size < 1 else []),
            *(["examples >= 0"] if self.examples < 0 else []),
            *(["max_val_images >= 1 (or null: all)"] if self.max_val_images is not None and self.max_val_images < 1
              else []),
        ]
        if problems:
            raise ConfigError("segmentation probe config: " + "; ".join(problems))


def default_config(synthetic: bool, multiscale: bool) -> SegConfig:
    """Real data: the faithful paper protocol. Synthetic twins: the fast variant (CPU); the +ms twin
    tests on 32 evenly spaced val images."""
    if not synthetic:
        return SegConfig()
    return replace(SegConfig(), variant="fast", max_val_images=32 if multiscale else None)


__all__ = ["MS_RATIOS", "SegConfig", "VARIANTS", "default_config"]
