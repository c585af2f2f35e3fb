"""Stand-in for ostris/ai-toolkit's `run.py <config>` (a YAML or JSON config, as the real one reads),
printing what the real trainer prints in its order, bars through the real tqdm (see
tests/runner/trainers/standin_common.py for the test knobs):

- "Running 1 job", the job banner, model loading with "Loading checkpoint shards" and
  "Caching latents to disk" bars, "Generating baseline samples before training" with a
  "Generating Images" bar;
- the training bar labelled with the config's `name` (ToolkitProgressBar(total=steps, desc=name,
  initial=0), paused and unpaused around sampling and saving), its postfix set each step with
  `set_postfix_str("lr: 1.0e-04 loss: 4.123e-01")` before `update(step + 1 - n)`;
- every `save.save_every` steps `<training_folder>/<name>/<name>_<step:09d>.safetensors`, every
  `sample.sample_every` steps `<training_folder>/<name>/samples/<time>__<step:09d>_<i>.jpg`, and at the
  end `<name>.safetensors`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tqdm import tqdm  # noqa: E402

import standin_common as common  # noqa: E402


class ToolkitProgressBar(tqdm):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("smoothing", 0.7)
        super().__init__(*args, **kwargs)
        self.paused = False

    def pause(self):
        self.paused = True

    def unpause(self):
        self.paused = False

    def update(self, *args, **kwargs):
        if not self.paused:
            super().update(*args, **kwargs)


def sample(save_root: Path, sample_config: dict, step: int) -> None:
    prompts = sample_config.get("prompts") or []
    for i in tqdm(range(len(prompts)), desc="Generating Images", leave=False):
        time.sleep(0.005)
        stamp = int(time.time() * 1000)
        common.write_png(save_root / "samples" / f"{stamp}__{step:09d}_{i}.jpg", step * 10 + i)


def run_job(config: dict) -> None:
    name = config["name"]
    process = config["process"][0]
    train = process["train"]
    steps = int(train["steps"])
    lr = float(train.get("lr", 1e-4))  # PyYAML reads "1e-05" as text: ai-toolkit fixes that the same way
    save_every = int(process.get("save", {}).get("save_every", 0) or 0)
    sample_config = process.get("sample", {})
    sample_every = int(sample_config.get("sample_every", 0) or 0)
    save_root = Path(process["training_folder"]) / name
    save_root.mkdir(parents=True, exist_ok=True)
    folder = Path(process["datasets"][0]["folder_path"])
    images = common.count_images(folder)
    print("#############################################")
    print(f"# Running job: {name}")
    print("#############################################")
    print("\n\nRunning  1 process")
    print(f"Loading model {process['model']['name_or_path']}", flush=True)
    for _ in tqdm(range(3), desc="Loading checkpoint shards"):
        time.sleep(0.003)
    print(f"Dataset: {folder}\n  -  Preprocessing image dimensions\n  -  Found {images} images", flush=True)
    for _ in tqdm(range(images), desc="Caching latents to disk"):
        time.sleep(0.002)
    if sample_every:
        print("Generating baseline samples before training", flush=True)
        sample(save_root, sample_config, 0)
    progress_bar = ToolkitProgressBar(total=steps, desc=name, leave=True, initial=0, iterable=range(0, steps))
    progress_bar.pause()
    for step in range(0, steps):
        progress_bar.unpause()
        common.forward(step + 1)
        common.pause(common.step_delay())
        loss = common.step_loss(step + 1)
        prog_bar_string = f"lr: {lr:.1e}" + f" loss: {loss:.3e}"
        progress_bar.set_postfix_str(prog_bar_string)
        common.record(progress_bar.n, f"{loss:.3e}")
        if step != 0 and ((save_every and step % save_every == 0) or (sample_every and step % sample_every == 0)):
            progress_bar.pause()
            if save_every and step % save_every == 0:
                print(f"\nSaving at step {step}", flush=True)
                common.write_weights(save_root / f"{name}_{step:09d}.safetensors")
            if sample_every and step % sample_every == 0:
                sample(save_root, sample_config, step)
            progress_bar.unpause()
        progress_bar.update(step + 1 - progress_bar.n)
    common.record(progress_bar.n, f"{loss:.3e}")  # the bar's last draw keeps the last postfix
    progress_bar.close()
    common.write_weights(save_root / f"{name}.safetensors")
    print(f"Saved to {save_root / (name + '.safetensors')}", flush=True)
    if sample_every:
        sample(save_root, sample_config, steps)
    print("")


def main() -> int:
    if len(sys.argv) < 2:
        raise Exception("You must provide at least one config file")
    print("Running 1 job", flush=True)
    config_path = Path(sys.argv[1])
    text = config_path.read_text(encoding="utf-8")
    if config_path.suffix == ".json":
        document = json.loads(text)
    else:
        import yaml  # the real one uses oyaml, an ordered PyYAML

        document = yaml.safe_load(text)
    process = document["config"]["process"][0]
    workers = common.start_workers(1, Path(process["training_folder"]))
    try:
        run_job(document["config"])
    except Exception as e:
        print(f"Error running job: {e}", flush=True)
        print("\n========================================\nResult:\n - 0 completed jobs\n - 1 failure\n"
              "========================================", flush=True)
        raise e
    finally:
        common.stop_workers(workers)
    print("\n========================================\nResult:\n - 1 completed job\n"
          "========================================", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
