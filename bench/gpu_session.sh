#!/usr/bin/env bash
# The GPU checks in one call of a lent device machine (docs/performance.md, "On a lent GPU"):
# tests/test_gpu.py, `python -m bench.run --only gpu` (Llama-3-8B-shaped layers) and bench.peer on
# the wide model with both sides on the same GPU (issue #33, item 4).
#
# That machine reaches no registry and has its own torch and transformers 5.17 (llm-compressor's
# pin), so what it lacks travels as wheels, in three sets installed side by side: ours (our
# transformers), peer (llm-compressor) and common (what both import, at our versions).
#
#   here, once:  bash bench/gpu_session.sh fetch    # wheels into .whl/ (git-ignored), versions as installed here
#   there:       bash bench/gpu_session.sh run      # device tool: carry [".whl"], timeout_s 600
#   here, after: python -m bench.run --only '' --merge <files_at>/results.json --docs
#
# One call fits a 15-minute lease with the machine's start (~90 s): tests 100 s, gpu 150 s, peer 280 s,
# each under its own limit, so one that overruns leaves the others their turn and the call ends
# before the tool's 600 s. bench.peer stores each row as it is measured, and bench/results.json is
# copied to $OUT after every step; --merge takes only its gpu section and peer rows. `run STEPS`
# (comma-separated: tests, gpu, peer) runs some of them; the exit status is 1 when any step failed
# or ran out of time. PEER_ARGS replaces bench.peer's flags (default: --device cuda --models wide
# --repeats 1). The common set is at our versions (the peer's venv here may hold newer pydantic).
set -u
cd "$(dirname "$0")/.."
WHEELS=.whl
COMMON="compressed-tensors datasets dill multiprocess loguru pydantic pydantic-core annotated-types typing-inspection"

versions() {  # "name==version" of each name, as the python $1 has it installed
    local python=$1
    shift
    "$python" -c 'import sys
from importlib.metadata import version
print(" ".join(f"{n}=={version(n)}" for n in sys.argv[1:]))' "$@"
}

fetch() {
    local peer_python=${PEER_PYTHON:-.peer-venv/bin/python}
    [ -x "$peer_python" ] || { echo "no peer venv at $peer_python: make it as bench/peer.py says, or set PEER_PYTHON" >&2; exit 2; }
    rm -rf "$WHEELS"
    local set specs
    for set in ours common peer; do
        case $set in
            ours) specs=$(versions python transformers) ;;
            common) specs=$(versions python $COMMON) ;;
            peer) specs=$(versions "$peer_python" llmcompressor auto-round) ;;
        esac
        # shellcheck disable=SC2086
        python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            -d "$WHEELS/$set" $specs || exit 1
    done
    du -sh "$WHEELS"
}

step() {  # name, seconds, command...: the command's output in $OUT/<name>.log; its exit status and tail here
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit $limit s)"
    local start=$SECONDS rc
    timeout -k 5 "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    echo "== $name: exit $rc after $((SECONDS - start)) s"
    tail -n 25 "$OUT/$name.log"
    cp bench/results.json "$OUT/"
    return $rc
}

run() {
    local steps=${1:-tests,gpu,peer} name failed=0
    for name in ${steps//,/ }; do
        case $name in
            tests | gpu | peer) ;;
            *) echo "run: unknown step '$name'; choose from tests, gpu, peer (comma-separated)" >&2; exit 2 ;;
        esac
    done
    steps=",$steps,"
    OUT=${OUT:-/tmp/gpu-session}
    mkdir -p "$OUT"
    local set
    for set in ours common peer; do
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "/tmp/site-$set" \
            "$WHEELS/$set"/*.whl || exit 1
    done
    printf '#!/bin/sh\nPYTHONPATH=/tmp/site-peer:/tmp/site-common exec python3 "$@"\n' >/tmp/peer-python
    chmod +x /tmp/peer-python
    export PYTHONPATH="/tmp/site-ours:/tmp/site-common:$PWD" PYTHONUNBUFFERED=1
    export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1  # nothing outside can be reached there
    nvidia-smi -L | tee "$OUT/versions.txt"
    local check='import sys, importlib.metadata as m
print(sys.argv[1] + ":", *(f"{n} {m.version(n)}" for n in ("torch", "transformers", "compressed-tensors", "datasets", "pyarrow", "fsspec")))'
    { python3 -c "import cola_core.compress, datasets; $check" ours &&
        /tmp/peer-python -c "import llmcompressor, datasets; $check" peer; } 2>&1 | tee -a "$OUT/versions.txt"
    [ "${PIPESTATUS[0]}" = 0 ] || { echo "the carried packages do not import there (above)" >&2; exit 1; }
    if [[ $steps == *,tests,* ]]; then step test_gpu 100 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py || failed=1; fi
    if [[ $steps == *,gpu,* ]]; then step bench_gpu 150 python3 -m bench.run --only gpu || failed=1; fi
    # shellcheck disable=SC2086
    if [[ $steps == *,peer,* ]]; then
        step peer 280 python3 -m bench.peer --python /tmp/peer-python ${PEER_ARGS:---device cuda --models wide --repeats 1} ||
            failed=1
    fi
    return $failed
}

case ${1:-} in
    fetch) fetch ;;
    run) run "${2:-}" || exit 1 ;;
    *) echo "usage: bash bench/gpu_session.sh {fetch | run [tests,gpu,peer]}   (fetch here, run on the lent GPU machine)" >&2; exit 2 ;;
esac
