"""What every subcommand module shares: the command registry, exit codes and common options."""

from __future__ import annotations

import argparse
from collections.abc import Callable

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str):
    """Register a subcommand handler."""

    def register(func):
        COMMANDS[name] = func
        return func

    return register


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default="tiny",
        help="tiny|small|base-plus|large, a Hugging Face id, or a local .pt checkpoint (default: tiny)",
    )
    p.add_argument("--config", help="sam2 config name or YAML file (default: inferred)")
    p.add_argument("--image-size", type=int, help="model input size override, e.g. 512")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda[:N]|mps (default: auto)")
    p.add_argument(
        "--compile", action="store_true", help="use the compiled SAM2VideoPredictorVOS (CUDA)"
    )
    p.add_argument(
        "--max-cond-frames",
        type=int,
        default=None,
        help="conditioning frames read by memory attention (default: 8, -1: all)",
    )


def add_source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--channel", type=int, help="channel of a multichannel stack to track on")
    p.add_argument(
        "--window",
        nargs="+",
        metavar="LOW HIGH | PRESET",
        help="intensity window for non-8-bit data: LOW HIGH, or a preset for volumes (ct-brain, "
             "ct-lung, ct-bone, mr-auto, ...; see docs/volumes.md); default: 0.5-99.5 percentiles",
    )
    p.add_argument("--axes", help="axes of a TIFF or zarr array when its metadata has none or is "
                                  "wrong, e.g. TZYX or ZCYX (see docs/volumes.md)")
    p.add_argument("--series", metavar="UID",
                   help="the SeriesInstanceUID to open from a DICOM folder holding several")


def source_options(args: argparse.Namespace) -> dict:
    """``open_source`` keywords from :func:`add_source_options`' options (checked: one line)."""
    from ..errors import SourceError

    window = getattr(args, "window", None)
    if window is not None:
        if len(window) == 1:
            window = window[0]
        elif len(window) == 2:
            try:
                window = (float(window[0]), float(window[1]))
            except ValueError:
                raise SourceError(f"--window takes LOW HIGH numbers or one preset name, got "
                                  f"{' '.join(window)!r}") from None
        else:
            raise SourceError(f"--window takes LOW HIGH or one preset name, got {len(window)} values")
    return {"channel": getattr(args, "channel", None), "window": window,
            "axes": getattr(args, "axes", None), "series": getattr(args, "series", None)}


def load_model_from_args(args: argparse.Namespace):
    """Load the model named by ``--model``/``--config``/``--device`` options."""
    from ..engine.spec import ModelSpec

    return ModelSpec.from_args(args).load()
