"The precision policy's fallbacks: forced fp32 (`VITKD_PRECISION=fp32`) and a CPU without native bf16 train in plain fp32"
import os, subprocess, sys, textwrap
import pytest, torch
import vitkd.train as vt
from vitkd.data import cifar10_dls
from vitkd.models import create_model

def _fit(**kw):
    dls = cifar10_dls(subset=10, bs=16, dataset='cifar10_tiny', device='cpu')
    return vt.fit_classifier(create_model('resnet_cifar', depth=10, width=8), dls, epochs=1, lr=1e-3, **kw)

def test_no_native_bf16_keeps_fp32(monkeypatch, tmp_path):
    "On a CPU without native bf16 the policy never measures and trains in fp32, with no precision callbacks"
    monkeypatch.setattr(vt, 'cpu_bf16', lambda: False)
    monkeypatch.setenv('VITKD_CACHE', str(tmp_path))
    monkeypatch.delenv('VITKD_PRECISION', raising=False)
    pol = vt.choose_precision(create_model('resnet_cifar', depth=10, width=8), (16, 3, 32, 32), 'cpu')
    assert (pol.name, pol.why) == ('fp32', 'this CPU has no native bf16')
    learn = _fit()
    names = {type(c).__name__ for c in learn.cbs}
    assert not names & {'CPUMixedPrecision', 'MixedPrecision', 'ChannelsLast'}, names
    assert not (tmp_path/'precision').exists() or not any((tmp_path/'precision').glob('*.json'))  # nothing was measured

def test_forced_fp32_matches_explicit_fp32(tmp_path):
    "`VITKD_PRECISION=fp32` in the environment trains exactly as `precision='fp32'` (same weights, bit for bit), never measuring"
    code = textwrap.dedent('''
        import torch, vitkd.train as vt
        from vitkd.data import cifar10_dls
        from vitkd.models import create_model
        from vitkd.core import tensor_hash
        dls = cifar10_dls(subset=10, bs=16, dataset='cifar10_tiny', device='cpu')
        vt.set_seed(0); m = create_model('resnet_cifar', depth=10, width=8)
        learn = vt.fit_classifier(m, dls, epochs=1, lr=1e-3, **KW)
        assert not {type(c).__name__ for c in learn.cbs} & {'CPUMixedPrecision', 'ChannelsLast'}
        print(tensor_hash(torch.cat([p.detach().flatten() for p in learn.model.parameters()])))
    ''')
    out = {}
    for name,env,kw in (('env', {'VITKD_PRECISION': 'fp32'}, '{}'), ('arg', {}, "dict(precision='fp32')")):
        e = {**os.environ, 'VITKD_CACHE': str(tmp_path/name), **env}; e.pop('VITKD_PRECISION', None) if not env else None
        r = subprocess.run([sys.executable, '-c', code.replace('**KW', '**' + kw)], env=e, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        out[name] = r.stdout.strip().splitlines()[-1]
        assert not (tmp_path/name/'precision').exists(), 'forced fp32 measured the precision candidates'
    assert out['env'] == out['arg'], out
