"""Property test of the runner's resume logic: whatever sequence of kills interrupts an experiment, the next runs
never report a wrong status or a stale result, and no stored sub-run result is lost or computed again."""
import tempfile
from pathlib import Path
from hypothesis import given, settings, strategies as st
from vitkd.core import cached_result, load_json
from vitkd.study.runner import run_experiment, experiment_status, valid_metrics, write_report
from vitkd.study.results import Results
from vitkd.verdicts import beats

N_STEPS = 4  # sub-runs of the fake experiment; a kill can hit before or after each, or after its metrics are saved

class Killed(BaseException):
    "Stands for SIGKILL: none of the runner's handlers run, so the status stays 'running'"

def experiment(calls:list, kill_at:int|None):
    "A fake notebook: N_STEPS cached sub-runs, then metrics with a claim; killed at point `kill_at` (0 .. 2*N_STEPS)"
    def execute(nb, out_nb, params, log, timeout):
        out = Path(params['out_dir']); point = 0
        def maybe_die():
            nonlocal point
            if point == kill_at: raise Killed()
            point += 1
        vals = []
        for i in range(N_STEPS):
            maybe_die()  # before the sub-run
            vals.append(cached_result(out/'runs', f'step{i}', lambda i=i: (calls.append(i), {'v': i*i})[1])['v'])
            maybe_die()  # after it was stored
        r = Results('exp', 'smoke', out)
        r.claim(beats('more steps win', [float(sum(vals))]*3, [0.]*3), 'test')
        r.save(values=vals)
        maybe_die()  # metrics written, status not yet
    return execute

@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 2*N_STEPS), max_size=5))
def test_kills_never_give_a_wrong_status_or_lose_a_result(kills):
    with tempfile.TemporaryDirectory() as t:
        nb, out = Path(t)/'exp.ipynb', Path(t)/'runs'/'smoke'/'exp'
        nb.write_text('{}')
        calls = []
        for k in kills:
            try: run_experiment(nb, out, 'smoke', execute=experiment(calls, k)); raise AssertionError('the kill did not happen')
            except Killed: pass
            assert experiment_status(out)['status'] == 'running'
            assert valid_metrics(out) is None  # a killed attempt never counts, even when its metrics.json exists
            assert 'more steps win' not in write_report(out.parent).read_text()
        st_ = run_experiment(nb, out, 'smoke', execute=experiment(calls, None))
        assert st_['status'] == 'ok', st_
        m = valid_metrics(out)
        assert m['info']['values'] == [i*i for i in range(N_STEPS)]
        assert 'more steps win' in write_report(out.parent).read_text()
        # each sub-run was computed once, except when a kill hit between computing it and storing it (never, here:
        # cached_result stores atomically right after computing), so nothing stored was ever computed again
        assert sorted(calls) == list(range(N_STEPS)), calls
        for i in range(N_STEPS): assert load_json(out/'runs'/f'step{i}.json') == {'v': i*i}
        # finished: a further run skips it and leaves everything as it is
        again = run_experiment(nb, out, 'smoke', execute=experiment(calls, 0))
        assert again.get('skipped') and valid_metrics(out) == m
