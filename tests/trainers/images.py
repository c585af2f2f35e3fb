"""Photo-like test images made with numpy and Pillow: smooth lighting gradients, soft shapes, sensor noise.

Two "styles" stand in for two different datasets: `warm` (sunset-like orange/red skies with dark round
shapes) and `cool` (blue/green scenes with bright rectangles). Real PNG files, different every image,
repeatable from the seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

STYLES = ("warm", "cool")


def photo_like_image(rng: np.random.Generator, style: str, size: int = 96) -> Image.Image:
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy)
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-9)
    if style == "warm":
        top = np.array([0.95, 0.55, 0.2]) + rng.normal(0, 0.05, 3)
        bottom = np.array([0.45, 0.1, 0.15]) + rng.normal(0, 0.05, 3)
    else:
        top = np.array([0.2, 0.45, 0.9]) + rng.normal(0, 0.05, 3)
        bottom = np.array([0.1, 0.5, 0.25]) + rng.normal(0, 0.05, 3)
    pixels = top * (1 - ramp[..., None]) + bottom * ramp[..., None]
    image = Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(1, 4)):
        cx, cy = rng.uniform(0.15, 0.85, 2) * size
        radius = rng.uniform(0.08, 0.25) * size
        box = [cx - radius, cy - radius, cx + radius, cy + radius]
        if style == "warm":
            shade = tuple(int(v) for v in rng.integers(10, 70, 3))
            draw.ellipse(box, fill=shade)
        else:
            shade = tuple(int(v) for v in rng.integers(190, 255, 3))
            draw.rectangle(box, fill=shade)
    image = image.filter(ImageFilter.GaussianBlur(radius=size / 48))
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, 6.0, (size, size, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def write_image_set(folder: Path, count: int, style: str, seed: int = 0, size: int = 96) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        path = folder / f"{style}-{index:03d}.png"
        photo_like_image(rng, style, size).save(path)
        paths.append(path)
    return paths
