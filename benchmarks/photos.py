"""Photo-like 2 MP JPEGs for the import benchmark, generated once and cached between runs.

This module owns the benchmark's image set: 1632×1224 (2.0 MP) JPEGs at quality 90 made of a lighting
gradient, soft shapes and sensor noise, every one different (the server stores files by content, so a
repeated image would be deduplicated and flatter the figure). The noise strength varies per image so that
sizes spread over roughly 0.4 to 1.5 MB like camera photos. Generation is slow (tens of seconds on two
cores), so a finished set is kept under the cache directory with a small `done.json` marker and reused;
`ensure_photo_set` rebuilds it if the marker is missing or says something else.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from benchmarks.common import bench_cache_dir

WIDTH, HEIGHT = 1632, 1224
QUALITY = 90
GENERATOR_VERSION = 2


def cache_root() -> Path:
    return bench_cache_dir()


def _make_photo(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    # Built at a quarter of the size and scaled up: smooth content is cheap to make and looks like optics.
    small_w, small_h = WIDTH // 4, HEIGHT // 4
    yy, xx = np.mgrid[0:small_h, 0:small_w]
    xx = xx / (small_w - 1)
    yy = yy / (small_h - 1)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-9)
    top = rng.uniform(0.1, 0.95, 3)
    bottom = rng.uniform(0.05, 0.8, 3)
    pixels = top * (1 - ramp[..., None]) + bottom * ramp[..., None]
    image = Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 9))):
        cx, cy = rng.uniform(0, 1, 2) * (small_w, small_h)
        rx, ry = rng.uniform(0.04, 0.25, 2) * (small_w, small_h)
        shade = tuple(int(v) for v in rng.integers(0, 256, 3))
        box = [cx - rx, cy - ry, cx + rx, cy + ry]
        if rng.random() < 0.5:
            draw.ellipse(box, fill=shade)
        else:
            draw.rectangle(box, fill=shade)
    image = image.filter(ImageFilter.GaussianBlur(radius=2)).resize((WIDTH, HEIGHT), Image.Resampling.BILINEAR)
    # Sensor noise drives the JPEG size: its strength picks where in 0.4-1.5 MB this photo lands.
    # A random window of a per-process noise field keeps every photo distinct without drawing 6 M normals each.
    sigma = rng.uniform(4.2, 52.0)
    pool = _noise_pool()
    top_row = int(rng.integers(0, pool.shape[0] - HEIGHT))
    left = int(rng.integers(0, pool.shape[1] - WIDTH))
    window = pool[top_row:top_row + HEIGHT, left:left + WIDTH]
    noise = window[..., :1] * sigma + window[..., 1:] * (sigma * 0.35)
    noisy = np.asarray(image, dtype=np.float32) + noise
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


_POOL: np.ndarray | None = None


def _noise_pool() -> np.ndarray:
    global _POOL
    if _POOL is None:
        # Channel 0 is luminance noise shared by R, G and B; channels 1-3 add a little colour noise.
        _POOL = np.random.default_rng(os.getpid()).standard_normal((HEIGHT + 200, WIDTH + 200, 4), dtype=np.float32)
    return _POOL


def _write_one(args: tuple[str, int]) -> int:
    path, seed = args
    target = Path(path)
    partial = target.with_suffix(".part")
    _make_photo(seed).save(partial, "JPEG", quality=QUALITY)
    partial.replace(target)
    return target.stat().st_size


def ensure_photo_set(count: int, *, root: Path | None = None, workers: int = 2) -> list[Path]:
    """`count` distinct photo-like JPEGs in a cached folder (made now if missing); sorted paths."""
    folder = (root or cache_root()) / f"photos-{count}-v{GENERATOR_VERSION}"
    marker = folder / "done.json"
    expected = {"count": count, "width": WIDTH, "height": HEIGHT, "quality": QUALITY, "version": GENERATOR_VERSION}
    paths = [folder / f"photo-{index:05d}.jpg" for index in range(count)]
    try:
        if json.loads(marker.read_text()) == expected and all(p.exists() for p in paths):
            return paths
    except (OSError, ValueError):
        pass
    folder.mkdir(parents=True, exist_ok=True)
    todo = [(str(path), 10_000 + index) for index, path in enumerate(paths) if not path.exists()]
    if todo:
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            list(pool.map(_write_one, todo, chunksize=8))
    marker.write_text(json.dumps(expected))
    return paths


if __name__ == "__main__":
    import sys
    import time

    wanted = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    started = time.perf_counter()
    made = ensure_photo_set(wanted)
    sizes = [p.stat().st_size for p in made]
    print(f"{len(made)} photos in {time.perf_counter() - started:.1f}s, mean {sum(sizes) / len(sizes) / 1e6:.2f} MB, "
          f"min {min(sizes) / 1e6:.2f} MB, max {max(sizes) / 1e6:.2f} MB")
