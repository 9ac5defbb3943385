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
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || { [ -f .git ] || echo '/.whl/' >> .git/info/exclude; } 2>/dev/null || true
    pyver=${PYTHON_VERSION:-3.12}
    # pure Python (some published as source only: built here into wheels)
    "$PY" -m pip wheel -q --no-deps -w .whl sam2==1.1.0 hydra-core==1.3.2 omegaconf==2.3.0 \
        antlr4-python3-runtime==4.9.3 iopath==0.1.10 donfig==0.8.1.post1 deprecated==1.2.18 \
        "zarr>=3.0,<3.2" annotated-types==0.7.0 typing-inspection==0.4.2 "pydantic>=2.5,<2.13"
    # compiled, for the target interpreter
    plat=""
    for n in 2_28 2_27 2_17 2014 1; do
        case $n in 2014) plat="$plat --platform manylinux2014_x86_64";; 1) plat="$plat --platform manylinux1_x86_64";; *) plat="$plat --platform manylinux_${n}_x86_64";; esac
    done
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" \
        --implementation cp $plat -d .whl "numcodecs>=0.14,<0.16" google-crc32c zstandard \
        "pydantic-core==$("$PY" -c 'import importlib.metadata as m; print(m.version("pydantic-core"))' 2>/dev/null || echo 2.41.5)" \
        psygnal
    du -sh .whl
    ls .whl
    exit 0
fi

if ls .whl/*.whl >/dev/null 2>&1; then
    site=/tmp/nst-gpu-site
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" .whl/*.whl \
        || { echo '{"step": "env", "error": "installing the wheels in .whl/ failed (see above)"}'; exit 2; }
    export PYTHONPATH="$site"
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
exec "$PY" benchmarks/gpu.py "$@"
