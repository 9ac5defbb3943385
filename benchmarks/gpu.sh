#!/usr/bin/env bash
# GPU figures in one run (benchmarks/gpu.py; docs/benchmarks.md, "GPU"):
#
#   bash benchmarks/gpu.sh --device cuda --out DIR          # about 7 minutes
#   bash benchmarks/gpu.sh --device cpu --quick --out DIR   # every step in miniature
#   bash benchmarks/gpu.sh --fetch-wheels                   # where pip reaches a registry
#
# --fetch-wheels downloads into .whl/ the packages the steps need that a bare CUDA image with
# PyTorch lacks (for CPython 3.12 on x86-64 Linux; PYTHON_VERSION=3.11 for another); where
# .whl/ holds wheels, a run installs them under /tmp/nst-gpu-site first and imports them from
# there. The project itself is imported from src/.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python3 || command -v python)}

if [ "${1:-}" = "--fetch-wheels" ]; then
    set -e
    mkdir -p .whl
    exclude="$(git rev-parse --git-common-dir)/info/exclude"
    grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
    # the versions this machine runs the tests with
    pinned() { "$PY" -c 'import importlib.metadata as m, sys; print(" ".join(f"{d}=={m.version(d)}" for d in sys.argv[1:]))' "$@"; }
    # pure Python (some are published as source only: built here into wheels)
    "$PY" -m pip wheel -q --no-deps -w .whl $(pinned sam2 hydra-core omegaconf \
        antlr4-python3-runtime iopath donfig deprecated zarr annotated-types typing-inspection pydantic)
    # compiled: for the target interpreter
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "${PYTHON_VERSION:-3.12}" \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
        -d .whl $(pinned numcodecs google-crc32c zstandard pydantic-core psygnal)
    du -sh .whl
    exit 0
fi

# the wheels only where the packages are not installed already
if ls .whl/*.whl >/dev/null 2>&1 && ! "$PY" -c "import sam2, hydra, zarr, pydantic, psygnal, zstandard" 2>/dev/null; then
    site="${TMPDIR:-/tmp}/napari-sam2-track-gpu-site-$(id -u)"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" .whl/*.whl \
        || { echo '{"step": "env", "error": "installing the wheels in .whl/ failed (see above)"}'; exit 2; }
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
exec "$PY" benchmarks/gpu.py "$@"
