"""The pip-installed library: build the wheel, install it into a fresh virtual environment outside the checkout, and
run every experiment there (the smoke preset as a dry run: each notebook's code path, a few batches per fit; the full
smoke run is tested from the checkout) and a library call.

The fresh environment gets the wheel with `--no-deps`; its dependencies (torch, fastai, ...) are those of the test's
own environment, made visible through a `.pth` file rather than installed again (a CUDA build of torch is several
GB). The editable install of the checkout is NOT visible there (its finder lives in a `.pth` that is not processed),
so `import vitkd` can only find the wheel's copy, which the test checks. Set VITKD_WHEEL_FULL_INSTALL=1 to install
the dependencies for real (slow)."""
import json, os, subprocess, sys, sysconfig, zipfile
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent

@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp('dist')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(out), str(ROOT)],
                   check=True, cwd=ROOT)
    whl, = out.glob('vitkd-*.whl')
    return whl

def test_wheel_ships_the_experiments(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    study = sorted(Path(n).stem for n in names if n.startswith('vitkd/study_nbs/') and n.endswith('.ipynb'))
    assert study == sorted(p.stem for p in (ROOT/'nbs'/'study').glob('*.ipynb')), study
    assert 'vitkd/study/runner.py' in names and any(n.endswith('LICENSE') for n in names)
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith('METADATA'))).decode()
    assert 'Requires-Python: >=3.10' in meta and 'Provides-Extra: detection' in meta and 'Provides-Extra: dist' in meta
    ep = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith('entry_points.txt'))).decode()
    assert 'vitkd-study = vitkd.study.runner:main' in ep
    print(f'wheel {wheel.name}: {wheel.stat().st_size/2**20:.2f} MiB, {len(names)} files')

def _clean_env() -> dict:
    "This environment without PYTHONPATH: a checkout on it would satisfy `pip install` of the wheel and shadow its copy"
    return {k: v for k,v in os.environ.items() if k != 'PYTHONPATH'}

def _venv(tmp, wheel) -> Path:
    env = tmp/'venv'
    subprocess.run([sys._base_executable, '-m', 'venv', str(env)], check=True)
    py = env/'bin'/'python'
    if os.environ.get('VITKD_WHEEL_FULL_INSTALL') == '1':
        subprocess.run([str(py), '-m', 'pip', 'install', '-q', '-c', str(ROOT/'constraints.txt'), f'{wheel}[detection]'], check=True, env=_clean_env())
    else:
        subprocess.run([str(py), '-m', 'pip', 'install', '-q', '--no-deps', str(wheel)], check=True, env=_clean_env())
        site = subprocess.run([str(py), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                              capture_output=True, text=True, check=True).stdout.strip()
        (Path(site)/'vitkd_test_deps.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')
    return env

def test_installed_wheel_runs_the_study_outside_a_checkout(wheel, tmp_path):
    env = _venv(tmp_path, wheel)
    work = tmp_path/'work'; work.mkdir()  # no settings.ini above it: not a checkout
    e = {**os.environ, 'VITKD_DATA': str(ROOT.parent/'shared'/'data'), 'PYTHONPATH': ''}
    r = subprocess.run([str(env/'bin'/'python'), '-c', 'import vitkd, vitkd.study.runner as r; print(vitkd.__file__); print(r.study_nbs_dir())'],
                       capture_output=True, text=True, cwd=work, env=e)
    assert r.returncode == 0, r.stderr[-3000:]
    where = r.stdout.split()
    assert str(tmp_path/'venv') in where[0] and where[1].endswith('vitkd/study_nbs'), where  # the wheel's copy, not the checkout
    r = subprocess.run([str(env/'bin'/'vitkd-study'), 'run', '--preset', 'smoke', '--dry-run', '--out', 'runs'], capture_output=True, text=True, cwd=work, env=e)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = (work/'runs'/'smoke-dry'/'REPORT.md').read_text()
    names = sorted(p.stem for p in (ROOT/'nbs'/'study').glob('*.ipynb') if not p.stem.startswith('_'))
    for n in names: assert f'## {n}' in report, n
    assert '## Claims' in report
    # a library call, with no data folder at all: the digits fallback, said loudly
    e2 = {k: v for k,v in e.items() if k != 'VITKD_DATA'}
    r = subprocess.run([str(env/'bin'/'python'), '-c', "from vitkd.data import load_images; a = load_images('cifar10'); print(a)"],
                       capture_output=True, text=True, cwd=work, env=e2)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'WARNING: cifar10 is not available' in r.stdout and 'digits' in r.stdout
