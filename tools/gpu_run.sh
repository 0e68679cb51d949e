#!/usr/bin/env bash
# On a bare GPU machine, from a checkout carrying .gpu/ (made by tools/gpu_bundle.sh): install the carried wheels into
# a scratch folder beside the image's own packages, run the full study, and put the report and the run folders in
# $OUT (the device tool's output folder; ./gpu-out elsewhere). Usage: bash tools/gpu_run.sh [vitkd-study run arguments]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}; mkdir -p "$OUT"
SITE=/tmp/vitkd-site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $SITE .gpu/whl/*.whl || exit 1
export PYTHONPATH=$SITE PATH=$SITE/bin:$PATH VITKD_DATA=$PWD/.gpu/data VITKD_CACHE=${VITKD_CACHE:-/tmp/vitkd-cache} PYTHONUNBUFFERED=1
cd /tmp  # outside the checkout: the study runs from the installed wheel, as a pip user's would
python3 -c "import torch, torchvision, timm, fastai, vitkd; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '', '| torchvision', torchvision.__version__, '| timm', timm.__version__, '| fastai', fastai.__version__, '| vitkd', vitkd.__file__)"
t0=$(date +%s)
vitkd-study run --preset full --out /tmp/vitkd-runs "$@" 2>&1 | tee "$OUT/run.log"
status=${PIPESTATUS[0]}
echo "wall: $(( $(date +%s) - t0 )) s, exit $status" | tee -a "$OUT/run.log"
preset=$(ls /tmp/vitkd-runs | head -1)
vitkd-study report /tmp/vitkd-runs/$preset && cp /tmp/vitkd-runs/$preset/REPORT.md "$OUT/REPORT.md"
tar -czf "$OUT/runs.tgz" -C /tmp/vitkd-runs --exclude='.previous' --exclude='progress.json' .
exit $status
