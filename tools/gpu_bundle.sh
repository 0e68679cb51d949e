#!/usr/bin/env bash
# Gather, on a machine with the package registries, what a bare GPU machine needs to run the full study:
#   .gpu/whl/   wheels of every runtime dependency the GPU image lacks (tools/gpu_image_packages.txt), for its Python
#               (3.12, manylinux x86_64), the packages constraints-gpu.txt marks `# carry` (timm: the image's is too old),
#               and vitkd's own wheel (which ships the experiment notebooks)
#   .gpu/data/  CIFAR-10, coco8, and COCO128 with every image shrunk to 320 px on its long side (the most the full preset
#               uses; labels unchanged), with a SHA256SUMS of its own: the original 41 MB archive does not fit a device call
#   .gpu/image.txt  the resolved packages the image is trusted to provide (make gpu-rehearsal installs these)
# Then, on the GPU machine (the device tool's `run`, with carry [".gpu"]):  bash tools/gpu_run.sh
# A device call carries at most 64 MiB: the checkout's files that git does not ignore plus .gpu; the script checks it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYV=${GPU_PYTHON:-3.12}
OUT=.gpu
LIMIT_MIB=64
PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
PY=${PY:-python3}
[ -n "${WPY:-}" ] || { WPY=$PY; [ -x .venv/bin/python ] && WPY=.venv/bin/python; }  # builds vitkd's wheel and shrinks COCO: needs setuptools, wheel, Pillow
rm -rf $OUT; mkdir -p $OUT/whl $OUT/data
# 1. resolve the requirements for the GPU's Python, as if nothing were installed (torch and friends at the image's versions)
reqs=$($PY - <<'PY'
import configparser, shlex
c = configparser.ConfigParser(delimiters=['=']); c.read('settings.ini'); d = c['DEFAULT']
print(' '.join(shlex.quote(r) for r in shlex.split(d['requirements']) + shlex.split(d.get('detection_requirements', ''))))
PY
)
eval "set -- $reqs"
$PY -m pip install -q --dry-run --ignore-installed --report $OUT/report.json --python-version $PYV --implementation cp \
    --only-binary=:all: "${PLAT[@]}" --target $OUT/.resolve -c constraints-gpu.txt "$@" 2>&1 | grep -v "^WARNING: Location" || true
# 2. carry what the image lacks and what we pin `# carry`; fastai's optional text stack (spaCy) is never imported by vitkd,
#    and debugpy (ipykernel's debugger, 5.4 MB) and jedi (IPython's completion, 4.9 MB) are optional imports that a
#    headless papermill kernel never uses: leaving them out keeps the call under 64 MiB
$PY - <<'PY'
import json, re
norm = lambda n: re.sub(r'[-_.]+', '-', n.lower())
have = {norm(l.strip()) for l in open('tools/gpu_image_packages.txt') if l.strip() and not l.startswith('#')}
carry = {norm(re.split(r'[=<>!~ ]', l)[0]) for l in open('constraints-gpu.txt') if re.search(r'#\s*carry\b', l) and not l.startswith('#')}
skip = ('spacy', 'thinc', 'blis', 'cymem', 'preshed', 'murmurhash', 'srsly', 'wasabi', 'weasel', 'catalogue', 'confection',
        'cloudpathlib', 'smart-open', 'langcodes', 'language-data', 'marisa-trie', 'typer', 'shellingham', 'debugpy', 'jedi')
image_only = ('nvidia-', 'cuda-', 'triton')  # the image's CUDA stack: never carried, never pinned by us
needed,image = [],[]
for i in json.load(open('.gpu/report.json'))['install']:
    n,v = norm(i['metadata']['name']), i['metadata']['version']
    if n.startswith(image_only) or (n.startswith(skip) and n not in carry): continue
    (needed if n in carry or n not in have else image).append(f'{n}=={v}')
open('.gpu/needed.txt', 'w').write('\n'.join(needed) + '\n')
open('.gpu/image.txt', 'w').write('# resolved packages the GPU image provides (its versions may differ): tools/gpu_bundle.sh\n' + '\n'.join(image) + '\n')
missing = carry - {norm(l.split('==')[0]) for l in needed}
if missing: raise SystemExit(f"constraints-gpu.txt marks {', '.join(sorted(missing))} `# carry` but the resolution does not need it")
PY
echo "carrying $(wc -l < $OUT/needed.txt) wheels: $(grep -i '^timm==' $OUT/needed.txt) and what the image lacks"
$PY -m pip download -q --no-deps --only-binary=:all: --python-version $PYV --implementation cp "${PLAT[@]}" -d $OUT/whl -r $OUT/needed.txt 2>&1 | grep -v "^WARNING: Location" || true
# 3. vitkd itself (pure Python; ships nbs/study)
$WPY -m pip wheel -q --no-deps --no-build-isolation -w $OUT/whl . 2>&1 | grep -v "Warning\|!!\|\*\*\*\|^ *$\|classifiers\|self._finalize\|SPDX\|License ::\|See https" || true
# 4. the data: CIFAR-10 as it is, coco8, and the shrunk COCO128 with its own checksum
DATA=${VITKD_DATA:-../shared/data}
cp "$DATA/cifar10.tgz" $OUT/data/
grep ' cifar10.tgz$' "$DATA/SHA256SUMS" > $OUT/data/SHA256SUMS
[ -d "$DATA/coco8" ] && cp -r "$DATA/coco8" $OUT/data/
sha=$($WPY tools/shrink_coco.py "$DATA/coco128.tgz" $OUT/data/coco128.tgz --max-side 320)
echo "$sha  coco128.tgz" >> $OUT/data/SHA256SUMS
rm -rf $OUT/.resolve $OUT/report.json
# 5. what one device call carries: the files git does not ignore, plus .gpu
$PY - "$LIMIT_MIB" <<'PY'
import os, subprocess, sys
limit = int(sys.argv[1]) * 2**20
files = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], capture_output=True, check=True).stdout.split(b'\0')
tree = sum(os.path.getsize(f) for f in files if f and os.path.isfile(f))
gpu = sum(os.path.getsize(os.path.join(d, f)) for d,_,fs in os.walk('.gpu') for f in fs)
for k,v in [('whl', '.gpu/whl'), ('data', '.gpu/data')]:
    print(f"  .gpu/{k}: {sum(os.path.getsize(os.path.join(d, f)) for d,_,fs in os.walk(v) for f in fs)/2**20:.1f} MiB")
print(f"a device call carries {(tree+gpu)/2**20:.1f} MiB of {limit/2**20:.0f}: the checkout {tree/2**20:.1f} MiB + .gpu {gpu/2**20:.1f} MiB")
if tree + gpu > limit:
    sys.exit(f"over the {limit/2**20:.0f} MiB a device call carries by {(tree+gpu-limit)/2**20:.1f} MiB: "
             "shrink .gpu (fewer wheels, smaller data) or ignore large files in the checkout")
PY
