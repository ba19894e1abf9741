"""Image preprocessing for VLM training and evaluation."""
from __future__ import annotations


class SquareImageTransform:
    """LLaVA-1.5 'pad' preprocessing: pad to square with the mean colour, resize, normalise.

    Padding (not cropping) keeps every pixel, so the normalised pixel coordinates the spatial
    questions refer to stay inside the image.
    """

    def __init__(self, resolution: int, mean, std, interpolation: str = "bicubic"):
        import torch
        from torchvision.transforms import v2 as T

        self.resolution, self.mean, self.std = int(resolution), tuple(mean), tuple(std)
        interp = T.InterpolationMode.BICUBIC if interpolation == "bicubic" else T.InterpolationMode.BILINEAR
        self._post = T.Compose([T.PILToTensor(), T.Resize((self.resolution, self.resolution), interpolation=interp,
                                                          antialias=True),
                                T.ToDtype(torch.float32, scale=True), T.Normalize(self.mean, self.std)])

    def __call__(self, image):
        from PIL import Image

        w, h = image.size
        if w != h:
            side = max(w, h)
            fill = tuple(int(round(255 * m)) for m in self.mean)
            canvas = Image.new("RGB", (side, side), fill)
            canvas.paste(image, ((side - w) // 2, (side - h) // 2))
            image = canvas
        return self._post(image)

    def describe(self) -> str:
        return f"pad_square(mean),resize={self.resolution},mean={list(self.mean)},std={list(self.std)}"


__all__ = ["SquareImageTransform"]
