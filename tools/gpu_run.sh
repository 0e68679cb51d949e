#!/usr/bin/env bash
# On a bare GPU machine, from a checkout carrying .gpu/ (made by tools/gpu_bundle.sh): install the carried wheels into a
# scratch folder beside the image's own packages, run the full study within a time budget, and ALWAYS leave in $OUT (the
# device tool's output folder; ./gpu-out elsewhere) run.log, REPORT.md and runs.tgz (under 16 MiB: no checkpoints, pools
# or work folders), even when the study fails or is stopped at its time limit.
# Usage: bash tools/gpu_run.sh [vitkd-study run arguments, e.g. --dry-run 1 or --only baselines kd_vit]
# Times (seconds): GPU_CALL_LIMIT, the device call's timeout_s (default 600); the study is stopped GPU_RESERVE (default 40)
# before it, so that the report and the tarball are written in time; GPU_BUDGET, the --budget handed to the study
# (default 90% of what is left for it, about 8 minutes in a 10-minute call), which scales its epochs to fit.
set -uo pipefail
T0=$(date +%s)
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}; mkdir -p "$OUT"
SITE=${VITKD_SITE:-/tmp/vitkd-site}
RUNS=${VITKD_RUNS:-/tmp/vitkd-runs}
PRESET=${GPU_PRESET:-full}
LIMIT=${GPU_CALL_LIMIT:-600}
RESERVE=${GPU_RESERVE:-40}
MAX_TGZ=$((15 * 2**20))  # a file over 16 MiB does not come back from the device
LOG="$OUT/run.log"
log() { echo "$*" | tee -a "$LOG"; }
: > "$LOG"

finish() {  # whatever happened above: the report and the tarball
  local status=$1 pdir
  pdir=$(ls -td "$RUNS"/"$PRESET" "$RUNS"/"$PRESET"-dry 2>/dev/null | head -1)  # the latest of the real and the dry run
  if [ -n "$pdir" ] && command -v vitkd-study >/dev/null && timeout 60 vitkd-study report "$pdir" >> "$LOG" 2>&1; then
    cp "$pdir/REPORT.md" "$OUT/REPORT.md"
  else
    { echo "# vitkd study report: not written"; echo; echo "The study step ended with exit $status before any report could be written; see run.log:"; echo;
      echo '```'; tail -n 60 "$LOG"; echo '```'; } > "$OUT/REPORT.md"
  fi
  if [ -d "$RUNS" ]; then  # results, notebooks, logs and figures; no checkpoints (*.pt), pools or work folders
    local ex=(--exclude='*.pt' --exclude='*.pth' --exclude='*.npy' --exclude='*/work' --exclude='*/models' --exclude='.previous'
              --exclude='progress.json' --exclude='.lock*')
    tar -czf "$OUT/runs.tgz" -C "$RUNS" "${ex[@]}" . 2>> "$LOG"
    if [ "$(stat -c %s "$OUT/runs.tgz")" -gt $MAX_TGZ ]; then  # too big to come back: keep the text only
      log "runs.tgz is $(( $(stat -c %s "$OUT/runs.tgz") / 2**20 )) MiB: keeping metrics, status, logs, tables and budget only"
      tar -czf "$OUT/runs.tgz" -C "$RUNS" "${ex[@]}" --exclude='*.ipynb' --exclude='*.png' --exclude='runs' . 2>> "$LOG"
    fi
    log "runs.tgz: $(( $(stat -c %s "$OUT/runs.tgz") / 1024 )) KiB"
  fi
  log "gpu_run.sh: exit $status after $(( $(date +%s) - T0 )) s"
  exit "$status"
}

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .gpu/whl/*.whl >> "$LOG" 2>&1 \
  || { log "installing the carried wheels failed (see above)"; finish 3; }
export PYTHONPATH=$SITE PATH=$SITE/bin:$PATH VITKD_DATA=$PWD/.gpu/data VITKD_CACHE=${VITKD_CACHE:-/tmp/vitkd-cache} PYTHONUNBUFFERED=1
cd /tmp  # outside the checkout: the study runs from the installed wheel, as a pip user's would
python3 -c "import torch, torchvision, timm, fastai, vitkd; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '', '| torchvision', torchvision.__version__, '| timm', timm.__version__, '| fastai', fastai.__version__, '| vitkd', vitkd.__file__)" 2>&1 | tee -a "$LOG" \
  || { log "the carried packages do not import (see above)"; finish 3; }
left=$(( LIMIT - RESERVE - ($(date +%s) - T0) ))
[ "$left" -gt 30 ] || { log "no time left for the study (GPU_CALL_LIMIT=$LIMIT, GPU_RESERVE=$RESERVE)"; finish 4; }
BUDGET=${GPU_BUDGET:-$(( left * 9 / 10 ))}
log "study: preset $PRESET, budget $BUDGET s, stopped after $left s at the latest; $*"
timeout --signal=TERM --kill-after=10 "$left" vitkd-study run --preset "$PRESET" --out "$RUNS" --budget "$BUDGET" --no-report "$@" 2>&1 | tee -a "$LOG"
status=${PIPESTATUS[0]}
{ [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; } && log "the study was stopped at its limit of $left s"
finish "$status"
