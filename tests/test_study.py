"End-to-end tests of the study runner: the real smoke preset, resume after an interruption, failure isolation."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from vitkd.study.claims import CLAIMS

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT/'tests'/'study_nbs'
CLI = [str(Path(sys.executable).parent/'vitkd-study')]

def study(*args, env=None, **kw):
    return subprocess.run(CLI + list(args), capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})}, **kw)

def status(folder): return json.loads((folder/'status.json').read_text())

def test_smoke_preset_end_to_end(tmp_path):
    "Every experiment notebook runs with the smoke preset, writes metrics and appears in the report; a re-run skips them all"
    r = study('run', '--preset', 'smoke', '--out', str(tmp_path))
    print(r.stdout[-5000:], r.stderr[-5000:])
    assert r.returncode == 0, r.stderr[-3000:]
    names = sorted(p.stem for p in (ROOT/'nbs'/'study').glob('*.ipynb') if not p.stem.startswith('_'))
    assert 'baselines' in names
    for n in names:
        d = tmp_path/'smoke'/n
        assert status(d)['status'] == 'ok', (n, status(d))
        m = json.loads((d/'metrics.json').read_text())
        assert m['experiment'] == n and m['tables'], n
        assert (d/f'{n}.ipynb').exists()
    report = (tmp_path/'smoke'/'REPORT.md').read_text()
    for n in names: assert f'## {n}' in report
    r2 = study('run', '--preset', 'smoke', '--out', str(tmp_path))
    assert r2.returncode == 0 and r2.stdout.count('done before, skipped') == len(names), r2.stdout

def test_failure_is_isolated_and_named(tmp_path):
    "A failing experiment is recorded with its cell and error; the others still run; the command exits non-zero"
    r = study('run', '--preset', 'smoke', '--out', str(tmp_path), '--nbs', str(FIXTURES), '--only', 'b_fails', 'a_ok')
    assert r.returncode == 1
    assert 'FAILED b_fails' in r.stderr and 'ZeroDivisionError' in r.stderr
    st = status(tmp_path/'smoke'/'b_fails')
    assert st['status'] == 'failed' and st['cell'] == 4 and 'ZeroDivisionError' in st['error']  # In [4]: after papermill's injected cell
    assert st['source'] == 'y = x / 0'
    assert status(tmp_path/'smoke'/'a_ok')['status'] == 'ok'
    report = (tmp_path/'smoke'/'REPORT.md').read_text()
    assert 'two is more than one' in report and 'ZeroDivisionError' in report

def test_interrupted_run_resumes(tmp_path):
    "Kill a run in the middle of an experiment: the next run skips what finished and the experiment resumes its sub-runs"
    out = tmp_path/'runs'
    p = subprocess.Popen(CLI + ['run', '--preset', 'smoke', '--out', str(out), '--nbs', str(FIXTURES), '--only', 'a_ok', 'c_resumes'],
                         cwd=ROOT, env={**os.environ, 'VITKD_FIXTURE_SLEEP': '120'}, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    c = out/'smoke'/'c_resumes'
    t0 = time.time()
    while not (c/'runs'/'step1.json').exists():
        assert time.time()-t0 < 120 and p.poll() is None, 'the run did not reach the sub-result in time'
        time.sleep(0.5)
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    assert status(c)['status'] == 'running' and not (c/'metrics.json').exists()
    a_metrics = (out/'smoke'/'a_ok'/'metrics.json').read_bytes()
    r = study('run', '--preset', 'smoke', '--out', str(out), '--nbs', str(FIXTURES), '--only', 'a_ok', 'c_resumes',
              env={'VITKD_FIXTURE_SLEEP': '0'})
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'a_ok: done before, skipped' in r.stdout
    assert status(c)['status'] == 'ok'
    assert (c/'runs'/'calls.log').read_text().split() == ['1', '2']  # step 1 was not computed again
    assert (out/'smoke'/'a_ok'/'metrics.json').read_bytes() == a_metrics

def test_bad_names_are_refused():
    r = study('run', '--preset', 'enormous')
    assert r.returncode == 2 and 'choose one of smoke, quick, full' in r.stderr
    r = study('run', '--preset', 'smoke', '--only', 'nosuch')
    assert r.returncode == 2 and 'choose from' in r.stderr and 'baselines' in r.stderr

def test_failed_run_never_reports_its_claims(tmp_path):
    "A notebook that saves its metrics and then fails is marked failed, and its claims stay out of the report"
    r = study('run', '--preset', 'smoke', '--out', str(tmp_path), '--nbs', str(FIXTURES), '--only', 'd_saves_then_fails', 'a_ok')
    assert r.returncode == 1 and 'FAILED d_saves_then_fails' in r.stderr
    assert (tmp_path/'smoke'/'d_saves_then_fails'/'metrics.json').exists()  # it did save them
    report = (tmp_path/'smoke'/'REPORT.md').read_text()
    assert 'a claim of a failed run' not in report and 'two is more than one' in report
    assert 'the experiment failed after saving its metrics' in report

def test_kill_after_metrics_leaves_no_stale_result(tmp_path):
    "Killed after writing metrics.json, before its status: a rerun that writes no metrics fails, the old file is set aside"
    out = tmp_path/'runs'; d = out/'smoke'/'d_saves_then_fails'
    p = subprocess.Popen(CLI + ['run', '--preset', 'smoke', '--out', str(out), '--nbs', str(FIXTURES), '--only', 'd_saves_then_fails'],
                         cwd=ROOT, env={**os.environ, 'VITKD_FIXTURE_SLEEP': '120'}, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not (d/'metrics.json').exists():
        assert time.time()-t0 < 120 and p.poll() is None, 'the run did not write its metrics in time'
        time.sleep(0.5)
    # a second run on the same folder meanwhile is refused at once, naming the holder
    r2 = study('run', '--preset', 'smoke', '--out', str(out), '--nbs', str(FIXTURES), '--only', 'a_ok')
    assert r2.returncode == 2 and 'another vitkd-study run' in r2.stderr and str(p.pid) in r2.stderr, r2.stderr
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    assert status(d)['status'] == 'running'
    r = study('run', '--preset', 'smoke', '--out', str(out), '--nbs', str(FIXTURES), '--only', 'd_saves_then_fails',
              env={'VITKD_FIXTURE_NO_METRICS': '1', 'VITKD_FIXTURE_PASS': '1'})
    assert r.returncode == 1 and 'wrote no metrics.json' in r.stderr, r.stderr[-2000:]
    assert not (d/'metrics.json').exists() and (d/'.previous'/'metrics.json').exists()
    assert 'a claim of a failed run' not in (out/'smoke'/'REPORT.md').read_text()

def test_corrupt_state_file_fails_only_its_experiment(tmp_path):
    "A damaged status.json fails that experiment with the file named; the others still run and report"
    r = study('run', '--preset', 'smoke', '--out', str(tmp_path), '--nbs', str(FIXTURES), '--only', 'a_ok')
    assert r.returncode == 0
    bad = tmp_path/'smoke'/'a_ok'/'status.json'
    bad.write_text('{"status": "ok", "metr')
    r = study('run', '--preset', 'smoke', '--out', str(tmp_path), '--nbs', str(FIXTURES), '--only', 'a_ok', 'c_resumes')
    assert r.returncode == 1 and str(bad) in r.stderr and 'corrupt' in r.stderr, r.stderr[-2000:]
    assert status(tmp_path/'smoke'/'c_resumes')['status'] == 'ok'
    report = (tmp_path/'smoke'/'REPORT.md').read_text()
    assert 'corrupt' in report and 'two is more than one' not in report
    r = study('report', str(tmp_path/'smoke'))
    assert r.returncode == 0

def test_full_preset_dry_run(tmp_path):
    "Every experiment of the full preset runs on the CPU with a few batches of at most 16 images per fit: each code path and config of the GPU study, before a GPU"
    t0 = time.perf_counter()
    r = study('run', '--preset', 'full', '--dry-run', '--out', str(tmp_path))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    names = sorted(p.stem for p in (ROOT/'nbs'/'study').glob('*.ipynb') if not p.stem.startswith('_'))
    secs = {}
    for n in names:
        d = tmp_path/'full-dry'/n
        assert status(d)['status'] == 'ok', (n, status(d))
        m = json.loads((d/'metrics.json').read_text())
        assert m['preset'] == 'full' and m['dry_run'] == 2 and m['tables'], n
        seeded = [c for c in m['claims'] if c['kind'] != 'exact']  # an exact claim (a parameter count) needs no seeds
        assert all(c['verdict'] in ('inconclusive', 'not testable at this budget') for c in seeded), (n, m['claims'])  # one seed, one round: never decided
        assert all(c['declared'] and c['id'].split('[')[0] in CLAIMS for c in m['claims']), n  # every claim declared before the run
        assert {c['id'].split('[')[0] for c in m['claims']} | set(m['undecided']) == {k for k,c in CLAIMS.items() if c.experiment == n}, n
        secs[n] = round(status(d)['seconds'])
    print(f"full preset, dry run: {time.perf_counter()-t0:.0f} s in all; per experiment {secs}")
