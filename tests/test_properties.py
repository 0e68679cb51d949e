"""Property-based tests (hypothesis) of the library's numerical parts: `lanczos_resize` against Pillow and its own
dense definition over shapes, dtypes, scale factors and kernel sizes; the distillation losses' invariants; and
`convert_norm` on several timm and torchvision models (built with random weights, nothing downloaded).

Examples per test are sized so that the file runs in well under two minutes on two CPU cores. Images here are
random tensors: they test the code's properties, never a claim of the study."""
import copy, math, string, warnings
from functools import lru_cache
import numpy as np, pytest, torch, torch.nn as nn, torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from vitkd.resize import lanczos_resize, pil_lanczos, resample_weights
from vitkd.distill import soft_target_loss, hard_distill_loss, combine_teachers, KDCallback, DistillTokenCallback
from vitkd.norm import convert_norm, GhostBatchNorm2d, BatchChannelNorm2d, WSConv2d, NORM_KINDS

torch.set_num_threads(1)
FAST = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ----------------------------------------------------------------------------------------------------------------
# lanczos_resize

def image(seed:int, shape, kind:str) -> torch.Tensor:
    "A random uint8 image: black-and-white noise (every pixel an edge), uniform noise, or sparse bright dots"
    g = torch.Generator().manual_seed(seed)
    if kind == 'binary': return (torch.rand(shape, generator=g) > 0.5).to(torch.uint8)*255
    if kind == 'dots': return (torch.rand(shape, generator=g) > 0.9).to(torch.uint8)*255
    return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)

side = st.integers(1, 48)
out_side = st.integers(1, 72)

@settings(max_examples=200, **FAST)
@given(seed=st.integers(0, 2**16), C=st.sampled_from([1, 3]), H=side, W=side, h=out_side, w=out_side,
       kind=st.sampled_from(['binary', 'uniform', 'dots']), native=st.booleans())
def test_uint8_within_two_levels_of_pillow(seed, C, H, W, h, w, kind, native):
    "uint8 results stay within 2 levels of Pillow at every pixel, for every mix of shrinking and enlarging each axis"
    im = image(seed, (C, H, W), kind)
    d = (lanczos_resize(im, (h, w), native=native).int() - pil_lanczos(im, (h, w)).int()).abs().max().item()
    assert d <= 2, f'{d} levels from Pillow for {(C, H, W)} -> {(h, w)} ({kind}, native={native})'

@settings(max_examples=80, **FAST)
@given(seed=st.integers(0, 2**16), H=side, W=side, h=out_side, w=out_side)
def test_float_matches_pillow_F(seed, H, W, h, w):
    "float32 results match Pillow's float ('F') LANCZOS to float32 rounding (0-255 scale)"
    im = image(seed, (1, H, W), 'uniform').float()
    ref = pil_lanczos(im, (h, w))
    assert (lanczos_resize(im, (h, w)) - ref).abs().max().item() < 2e-3

@settings(max_examples=40, **FAST)
@given(seed=st.integers(0, 2**16), H=st.integers(1, 30), W=st.integers(1, 30), h=st.integers(1, 40), w=st.integers(1, 40),
       a=st.integers(1, 5), antialias=st.booleans())
def test_float64_equals_dense_definition(seed, H, W, h, w, a, antialias):
    "The banded, chunked implementation equals the dense separable definition W_h @ x @ W_w^T, for any a"
    x = torch.rand(2, H, W, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    Wh = torch.from_numpy(resample_weights(H, h, a, antialias)); Ww = torch.from_numpy(resample_weights(W, w, a, antialias))
    ref = Wh @ x @ Ww.T
    torch.testing.assert_close(lanczos_resize(x, (h, w), a=a, antialias=antialias), ref, atol=1e-9, rtol=0)

dtypes = st.sampled_from([torch.uint8, torch.float32, torch.float64, torch.float16, torch.bfloat16])

@settings(max_examples=40, **FAST)
@given(lead=st.lists(st.integers(1, 3), max_size=2), H=st.integers(1, 24), W=st.integers(1, 24), size=st.one_of(
       st.integers(1, 40), st.tuples(st.integers(1, 40), st.integers(1, 40))), dtype=dtypes, a=st.integers(1, 5),
       value=st.integers(0, 255))
def test_shapes_dtypes_constants(lead, H, W, size, dtype, a, value):
    "Any leading dims and size give (..., h, w) in the input's dtype; a constant image stays that constant"
    h, w = (size, size) if isinstance(size, int) else size
    x = torch.full((*lead, H, W), value, dtype=dtype)
    y = lanczos_resize(x, size, a=a)
    assert y.shape == (*lead, h, w) and y.dtype == dtype
    tol = 0 if dtype == torch.uint8 else 1e-5*255 if dtype in (torch.float32, torch.float64) else 0.01*255
    assert (y.double() - x.double().flatten()[0]).abs().max().item() <= tol

@settings(max_examples=30, **FAST)
@given(seed=st.integers(0, 2**16), n=st.integers(2, 5), H=side, W=side, h=out_side, w=out_side,
       dtype=st.sampled_from([torch.uint8, torch.float32]))
def test_batch_equals_one_by_one(seed, n, H, W, h, w, dtype):
    "Resizing a batch gives each image's own resize (no leak between images, chunking included)"
    x = image(seed, (n, 3, H, W), 'uniform').to(dtype)
    y = lanczos_resize(x, (h, w), chunk_bytes=4*h*w*3)  # force several chunks
    for i in range(n):
        torch.testing.assert_close(y[i], lanczos_resize(x[i], (h, w)), atol=1e-4, rtol=0)

@settings(max_examples=30, **FAST)
@given(seed=st.integers(0, 2**16), H=side, W=side, a=st.integers(1, 5), dtype=st.sampled_from([torch.uint8, torch.float64]))
def test_same_size_is_identity(seed, H, W, a, dtype):
    "Resizing to the same size changes nothing"
    x = image(seed, (3, H, W), 'uniform').to(dtype)
    assert torch.equal(lanczos_resize(x, (H, W), a=a), x)

@settings(max_examples=30, deadline=None)
@given(size=st.one_of(st.integers(-5, 0), st.tuples(st.integers(-3, 3), st.integers(-3, 0)), st.floats(0.5, 9.5),
                      st.text(max_size=3), st.none()))
def test_bad_sizes_are_refused(size):
    "A size that is not a positive int or a pair of them is refused, naming the argument"
    with pytest.raises((ValueError, TypeError), match='size='): lanczos_resize(torch.zeros(4, 4), size)

# ----------------------------------------------------------------------------------------------------------------
# distillation losses

def logit_pairs(max_bs=6, max_c=12):
    "Pairs of float32 logit arrays (bs, c) of one shape, values in [-30, 30]"
    return st.tuples(st.integers(1, max_bs), st.integers(2, max_c)).flatmap(lambda s: st.tuples(
        *[arrays(np.float32, s, elements=st.floats(-30, 30, width=32)) for _ in range(2)]))

temps = st.floats(0.05, 50.)

def kl_reference(s, t, T):
    "T^2 * mean over the batch of sum_c p_t (log p_t - log p_s), in float64"
    s, t = torch.as_tensor(s, dtype=torch.float64)/T, torch.as_tensor(t, dtype=torch.float64)/T
    pt = F.softmax(t, -1)
    return T*T*(pt*(F.log_softmax(t, -1) - F.log_softmax(s, -1))).sum(-1).mean()

@settings(max_examples=80, deadline=None)
@given(pair=logit_pairs(), T=temps)
def test_soft_target_loss_is_scaled_kl(pair, T):
    "The loss is T^2 KL(teacher || student) at temperature T: non-negative, finite, the float64 formula"
    s, t = map(torch.from_numpy, pair)
    loss = soft_target_loss(s, t, T)
    ref = kl_reference(s, t, T)
    assert torch.isfinite(loss) and loss.item() >= -1e-5*T*T
    assert abs(loss.item() - ref.item()) <= 1e-4*T*T + 1e-4*abs(ref.item())

@settings(max_examples=50, deadline=None)
@given(pair=logit_pairs(), T=temps, shift=st.floats(-100, 100))
def test_soft_target_loss_zero_when_equal_and_shift_invariant(pair, T, shift):
    "Zero when the student equals the teacher; unchanged when a constant is added to a row of logits"
    s, t = map(torch.from_numpy, pair)
    assert abs(soft_target_loss(t, t, T).item()) <= 1e-5*max(1., T*T)
    a, b = soft_target_loss(s, t, T).item(), soft_target_loss(s + shift, t - shift, T).item()
    assert abs(a - b) <= 1e-3*(1 + abs(a))*max(1., T*T/10)

@settings(max_examples=40, deadline=None)
@given(pair=logit_pairs(), T=temps)
def test_soft_target_gradient_rows_sum_to_zero(pair, T):
    "The gradient with respect to each student row sums to zero (a softmax is shift-invariant), and is T (p_s - p_t)/bs"
    s, t = map(torch.from_numpy, pair)
    s = s.double().requires_grad_()
    soft_target_loss(s, t, T).backward()
    want = T*(F.softmax(s.detach()/T, -1) - F.softmax(t.double()/T, -1))/len(s)
    torch.testing.assert_close(s.grad.double(), want, atol=1e-5*max(1, T), rtol=1e-3)
    assert s.grad.sum(-1).abs().max().item() < 1e-5*max(1, T)

@settings(max_examples=40, deadline=None)
@given(pair=logit_pairs())
def test_hard_distill_is_ce_on_teacher_argmax(pair):
    "DeiT's hard loss is the cross-entropy against the teacher's top-1 class: non-negative, and that formula"
    s, t = map(torch.from_numpy, pair)
    loss = hard_distill_loss(s, t)
    assert loss.item() >= 0
    torch.testing.assert_close(loss, F.cross_entropy(s, t.argmax(-1)))

@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 4), shape=st.tuples(st.integers(1, 5), st.integers(2, 8)), T=st.floats(0.2, 10.), seed=st.integers(0, 2**16))
def test_combine_teachers_mixes_tempered_probabilities(n, shape, T, seed):
    "softmax(combined / T) is the mean of the teachers' tempered probabilities; 'logits' is the mean of the logits"
    g = torch.Generator().manual_seed(seed)
    zs = [torch.randn(shape, generator=g)*5 for _ in range(n)]
    mixed = combine_teachers(zs, 'probs', T)
    torch.testing.assert_close(F.softmax(mixed/T, -1), torch.stack([F.softmax(z/T, -1) for z in zs]).mean(0), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(combine_teachers(zs, 'logits', T), torch.stack(zs).mean(0))

bad_temps = st.one_of(st.floats(max_value=0.), st.just(float('nan')), st.just(float('inf')))

@given(T=bad_temps)
def test_bad_temperatures_are_refused(T):
    "A temperature <= 0, NaN or infinite is refused by every loss and callback that takes one, naming T"
    s, t = torch.randn(3, 5), torch.randn(3, 5)
    for f in (lambda: soft_target_loss(s, t, T), lambda: combine_teachers([s, t], 'probs', T),
              lambda: KDCallback(nn.Linear(2, 5), T=T), lambda: DistillTokenCallback(nn.Linear(2, 5), hard=False, T=T)):
        with pytest.raises(ValueError, match='T='): f()

@given(alpha=st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1+1e-9), st.just(float('nan'))))
def test_bad_alphas_are_refused(alpha):
    "A blending weight outside [0, 1] is refused by both callbacks, naming alpha"
    for cb in (KDCallback, DistillTokenCallback):
        with pytest.raises(ValueError, match='alpha='): cb(nn.Linear(2, 5), alpha=alpha)

# ----------------------------------------------------------------------------------------------------------------
# convert_norm on real architectures (random weights: nothing is downloaded)

def _tv(name):
    import torchvision
    return lambda: getattr(torchvision.models, name)(weights=None)

def _timm(name):
    import timm
    return lambda: timm.create_model(name, pretrained=False, num_classes=10)

MODELS = {'torchvision resnet18': _tv('resnet18'), 'torchvision mobilenet_v3_small': _tv('mobilenet_v3_small'),
          'torchvision regnet_x_400mf': _tv('regnet_x_400mf'), 'timm resnet10t': _timm('resnet10t'),
          'timm efficientnet_b0': _timm('efficientnet_b0'), 'timm mobilenetv3_small_050': _timm('mobilenetv3_small_050')}

@lru_cache(None)
def base_model(name):
    torch.manual_seed(0)
    return MODELS[name]().eval()

def plain_bns(m): return [x for x in m.modules() if isinstance(x, nn.BatchNorm2d) and not isinstance(x, GhostBatchNorm2d)]
def n_par(m): return sum(p.numel() for p in m.parameters())
def largest_divisor(c, g): return max(d for d in range(1, min(c, g) + 1) if c % d == 0)

X = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))

@lru_cache(None)
def base_output(name):
    with torch.no_grad(): return base_model(name)(X)

@settings(max_examples=25, **FAST)
@given(name=st.sampled_from(sorted(MODELS)), kind=st.sampled_from(NORM_KINDS), groups=st.sampled_from([1, 2, 4, 8, 16, 32]),
       ws=st.booleans(), virtual_bs=st.sampled_from([None, 2, 4]), train=st.booleans())
def test_convert_norm_on_real_models(name, kind, groups, ws, virtual_bs, train):
    "Every BatchNorm is replaced by the asked norm, parameters are as expected, mode is kept and the model still runs"
    assume(not (kind == 'ghost_bn' and virtual_bs is None))
    base = base_model(name)
    m = copy.deepcopy(base).train(train)
    bns = plain_bns(base); convs = sum(type(c) is nn.Conv2d for c in base.modules())
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        m = convert_norm(m, kind, groups=groups, ws=ws, virtual_bs=virtual_bs)
    if kind == 'bn' and virtual_bs is None: assert len(plain_bns(m)) == len(bns)
    else: assert not plain_bns(m), 'a BatchNorm2d was left in place'
    new = {'gn': nn.GroupNorm, 'ln': nn.GroupNorm, 'in': nn.GroupNorm, 'bcn': BatchChannelNorm2d,
           'ghost_bn': GhostBatchNorm2d, 'bn': GhostBatchNorm2d if virtual_bs else nn.BatchNorm2d}[kind]
    layers = plain_bns(m) if kind == 'bn' and virtual_bs is None else [x for x in m.modules() if type(x) is new]
    assert len(layers) == len(bns)
    if kind in ('gn', 'bcn'): assert sorted(l.num_groups for l in layers) == sorted(largest_divisor(b.num_features, groups) for b in bns)
    if kind == 'ln': assert all(l.num_groups == 1 for l in layers)
    if kind == 'in': assert all(l.num_groups == l.num_channels for l in layers)
    extra = sum(2*largest_divisor(b.num_features, groups) for b in bns) if kind == 'bcn' else 0
    assert n_par(m) == n_par(base) + extra
    if ws: assert not any(type(c) is nn.Conv2d for c in m.modules()) and sum(isinstance(c, WSConv2d) for c in m.modules()) == convs
    assert all(x.training == train for x in m.modules() if x is not m and isinstance(x, (new, WSConv2d)))
    with torch.no_grad(): out = m(X)
    assert out.shape == base_output(name).shape
    # per-image norms (BCN ends with one), and batch norms in training mode, keep activations bounded; in eval mode BN uses running
    # statistics, which under WS no longer match the convolutions (convert_norm warns) and may overflow
    if train or kind in ('gn', 'ln', 'in', 'bcn') or not ws: assert torch.isfinite(out).all()

@settings(max_examples=8, **FAST)
@given(name=st.sampled_from(sorted(MODELS)), virtual_bs=st.sampled_from([1, 2, 4]))
def test_ghost_bn_in_eval_is_the_original_bn(name, virtual_bs):
    "Ghost BN keeps BN's running statistics and affine, so in eval mode the converted model computes the same outputs"
    base = base_model(name)
    m = convert_norm(copy.deepcopy(base), 'ghost_bn', virtual_bs=virtual_bs).eval()
    with torch.no_grad(): torch.testing.assert_close(m(X), base_output(name), atol=1e-5, rtol=1e-5)

names = st.text(string.ascii_lowercase + '_', min_size=1, max_size=12)

@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(NORM_KINDS), key=names)
def test_convert_norm_refuses_unknown_keywords(kind, key):
    "A keyword a kind does not use (a misspelling, say) is refused, naming it, instead of silently keeping the default"
    allowed = {'bcn': ('eps', 'momentum', 'estimate'), 'gn': ('eps',), 'ln': ('eps',), 'in': ('eps',)}.get(kind, ())
    params = ('groups', 'ws', 'virtual_bs', 'strict', 'copy_affine')
    assume(key not in allowed and key not in params)
    with pytest.raises(TypeError, match=f"'{key}'"):
        convert_norm(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)), kind, virtual_bs=2, **{key: 0.1})
