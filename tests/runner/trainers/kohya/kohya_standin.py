"""Stand-in for kohya-ss sd-scripts' LoRA trainers (train_network.py, sdxl_train_network.py,
flux_train_network.py), printing what they print in the order they print it, bars through the real
tqdm (see tests/runner/trainers/standin_common.py for the test knobs):

- rich logging on stderr when rich is installed (else plain logging on stdout), as library/utils.py;
- "loading image sizes." then an unlabeled bar over the images; "caching latents..." then an unlabeled
  bar over the batches; SDXL and FLUX also cache text encoder outputs the same way;
- the training bar `tqdm(range(max_train_steps), smoothing=0, desc="steps")`, `update(1)` then
  `set_postfix(avr_loss=...)` each step, "\\nepoch 1/N" on stdout at each epoch;
- every --sample_every_n_steps: "generating sample images at step / サンプル画像生成 ステップ: N", an
  unlabeled denoising bar per prompt, `<output_dir>/sample/<output_name>_<step:06d>_<i:02d>_<time>.png`;
- every --save_every_n_steps: `<output_dir>/<output_name>-step<step:08d>.safetensors`; at the end
  `<output_dir>/<output_name>.safetensors`;
- --max_data_loader_n_workers data-loader worker processes while training.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tqdm import tqdm  # noqa: E402

import standin_common as common  # noqa: E402

logger = logging.getLogger("train_network")


def setup_logging() -> None:
    try:
        from rich.console import Console
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=Console(stderr=True))
    except ImportError:
        handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(fmt="%(message)s", datefmt="%Y-%m-%d %H:%M:%S"))
    logging.root.setLevel(logging.INFO)
    logging.root.addHandler(handler)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pretrained_model_name_or_path", required=True)
    parser.add_argument("--train_data_dir", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--output_name", default="last")
    parser.add_argument("--save_model_as", default="safetensors")
    parser.add_argument("--max_train_steps", type=int, default=1600)
    parser.add_argument("--train_batch_size", type=int, default=1)
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--network_dim", type=int, default=4)
    parser.add_argument("--network_alpha", type=float, default=1.0)
    parser.add_argument("--resolution", default="512")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--save_every_n_steps", type=int, default=None)
    parser.add_argument("--sample_every_n_steps", type=int, default=None)
    parser.add_argument("--sample_prompts", default=None)
    parser.add_argument("--max_data_loader_n_workers", type=int, default=8)
    parser.add_argument("--caption_extension", default=".caption")
    args, _unknown = parser.parse_known_args(argv)
    return args


def main(variant: str) -> None:
    setup_logging()
    args = parse_args(sys.argv[1:])
    data_dir = Path(args.train_data_dir)
    subsets = [d for d in sorted(data_dir.iterdir()) if d.is_dir() and d.name.split("_", 1)[0].isdigit()]
    images = sum(common.count_images(d) for d in subsets)
    repeats = sum(int(d.name.split("_", 1)[0]) * common.count_images(d) for d in subsets)
    logger.info(f"prepare images for subsets: {len(subsets)}")
    print(f"found directory {subsets[0] if subsets else data_dir} contains {images} image files", flush=True)
    if images == 0:
        logger.error("No data found. Please verify arguments (train_data_dir must be the parent of folders with images)")
        sys.exit(1)
    print(f"{repeats} train images with repeating.", flush=True)
    logger.info("loading image sizes.")
    for _ in tqdm(range(images)):
        time.sleep(common.phase_delay())
    logger.info("prepare dataset")
    logger.info("caching latents...")
    batches = math.ceil(images / max(1, args.train_batch_size))
    for _ in tqdm(range(batches), smoothing=1, total=batches):
        time.sleep(common.phase_delay())
    if variant in ("sdxl", "flux"):
        logger.info("caching text encoder outputs...")
        for _ in tqdm(range(batches), smoothing=1, total=batches):
            time.sleep(common.phase_delay())
    steps_per_epoch = math.ceil(repeats / max(1, args.train_batch_size))
    epochs = math.ceil(args.max_train_steps / steps_per_epoch)
    print("running training / 学習開始", flush=True)
    print(f"  num train images * repeats / 学習画像の数×繰り返し回数: {repeats}", flush=True)
    print(f"  num epochs / epoch数: {epochs}", flush=True)
    print(f"  total optimization steps / 学習ステップ数: {args.max_train_steps}", flush=True)
    workers = common.start_workers(max(0, min(args.max_data_loader_n_workers, 2)), Path(args.output_dir))
    try:
        train(args, variant, epochs, steps_per_epoch)
    finally:
        common.stop_workers(workers)
    logger.info("model saved.")


def train(args: argparse.Namespace, variant: str, epochs: int, steps_per_epoch: int) -> None:
    output_dir = Path(args.output_dir)
    ext = "." + args.save_model_as
    progress_bar = tqdm(range(args.max_train_steps), smoothing=0, desc="steps")
    global_step = 0
    losses: list[float] = []
    for epoch in range(epochs):
        print(f"\nepoch {epoch + 1}/{epochs}", flush=True)
        for _step in range(steps_per_epoch):
            common.forward(global_step + 1)
            common.pause(common.step_delay())
            progress_bar.update(1)
            global_step += 1
            if args.sample_every_n_steps and global_step % args.sample_every_n_steps == 0:
                sample_images(args, variant, global_step)
            if args.save_every_n_steps and global_step % args.save_every_n_steps == 0:
                path = output_dir / f"{args.output_name}-step{global_step:08d}{ext}"
                print(f"\nsaving checkpoint: {path}", flush=True)
                common.write_weights(path)
            losses.append(common.step_loss(global_step))
            window = losses[-steps_per_epoch:]
            avr_loss = sum(window) / len(window)
            progress_bar.set_postfix(**{"avr_loss": avr_loss})
            common.record(progress_bar.n, progress_bar.format_num(avr_loss))
            if global_step >= args.max_train_steps:
                break
        if global_step >= args.max_train_steps:
            break
    progress_bar.close()
    path = output_dir / f"{args.output_name}{ext}"
    print(f"\nsaving checkpoint: {path}", flush=True)
    common.write_weights(path)


def sample_images(args: argparse.Namespace, variant: str, steps: int) -> None:
    if not args.sample_prompts:
        return
    logger.info("")
    logger.info(f"generating sample images at step / サンプル画像生成 ステップ: {steps}")
    prompts = [line.strip() for line in Path(args.sample_prompts).read_text().splitlines() if line.strip()]
    sample_steps = 20 if variant == "flux" else 30
    save_dir = Path(args.output_dir) / "sample"
    save_dir.mkdir(parents=True, exist_ok=True)
    for i, prompt in enumerate(prompts):
        logger.info(f"prompt: {prompt}")
        for _t in tqdm(range(sample_steps)):
            time.sleep(0.001)
        ts_str = time.strftime("%Y%m%d%H%M%S", time.localtime())
        name = f"{'' if args.output_name is None else args.output_name + '_'}{steps:06d}_{i:02d}_{ts_str}.png"
        common.write_png(save_dir / name, steps * 10 + i)
