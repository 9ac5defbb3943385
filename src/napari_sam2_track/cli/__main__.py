"""``python -m napari_sam2_track.cli``."""

import sys

from .main import main

sys.exit(main())
