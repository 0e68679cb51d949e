#!/usr/bin/env bash
# Gather, on a machine with the package registries, what a bare GPU machine needs to run the full study:
#   .gpu/whl/   wheels of every runtime dependency the GPU image lacks (tools/gpu_image_packages.txt), for its
#               Python (3.12, manylinux x86_64), plus vitkd's own wheel (which ships the experiment notebooks)
#   .gpu/data/  the datasets (CIFAR-10 archive and checksums; the detection sets)
# Then, on the GPU machine (the device tool's `run`, with carry [".gpu"]):  bash tools/gpu_run.sh
# The image's own torch, torchvision, timm, torchmetrics, scipy, ... are used as they are (versions differ from our pins).
set -euo pipefail
cd "$(dirname "$0")/.."
PYV=${GPU_PYTHON:-3.12}
OUT=.gpu
PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
PY=${PY:-python3}
rm -rf $OUT; mkdir -p $OUT/whl $OUT/data
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
# 1. resolve the requirements for the GPU's Python, as if nothing were installed
reqs=$($PY - <<'PY'
import configparser, shlex
c = configparser.ConfigParser(delimiters=['=']); c.read('settings.ini'); d = c['DEFAULT']
print(' '.join(shlex.quote(r) for r in shlex.split(d['requirements']) + shlex.split(d.get('detection_requirements', ''))))
PY
)
eval "set -- $reqs"
$PY -m pip install -q --dry-run --ignore-installed --report $OUT/report.json --python-version $PYV --implementation cp \
    --only-binary=:all: "${PLAT[@]}" --target $OUT/.resolve -c constraints-gpu.txt "$@" 2>&1 | grep -v "^WARNING: Location" || true
# 2. keep what the image lacks; fastai's optional text stack (spaCy) is never imported by vitkd
$PY - <<'PY' > $OUT/needed.txt
import json, re
norm = lambda n: re.sub(r'[-_.]+', '-', n.lower())
have = {norm(l.strip()) for l in open('tools/gpu_image_packages.txt') if l.strip() and not l.startswith('#')}
skip = ('spacy', 'thinc', 'blis', 'cymem', 'preshed', 'murmurhash', 'srsly', 'wasabi', 'weasel', 'catalogue', 'confection',
        'cloudpathlib', 'smart-open', 'langcodes', 'language-data', 'marisa-trie', 'typer', 'shellingham', 'nvidia-', 'torch', 'triton')
for i in json.load(open('.gpu/report.json'))['install']:
    n,v = norm(i['metadata']['name']), i['metadata']['version']
    if n in have or (n.startswith(skip) and n != 'torch-pruning'): continue
    print(f'{n}=={v}')
PY
echo "carrying $(wc -l < $OUT/needed.txt) wheels the image lacks"
$PY -m pip download -q --no-deps --only-binary=:all: --python-version $PYV --implementation cp "${PLAT[@]}" -d $OUT/whl -r $OUT/needed.txt 2>&1 | grep -v "^WARNING: Location" || true
# 3. vitkd itself (pure Python; ships nbs/study)
WPY=$PY; [ -x .venv/bin/python ] && WPY=.venv/bin/python  # needs setuptools and wheel: the project's venv has them
$WPY -m pip wheel -q --no-deps --no-build-isolation -w $OUT/whl . 2>&1 | grep -v "Warning\|!!\|\*\*\*\|^ *$\|classifiers\|self._finalize\|SPDX\|License ::\|See https" || true
# 4. the data
DATA=${VITKD_DATA:-../shared/data}
cp "$DATA/cifar10.tgz" "$DATA/SHA256SUMS" $OUT/data/
[ -d "$DATA/coco8" ] && cp -r "$DATA/coco8" $OUT/data/
rm -rf $OUT/.resolve $OUT/report.json
du -sh $OUT/whl $OUT/data $OUT
size=$(du -sm $OUT | cut -f1)
if [ "$size" -gt 60 ]; then echo "the bundle is ${size} MiB: over the 60 MiB left for it in a device call (64 MiB in all)" >&2; exit 1; fi
