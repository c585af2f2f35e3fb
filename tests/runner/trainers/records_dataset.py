"""Test trainer: records what it was given to train on. argv: dataset_dir, validation_dir, output_dir.

For each of the two folders it writes, into `<output_dir>/seen.json`, the folders inside it (kohya's
`<repeats>_<name>`) with, per folder, each image's stem -> the text of its `.txt` caption (None when it has
none). Then it reports one JSON-lines step and exits 0, so the job completes."""

import json
import sys
from pathlib import Path


def folders(root: Path) -> dict[str, dict[str, str | None]]:
    seen: dict[str, dict[str, str | None]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        images = sorted(p for p in folder.iterdir() if p.suffix != ".txt")
        seen[folder.name] = {
            image.stem: (image.with_suffix(".txt").read_text(encoding="utf-8")
                         if image.with_suffix(".txt").exists() else None)
            for image in images}
    return seen


dataset_dir, validation_dir, output_dir = (Path(arg) for arg in sys.argv[1:4])
record = {"dataset_dir": str(dataset_dir), "validation_dir": str(validation_dir),
          "training": folders(dataset_dir), "validation": folders(validation_dir)}
(output_dir / "seen.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
print(json.dumps({"step": 1, "total_steps": 1, "loss": 0.5}), flush=True)
