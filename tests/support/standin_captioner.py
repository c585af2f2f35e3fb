"""A stand-in captioning tool for the caption-job tests (issue 17): what a WD14 tagger or a BLIP script does,
without a model. `python standin_captioner.py FOLDER` writes `<stem>.txt` beside every image in FOLDER with
a caption read from the image itself (its size and the colour of its top-left pixel), and reports progress as
JSON lines like the jsonl trainers do."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}


def caption_for(path: Path) -> str:
    with Image.open(path) as image:
        red, green, blue = image.convert("RGB").getpixel((0, 0))[:3]
        return f"a {image.width}x{image.height} picture, colour {red},{green},{blue}"


def main(folder: str) -> int:
    images = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    for step, path in enumerate(images, start=1):
        path.with_suffix(".txt").write_text(caption_for(path) + "\n", encoding="utf-8")
        print(json.dumps({"step": step, "total_steps": len(images)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
