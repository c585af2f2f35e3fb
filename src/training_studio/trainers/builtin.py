"""The built-in trainer: a linear VAE learnt from a dataset's images with numpy, no downloads.

Owns the whole built-in training run: loading the images of a dataset directory (the HF imagefolder
layout, or any folder of images), downscaling them to `resolution` px, holding out ~10% of them,
fitting a linear VAE by mini-batch gradient steps (Adam, analytic gradients), reporting progress in the
JSON-lines trainer protocol every step, and writing a checkpoint (.npz) and a PNG grid of generated
samples. The checkpoint announcements and the final evaluation are JSON lines with an `event` key (see
docs/api.md, "Trainer progress protocol"). As it trains it can also write a small sample grid every
`sample_every` steps (`samples/step-NNNNNN.png`) and an intermediate checkpoint every `checkpoint_every`
steps (`checkpoints/step-NNNNNN.npz`): the names runner/registry.py declares as the built-in trainer's
samples and checkpoints globs, so the server lists them as it lists a preset's.

The model (Lucas et al., 2019, "Don't blame the ELBO"): decoder p(x|z) = N(W z + mu, sigma^2 I),
encoder q(z|x) = N(V (x - mu), diag(s^2)), prior N(0, I). With a linear decoder the expected
reconstruction error has a closed form, so the ELBO and its gradients are exact, no sampling needed.
Its optimum is probabilistic PCA, which is why it beats the mean image by a wide margin on real
photos, and why sampling z ~ N(0, I) gives images that look like the training set.
"""

from __future__ import annotations

import errno
import json
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
CHECKPOINT_NAME = "checkpoint.npz"
SAMPLES_NAME = "samples.png"
HELD_OUT_FRACTION = 0.1
SAMPLE_GRID = 4  # 4x4 samples
SAMPLE_TILE_MIN_PX = 64
# The step files (matching registry.BUILTIN_SAMPLES_GLOB / BUILTIN_CHECKPOINTS_GLOB).
STEP_SAMPLE_NAME = "samples/step-{step:06d}.png"
STEP_CHECKPOINT_NAME = "checkpoints/step-{step:06d}.npz"
STEP_SAMPLE_GRID = 2  # 2x2 tiles of at least SAMPLE_TILE_MIN_PX: cheap to draw and encode every few steps


class DatasetError(Exception):
    """The dataset cannot be trained on; the message says why, for the job's `error`."""


@dataclass
class TrainConfig:
    dataset_dir: Path
    output_dir: Path
    total_steps: int
    resolution: int = 32
    latent_dim: int = 16
    learning_rate: float = 0.01
    batch_size: int = 32
    seed: int = 0
    sample_every: int = 0  # steps between step sample grids; 0: none
    checkpoint_every: int = 0  # steps between intermediate checkpoints; 0: none


class _Stop:
    """Set by SIGTERM/SIGINT so the loop can exit promptly between steps."""

    requested = False
    signum = 0


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _Stop.requested = True
    _Stop.signum = signum


def emit(payload: dict) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def find_images(dataset_dir: Path) -> list[Path]:
    if not dataset_dir.is_dir():
        raise DatasetError(f"the dataset folder {dataset_dir} does not exist")
    return sorted(p for p in dataset_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_images(paths: list[Path], resolution: int) -> tuple[np.ndarray, list[str]]:
    """Images as rows of floats in [0, 1] (N x res*res*3), and the problems with those skipped."""
    rows: list[np.ndarray] = []
    problems: list[str] = []
    for path in paths:
        try:
            with Image.open(path) as image:
                # JPEG can decode at 1/2..1/8 scale: a camera photo then loads in a fraction of the time
                image.draft("RGB", (resolution * 4, resolution * 4))
                image = image.convert("RGB")
                image = _center_square(image).resize((resolution, resolution), Image.Resampling.BOX)
                rows.append(np.asarray(image, dtype=np.float32).reshape(-1) / 255.0)
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
            problems.append(f"{path.name}: {exc}")
    if not rows:
        return np.zeros((0, resolution * resolution * 3), dtype=np.float32), problems
    return np.stack(rows), problems


def _center_square(image: Image.Image) -> Image.Image:
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side))


class LinearVAE:
    """Parameters, exact loss/gradients, and Adam state of the linear VAE."""

    def __init__(self, mean: np.ndarray, latent_dim: int, rng: np.random.Generator) -> None:
        dims = mean.shape[0]
        self.mu = mean.astype(np.float64)
        self.W = rng.normal(0.0, 0.01, size=(dims, latent_dim))  # decoder
        self.V = rng.normal(0.0, 0.01, size=(latent_dim, dims))  # encoder mean
        self.log_s2 = np.full(latent_dim, -2.0)  # encoder log-variances
        self.log_sigma2 = np.log(0.05)  # observation noise
        self._adam_m = [np.zeros_like(p) for p in self._params()]
        self._adam_v = [np.zeros_like(p) for p in self._params()]
        self._t = 0

    def _params(self) -> list[np.ndarray]:
        return [self.W, self.V, self.log_s2, np.atleast_1d(self.log_sigma2)]

    def loss_and_grads(self, batch: np.ndarray) -> tuple[float, float, list[np.ndarray]]:
        """(negative ELBO per pixel, reconstruction MSE, gradients) on a batch."""
        n, dims = batch.shape
        centered = batch - self.mu
        s2 = np.exp(self.log_s2)
        sigma2 = float(np.exp(self.log_sigma2))
        m = centered @ self.V.T
        residual = centered - m @ self.W.T
        w_norms = (self.W ** 2).sum(axis=0)
        expected_sq = (residual ** 2).sum(axis=1) + float(s2 @ w_norms)  # E_q ||x - Wz - mu||^2
        kl = 0.5 * ((m ** 2).sum(axis=1) + s2.sum() - self.log_s2.sum() - s2.size)
        nll = expected_sq / (2 * sigma2) + 0.5 * dims * (math.log(2 * math.pi) + self.log_sigma2)
        loss = float((nll + kl).mean()) / dims
        mse = float((residual ** 2).mean())

        grad_m = (-(residual @ self.W) / sigma2 + m) / n
        grad_W = (-(residual.T @ m) / n + self.W * s2) / sigma2
        grad_V = grad_m.T @ centered
        grad_log_s2 = s2 * (w_norms / (2 * sigma2) + 0.5) - 0.5
        grad_log_sigma2 = np.atleast_1d(0.5 * dims - expected_sq.mean() / (2 * sigma2))
        # the loss is reported per pixel; scale gradients the same way so the learning rate is portable
        grads = [g / dims for g in (grad_W, grad_V, grad_log_s2, grad_log_sigma2)]
        return loss, mse, grads

    def adam_step(self, grads: list[np.ndarray], lr: float, beta1: float = 0.9, beta2: float = 0.999) -> None:
        self._t += 1
        updated = []
        for index, (param, grad) in enumerate(zip(self._params(), grads)):
            self._adam_m[index] = beta1 * self._adam_m[index] + (1 - beta1) * grad
            self._adam_v[index] = beta2 * self._adam_v[index] + (1 - beta2) * grad ** 2
            m_hat = self._adam_m[index] / (1 - beta1 ** self._t)
            v_hat = self._adam_v[index] / (1 - beta2 ** self._t)
            updated.append(param - lr * m_hat / (np.sqrt(v_hat) + 1e-8))
        self.W, self.V, self.log_s2 = updated[0], updated[1], np.clip(updated[2], -12.0, 4.0)
        self.log_sigma2 = float(np.clip(updated[3][0], -14.0, 2.0))

    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        centered = images - self.mu
        return self.mu + (centered @ self.V.T) @ self.W.T

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        return self.decode(rng.standard_normal((count, self.W.shape[1])))

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Images (rows in [0, 1]) the decoder makes of the latent points `z`."""
        return np.clip(self.mu + z @ self.W.T, 0.0, 1.0)


def samples_grid(samples: np.ndarray, resolution: int, grid: int) -> Image.Image:
    tiles = samples.reshape(-1, resolution, resolution, 3)
    scale = max(1, math.ceil(SAMPLE_TILE_MIN_PX / resolution))
    tile_px = resolution * scale
    canvas = Image.new("RGB", (grid * tile_px + (grid + 1) * 2, grid * tile_px + (grid + 1) * 2), (24, 24, 24))
    for index, tile in enumerate(tiles[: grid * grid]):
        image = Image.fromarray((tile * 255.0 + 0.5).astype(np.uint8), "RGB")
        image = image.resize((tile_px, tile_px), Image.Resampling.NEAREST)
        row, col = divmod(index, grid)
        canvas.paste(image, (2 + col * (tile_px + 2), 2 + row * (tile_px + 2)))
    return canvas


def split_held_out(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, held_out): ~10% held out, at least one when there are two images or more."""
    order = rng.permutation(count)
    if count < 2:
        return order, order[:0]
    held = max(1, int(round(count * HELD_OUT_FRACTION)))
    return order[held:], order[:held]


def train(config: TrainConfig) -> int:
    started = time.monotonic()
    rng = np.random.default_rng(config.seed)
    paths = find_images(config.dataset_dir)
    if not paths:
        raise DatasetError(f"the dataset has no images (looked in {config.dataset_dir})")
    images, problems = load_images(paths, config.resolution)
    for problem in problems:
        print(f"skipped an unreadable image: {problem}", file=sys.stderr, flush=True)
    if images.shape[0] == 0:
        raise DatasetError(f"none of the {len(paths)} images of the dataset could be read "
                           f"(first problem: {problems[0]})")
    train_idx, held_idx = split_held_out(images.shape[0], rng)
    train_set, held_out = images[train_idx].astype(np.float64), images[held_idx].astype(np.float64)
    print(f"training a linear VAE on {len(train_set)} images at {config.resolution}px "
          f"({len(held_out)} held out), latent_dim={config.latent_dim}", file=sys.stderr, flush=True)

    model = LinearVAE(train_set.mean(axis=0), config.latent_dim, rng)
    step_outputs = StepOutputs(config)
    batch_size = min(config.batch_size, len(train_set))
    total = config.total_steps
    order = rng.permutation(len(train_set))
    cursor = 0
    for step in range(1, total + 1):
        if _Stop.requested:
            print(f"stopped by {signal.Signals(_Stop.signum).name} at step {step - 1}", file=sys.stderr, flush=True)
            return 128 + _Stop.signum
        if cursor + batch_size > len(order):
            order, cursor = rng.permutation(len(train_set)), 0
        batch = train_set[order[cursor:cursor + batch_size]]
        cursor += batch_size
        lr = config.learning_rate * 0.5 * (1 + math.cos(math.pi * (step - 1) / total))  # cosine decay
        loss, mse, grads = model.loss_and_grads(batch)
        if not math.isfinite(loss):
            print("RuntimeError: the loss diverged (try a lower learning_rate)", file=sys.stderr, flush=True)
            return 1
        model.adam_step(grads, lr)
        emit({"step": step, "total_steps": total, "loss": round(mse, 8), "elbo_loss": round(loss, 6)})
        step_outputs.after_step(step, model)

    evaluation_set = held_out if len(held_out) else train_set
    heldout_mse = float(((model.reconstruct(evaluation_set) - evaluation_set) ** 2).mean())
    baseline_mse = float(((model.mu - evaluation_set) ** 2).mean())
    emit({
        "event": "evaluation",
        "heldout_mse": heldout_mse,
        "baseline_mse": baseline_mse,
        "improvement": 1.0 - heldout_mse / baseline_mse if baseline_mse > 0 else 0.0,
        "heldout_images": int(len(held_out)),
        "train_images": int(len(train_set)),
    })

    config.output_dir.mkdir(parents=True, exist_ok=True)
    emit({"event": "checkpoint", "state": "writing"})
    checkpoint = config.output_dir / CHECKPOINT_NAME
    samples_path = config.output_dir / SAMPLES_NAME
    _atomic_write(checkpoint, lambda tmp: save_checkpoint(tmp, model, config))
    grid = samples_grid(model.sample(SAMPLE_GRID * SAMPLE_GRID, rng), config.resolution, SAMPLE_GRID)
    _atomic_write(samples_path, lambda tmp: grid.save(tmp, format="PNG"))
    emit({"event": "checkpoint", "state": "written", "checkpoint": str(checkpoint), "samples": str(samples_path)})
    print(f"done in {time.monotonic() - started:.1f}s: held-out MSE {heldout_mse:.5f} vs mean-image "
          f"{baseline_mse:.5f}", file=sys.stderr, flush=True)
    return 0


def save_checkpoint(handle, model: LinearVAE, config: TrainConfig) -> None:
    np.savez(handle, kind="linear-vae", mu=model.mu, W=model.W, V=model.V, log_s2=model.log_s2,
             log_sigma2=model.log_sigma2, resolution=config.resolution, latent_dim=config.latent_dim)


class StepOutputs:
    """The sample grids and intermediate checkpoints written as training goes.

    The grid decodes the same four latent points every time (drawn from their own generator, seeded by
    the run's seed, so sampling never changes the training itself): one sees those four images form as
    the model learns. Each file is written through a temp file and a rename, so a listing never shows
    half of one. A step file that cannot be written (a full disk) is a warning, not the end of the run:
    the final checkpoint is what matters, and its failure is the run's.
    """

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.sample_every = max(0, int(config.sample_every))
        self.checkpoint_every = max(0, int(config.checkpoint_every))
        self._latents: np.ndarray | None = None

    def after_step(self, step: int, model: LinearVAE) -> None:
        if self.sample_every and step % self.sample_every == 0:
            # compress_level 1: a quarter of the default's time, for a file hardly bigger (~17 KB)
            self._write(STEP_SAMPLE_NAME.format(step=step),
                        lambda tmp: self.grid(model).save(tmp, format="PNG", compress_level=1), "sample_every")
        if self.checkpoint_every and step % self.checkpoint_every == 0:
            self._write(STEP_CHECKPOINT_NAME.format(step=step), lambda tmp: save_checkpoint(tmp, model, self.config),
                        "checkpoint_every")

    def grid(self, model: LinearVAE) -> Image.Image:
        if self._latents is None:
            tiles = STEP_SAMPLE_GRID * STEP_SAMPLE_GRID
            self._latents = np.random.default_rng([self.config.seed, 1]).standard_normal((tiles, model.W.shape[1]))
        return samples_grid(model.decode(self._latents), self.config.resolution, STEP_SAMPLE_GRID)

    def _write(self, name: str, write, setting: str) -> None:
        path = self.config.output_dir / name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, write)
        except (OSError, OutputError) as exc:
            # Stop trying: on a full disk every later one would fail the same way.
            setattr(self, setting, 0)
            print(f"warning: {exc}; no more files of {setting} are written", file=sys.stderr, flush=True)


class OutputError(Exception):
    """An output file could not be written (full disk, permissions); the message says which and why."""


def _atomic_write(path: Path, write) -> None:
    """Write through a temp file and rename, so a reader never sees half a checkpoint; on failure the
    temp file is removed (on a full disk it would hold the space the rest of the system needs)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        reason = "the disk is full" if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)) else "it failed"
        raise OutputError(f"could not write {path.name}: {reason} ({exc.strerror or exc})") from exc


def install_signal_handlers() -> None:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def run(config: TrainConfig) -> int:
    install_signal_handlers()
    try:
        return train(config)
    except (DatasetError, OutputError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except MemoryError:
        print("MemoryError: not enough memory for this dataset at this resolution", file=sys.stderr, flush=True)
        return 1
