"""Stand-in for kohya-ss sd-scripts' train_network.py (see kohya_standin.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kohya_standin import main  # noqa: E402

if __name__ == "__main__":
    main("sd")
