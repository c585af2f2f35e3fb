"""Aspect-ratio buckets of a dataset for a training resolution (issue 17): which bucket each image falls
into, which images get upscaled, which buckets hold fewer images than a batch. Pure functions of the
stored image sizes, no I/O.

The algorithm follows kohya-ss/sd-scripts, so the figures match what kohya trains on:
- `make_bucket_resolutions` is library/model_util.py `make_bucket_resolutions(max_reso, min_size,
  max_size, divisible)`: the square bucket `int(sqrt(area) // step) * step`, then for every width from
  `min_size` to `max_size` in `step`s the largest height (a multiple of `step`, at most `max_size`) whose
  area stays within resolution², added both ways round when the height is at least `min_size`;
- `select_bucket` is library/train_util.py `BucketManager.select_bucket` with upscaling allowed (kohya's
  default, `no_upscale` off): an image whose exact size is a bucket keeps it, otherwise the bucket with the
  nearest aspect ratio (the first one, in sorted order, on a tie, like numpy's argmin); the image is scaled
  so that it covers the bucket (the side that is relatively shorter fits exactly) and cropped.
An image is "upscaled" when that scale is above 1: it is enlarged to fill its bucket, which costs detail.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

DEFAULT_MIN_BUCKET = 256
DEFAULT_MAX_BUCKET = 1024


@dataclass
class Bucket:
    width: int
    height: int
    files: list[str] = field(default_factory=list)  # sha256 of the images in it, in the order given

    @property
    def count(self) -> int:
        return len(self.files)


@dataclass
class BucketReport:
    resolution: int
    step: int
    batch_size: int
    buckets: list[Bucket]  # only buckets with images, sorted by (width, height)
    upscaled: list[str]  # images enlarged to fill their bucket
    small_buckets: list[tuple[int, int]]  # buckets holding fewer images than batch_size
    unsized: list[str]  # images without a stored size (not bucketed)


def make_bucket_resolutions(resolution: int, min_size: int = DEFAULT_MIN_BUCKET, max_size: int = DEFAULT_MAX_BUCKET,
                            step: int = 64) -> list[tuple[int, int]]:
    """kohya's bucket (width, height) list for a square `resolution`, sorted."""
    max_area = resolution * resolution
    resolutions: set[tuple[int, int]] = set()
    square = int(math.sqrt(max_area) // step) * step
    resolutions.add((square, square))
    width = min_size
    while width <= max_size:
        height = min(max_size, int((max_area // width) // step) * step)
        if height >= min_size:
            resolutions.add((width, height))
            resolutions.add((height, width))
        width += step
    return sorted(resolutions)


class BucketChooser:
    """Chooses buckets as kohya's BucketManager.select_bucket does, in O(log n) per image (bisect over the
    sorted aspect ratios instead of a scan), with the same tie rule (the first bucket in sorted order)."""

    def __init__(self, resolutions: list[tuple[int, int]]) -> None:
        self.resolutions = resolutions
        self.exact = set(resolutions)
        ratios = [(w / h, index) for index, (w, h) in enumerate(resolutions)]
        ratios.sort()
        self._ratios = [ratio for ratio, _index in ratios]
        # For equal ratios keep the smallest index first so ties resolve to kohya's argmin choice.
        self._indices = [index for _ratio, index in ratios]

    def nearest(self, aspect: float) -> tuple[int, int]:
        """The bucket whose aspect ratio is nearest `aspect` (on a tie the first in sorted order)."""
        ratios = self._ratios
        right = bisect.bisect_left(ratios, aspect)  # first of the group of equal ratios at or above
        left = right - 1
        while left > 0 and ratios[left - 1] == ratios[left]:
            left -= 1  # first of the group below, whose smallest index comes first
        best_index, best_error = -1, math.inf
        for candidate in (left, right):
            if 0 <= candidate < len(ratios):
                error = abs(ratios[candidate] - aspect)
                index = self._indices[candidate]
                if error < best_error or (error == best_error and index < best_index):
                    best_index, best_error = index, error
        return self.resolutions[best_index]

    def select(self, width: int, height: int) -> tuple[tuple[int, int], float]:
        """The bucket of an image and the scale it is resized by (kohya: covers the bucket, then crops)."""
        if (width, height) in self.exact:
            bucket = (width, height)
        else:
            bucket = self.nearest(width / height)
        aspect = width / height
        if aspect > bucket[0] / bucket[1]:  # wider than the bucket: the heights match
            scale = bucket[1] / height
        else:
            scale = bucket[0] / width
        return bucket, scale


def bucket_report(sizes: Iterable[tuple[str, int | None, int | None]], *, resolution: int, step: int = 64,
                  batch_size: int = 1, min_size: int = DEFAULT_MIN_BUCKET,
                  max_size: int | None = None) -> BucketReport:
    """Bucket statistics for images given as (sha256, width, height). `max_size` defaults to kohya's
    max_bucket_reso (1024), raised to the resolution when that is larger."""
    if max_size is None:
        max_size = max(DEFAULT_MAX_BUCKET, resolution)
    # Out-of-range settings are clamped to what makes buckets at all (a step above the resolution would
    # make a 0×0 square bucket, a smallest side above the largest none).
    step = max(1, min(step, resolution))
    min_size = min(min_size, max_size)
    chooser = BucketChooser(make_bucket_resolutions(resolution, min_size, max_size, step))
    by_bucket: dict[tuple[int, int], Bucket] = {}
    upscaled: list[str] = []
    unsized: list[str] = []
    for sha, width, height in sizes:
        if not width or not height or width <= 0 or height <= 0:
            unsized.append(sha)
            continue
        key, scale = chooser.select(width, height)
        bucket = by_bucket.get(key)
        if bucket is None:
            bucket = by_bucket[key] = Bucket(*key)
        bucket.files.append(sha)
        if scale > 1:
            upscaled.append(sha)
    buckets = [by_bucket[key] for key in sorted(by_bucket)]
    small = [(bucket.width, bucket.height) for bucket in buckets if bucket.count < batch_size]
    return BucketReport(resolution=resolution, step=step, batch_size=batch_size, buckets=buckets,
                        upscaled=upscaled, small_buckets=small, unsized=unsized)
