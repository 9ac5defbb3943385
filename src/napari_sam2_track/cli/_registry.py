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
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="intensity window for non-8-bit data (default: 0.5-99.5 percentiles)",
    )


def load_model_from_args(args: argparse.Namespace):
    """Load the model named by ``--model``/``--config``/``--device`` options."""
    from ..engine.spec import ModelSpec

    return ModelSpec.from_args(args).load()
