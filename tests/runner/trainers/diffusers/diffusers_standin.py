"""Stand-in for the diffusers LoRA example scripts (examples/text_to_image/train_text_to_image_lora.py,
examples/dreambooth/train_dreambooth_lora_sdxl.py), printing what they print in their order, bars
through the real tqdm (see tests/runner/trainers/standin_common.py for the test knobs):

- logging.basicConfig("%(asctime)s - %(levelname)s - %(name)s - %(message)s") on stderr;
- Hugging Face download bars for the model files (`config.json: 100%|…| 617/617 [… 2.1MB/s]`: desc =
  file name, unit "B", unit_scale), as huggingface_hub draws them when the model is not cached;
- "***** Running training *****" and the `Steps` bar (`tqdm(range(0, max_train_steps), initial=0,
  desc="Steps")`), `update(1)` then `set_postfix(step_loss=…, lr=…)` (SDXL DreamBooth: `loss=`, `lr=`);
- every --checkpointing_steps: `<output_dir>/checkpoint-<step>/` and "Saved state to …";
- with --validation_prompt, after each --validation_epochs epoch and at the end: a pipeline load
  ("Loading pipeline components...: 100%|…| 7/7") and "Running validation... Generating N images";
- at the end `<output_dir>/pytorch_lora_weights.safetensors`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tqdm.auto import tqdm  # noqa: E402

import standin_common as common  # noqa: E402

logger = logging.getLogger(__name__)
DOWNLOADS = [("model_index.json", 541), ("scheduler_config.json", 308), ("config.json", 617),
             ("diffusion_pytorch_model.safetensors", 3_438_167_536)]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pretrained_model_name_or_path", required=True)
    parser.add_argument("--train_data_dir", default=None)
    parser.add_argument("--dataset_name", default=None)
    parser.add_argument("--instance_prompt", default=None)
    parser.add_argument("--caption_column", default="text")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--max_train_steps", type=int, default=None)
    parser.add_argument("--num_train_epochs", type=int, default=100)
    parser.add_argument("--train_batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=1e-4)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--checkpointing_steps", type=int, default=500)
    parser.add_argument("--validation_prompt", default=None)
    parser.add_argument("--num_validation_images", type=int, default=4)
    parser.add_argument("--validation_epochs", type=int, default=1)
    parser.add_argument("--mixed_precision", default=None)
    args, _unknown = parser.parse_known_args(argv)
    return args


def download_model_files() -> None:
    for name, size in DOWNLOADS:
        with tqdm(total=size, unit="B", unit_scale=True, desc=name, initial=0) as bar:
            chunk = max(1, size // 4)
            done = 0
            while done < size:
                step = min(chunk, size - done)
                bar.update(step)
                done += step
                time.sleep(0.005)


def load_pipeline() -> None:
    for _component in tqdm(range(7), desc="Loading pipeline components..."):
        time.sleep(0.003)


def log_validation(args: argparse.Namespace) -> None:
    logger.info(f"Running validation... \n Generating {args.num_validation_images} images with prompt:"
                f" {args.validation_prompt}.")
    time.sleep(0.01)  # the pipeline's own bars are disabled (set_progress_bar_config(disable=True))


def main(variant: str) -> None:
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
                        datefmt="%m/%d/%Y %H:%M:%S", level=logging.INFO)
    args = parse_args(sys.argv[1:])
    data = Path(args.dataset_name or args.train_data_dir or "")
    metadata = data / "metadata.jsonl"
    examples = [json.loads(line) for line in metadata.read_text().splitlines() if line.strip()] \
        if metadata.is_file() else []
    if not examples:
        raise ValueError(f"--caption_column' value '{args.caption_column}' needs to be one of: image")
    download_model_files()
    loss_key = "loss" if variant == "sdxl-dreambooth" else "step_loss"
    steps_per_epoch = math.ceil(len(examples) / args.train_batch_size)
    max_train_steps = args.max_train_steps or args.num_train_epochs * steps_per_epoch
    epochs = math.ceil(max_train_steps / steps_per_epoch)
    logger.info("***** Running training *****")
    logger.info(f"  Num examples = {len(examples)}")
    logger.info(f"  Num Epochs = {epochs}")
    logger.info(f"  Instantaneous batch size per device = {args.train_batch_size}")
    logger.info(f"  Total optimization steps = {max_train_steps}")
    output_dir = Path(args.output_dir)
    progress_bar = tqdm(range(0, max_train_steps), initial=0, desc="Steps")
    global_step = 0
    for epoch in range(epochs):
        for _step in range(steps_per_epoch):
            common.forward(global_step + 1)
            common.pause(common.step_delay())
            progress_bar.update(1)
            global_step += 1
            if global_step % args.checkpointing_steps == 0:
                save_path = output_dir / f"checkpoint-{global_step}"
                common.write_weights(save_path / "pytorch_lora_weights.safetensors")
                logger.info(f"Saved state to {save_path}")
            loss = common.step_loss(global_step)
            logs = {loss_key: loss, "lr": args.learning_rate}
            progress_bar.set_postfix(**logs)
            common.record(progress_bar.n, progress_bar.format_num(loss))
            if global_step >= max_train_steps:
                break
        if args.validation_prompt is not None and epoch % args.validation_epochs == 0:
            load_pipeline()
            log_validation(args)
    common.write_weights(output_dir / "pytorch_lora_weights.safetensors")
    if args.validation_prompt is not None:
        load_pipeline()
        log_validation(args)
    progress_bar.close()
