"""Model registry and loading.

A model is named by a SAM 2.1 size (``tiny``, ``small``, ``base-plus``, ``large``), any Hugging
Face repository id, or a local ``.pt`` checkpoint. Configs are read straight from the installed
``sam2`` package (or a YAML file) with OmegaConf and instantiated with ``hydra.utils.instantiate``,
so loading neither needs nor disturbs a global Hydra instance that someone else initialised.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._input_files import first_line, parse_yaml, read_text
from ..errors import ModelError

log = logging.getLogger(__name__)

#: SAM 2.1 sizes and the Hugging Face repository each maps to.
SIZES: dict[str, str] = {
    "tiny": "facebook/sam2.1-hiera-tiny",
    "small": "facebook/sam2.1-hiera-small",
    "base-plus": "facebook/sam2.1-hiera-base-plus",
    "large": "facebook/sam2.1-hiera-large",
}

#: Hugging Face id -> (package-relative config, checkpoint file name), as in sam2.build_sam.
HF_FILES: dict[str, tuple[str, str]] = {
    "facebook/sam2-hiera-tiny": ("configs/sam2/sam2_hiera_t.yaml", "sam2_hiera_tiny.pt"),
    "facebook/sam2-hiera-small": ("configs/sam2/sam2_hiera_s.yaml", "sam2_hiera_small.pt"),
    "facebook/sam2-hiera-base-plus": (
        "configs/sam2/sam2_hiera_b+.yaml",
        "sam2_hiera_base_plus.pt",
    ),
    "facebook/sam2-hiera-large": ("configs/sam2/sam2_hiera_l.yaml", "sam2_hiera_large.pt"),
    "facebook/sam2.1-hiera-tiny": ("configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny.pt"),
    "facebook/sam2.1-hiera-small": (
        "configs/sam2.1/sam2.1_hiera_s.yaml",
        "sam2.1_hiera_small.pt",
    ),
    "facebook/sam2.1-hiera-base-plus": (
        "configs/sam2.1/sam2.1_hiera_b+.yaml",
        "sam2.1_hiera_base_plus.pt",
    ),
    "facebook/sam2.1-hiera-large": (
        "configs/sam2.1/sam2.1_hiera_l.yaml",
        "sam2.1_hiera_large.pt",
    ),
}

#: (trunk embed dim, number of trunk blocks) -> size letter, to infer a config from a checkpoint.
_TRUNK_TO_SIZE = {(96, 12): "t", (96, 16): "s", (112, 24): "b+", (144, 48): "l"}

#: Default cap on conditioning (prompted) frames read by memory attention per object. Upstream
#: attends to all of them (-1), which makes cost grow with every keyframe; the closest frames
#: before and after the current one are always kept (sam2's ``select_closest_cond_frames``).
DEFAULT_MAX_COND_FRAMES = 8

#: ``image_size`` must be a multiple of this (the image encoder's total stride) ...
IMAGE_SIZE_MULTIPLE = 32
#: ... and lie in this range (SAM 2 was trained at 1024).
IMAGE_SIZE_RANGE = (32, 4096)

#: Classes a model config may build: the ``_target_`` of every node must live in these packages.
ALLOWED_TARGET_PREFIXES = ("sam2.",)

# The same post-processing switches as sam2.build_sam.build_sam2_video_predictor.
_VIDEO_OVERRIDES = [
    "model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    "model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
    "model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
    "model.binarize_mask_from_pts_for_mem_enc=true",
    "model.fill_hole_area=8",
]


@dataclass
class LoadedModel:
    """A SAM 2 video predictor ready for tracking, plus what is needed to record provenance."""

    predictor: Any  # sam2.sam2_video_predictor.SAM2VideoPredictor
    name: str
    config: str
    checkpoint: str | None
    device: str
    image_size: int
    overrides: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        """JSON-able provenance of the model."""
        return {
            "name": self.name,
            "config": self.config,
            "checkpoint": self.checkpoint,
            "device": self.device,
            "image_size": self.image_size,
            "overrides": list(self.overrides),
            "max_cond_frames_in_attn": int(self.predictor.max_cond_frames_in_attn),
            "add_all_frames_to_correct_as_cond": bool(
                self.predictor.add_all_frames_to_correct_as_cond
            ),
        }


def pick_device(device: str = "auto") -> str:
    """Resolve ``auto`` to cuda, then mps, then cpu; check an explicit choice is available."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    kind = device.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise ModelError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    if kind == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ModelError("device 'mps' requested but MPS is not available; use --device cpu")
    if kind not in ("cpu", "cuda", "mps"):
        raise ModelError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


def hf_cache_dir() -> str:
    """Where Hugging Face downloads are cached (``HF_HUB_CACHE`` / ``HF_HOME`` respected)."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _sam2_config_path(config: str) -> Path:
    """Locate a config: a YAML file on disk, or a name relative to the sam2 package."""
    path = Path(config)
    if path.suffix in (".yaml", ".yml"):
        if path.is_dir():
            raise ModelError(f"config {config} is a directory; pass a sam2 config YAML file")
        if path.is_file():
            return path
    import importlib.util

    spec = importlib.util.find_spec("sam2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the sam2 package is not installed; pip install sam2")
    root = Path(list(spec.submodule_search_locations)[0])
    for candidate in (root / config, root / "configs" / config, root / "configs" / "sam2.1" / config):
        if candidate.is_file():
            return candidate
        if candidate.with_suffix(".yaml").is_file():
            return candidate.with_suffix(".yaml")
    raise ModelError(
        f"config {config!r} not found; use a sam2 config such as configs/sam2.1/sam2.1_hiera_t.yaml "
        "or the path of a YAML file"
    )


def _check_targets(node: Any, where: str, config: str) -> None:
    """Refuse a config whose ``_target_`` entries name anything outside the sam2 package."""
    from omegaconf import DictConfig, ListConfig

    if isinstance(node, DictConfig):
        target = node.get("_target_") if "_target_" in node else None
        if target is not None and not (
            isinstance(target, str) and target.startswith(ALLOWED_TARGET_PREFIXES)
        ):
            raise ModelError(
                f"config {config} is refused: {where}._target_ is {first_line(str(target), 80)!r}; "
                "a model config may only build sam2 classes (sam2.modeling...)"
            )
        for key in node.keys():
            _check_targets(node._get_node(key), f"{where}.{key}", config)
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            _check_targets(node._get_node(i), f"{where}[{i}]", config)


def _compose(config: str, overrides: list[str]):
    """Load a sam2 model config with overrides, without touching global Hydra state.

    The YAML is read with a safe loader (tags naming Python objects are refused, never run)
    and only ``sam2`` classes may be named as ``_target_``; every failure is a one-line
    :class:`ModelError`.
    """
    from omegaconf import DictConfig, OmegaConf
    from omegaconf._utils import get_yaml_loader
    from omegaconf.errors import OmegaConfBaseException

    path = _sam2_config_path(config)
    hint = "pass a sam2 model config YAML (see docs/models.md)"
    text = read_text(path, "config", ModelError, hint)
    data = parse_yaml(text, f"config {path}", ModelError, hint, loader=get_yaml_loader())
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise ModelError(f"config {path} has no 'model' section; {hint}")
    try:
        cfg = OmegaConf.create(data)
        dotlist = [o.lstrip("+") for o in overrides]
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(dotlist))
        OmegaConf.resolve(cfg)
    except (OmegaConfBaseException, ValueError, TypeError, RecursionError) as exc:
        raise ModelError(
            f"config {path} cannot be read as a model config ({first_line(exc)}); {hint}"
        ) from None
    if not isinstance(cfg.get("model"), DictConfig):
        raise ModelError(f"config {path} has no 'model' section; {hint}")
    _check_targets(cfg.model, "model", str(path))
    return cfg


def check_image_size(image_size: Any) -> int:
    """``image_size`` as an int, or :class:`ModelError` if SAM 2 cannot run at that size."""
    low, high = IMAGE_SIZE_RANGE
    try:
        size = int(image_size)
        valid = size == image_size and low <= size <= high and size % IMAGE_SIZE_MULTIPLE == 0
    except (TypeError, ValueError, OverflowError):
        valid = False
    if not valid:
        raise ModelError(
            f"image size {first_line(str(image_size), 40)} (--image-size) is not usable: SAM 2 needs "
            f"a multiple of {IMAGE_SIZE_MULTIPLE} from {low} to {high}, e.g. 512 or 1024"
        )
    return size


def check_max_cond_frames(max_cond_frames: Any) -> int:
    """``max_cond_frames`` as an int: -1 (all) or at least 2 (sam2 keeps the two closest)."""
    try:
        value = int(max_cond_frames)
        valid = value == max_cond_frames and (value == -1 or 2 <= value <= 1_000_000)
    except (TypeError, ValueError, OverflowError):
        valid = False
    if not valid:
        raise ModelError(
            f"max conditioning frames {first_line(str(max_cond_frames), 40)} (--max-cond-frames) "
            "is not usable: give -1 (all) or a number of at least 2"
        )
    return value


def _cuda_extension_available() -> bool:
    try:
        from sam2 import _C  # noqa: F401
    except Exception:
        return False
    return True


def build_predictor(
    config: str,
    state_dict: dict | None,
    *,
    device: str = "cpu",
    image_size: int | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    vos_optimized: bool = False,
    max_cond_frames: int = DEFAULT_MAX_COND_FRAMES,
    checkpoint_label: str = "checkpoint",
):
    """Instantiate ``SAM2VideoPredictor`` from a config and load ``state_dict`` into it.

    ``state_dict=None`` keeps the architecture's random initialisation (used by tests and
    benchmarks, which cannot download trained weights). A state dict that does not fit the
    config raises :class:`ModelError` naming both.
    """
    from hydra.utils import instantiate

    max_cond_frames = check_max_cond_frames(max_cond_frames)
    if image_size is not None:
        image_size = check_image_size(image_size)
    target = "SAM2VideoPredictorVOS" if vos_optimized else "SAM2VideoPredictor"
    all_overrides = [f"model._target_=sam2.sam2_video_predictor.{target}"]
    if vos_optimized:
        all_overrides.append("model.compile_image_encoder=true")
    all_overrides += _VIDEO_OVERRIDES
    # Corrections on tracked frames become conditioning frames (upstream #719, #731).
    all_overrides.append("model.add_all_frames_to_correct_as_cond=true")
    all_overrides.append(f"model.max_cond_frames_in_attn={int(max_cond_frames)}")
    if image_size is not None:
        all_overrides.append(f"model.image_size={int(image_size)}")
    all_overrides += list(overrides)
    cfg = _compose(config, all_overrides)
    try:
        model = instantiate(cfg.model, _recursive_=True)
    except Exception as exc:  # wrong arguments or values in the config
        reason = " ".join(ln.strip() for ln in str(exc).splitlines()[:2] if ln.strip())
        raise ModelError(
            f"config {config} does not build a SAM 2 model ({first_line(reason or exc)}); pass a sam2 "
            "model config or leave --config out"
        ) from None
    if state_dict is not None:
        try:
            missing, unexpected = model.load_state_dict(state_dict, strict=False)
        except RuntimeError as exc:  # shape mismatches
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            first = first_line(lines[1] if len(lines) > 1 else exc)
            raise ModelError(
                f"{checkpoint_label} does not fit config {config}: {first}; pass the matching "
                "--config or leave it out to infer it from the checkpoint"
            ) from None
        if missing or unexpected:
            sample = first_line((missing or unexpected)[0], 80)
            raise ModelError(
                f"{checkpoint_label} does not fit config {config}: {len(missing)} missing and "
                f"{len(unexpected)} unexpected weights (e.g. {sample}); pass the matching --config "
                "or leave it out to infer it from the checkpoint"
            )
    model = model.to(device)
    model.eval()
    if model.fill_hole_area > 0 and not _cuda_extension_available():
        # sam2 would warn on every frame and skip hole filling anyway; skipping it up front
        # gives the same masks without the warnings.
        model.fill_hole_area = 0
    return model


def infer_config(state_dict: dict) -> str:
    """Infer the sam2 config of a checkpoint from its tensor shapes."""
    try:
        embed = state_dict["image_encoder.trunk.patch_embed.proj.weight"].shape[0]
    except (KeyError, AttributeError, IndexError):
        raise ModelError(
            "the checkpoint has no SAM 2 image encoder weights; is it a SAM 2 checkpoint?"
        ) from None
    blocks = {
        k.split(".")[3] for k in state_dict if k.startswith("image_encoder.trunk.blocks.")
    }
    size = _TRUNK_TO_SIZE.get((int(embed), len(blocks)))
    if size is None:
        raise ModelError(
            f"cannot infer the config of a checkpoint with trunk width {embed} and {len(blocks)} "
            "blocks; pass --config"
        )
    version = "sam2.1" if "no_obj_embed_spatial" in state_dict else "sam2"
    return f"configs/{version}/{version}_hiera_{size}.yaml"


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Read a SAM 2 ``.pt`` checkpoint's state dict (``{"model": ...}`` or a bare dict).

    Only tensors and plain containers are unpickled (``weights_only``): a file that holds
    other Python objects is refused, never run. Every failure is a one-line :class:`ModelError`.
    """
    import zipfile

    import torch

    path = Path(path)
    if path.is_dir():
        raise ModelError(f"checkpoint {path} is a directory; pass the .pt file to --model")
    if not path.is_file():
        raise ModelError(f"checkpoint {path} not found; check the path given to --model")
    try:
        with open(path, "rb") as f:
            empty = not f.read(1)
    except OSError as exc:
        reason = exc.strerror or first_line(exc)
        raise ModelError(f"cannot read checkpoint {path}: {reason}") from None
    if empty:
        raise ModelError(
            f"cannot read checkpoint {path}: it is an empty file; download or copy it again"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if "Weights only load failed" in str(exc) and zipfile.is_zipfile(path):
            raise ModelError(
                f"checkpoint {path} holds Python objects besides weights, which are not loaded "
                "for safety; save only its state dict (torch.save({'model': state_dict}, path))"
            ) from None
        detail = "" if "Weights only load failed" in str(exc) else f": {first_line(exc, 80)}"
        raise ModelError(
            f"cannot read checkpoint {path}: it is not a complete PyTorch checkpoint (truncated, "
            f"damaged or another format{detail}); download or copy it again"
        ) from None
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not obj:
        raise ModelError(f"checkpoint {path} holds no state dict; expected a SAM 2 .pt file")
    bad = next(
        (k for k, v in obj.items() if not isinstance(k, str) or not torch.is_tensor(v)), None
    )
    if bad is not None:
        raise ModelError(
            f"checkpoint {path} is not a SAM 2 state dict: entry {first_line(str(bad), 60)!r} is not "
            "a named tensor; expected a SAM 2 .pt file"
        )
    return obj


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the Hugging Face Hub can be asked at all: False at once under
    ``HF_HUB_OFFLINE=1``, or when its host does not accept a connection within ``timeout``
    seconds (so an offline machine is told in seconds, not after the hub client's retries).
    Behind an HTTP(S) proxy the hub client is trusted to find its way."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def download_checkpoint(repo_id: str) -> tuple[str, str]:
    """Download (once) and return ``(config, local_path)`` for a Hugging Face model id.

    Offline (see :func:`hub_reachable`) only the local Hugging Face cache is used.
    """
    from huggingface_hub import hf_hub_download

    config, filename = HF_FILES.get(repo_id, (None, None))
    offline = not hub_reachable()
    try:
        if offline and filename is None:
            raise ModelError(
                f"cannot look up {repo_id}: the Hugging Face Hub is not reachable (offline); "
                "pass --model /path/to/file.pt (see docs/models.md)"
            )
        if filename is None:
            # Unknown repositories: take the first .pt file they hold.
            from huggingface_hub import list_repo_files

            files = [f for f in list_repo_files(repo_id) if f.endswith(".pt")]
            if not files:
                raise ModelError(f"Hugging Face repository {repo_id} holds no .pt checkpoint")
            filename = files[0]
        path = hf_hub_download(repo_id=repo_id, filename=filename, local_files_only=offline)
    except ModelError:
        raise
    except Exception as exc:
        reason = "not in the local cache" if offline else type(exc).__name__
        raise ModelError(
            f"cannot download {repo_id} ({reason}: offline or not reachable); download "
            f"{filename or 'the .pt file'} elsewhere and pass --model /path/to/file.pt, or copy it "
            f"into the Hugging Face cache at {hf_cache_dir()} (see docs/models.md)"
        ) from None
    return config or "", path


def load_model(
    model: str = "tiny",
    *,
    config: str | None = None,
    device: str = "auto",
    image_size: int | None = None,
    vos_optimized: bool = False,
    max_cond_frames: int = DEFAULT_MAX_COND_FRAMES,
    overrides: list[str] | tuple[str, ...] = (),
) -> LoadedModel:
    """Load a SAM 2 video model by size name, Hugging Face id or local ``.pt`` path.

    Args:
        model: ``tiny|small|base-plus|large``, ``owner/repo``, or a path to a ``.pt`` file.
        config: sam2 config name or YAML path; inferred from the checkpoint when omitted.
        device: ``auto`` (cuda, then mps, then cpu), ``cpu``, ``cuda[:N]`` or ``mps``.
        image_size: input size override, e.g. 512 for MedSAM2-style fine-tunes.
        vos_optimized: use the compiled ``SAM2VideoPredictorVOS`` (slow first frames).
        max_cond_frames: cap on conditioning frames in memory attention (-1: no cap).
        overrides: extra ``model.key=value`` config overrides.
    """
    device = pick_device(device)
    if image_size is not None:
        image_size = check_image_size(image_size)
    max_cond_frames = check_max_cond_frames(max_cond_frames)
    repo_id = SIZES.get(model, model)
    local = Path(model).expanduser()
    if local.suffix == ".pt" or local.exists():
        state_dict = read_checkpoint(local)
        checkpoint = str(local)
        config = config or infer_config(state_dict)
        name = local.name
    elif "/" in repo_id:
        hf_config, checkpoint = download_checkpoint(repo_id)
        state_dict = read_checkpoint(checkpoint)
        config = config or hf_config or infer_config(state_dict)
        name = repo_id
    else:
        raise ModelError(
            f"unknown model {model!r}; use one of {', '.join(SIZES)}, a Hugging Face id "
            "(owner/name) or the path of a .pt checkpoint"
        )
    predictor = build_predictor(
        config,
        state_dict,
        device=device,
        image_size=image_size,
        overrides=overrides,
        vos_optimized=vos_optimized,
        max_cond_frames=max_cond_frames,
        checkpoint_label=f"checkpoint {checkpoint}",
    )
    return LoadedModel(
        predictor=predictor,
        name=name,
        config=config,
        checkpoint=checkpoint,
        device=device,
        image_size=int(predictor.image_size),
        overrides=list(overrides),
    )


def load_random_model(
    config: str = "configs/sam2.1/sam2.1_hiera_t.yaml",
    *,
    image_size: int = 256,
    seed: int = 0,
    device: str = "cpu",
    max_cond_frames: int = DEFAULT_MAX_COND_FRAMES,
    overrides: list[str] | tuple[str, ...] = (),
) -> LoadedModel:
    """The real SAM 2 architecture with seeded random weights, for tests and benchmarks.

    Its masks are meaningless; it exists so that the whole pipeline can be exercised and
    compared with upstream where no trained checkpoint can be downloaded.
    """
    import torch

    torch.manual_seed(seed)
    predictor = build_predictor(
        config,
        None,
        device=pick_device(device),
        image_size=image_size,
        overrides=overrides,
        max_cond_frames=max_cond_frames,
    )
    return LoadedModel(
        predictor=predictor,
        name=f"random-init:{Path(config).stem}@{image_size}",
        config=config,
        checkpoint=None,
        device=str(predictor.device),
        image_size=int(predictor.image_size),
        overrides=list(overrides),
    )
