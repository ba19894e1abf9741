"""Where the geometry comes from: a small annotator interface with ground-truth implementations (the
offline default) and real-model implementations via ``transformers`` when weights are on the machine.

The paper builds single-view data with Depth Pro (metric depth) + SAM2 (masks) and multi-view data
with VGGT, and finds ground-truth geometry gives the same gains (Table 19). Here:

==================  ===========================  ==============================================
interface           ground truth                 model (``from_pretrained(path)``, local files)
==================  ===========================  ==============================================
DepthAnnotator      GTDepth                      DepthProDepth (``DepthProForDepthEstimation``)
Segmenter           GTSegmenter                  Sam2Segmenter (``Sam2Model``, box prompts)
Reconstructor       GTReconstructor              DepthPoseReconstructor (per-view depth + known
                                                 poses; transformers has no VGGT class)
Captioner           GTCaptioner                  BlipCaptioner (``BlipForConditionalGeneration``)
==================  ===========================  ==============================================

Model classes are constructed from a local folder / the HF cache with ``local_files_only=True``;
nothing is ever downloaded. The model classes also accept an already-built model (tests use tiny
random configs). Every annotator works on an :class:`Observation` (image + intrinsics + a key);
ground-truth annotators look the key up in a ``{key: View}`` table.
"""
from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from bench.data.scenes import View, backproject

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Observation:
    rgb: np.ndarray  # (H, W, 3) uint8
    K: np.ndarray | None = None  # (3, 3) when known
    key: str = ""  # identifies the view for ground-truth lookups
    cam_to_world: np.ndarray | None = None


@dataclass
class Reconstruction:
    depths: list[np.ndarray]  # (H, W) metres per view
    cam_to_world: list[np.ndarray]  # (4, 4) per view
    K: list[np.ndarray]  # (3, 3) per view
    extra: dict = field(default_factory=dict)

    def world_points(self, i: int, mask: np.ndarray | None = None) -> np.ndarray:
        pts, _ = backproject(self.depths[i], self.K[i], mask)
        T = self.cam_to_world[i]
        return pts @ T[:3, :3].T + T[:3, 3]


class DepthAnnotator(ABC):
    name: str = "depth"
    is_ground_truth: bool = False

    @abstractmethod
    def __call__(self, obs: Observation) -> np.ndarray:
        """(H, W) float32 metric depth in metres (planar z), 0 where unknown."""


class Segmenter(ABC):
    name: str = "segmenter"
    is_ground_truth: bool = False

    @abstractmethod
    def __call__(self, obs: Observation, boxes: list[tuple[float, float, float, float]]) -> np.ndarray:
        """(N, H, W) bool masks, one per box prompt (x0, y0, x1, y1) in pixels."""


class Reconstructor(ABC):
    name: str = "reconstructor"
    is_ground_truth: bool = False

    @abstractmethod
    def __call__(self, views: list[Observation]) -> Reconstruction:
        """Depth, camera-to-world poses and intrinsics of every view in one world frame."""


class Captioner(ABC):
    name: str = "captioner"
    is_ground_truth: bool = False

    @abstractmethod
    def __call__(self, obs: Observation) -> str:
        """A short caption."""


# --------------------------------------------------------------------------------------------------
# ground truth


class _GT:
    is_ground_truth = True

    def __init__(self, views: dict[str, View] | None = None):
        self.views: dict[str, View] = dict(views or {})

    def add(self, view: View) -> None:
        self.views[view.key] = view

    def _view(self, obs: Observation) -> View:
        try:
            return self.views[obs.key]
        except KeyError:
            raise KeyError(f"no ground truth for view {obs.key!r}") from None


class GTDepth(_GT, DepthAnnotator):
    name = "gt-depth"

    def __call__(self, obs: Observation) -> np.ndarray:
        return self._view(obs).depth.astype(np.float32)


class GTSegmenter(_GT, Segmenter):
    """Box prompt -> the ground-truth instance with the most pixels inside the box."""

    name = "gt-instances"

    def __call__(self, obs: Observation, boxes) -> np.ndarray:
        inst = self._view(obs).instance
        out = np.zeros((len(boxes), *inst.shape), bool)
        for k, (x0, y0, x1, y1) in enumerate(boxes):
            crop = inst[int(y0):int(y1) + 1, int(x0):int(x1) + 1]
            ids, counts = np.unique(crop[crop > 0], return_counts=True)
            if len(ids):
                out[k] = inst == ids[np.argmax(counts)]
        return out


class GTReconstructor(_GT, Reconstructor):
    name = "gt-poses-depth"

    def __call__(self, views: list[Observation]) -> Reconstruction:
        vs = [self._view(o) for o in views]
        if any(v.cam_to_world is None for v in vs):
            raise ValueError("ground-truth reconstruction needs posed views")
        return Reconstruction([v.depth for v in vs], [v.cam_to_world for v in vs], [v.K for v in vs])


class GTCaptioner(_GT, Captioner):
    name = "gt-caption"

    def __call__(self, obs: Observation) -> str:
        from .captions import short_caption
        from bench.data.scenes import ViewGeometry

        v = self._view(obs)
        rng = np.random.default_rng(zlib.crc32(obs.key.encode()))
        return short_caption(ViewGeometry.compute(v), rng, max(1, int(0.002 * v.depth.size)))


# --------------------------------------------------------------------------------------------------
# real models (transformers)


def _to_pixel_values(rgb: np.ndarray, size: tuple[int, int], mean, std):
    import torch
    from PIL import Image

    im = np.asarray(Image.fromarray(np.asarray(rgb, np.uint8)).resize((size[1], size[0]), Image.BICUBIC), np.float32) / 255.0
    x = (im - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(x).permute(2, 0, 1)[None].contiguous()


def _device_of(model) -> "torch.device":  # noqa: F821
    return next(model.parameters()).device


class DepthProDepth(DepthAnnotator):
    """Apple Depth Pro through ``DepthProForDepthEstimation``.

    The model predicts a canonical inverse depth; metric depth = f_px / (W * inverse depth). With
    known intrinsics f_px is the true focal length, else the model's field-of-view head estimates it.
    """

    name = "depth-pro"

    def __init__(self, model, size: tuple[int, int] | None = None, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
        self.model = model.eval()
        s = size or (model.config.image_model_config.image_size * 4,) * 2
        self.size, self.mean, self.std = tuple(s), mean, std

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu") -> "DepthProDepth":
        from transformers import DepthProForDepthEstimation, DepthProImageProcessor

        model = DepthProForDepthEstimation.from_pretrained(str(path), local_files_only=True).to(device)
        proc = DepthProImageProcessor.from_pretrained(str(path), local_files_only=True)
        return cls(model, (proc.size["height"], proc.size["width"]), proc.image_mean, proc.image_std)

    def __call__(self, obs: Observation) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        H, W = obs.rgb.shape[:2]
        x = _to_pixel_values(obs.rgb, self.size, self.mean, self.std).to(_device_of(self.model))
        with torch.no_grad():
            out = self.model(pixel_values=x)
        inv = F.interpolate(out.predicted_depth[:, None].float(), size=(H, W), mode="bilinear", align_corners=False)[0, 0]
        if obs.K is not None:
            focal = float(obs.K[0, 0])
        elif getattr(out, "field_of_view", None) is not None:
            focal = 0.5 * W / float(torch.tan(0.5 * torch.deg2rad(out.field_of_view[0].float())))
        else:
            raise ValueError("Depth Pro needs intrinsics or a field-of-view head for metric depth")
        depth = focal / (W * inv.clamp(min=1e-4, max=1e4))
        return depth.cpu().numpy().astype(np.float32)


class Sam2Segmenter(Segmenter):
    """SAM2 (``Sam2Model``) with one box prompt per object; masks upsampled to the image size."""

    name = "sam2"

    def __init__(self, model, size: int | None = None, mean=IMAGENET_MEAN, std=IMAGENET_STD, threshold: float = 0.0):
        self.model = model.eval()
        self.size = int(size or model.config.prompt_encoder_config.image_size)
        self.mean, self.std, self.threshold = mean, std, threshold

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu") -> "Sam2Segmenter":
        from transformers import Sam2ImageProcessor, Sam2Model

        model = Sam2Model.from_pretrained(str(path), local_files_only=True).to(device)
        proc = Sam2ImageProcessor.from_pretrained(str(path), local_files_only=True)
        return cls(model, proc.size["height"], proc.image_mean, proc.image_std)

    def __call__(self, obs: Observation, boxes) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        H, W = obs.rgb.shape[:2]
        if not len(boxes):
            return np.zeros((0, H, W), bool)
        S = self.size
        x = _to_pixel_values(obs.rgb, (S, S), self.mean, self.std).to(_device_of(self.model))
        b = torch.tensor(np.asarray(boxes, np.float32) * np.array([S / W, S / H, S / W, S / H], np.float32))[None]
        with torch.no_grad():
            out = self.model(pixel_values=x, input_boxes=b.to(x.device), multimask_output=False)
        logits = out.pred_masks[0, :, 0].float()  # (N, h, w)
        up = F.interpolate(logits[:, None], size=(H, W), mode="bilinear", align_corners=False)[:, 0]
        return (up > self.threshold).cpu().numpy()


class DepthPoseReconstructor(Reconstructor):
    """Multi-view geometry from a depth annotator and known camera poses (ScanNet-style data ships
    poses). The paper uses VGGT, which the installed ``transformers`` does not provide; plug a VGGT
    wrapper into this interface where it is available."""

    name = "depth+poses"

    def __init__(self, depth: DepthAnnotator):
        self.depth = depth

    def __call__(self, views: list[Observation]) -> Reconstruction:
        if any(o.cam_to_world is None or o.K is None for o in views):
            raise ValueError("DepthPoseReconstructor needs intrinsics and poses for every view")
        return Reconstruction([self.depth(o) for o in views], [o.cam_to_world for o in views], [o.K for o in views],
                              {"depth": self.depth.name})


class BlipCaptioner(Captioner):
    """BLIP (``BlipForConditionalGeneration``) captions; ``decode`` maps token ids to text."""

    name = "blip"

    def __init__(self, model, decode, size: int | None = None, mean=(0.48145466, 0.4578275, 0.40821073),
                 std=(0.26862954, 0.26130258, 0.27577711), max_new_tokens: int = 30):
        self.model, self.decode = model.eval(), decode
        self.size = int(size or model.config.vision_config.image_size)
        self.mean, self.std, self.max_new_tokens = mean, std, max_new_tokens

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu") -> "BlipCaptioner":
        from transformers import BlipForConditionalGeneration, BlipProcessor

        model = BlipForConditionalGeneration.from_pretrained(str(path), local_files_only=True).to(device)
        proc = BlipProcessor.from_pretrained(str(path), local_files_only=True)
        ip = proc.image_processor
        return cls(model, lambda ids: proc.decode(ids, skip_special_tokens=True), ip.size["height"], ip.image_mean, ip.image_std)

    def __call__(self, obs: Observation) -> str:
        import torch

        x = _to_pixel_values(obs.rgb, (self.size, self.size), self.mean, self.std).to(_device_of(self.model))
        with torch.no_grad():
            ids = self.model.generate(pixel_values=x, max_new_tokens=self.max_new_tokens, do_sample=False)
        return self.decode(ids[0].tolist()).strip()


# --------------------------------------------------------------------------------------------------
# building views from annotators


@dataclass
class Annotators:
    """The set of annotators a recipe uses; ``None`` entries fall back to ground truth."""

    depth: DepthAnnotator | None = None
    segmenter: Segmenter | None = None
    reconstructor: Reconstructor | None = None
    captioner: Captioner | None = None

    @property
    def ground_truth(self) -> bool:
        return all(a is None or a.is_ground_truth for a in (self.depth, self.segmenter, self.reconstructor, self.captioner))

    def describe(self) -> dict:
        return {k: (getattr(self, k).name if getattr(self, k) is not None else "ground-truth")
                for k in ("depth", "segmenter", "reconstructor", "captioner")}


def annotate_view(view: View, rgb: np.ndarray, ann: Annotators) -> View:
    """Replace a view's depth / instance masks by the annotators' outputs (ground truth kept where an
    annotator is ``None``). The segmenter is prompted with the ground-truth 2D box of each object,
    standing in for the paper's open-vocabulary detector; a model depth drops the floor mask (the
    floor is then fitted from non-object pixels, see geometry.floor_candidates)."""
    obs = Observation(rgb, view.K, view.key, view.cam_to_world)
    out = view
    if ann.depth is not None and not ann.depth.is_ground_truth:
        out = replace(out, depth=ann.depth(obs).astype(np.float32), floor_mask=None)
    if ann.segmenter is not None and not ann.segmenter.is_ground_truth:
        ids = [int(i) for i in np.unique(view.instance) if i != 0]
        boxes = []
        for i in ids:
            ys, xs = np.nonzero(view.instance == i)
            boxes.append((xs.min(), ys.min(), xs.max(), ys.max()))
        masks = ann.segmenter(obs, boxes)
        inst = np.zeros_like(view.instance)
        order = np.argsort([-m.sum() for m in masks]) if len(masks) else []
        for k in order:  # larger masks first, smaller ones drawn on top
            inst[masks[k]] = ids[k]
        out = replace(out, instance=inst)
    return out
