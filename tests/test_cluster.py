"""The study's sub-runs on a local Ray instance with 2 CPU workers (vitkd.study.executors): the smoke preset's norm_batch_size
experiment through `vitkd-study run --executor ray --ray-address ...` with a worker killed mid-run, against the plain
runner; and failure isolation and resume of `ray_map`."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest

pytest.importorskip('ray', reason="the Ray executor needs vitkd's dist extra: pip install 'vitkd[dist]'")
ROOT = Path(__file__).resolve().parent.parent
CLI = [str(Path(sys.executable).parent/'vitkd-study')]
EXPERIMENT = 'norm_batch_size'  # 12 trainings and a benchmark, sharing the DataLoaders as arguments

@pytest.fixture(scope='module')
def ray_address():
    "A local Ray instance of 2 CPUs, owned by this test process (ended with it, never by a broad `ray stop`)"
    import ray
    saved = {k: os.environ.get(k) for k in ('PYTHONPATH', 'OMP_NUM_THREADS')}
    os.environ['PYTHONPATH'] = os.pathsep.join(p for p in [str(ROOT), os.environ.get('PYTHONPATH')] if p)  # workers import this vitkd
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    ray.init(address='local', num_cpus=2, include_dashboard=False, object_store_memory=300*2**20)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
    for k,v in saved.items():  # later tests (the wheel's fresh venv) must not see this checkout on PYTHONPATH
        if v is None: os.environ.pop(k, None)
        else: os.environ[k] = v

def study(out, *args, **kw):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': os.environ.get('PYTHONPATH', str(ROOT))}
    return subprocess.Popen(CLI + ['run', '--preset', 'smoke', '--only', EXPERIMENT, '--out', str(out), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)

def subrun_workers() -> dict[int,str]:
    "pid -> title of this machine's Ray workers now running a sub-run (Ray titles a busy worker 'ray::<task name>')"
    out = {}
    for p in Path('/proc').iterdir():
        if not p.name.isdigit(): continue
        try: title = (p/'cmdline').read_bytes().split(b'\0')[0].decode()
        except OSError: continue
        if title.startswith('ray::subrun:'): out[int(p.name)] = title[len('ray::subrun:'):]
    return out

def results(folder:Path) -> dict:
    "The sub-runs' results without their timings (seconds, images/s)"
    return {p.stem: {k: v for k,v in json.loads(p.read_text()).items() if not k.endswith(('_s', 'per_s'))} for p in folder.glob('*.json')}

def test_ray_executor_matches_plain_runner_with_a_worker_killed(tmp_path, ray_address):
    "Same sub-runs and results as the plain runner; a worker SIGKILLed mid-run is retried by Ray and the run completes"
    t0 = time.perf_counter(); p = study(tmp_path/'plain'); log_plain,_ = p.communicate(timeout=600); t_plain = time.perf_counter()-t0
    assert p.returncode == 0, log_plain[-3000:]
    runs = tmp_path/'ray'/'smoke'/EXPERIMENT/'runs'
    t0 = time.perf_counter()
    p = study(tmp_path/'ray', '--executor', 'ray', '--ray-address', ray_address, start_new_session=True)
    killed = None
    try:
        while killed is None and p.poll() is None and time.perf_counter()-t0 < 300:
            busy = subrun_workers()
            if busy and runs.is_dir() and any(runs.glob('*.json')):  # mid-run: some sub-runs stored, others running
                pid,key = next(iter(busy.items()))
                if not (runs/f'{key}.json').exists(): os.kill(pid, signal.SIGKILL); killed = key
            time.sleep(0.2)
        log_ray,_ = p.communicate(timeout=600)
    finally:
        if p.poll() is None: os.killpg(p.pid, signal.SIGKILL)
    t_ray = time.perf_counter()-t0
    print(f"{EXPERIMENT}, smoke: plain runner {t_plain:.1f} s, Ray executor (2 CPU workers, one killed) {t_ray:.1f} s")
    assert p.returncode == 0, log_ray[-3000:]
    assert killed is not None, 'no sub-run was caught running: the kill did not happen'
    assert 'will be retried' in (tmp_path/'ray'/'smoke'/EXPERIMENT/'log.txt').read_text()  # Ray's note on the killed worker's task
    st = json.loads((tmp_path/'ray'/'smoke'/EXPERIMENT/'status.json').read_text())
    assert st['status'] == 'ok', st
    plain,ray_res = results(tmp_path/'plain'/'smoke'/EXPERIMENT/'runs'), results(runs)
    assert set(ray_res) == set(plain) and killed in ray_res
    trainings = [k for k,v in plain.items() if 'test_err' in v]
    assert len(trainings) == 12
    for k in trainings: assert ray_res[k] == plain[k], k  # deterministic on the CPU with 1 thread: the same errors
    m_plain,m_ray = (json.loads((tmp_path/d/'smoke'/EXPERIMENT/'metrics.json').read_text()) for d in ('plain', 'ray'))
    errors = lambda m: [{k: v for k,v in r.items() if not k.startswith('images_per_s')} for r in m['tables'][0]['rows']]
    assert errors(m_ray) == errors(m_plain)  # the table of test errors
    assert [c['verdict'] for c in m_ray['claims']] == [c['verdict'] for c in m_plain['claims']]

def test_failed_subrun_fails_after_the_others_are_stored_and_resumes(tmp_path, ray_address):
    "A sub-run that raises fails the call with its own exception; the others are stored; the next call computes only the missing one"
    from vitkd.study.executors import ray_map
    from vitkd.core import load_json
    def step(i, fail):
        if i == fail: raise ZeroDivisionError(f'sub-run {i} divides by zero')
        return dict(y=i*i, pid=os.getpid())
    todo = [(f's{i}', dict(i=i)) for i in range(4)]
    with pytest.raises(ZeroDivisionError, match='sub-run 2 divides by zero') as e: ray_map(step, todo, dict(fail=2), tmp_path, 4)
    assert type(e.value) is ZeroDivisionError and 'sub-run s2' in ' '.join(e.value.__notes__)  # as a local exception, naming the sub-run
    assert sorted(p.stem for p in tmp_path.glob('*.json')) == ['s0', 's1', 's3']
    stored = {k: (tmp_path/f'{k}.json').read_bytes() for k in ('s0', 's1', 's3')}
    ray_map(step, [t for t in todo if not (tmp_path/f'{t[0]}.json').exists()], dict(fail=-1), tmp_path, 4)
    assert load_json(tmp_path/'s2.json')['y'] == 4
    assert {k: (tmp_path/f'{k}.json').read_bytes() for k in stored} == stored
