#!/usr/bin/env bash
# The GPU checks in one lease of a lent device machine (docs/performance.md, "On a lent GPU"):
# tests/test_gpu.py, `python -m bench.run --only gpu` (Llama-3-8B-shaped layers) and bench.peer on
# the wide model with both sides on the same GPU (issue #33, item 4).
#
# That machine reaches no registry and has its own torch and transformers 5.17 (llm-compressor's
# pin), so what it lacks travels as wheels, in three sets installed side by side: ours (our
# transformers), peer (llm-compressor) and common (what both import at the same versions).
#
#   here, once:  bash bench/gpu_session.sh fetch            # wheels into .whl/ (git-ignored), versions as installed here
#   there:       bash bench/gpu_session.sh run tests,gpu  # device tool: carry [".whl"], timeout_s 300
#   here:        cp <files_at>/results.json bench/        # at once, so the next call carries the gpu section
#   there:       bash bench/gpu_session.sh run peer       # the next call, on the same warm machine: timeout_s 390
#   here, after: cp <files_at>/results.json bench/ && python -m bench.run --only '' --docs
#
# Two calls fit a 15-minute lease with the machine's start (~90 s): tests 120 s + gpu 150 s, then peer
# 360 s, each step under its own limit so one that overruns leaves the others their turn; bench.peer
# stores each row as it is measured. Each call writes its steps' logs and bench/results.json to $OUT.
# PEER_ARGS replaces bench.peer's flags (default: --device cuda --models wide --repeats 1).
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

step() {  # name, seconds, command...: the command's output in $OUT/<name>.log, its exit status and tail here
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit $limit s)"
    local start=$SECONDS
    timeout -k 5 "$limit" "$@" >"$OUT/$name.log" 2>&1
    echo "== $name: exit $? after $((SECONDS - start)) s"
    tail -n 25 "$OUT/$name.log"
}

run() {
    local steps=",${1:-tests,gpu,peer},"
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
    nvidia-smi -L
    [[ $steps == *,tests,* ]] && step test_gpu 120 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py
    [[ $steps == *,gpu,* ]] && step bench_gpu 150 python3 -m bench.run --only gpu
    # shellcheck disable=SC2086
    [[ $steps == *,peer,* ]] && step peer 360 python3 -m bench.peer --python /tmp/peer-python \
        ${PEER_ARGS:---device cuda --models wide --repeats 1}
    cp bench/results.json "$OUT/"
}

case ${1:-} in
    fetch) fetch ;;
    run) run "${2:-}" ;;
    *) echo "usage: bash bench/gpu_session.sh {fetch | run [tests,gpu,peer]}   (fetch here, run on the lent GPU machine)" >&2; exit 2 ;;
esac
