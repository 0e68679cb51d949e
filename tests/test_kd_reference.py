"""The distillation losses of `vitkd.distill` against a reference, and every registered method against fastai's training
callbacks.

- Reference: each loss equals torchdistill's implementation on the same tensors, where torchdistill (1.1.5) has the
  method (KD, logit standardisation, DIST, AT, RKD, SP); these tests skip when torchdistill is not installed (it is a
  test-only dependency: `pip install torchdistill`; its SP normalises rows by their L1 norm, the paper by L2, and the
  test says so). Where it has none (DKD, NKD, CWD, FitNet hints and the ViT
  projection), the paper's formula is written out here, independently of the library's code.
- Composition: every method of `list_kd_methods()` trains with fastai's `GradientAccumulation` and a CPU bfloat16
  `MixedPrecision`: its term is blended into the loss before gradient accumulation divides it, its teacher runs inside
  autocast, and its loss is float32. Each response method distils the same from the logit cache as from the live teacher.

Tensors are random and models tiny: these test the code, never a claim of the study."""
import tempfile
import pytest, torch, torch.nn as nn, torch.nn.functional as F
from fastai.callback.core import Callback
from fastai.callback.fp16 import MixedPrecision
from fastai.callback.training import GradientAccumulation
from fastai.learner import Learner
from fastai.optimizer import Adam

from vitkd.core import set_seed
from vitkd.data import cifar10_dls, fresh_dls
from vitkd.models import resnet_cifar, vit_cifar
from vitkd.distill import *
from vitkd.distill.core import KD_METHODS
from vitkd.distill.feature import LearnedConnector

torch.set_num_threads(1)

@pytest.fixture(scope='module')
def td():
    "torchdistill's mid-level losses (the tests using it skip when it is not installed)"
    return pytest.importorskip('torchdistill.losses.mid_level')

def logits(seed=0, b=8, c=10, scale=3.):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, generator=g), torch.randn(b, c, generator=g)*scale, torch.randint(0, c, (b,), generator=g)

def io(path, t, key='output'): return {path: {key: t}}

# ----------------------------------------------------------------------------------------------------------------
# against torchdistill

@pytest.mark.parametrize('ref_loss,prep', [('KDLoss', lambda z: z), ('LogitStdKDLoss', lambda z: standardize_logits(z))], ids=['kd', 'kd_ls'])
@pytest.mark.parametrize('T', [1., 2., 4.])
@pytest.mark.parametrize('seed', range(3))
def test_kd_equals_torchdistill(td, ref_loss, prep, T, seed):
    "Soft targets (KDLoss), and KD on z-scored logits (eps 1e-7: LogitStdKDLoss): torchdistill's loss without its task term (alpha=0) and without the T^2"
    s,t,_ = logits(seed)
    ref = getattr(td, ref_loss)('.', 'output', '.', 'output', temperature=T, alpha=0., beta=1.)(io('.', s), io('.', t))
    torch.testing.assert_close(soft_target_loss(prep(s), prep(t), T), T*T*ref, rtol=1e-5, atol=1e-6)

@pytest.mark.parametrize('beta,gamma,T', [(1., 1., 1.), (2., 0.5, 4.), (1., 2., 2.)])
@pytest.mark.parametrize('seed', range(3))
def test_dist_equals_torchdistill(td, beta, gamma, T, seed):
    s,t,_ = logits(seed)
    ref = td.DISTLoss('.', 'output', '.', 'output', beta=beta, gamma=gamma, tau=T)(io('.', s), io('.', t))
    torch.testing.assert_close(dist_loss(s, t, beta, gamma, T), ref, rtol=1e-5, atol=1e-6)

@pytest.mark.parametrize('shape_s,shape_t', [((4, 8, 6, 6), (4, 16, 6, 6)), ((3, 5, 4, 4), (3, 5, 4, 4))])
@pytest.mark.parametrize('seed', range(3))
def test_at_equals_torchdistill(td, shape_s, shape_t, seed):
    "Attention transfer (the authors' code, torchdistill's mode='code'), channels of any number"
    g = torch.Generator().manual_seed(seed)
    s,t = torch.randn(shape_s, generator=g), torch.randn(shape_t, generator=g)
    pairs = {'p': dict(student=dict(io='output', path='s'), teacher=dict(io='output', path='t'), weight=1)}
    ref = td.ATLoss(pairs, mode='code')(io('s', s), io('t', t))
    torch.testing.assert_close(at_loss(s, t), ref, rtol=1e-5, atol=1e-7)

@pytest.mark.parametrize('dist,angle', [(25., 50.), (1., 0.), (0., 2.)])
@pytest.mark.parametrize('seed', range(3))
def test_rkd_equals_torchdistill(td, dist, angle, seed):
    g = torch.Generator().manual_seed(seed)
    s,t = torch.randn(6, 12, generator=g), torch.randn(6, 2, 3, 3, generator=g)*4
    ref = td.RKDLoss('s', 't', dist_factor=dist, angle_factor=angle, reduction='mean')(io('s', s), io('t', t))
    torch.testing.assert_close(rkd_loss(s, t, dist, angle), torch.as_tensor(ref, dtype=torch.float32), rtol=1e-4, atol=1e-6)

@pytest.mark.parametrize('seed', range(3))
def test_sp_equals_torchdistill(td, seed):
    "torchdistill 1.1.5 divides each row of the Gram matrix by its L1 norm (normalize(G, 1)), the paper by its L2 norm: sp_loss(p=1) is torchdistill's"
    g = torch.Generator().manual_seed(seed)
    s,t = torch.randn(7, 3, 4, 4, generator=g), torch.randn(7, 20, generator=g)
    ref = td.SPKDLoss('s', 't', reduction='batchmean')(io('s', s), io('t', t))
    torch.testing.assert_close(sp_loss(s, t, p=1), ref, rtol=1e-5, atol=1e-7)
    assert (sp_loss(s, t) - ref).abs() > 1e-3  # the paper's L2 rows differ

# ----------------------------------------------------------------------------------------------------------------
# against the papers' formulas, where torchdistill has no such method

def dkd_mdistiller_form(s, t, y, alpha, beta, T):
    "DKD as Zhao et al. write it in their code: masks, the binary distributions by concatenation, the target masked by -1000"
    gt = F.one_hot(y, s.shape[1]).float()
    ps,pt = F.softmax(s/T, 1), F.softmax(t/T, 1)
    bs = torch.cat([(ps*gt).sum(1, keepdim=True), (ps*(1-gt)).sum(1, keepdim=True)], 1)
    bt = torch.cat([(pt*gt).sum(1, keepdim=True), (pt*(1-gt)).sum(1, keepdim=True)], 1)
    tckd = F.kl_div(bs.log(), bt, reduction='sum')*T**2/len(y)
    nckd = F.kl_div(F.log_softmax(s/T - 1000.*gt, 1), F.softmax(t/T - 1000.*gt, 1), reduction='sum')*T**2/len(y)
    return alpha*tckd + beta*nckd

@pytest.mark.parametrize('alpha,beta,T', [(1., 8., 4.), (0.5, 2., 1.), (2., 0., 2.)])
@pytest.mark.parametrize('seed', range(3))
def test_dkd_equals_the_papers_form(alpha, beta, T, seed):
    s,t,y = logits(seed)
    torch.testing.assert_close(dkd_loss(s, t, y, alpha, beta, T), dkd_mdistiller_form(s, t, y, alpha, beta, T), rtol=1e-4, atol=1e-6)

@pytest.mark.parametrize('gamma,T', [(1.5, 1.), (1., 4.)])
@pytest.mark.parametrize('seed', range(3))
def test_nkd_equals_the_papers_form(gamma, T, seed):
    "NKD (Yang et al. 2023, eq. 8): -T_t log S_t - gamma T^2 sum_{i != t} N(T_i) log N(S_i), the non-target parts renormalised"
    s,t,y = logits(seed)
    gt = F.one_hot(y, s.shape[1]).bool()
    target = -(F.softmax(t, 1)[gt]*F.log_softmax(s, 1)[gt]).mean()
    def renorm(z): e = torch.exp(z/T)*(~gt); return e/e.sum(1, keepdim=True)
    rest = -(renorm(t)*torch.where(gt, 0., renorm(s).clamp_min(1e-30).log())).sum(1).mean()
    torch.testing.assert_close(nkd_loss(s, t, y, gamma, T), target + gamma*T*T*rest, rtol=1e-5, atol=1e-6)

@pytest.mark.parametrize('tau', [0.5, 1., 4.])
def test_cwd_equals_the_papers_form(tau):
    "CWD (Shu et al. 2021, eq. 3): tau^2/C sum_c KL over the H*W positions, averaged over images"
    g = torch.Generator().manual_seed(0)
    s,t = torch.randn(3, 4, 5, 5, generator=g), torch.randn(3, 4, 5, 5, generator=g)*2
    ps,pt = F.softmax(s.flatten(2)/tau, -1), F.softmax(t.flatten(2)/tau, -1)
    ref = tau**2*(pt*(pt.log() - ps.log())).sum(-1).mean()
    torch.testing.assert_close(cwd_loss(s, t, tau), ref, rtol=1e-5, atol=1e-6)

def test_fitnet_and_vit_projection_equal_their_forms():
    "A ViT's patch tokens, projected by a linear layer, against a CNN map average-pooled onto the token grid: MSE (FitNet) and 1 - cosine"
    g = torch.Generator().manual_seed(0)
    tokens,cnn_map = torch.randn(2, 1 + 16, 6, generator=g), torch.randn(2, 5, 8, 8, generator=g)
    lin = nn.Linear(6, 5)
    conn = LearnedConnector(6, 5, bias=True)
    with torch.no_grad(): conn.conv.weight.copy_(lin.weight[:, :, None, None]); conn.conv.bias.copy_(lin.bias)
    s_map,t_map = as_map(tokens, 1), resize_map(cnn_map, (4, 4))
    s_conn,_ = conn(s_map, t_map)
    p = lin(tokens[:, 1:])  # (B, 16, 5): token k is row k//4, column k%4
    t = torch.stack([cnn_map[:, :, 2*(k//4):2*(k//4)+2, 2*(k%4):2*(k%4)+2].mean((-2, -1)) for k in range(16)], 1)
    torch.testing.assert_close(hint_loss(s_conn, t_map), ((p - t)**2).mean(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(hint_loss(s_conn, t_map, 'cosine'), (1 - F.cosine_similarity(p, t, dim=-1)).mean(), rtol=1e-5, atol=1e-6)

# ----------------------------------------------------------------------------------------------------------------
# every registered method with GradientAccumulation and mixed precision, and the response methods with the logit cache

PAIRS = {'cwd': {'blocks.0': 'layer3'}, 'fitnet': {'blocks.0': 'layer3'}, 'at': {'blocks.0': 'layer3'}, 'vit_proj': {'blocks.0': 'layer3'},
         'rkd': {'head_drop': 'global_pool'}, 'sp': {'blocks.0': 'layer4'}}

@pytest.fixture(scope='module')
def dls(): return cifar10_dls(dataset='cifar10_tiny', bs=32)

def teacher(): set_seed(0); return resnet_cifar(10, 8)
def student(method): set_seed(0); return vit_cifar(embed_dim=48, depth=1, num_heads=3, n_dist=int(method == 'deit'))
def method_cb(method, t): return kd_method(method, t, **({'pairs': PAIRS[method]} if method in PAIRS else {}))

class CPUMixedPrecision(MixedPrecision):
    "fastai's MixedPrecision with a CPU bfloat16 autocast, to test the event order without a GPU"
    def before_fit(self): super().before_fit(); self.autocast = torch.autocast('cpu', dtype=torch.bfloat16)

class LossProbe(Callback):
    "Record `loss_grad` in after_loss at a given order"
    run_valid = False
    def __init__(self, order): self.order,self.seen = order,[]
    def after_loss(self): self.seen.append(self.learn.loss_grad.detach().float().clone())

@pytest.mark.parametrize('method', [r['method'] for r in list_kd_methods()])
def test_every_method_composes_with_accumulation_and_mixed_precision(method, dls):
    t = teacher()
    dtypes = []
    t.fc.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    cb = method_cb(method, t)
    bs,n_acc = dls.train.bs, 2*dls.train.bs
    probes = [LossProbe(4), LossProbe(5.5), LossProbe(7)]
    learn = Learner(dls, student(method), loss_func=nn.CrossEntropyLoss(), opt_func=Adam, path=tempfile.mkdtemp(),
                    cbs=[cb, GradientAccumulation(n_acc), CPUMixedPrecision(amp_mode='bf16'), *probes])
    with learn.no_logging(), learn.no_bar(): learn.fit(1, 1e-3)
    plain,blended,divided = [torch.stack(p.seen) for p in probes]
    assert len(plain) == len(dls.train)
    assert (plain - blended).abs().max() > 1e-6, f"{method} did not change the loss"
    torch.testing.assert_close(divided, blended*bs/n_acc, rtol=1e-5, atol=1e-7)  # accumulation divided the blended loss
    if KD_METHODS[method]['family'] != 'response': dtypes = dtypes[1:]  # the probe pass that sizes the connectors, before training
    assert dtypes and all(d == torch.bfloat16 for d in dtypes), f"{method}'s teacher ran outside autocast: {set(dtypes)}"
    assert cb.kd_loss.dtype == torch.float32 and torch.isfinite(cb.kd_loss)

RESPONSE = [r['method'] for r in list_kd_methods() if r['family'] == 'response' and r['method'] != 'deit']

@pytest.mark.parametrize('method', RESPONSE)
def test_response_methods_distil_the_same_from_the_logit_cache(method, dls, tmp_path):
    "The same student, batches and teacher: the losses from the cached logits follow the live ones to fp16 rounding"
    t = teacher().eval()
    cache = logit_cache(t, dls, epochs=1, folder=tmp_path, verbose=False)
    def losses(source):
        learn = Learner(fresh_dls(dls), student(method), loss_func=nn.CrossEntropyLoss(), opt_func=Adam, path=tempfile.mkdtemp(),
                        cbs=[kd_method(method, source)])
        with learn.no_logging(), learn.no_bar(): learn.fit(1, 1e-3)
        return torch.tensor(learn.recorder.losses)
    live,cached = losses(LiveTeachers(t)), losses(CachedTeachers(cache))
    torch.testing.assert_close(cached, live, rtol=2e-3, atol=2e-3)
