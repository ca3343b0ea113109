#!/usr/bin/env bash
# One call of the GPU session (benchmarks/experiments/gpu_session.py), as the device tool
# runs it: `bash benchmarks/experiments/gpu_session.sh [SECONDS] [RUN OPTIONS] [-- BENCH
# OPTIONS]`, with carry [".gpu-session"] (made by `gpu_session prepare`) and $OUT set.
# Installs the carried wheels into /tmp/site when the machine lacks gymnasium (it has
# torch), links this checkout there as the package setup.py makes of it (metacurriculum/
# with student/, envs/, teachers/ and benchmarks/ inside: nothing to build), then runs the
# call. SECONDS (default 510) is its slice: what is left of a 600 s call after this
# installation and the packing at the end.
set -u
cd "$(dirname "$0")/../.." || exit 1
PYTHON=${PYTHON:-python3}
SITE=${SITE:-/tmp/site}
CARRY=$(cd "${CARRY:-.gpu-session}" && pwd) || exit 1
SECONDS_LEFT=${1:-510}
shift $(( $# > 0 ? 1 : 0 ))
mkdir -p "$SITE/metacurriculum" || exit 1
if ! "$PYTHON" -c "import gymnasium" 2>/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "$CARRY"/wheels/*.whl || exit 1
fi
for path in metacurriculum/*.py student envs teachers benchmarks; do
    ln -sfn "$PWD/$path" "$SITE/metacurriculum/${path#metacurriculum/}" || exit 1
done
# The checkout's own metacurriculum/ (the front door alone) must not shadow the linked
# package: no Python started from here puts the current folder on its path.
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONSAFEPATH=1
export METACURRICULUM_DATA="$CARRY/data" PYTHONUNBUFFERED=1
exec "$PYTHON" -m metacurriculum.benchmarks.experiments.gpu_session run \
    --out "${OUT:?OUT names the folder whose files come back}" \
    --carried "$CARRY/previous" --seconds "$SECONDS_LEFT" "$@"
