#!/usr/bin/env bash
# Rehearse the GPU run on a CPU (make gpu-rehearsal): an imitation of the GPU image, the bundle, and tools/gpu_run.sh
# run from outside the checkout with a dry run of the full preset. Tens of minutes on 2 cores; not part of CI.
#   1. the image: a venv of Python 3.12 (as the image's) with torch 2.11.0 and torchvision 0.26.0 (the image's versions:
#      the CUDA builds from PyPI, which run on the CPU; pip cannot reach the CPU builds' index from here; their NCCL at the
#      newest version the registry has, since the 2.28.9 torch pins is gone), the packages the bundle trusts the image to
#      provide (.gpu/image.txt) and the oldest timm we support (constraints-gpu.txt)
#   2. the bundle (tools/gpu_bundle.sh), checked against the 64 MiB a device call carries
#   3. a copy of the checkout and .gpu, as the device tool lays it, and `bash tools/gpu_run.sh --dry-run N` from /tmp, with
#      the image's python3 first on PATH, a fresh cache and run folder; GPU_CALL_LIMIT is raised (a CPU is slower)
# The summary (experiments ok, runs.tgz size, exit) is the last lines of $REHEARSAL/rehearsal.log.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
REH=${REHEARSAL:-/tmp/vitkd-rehearsal}
PY312=${REHEARSAL_PYTHON:-}
if [ -z "$PY312" ]; then  # the first Python 3.12 that runs: on PATH, or one of pyenv's
  for c in $(command -v python3.12) $(ls -d ~/.pyenv/versions/3.12*/bin/python 2>/dev/null); do
    "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && { PY312=$c; break; }
  done
fi
DRY=${REHEARSAL_DRY_RUN:-1}
mkdir -p "$REH"
LOG="$REH/rehearsal.log"; : > "$LOG"
say() { echo "[rehearsal $(date +%H:%M:%S)] $*" | tee -a "$LOG"; }
[ -n "$PY312" ] && "$PY312" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null \
  || { say "no Python 3.12 found (set REHEARSAL_PYTHON): the image's Python is 3.12"; exit 2; }
timm=$(sed -n 's/^timm==\([0-9.]*\).*/\1/p' constraints-gpu.txt)
TORCH=${IMAGE_TORCH:-2.11.0} TORCHVISION=${IMAGE_TORCHVISION:-0.26.0}  # the GPU image's (KINDS.md)
say "1/3 the bundle"
bash tools/gpu_bundle.sh 2>&1 | tee -a "$LOG"; [ "${PIPESTATUS[0]}" -eq 0 ] || { say "the bundle failed"; exit 1; }
say "2/3 the image: $PY312, torch==$TORCH torchvision==$TORCHVISION (CUDA builds: they run on a CPU), timm==$timm"
[ -x "$REH/venv/bin/python" ] || "$PY312" -m venv "$REH/venv"
VPY="$REH/venv/bin/python"
quiet() { grep -v "^WARNING: Location\|^ERROR: pip's dependency resolver\|^nvidia-nccl\|^torch .* requires" || true; }
$VPY -m pip install -q --upgrade pip 2>&1 | quiet | tee -a "$LOG"
# torch 2.11.0 pins nvidia-nccl-cu13 2.28.9, which the registry no longer has: its other requirements as they are, NCCL the newest
$VPY -m pip install -q --no-deps torch==$TORCH torchvision==$TORCHVISION 2>&1 | quiet | tee -a "$LOG"
$VPY - > "$REH/torch-deps.txt" <<'PY'
import importlib.metadata as md, re
for r in md.requires('torch') or []:
    if 'extra ==' in r: continue
    r = r.split(';')[0].strip()
    print('nvidia-nccl-cu13' if r.startswith('nvidia-nccl-cu13') else r)
PY
printf 'torch==%s\ntorchvision==%s\n' $TORCH $TORCHVISION > "$REH/pins.txt"
# the image's other packages as the bundle resolved them, except where torch 2.11's own requirements say otherwise
deps=$(sed 's/[<>=!~ \[].*//' "$REH/torch-deps.txt" | tr 'A-Z_' 'a-z-' | paste -sd'|')
grep -v '^#\|^torch==\|^torchvision==' .gpu/image.txt | grep -Eiv "^($deps)==" > "$REH/image.txt"; echo "timm==$timm" >> "$REH/image.txt"
$VPY -m pip install -q -c "$REH/pins.txt" -r "$REH/torch-deps.txt" -r "$REH/image.txt" 2>&1 | quiet | tee -a "$LOG"
"$REH/venv/bin/python" -c "import torch, torchvision, timm, sys; print('image imitation: python', sys.version.split()[0], '| torch', torch.__version__, '| torchvision', torchvision.__version__, '| timm', timm.__version__)" 2>&1 | tee -a "$LOG" \
  || { say "the image imitation does not import torch"; exit 1; }
say "3/3 gpu_run.sh --dry-run $DRY from outside the checkout"
rm -rf "$REH/checkout" "$REH/out" "$REH/site" "$REH/runs" "$REH/cache"; mkdir -p "$REH/checkout" "$REH/out"
git ls-files -z --cached --others --exclude-standard | (cd "$REPO" && xargs -0 cp --parents -t "$REH/checkout")
cp -r .gpu "$REH/checkout/"
t0=$(date +%s)
(cd /tmp && env -u PYTHONPATH -u VIRTUAL_ENV PATH="$REH/venv/bin:/usr/bin:/bin" OUT="$REH/out" VITKD_SITE="$REH/site" VITKD_RUNS="$REH/runs" \
   VITKD_CACHE="$REH/cache" GPU_CALL_LIMIT=${REHEARSAL_LIMIT:-7200} bash "$REH/checkout/tools/gpu_run.sh" --dry-run "$DRY") > "$REH/gpu_run.out" 2>&1
status=$?
say "gpu_run.sh exit $status after $(( $(date +%s) - t0 )) s; it returned: $(cd "$REH/out" && ls -l | awk 'NR>1 {printf "%s (%d KiB) ", $9, $5/1024}')"
tr '\r' '\n' < "$REH/out/run.log" | grep -E "^(torch |[a-z_]+: (ok|failed|done)|FAILED|[0-9]+ of [0-9]+ experiments|runs.tgz|gpu_run.sh:|measuring|.*GFLOP/s)" | tee -a "$LOG"
say "summary: $(tr '\r' '\n' < "$REH/out/run.log" | grep -E '^[0-9]+ of [0-9]+ experiments ok' | tail -1), runs.tgz $(( $(stat -c %s "$REH/out/runs.tgz" 2>/dev/null || echo 0) / 1024 )) KiB, REPORT.md $( [ -s "$REH/out/REPORT.md" ] && echo written || echo missing)"
exit $status
