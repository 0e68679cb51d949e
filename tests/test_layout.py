"""The shape of the package: no import circle among vitkd's modules, one wall between the library and the study (no library
module imports `vitkd.study` or reads the study's run modes), and every registered model built by name."""
import ast, re
from pathlib import Path
import pytest

PKG = Path(__file__).resolve().parent.parent/'vitkd'
RUN_MODES = ('VITKD_DRY_RUN', 'VITKD_PROGRESS', 'VITKD_EXECUTOR', 'dry_run', 'report_progress')

def module_name(p:Path) -> str:
    parts = p.relative_to(PKG.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)

MODULES = {module_name(p): p for p in PKG.rglob('*.py') if p.name != '_modidx.py'}

def imports(name:str) -> set:
    "The vitkd modules `name` imports (at any depth of its code), resolved to module names"
    p = MODULES[name]; pkg = name if p.name == '__init__.py' else name.rpartition('.')[0]
    out = set()
    for node in ast.walk(ast.parse(p.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level: base = '.'.join(pkg.split('.')[:len(pkg.split('.'))-node.level+1] + ([base] if base else []))
            cands = [base] + [f'{base}.{a.name}' for a in node.names]
        elif isinstance(node, ast.Import): cands = [a.name for a in node.names]
        else: continue
        out |= {c for c in cands if c in MODULES and c != name}
    return out

GRAPH = {n: imports(n) for n in MODULES}

def is_study(n:str) -> bool: return n == 'vitkd.study' or n.startswith('vitkd.study.')

def test_no_import_circle():
    "Modules import each other in one direction only (a package's __init__ re-exporting its own modules aside)"
    def edges(n): return {d for d in GRAPH[n] if not (MODULES[d].name == '__init__.py' and n.startswith(d + '.'))}
    state = {}
    def visit(n, path):
        if state.get(n) == 'done': return
        if state.get(n) == 'open': pytest.fail('import circle: ' + ' -> '.join(path[path.index(n):] + [n]))
        state[n] = 'open'
        for d in sorted(edges(n)): visit(d, path + [n])
        state[n] = 'done'
    for n in sorted(GRAPH): visit(n, [])

@pytest.mark.parametrize('name', sorted(n for n in MODULES if not is_study(n)))
def test_library_does_not_reach_into_the_study(name):
    "A library module never imports the study, and never reads the study's run modes"
    assert not [d for d in GRAPH[name] if is_study(d)], f"{name} imports the study: {sorted(d for d in GRAPH[name] if is_study(d))}"
    code = MODULES[name].read_text()
    code = re.sub(r'"[^"\n]*"|\'[^\'\n]*\'', '', code)  # strings (docstrings, messages) may name them
    used = [w for w in RUN_MODES if re.search(rf'\b{w}\b', code)]
    assert not used, f"{name} reads the study's run modes: {used}"

def test_core_imports_nothing_of_vitkd():
    assert not GRAPH['vitkd.core']

def test_names_lead_to_code():
    "Pruning and feature distillation are found by their names, not under detection"
    import vitkd.prune, vitkd.distill.feature
    assert hasattr(vitkd.prune, 'prune_by_bn') and hasattr(vitkd.prune, 'SparsityCallback')
    assert hasattr(vitkd.distill.feature, 'CWDCallback') and hasattr(vitkd.distill.feature, 'cwd_loss')
    assert not (PKG/'detect'/'prune.py').exists() and not (PKG/'detect'/'distill.py').exists()
