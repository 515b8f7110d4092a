#!/usr/bin/env bash
# On the offline GPU machine: join the loads benchmarks/gpu/bundle.py made, check that none is
# missing, put their packages, backbones and data where fewtune looks, and run the GPU check.
#   bash benchmarks/gpu/run.sh [gpu_check arguments]     JSON to $OUT/gpu-check.json (default: .)
set -euo pipefail
cd "$(dirname "$0")/../.."
bundle=${GPU_BUNDLE:-.gpu-bundle}
work=${GPU_WORK:-/tmp/fewtune-gpu}
python=${PYTHON:-python3}

first=$(ls "$bundle"/load-1/part-1-of-* 2>/dev/null) || {
    echo "run.sh: no $bundle/load-1: carry the loads bundle.py made, load-1 first" >&2; exit 2; }
n=${first##*-of-}
parts=()
for k in $(seq 1 "$n"); do
    part="$bundle/load-$k/part-$k-of-$n"
    [[ -f $part ]] || {
        echo "run.sh: $part is missing (the machine went back between calls?): carry the loads again, back to back" >&2
        exit 2
    }
    parts+=("$part")
done
if [[ $(cat "${parts[@]}" | sha256sum | cut -d' ' -f1) != $(cat "$bundle/load-1/luggage.sha256") ]]; then
    echo "run.sh: the joined loads differ from what bundle.py packed: make them again and carry them all" >&2
    exit 2
fi

rm -rf "$work" && mkdir -p "$work"
cat "${parts[@]}" | tar -x -C "$work"
"$python" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$work/site" "$work"/wheels/*.whl
export PYTHONPATH="$work/site:$PWD/src" FEWTUNE_DATA_DIR="$work/data" FEWTUNE_CACHE="$work/cache"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
"$python" -m fewtune.bench.gpu_check --out "${OUT:-.}/gpu-check.json" "$@"
