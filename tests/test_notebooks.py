"Run every library notebook (nbs/*.ipynb) through nbdev's test runner, one pytest test per notebook."
import os
from pathlib import Path
import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_nb

NBS = Path(__file__).resolve().parent.parent/'nbs'
NOTEBOOKS = sorted(p for p in NBS.glob('*.ipynb') if not p.name.startswith(('_', '.')))
FLAGS = os.environ.get('VITKD_TEST_FLAGS', '').split()  # e.g. "slow" to run the slow cells too

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook(nb):
    ok,secs = run_nb(nb, skip_flags=get_config(path=NBS.parent).tst_flags.split('|'), force_flags=FLAGS, do_print=False)
    assert ok, f"{nb.name} failed (see the traceback above)"
