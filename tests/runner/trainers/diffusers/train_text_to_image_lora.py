"""Stand-in for diffusers' examples/text_to_image/train_text_to_image_lora.py (see diffusers_standin.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from diffusers_standin import main  # noqa: E402

if __name__ == "__main__":
    main("sd-text-to-image")
