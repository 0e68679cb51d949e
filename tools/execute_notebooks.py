"""Execute library notebooks in place so that their outputs are committed (readers on GitHub see results; Quarto is
not available to render docs). Cells flagged with the project's test flags (`#| slow`, `#| gpu`) are skipped, as in
the tests, and so are `#| eval: false` cells; set VITKD_TEST_FLAGS="slow" to run the flagged ones too. Usage: python tools/execute_notebooks.py [nbs/NAME.ipynb ...]"""
import os, sys, time, warnings
from pathlib import Path
# deprecation notices that third-party imports print (fastai on torch 2.14 and pandas 3): not the reader's concern
warnings.filterwarnings('ignore', category=FutureWarning, module='torch.jit._script')
warnings.filterwarnings('ignore', module='fastai.tabular.core')
os.environ.setdefault('PYTHONWARNINGS', 'ignore::FutureWarning:torch.jit._script')  # for the processes a notebook starts (Ray workers)
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from nbdev.config import get_config
from nbdev.process import extract_directives
from fastcore.xtras import working_directory
from fastcore.basics import AttrDict

root = Path(__file__).resolve().parent.parent
cfg = get_config(path=root)
skip = set(cfg.tst_flags.split('|')) - set(os.environ.get('VITKD_TEST_FLAGS', '').split())

def _skip(cell) -> bool:
    "Whether a code cell is not run: flagged with a skipped test flag, or `#| eval: false`"
    d = extract_directives(AttrDict(source=cell.source), remove=False)  # read from the cell itself: no index to keep aligned
    return bool(skip & d.keys()) or d.get('eval:', [''])[0].lower() == 'false'

def scrub(text):
    "`text` (a string or a list of them) with the checkout's path as `.` and the home folder as `~`"
    if isinstance(text, list): return [scrub(t) for t in text]
    return text.replace(str(root), '.').replace(str(Path.home()), '~')

def execute(path:Path):
    "Run `path`'s cells (skipping flagged ones), store their outputs in the notebook; raise on the first error"
    nb = read_nb(path)
    shell = CaptureShell(path)
    t0 = time.time()
    with working_directory(path.parent):
        for i,cell in enumerate(nb.cells):
            if cell.cell_type != 'code': continue
            if _skip(cell): cell.outputs, cell.execution_count = [], None; continue
            shell.cell(cell)
            if shell.exc: raise RuntimeError(f"{path.name}: cell {i} failed:\n{shell.prettytb(fname=path)}")
    for cell in nb.cells:  # no machine paths in what is committed
        for o in cell.get('outputs', []):
            if 'text' in o: o['text'] = scrub(o['text'])
            for k,v in o.get('data', {}).items():
                if k.startswith('text/'): o['data'][k] = scrub(v)
    write_nb(nb, path)
    print(f"{path.name}: executed in {time.time()-t0:.0f} s")

if __name__ == '__main__':
    os.environ.setdefault('MPLBACKEND', 'Agg')
    paths = [Path(p) for p in sys.argv[1:]] or sorted(p for p in (root/'nbs').glob('*.ipynb') if not p.name.startswith('_'))
    for p in paths: execute(p.resolve())
