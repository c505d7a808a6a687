"""Random numbers: seeding, Generators and their state, and the samplers' shapes, dtypes, ranges and
statistics.

Statistical bounds are five standard errors of the estimate wide (seeded by conftest, so they are also
deterministic): a correct sampler fails one with probability below 1e-6, and a wrong location or scale
by more than a few percent fails it.
"""

import math

import numpy as np
import pytest
import torch

import danlu as dl

N = 200_000


def five_se(std: float, n: int) -> float:
    return 5 * std / math.sqrt(n)


SAMPLERS = {
    "rand": lambda g=None: dl.rand(3, 4, generator=g),
    "randn": lambda g=None: dl.randn(3, 4, generator=g),
    "randint": lambda g=None: dl.randint(0, 100, (10,), generator=g),
    "randperm": lambda g=None: dl.randperm(20, generator=g),
    "normal": lambda g=None: dl.normal(1.0, 2.0, (5,), generator=g),
    "normal-tensor": lambda g=None: dl.normal(dl.zeros(5), dl.ones(5), generator=g),
    "bernoulli": lambda g=None: dl.bernoulli(dl.full((20,), 0.5), generator=g),
    "multinomial": lambda g=None: dl.multinomial(dl.tensor([1.0, 2.0, 3.0, 4.0]), 3, generator=g),
    "multinomial-replacement": lambda g=None: dl.multinomial(dl.tensor([1.0, 2.0]), 10, True, generator=g),
    "uniform_": lambda g=None: dl.zeros(6).uniform_(-1, 1, generator=g),
    "normal_": lambda g=None: dl.zeros(6).normal_(generator=g),
}


# -- seeding and generators ------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SAMPLERS))
def test_manual_seed_reproduces(name):
    f = SAMPLERS[name]
    dl.manual_seed(123)
    a = f()
    b = f()
    dl.manual_seed(123)
    assert f().tolist() == a.tolist()
    assert f().tolist() == b.tolist()


@pytest.mark.parametrize("name", [n for n in SAMPLERS if n != "multinomial-replacement"])
def test_different_seeds_and_draws_differ(name):
    f = SAMPLERS[name]
    dl.manual_seed(1)
    a, b = f().tolist(), f().tolist()
    dl.manual_seed(2)
    c = f().tolist()
    assert a != b and a != c


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_generator_is_independent_of_default(name):
    f = SAMPLERS[name]
    g = dl.Generator().manual_seed(7)
    dl.manual_seed(0)
    expected_default = [f().tolist(), f().tolist()]
    dl.manual_seed(0)
    x = f(g)
    first = f().tolist()
    y = f(g)  # interleaved draws from g do not advance the default generator
    second = f().tolist()
    assert [first, second] == expected_default
    g.manual_seed(7)
    assert f(g).tolist() == x.tolist() and f(g).tolist() == y.tolist()


def test_generators_with_same_seed_agree():
    g1, g2 = dl.Generator().manual_seed(5), dl.Generator().manual_seed(5)
    assert dl.randn(10, generator=g1).tolist() == dl.randn(10, generator=g2).tolist()
    assert dl.Generator().manual_seed(6).initial_seed() == 6


def test_seed_functions():
    g = dl.manual_seed(42)
    assert isinstance(g, dl.Generator)
    assert dl.initial_seed() == 42
    s = dl.seed()
    assert isinstance(s, int) and dl.initial_seed() == s
    g2 = dl.Generator()
    assert g2.initial_seed() == torch.Generator().initial_seed()  # the same default seed as torch
    s2 = g2.seed()
    assert g2.initial_seed() == s2
    assert dl.Generator().manual_seed(-1).initial_seed() == torch.Generator().manual_seed(-1).initial_seed()


def test_generator_state_round_trip():
    g = dl.Generator().manual_seed(3)
    dl.rand(5, generator=g)
    state = g.get_state()
    assert isinstance(state, dl.Tensor) and state.dtype is dl.uint8 and state.ndim == 1
    a = dl.randn(8, generator=g)
    b = dl.randint(0, 10, (8,), generator=g)
    g.set_state(state)
    assert dl.randn(8, generator=g).tolist() == a.tolist()
    assert dl.randint(0, 10, (8,), generator=g).tolist() == b.tolist()
    # A state moves to another generator, with its initial seed.
    h = dl.Generator().manual_seed(99)
    assert h.set_state(state) is h
    assert dl.randn(8, generator=h).tolist() == a.tolist()
    assert h.initial_seed() == 3
    # The state is a copy: drawing later does not change it.
    state2 = g.get_state()
    dl.rand(3, generator=g)
    assert g.get_state().tolist() != state2.tolist()


def test_rng_state_round_trip():
    dl.manual_seed(11)
    state = dl.get_rng_state()
    a = dl.rand(4)
    dl.rand(100)
    dl.set_rng_state(state)
    assert dl.rand(4).tolist() == a.tolist()


def test_set_state_rejects_garbage():
    with pytest.raises(Exception):  # noqa: B017 - any error is fine, silently accepting is not
        dl.Generator().set_state(dl.tensor([1, 2, 3], dtype=dl.uint8))


# -- shapes, dtypes, ranges ------------------------------------------------------------------------

@pytest.mark.parametrize("fn", ["rand", "randn"])
def test_rand_randn_shapes_and_dtypes(fn):
    f = getattr(dl, fn)
    assert f(2, 3).shape == (2, 3)
    assert f((2, 3)).shape == (2, 3)
    assert f([4]).shape == (4,)
    assert f(size=(2, 1)).shape == (2, 1)
    assert f(()).shape == () and f().shape == ()
    assert f(0, 3).shape == (0, 3)
    assert f(2).dtype is dl.float32
    for name in ("float16", "float32", "float64"):
        assert f(3, dtype=getattr(dl, name)).dtype.name == name
    x = f(3, requires_grad=True)
    assert x.requires_grad and x.is_leaf
    with pytest.raises(RuntimeError):  # torch: not implemented for integers
        f(3, dtype=dl.int64)
    with pytest.raises(RuntimeError, match="negative"):
        f(-1)
    with pytest.raises(TypeError):
        f(2, size=(2,))


def test_rand_follows_default_dtype():
    dl.set_default_dtype(dl.float64)
    assert dl.rand(2).dtype is dl.float64 and dl.randn(2).dtype is dl.float64
    assert dl.normal(0.0, 1.0, (2,)).dtype is dl.float64


def test_rand_range_and_statistics():
    x = dl.rand(N, dtype=dl.float64).numpy()
    assert x.min() >= 0 and x.max() < 1
    assert abs(x.mean() - 0.5) < five_se(math.sqrt(1 / 12), N)
    # the variance of U(0,1) samples is 1/12 with standard error sqrt(1/180)/sqrt(n)
    assert abs(x.var() - 1 / 12) < five_se(math.sqrt(1 / 180), N)
    hist = np.histogram(x, bins=10, range=(0, 1))[0] / N
    assert np.all(np.abs(hist - 0.1) < five_se(math.sqrt(0.1 * 0.9), N))


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_randn_statistics(dtype):
    x = dl.randn(N, dtype=getattr(dl, dtype)).numpy().astype(np.float64)
    assert abs(x.mean()) < five_se(1, N)
    assert abs(x.std() - 1) < five_se(math.sqrt(0.5), N)  # sd of a normal sample's std is ~1/sqrt(2n)
    assert abs(np.mean(np.abs(x) < 1) - 0.682689) < five_se(0.466, N)


def test_randint():
    for args, kw, lo, hi, n in [((10, (N,)), {}, 0, 10, N), ((-5, 5, (N,)), {}, -5, 5, N),
                                ((3, 4, (100,)), {}, 3, 4, 100), ((0, 7), {"size": (N,)}, 0, 7, N),
                                ((5,), {"size": (N,)}, 0, 5, N)]:
        x = dl.randint(*args, **kw)
        assert x.dtype is dl.int64 and x.shape == (n,)
        a = x.numpy()
        assert a.min() == lo and a.max() == hi - 1
        if a.size == N:
            counts = np.bincount(a - lo) / N
            p = 1 / (hi - lo)
            assert np.all(np.abs(counts - p) < five_se(math.sqrt(p * (1 - p)), N))
    assert dl.randint(0, 3, (2, 3)).shape == (2, 3)
    assert dl.randint(0, 3, ()).shape == ()
    for name in ("int32", "int16", "int8", "uint8", "float32", "float64"):
        x = dl.randint(0, 100, (50,), dtype=getattr(dl, name))
        assert x.dtype.name == name and 0 <= x.min().item() and x.max().item() < 100
    b = dl.randint(0, 2, (1000,), dtype=dl.bool)
    assert b.dtype is dl.bool and b.any().item() and not b.all().item()


@pytest.mark.parametrize("args", [(5, 5, (3,)), (5, 2, (3,)), (0, 300, (3,), "int8"), (-1, 5, (3,), "uint8"),
                                  (0, 3, (3,), "bool")], ids=str)
def test_randint_errors_like_torch(args):
    kw = {"dtype": getattr(dl, args[3])} if len(args) > 3 else {}
    tkw = {"dtype": getattr(torch, args[3])} if len(args) > 3 else {}
    with pytest.raises(RuntimeError):
        torch.randint(*args[:3], **tkw)
    with pytest.raises(RuntimeError, match="randint"):
        dl.randint(*args[:3], **kw)


def test_randint_requires_size():
    with pytest.raises(TypeError, match="size"):
        dl.randint(5)


def test_randperm():
    for n in (0, 1, 2, 10, 1000):
        p = dl.randperm(n)
        assert p.dtype is dl.int64 and p.shape == (n,)
        assert sorted(p.tolist()) == list(range(n))
    assert dl.randperm(5, dtype=dl.float32).dtype is dl.float32
    assert dl.randperm(5, dtype=dl.int32).dtype is dl.int32
    # every value is equally likely at position 0
    first = np.array([dl.randperm(4)[0].item() for _ in range(4000)])
    counts = np.bincount(first, minlength=4) / 4000
    assert np.all(np.abs(counts - 0.25) < five_se(math.sqrt(0.25 * 0.75), 4000))
    with pytest.raises(RuntimeError):
        dl.randperm(-1)


def test_normal_forms():
    x = dl.normal(3.0, 2.0, (N,)).numpy().astype(np.float64)
    assert x.dtype == np.float64 and abs(x.mean() - 3) < five_se(2, N) and abs(x.std() - 2) < five_se(2 * 0.71, N)
    assert dl.normal(0.0, 1.0, size=(2, 3)).shape == (2, 3)
    assert dl.normal(0.0, 1.0, (2,), dtype=dl.float64).dtype is dl.float64
    assert dl.normal(0.0, 0.0, (3,)).tolist() == [0.0, 0.0, 0.0]
    m = dl.arange(4.0) * 100
    y = dl.normal(m, 0.5)
    assert y.shape == (4,) and np.all(np.abs(y.numpy() - m.numpy()) < 5)
    assert dl.normal(0.0, dl.ones(2, 3)).shape == (2, 3)
    assert dl.normal(dl.zeros(3), dl.ones(2, 3)).shape == (2, 3)
    assert dl.normal(dl.zeros(3, dtype=dl.float64), 1.0).dtype is dl.float64
    with pytest.raises(RuntimeError, match="std"):
        dl.normal(0.0, -1.0, (2,))
    with pytest.raises(TypeError, match="size"):
        dl.normal(0.0, 1.0)


def test_normal_with_tensor_mean_std_is_differentiable():
    mean = dl.tensor([1.0, 2.0], requires_grad=True)
    std = dl.tensor([0.5, 3.0], requires_grad=True)
    y = dl.normal(mean, std)
    y.sum().backward()
    assert mean.grad.tolist() == [1.0, 1.0]
    z = (y.detach() - mean.detach()) / std.detach()  # the standard normal draw behind y
    np.testing.assert_allclose(std.grad.numpy(), z.numpy(), rtol=1e-5)


def test_bernoulli():
    p = dl.tensor([0.0, 1.0, 0.25]).expand(N // 2, 3).contiguous()
    x = dl.bernoulli(p)
    assert x.dtype is dl.float32 and x.shape == p.shape
    a = x.numpy()
    assert set(np.unique(a).tolist()) <= {0.0, 1.0}
    assert a[:, 0].sum() == 0 and a[:, 1].all()
    assert abs(a[:, 2].mean() - 0.25) < five_se(math.sqrt(0.25 * 0.75), N // 2)
    assert dl.bernoulli(dl.zeros(3, dtype=dl.float64)).dtype is dl.float64
    q = dl.bernoulli(dl.zeros(N), 0.7).numpy()
    assert abs(q.mean() - 0.7) < five_se(math.sqrt(0.21), N)
    assert dl.full((4,), 0.5).bernoulli().shape == (4,)
    with pytest.raises(RuntimeError, match="bernoulli"):
        dl.bernoulli(dl.tensor([1.5]))
    with pytest.raises(RuntimeError):
        dl.bernoulli(dl.tensor([1, 0]))


def test_bernoulli_in_place():
    x = dl.zeros(N, dtype=dl.float64)
    assert x.bernoulli_(0.3) is x and x.dtype is dl.float64 and x._version >= 1
    assert abs(x.numpy().mean() - 0.3) < five_se(math.sqrt(0.21), N)


def test_multinomial():
    w = dl.tensor([1.0, 0.0, 3.0, 6.0])
    s = dl.multinomial(w, N, replacement=True)
    assert s.dtype is dl.int64 and s.shape == (N,)
    freq = np.bincount(s.numpy(), minlength=4) / N
    p = np.array([0.1, 0.0, 0.3, 0.6])
    assert freq[1] == 0
    assert np.all(np.abs(freq - p) < five_se(0.5, N))
    # without replacement: distinct indices, never a zero-weight category while others remain
    for _ in range(50):
        r = dl.multinomial(w, 3).tolist()
        assert sorted(r) == [0, 2, 3]
    # the first draw without replacement follows the weights
    first = np.array([dl.multinomial(w, 2)[0].item() for _ in range(3000)])
    f1 = np.bincount(first, minlength=4) / 3000
    assert np.all(np.abs(f1 - p) < five_se(0.5, 3000))
    rows = dl.multinomial(dl.tensor([[1.0, 0.0], [0.0, 1.0]]), 4, True)
    assert rows.shape == (2, 4) and rows.tolist() == [[0] * 4, [1] * 4]
    assert dl.tensor([0.0, 1.0]).multinomial(2, True).tolist() == [1, 1]


@pytest.mark.parametrize("make,n,repl", [
    (lambda m: m.tensor([1.0, 2.0, 3.0]), 4, False),
    (lambda m: m.tensor([-1.0, 2.0]), 1, False),
    (lambda m: m.tensor([0.0, 0.0]), 1, True),
    (lambda m: m.tensor([1, 2]), 1, True),
    (lambda m: m.ones(2, 2, 2), 1, True),
    (lambda m: m.tensor([float("nan"), 1.0]), 1, True),
], ids=["too-many", "negative", "all-zero", "integer", "3-d", "nan"])
def test_multinomial_errors_like_torch(make, n, repl):
    with pytest.raises(RuntimeError):
        torch.multinomial(make(torch), n, repl)
    with pytest.raises(RuntimeError, match="multinomial"):
        dl.multinomial(make(dl), n, repl)


# -- in-place samplers -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_uniform_in_place(dtype):
    x = dl.zeros(N, dtype=getattr(dl, dtype))
    ptr = x.data_ptr()
    assert x.uniform_(-2, 4) is x
    assert x.data_ptr() == ptr and x.dtype.name == dtype and x._version == 1
    a = x.numpy().astype(np.float64)
    assert a.min() >= -2 and a.max() <= 4  # float16 rounding may reach the upper bound
    assert abs(a.mean() - 1) < five_se(6 / math.sqrt(12), N) + (0.01 if dtype == "float16" else 0)
    y = dl.zeros(5).uniform_()
    assert 0 <= y.min().item() and y.max().item() < 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_normal_in_place(dtype):
    x = dl.zeros(N, dtype=getattr(dl, dtype))
    assert x.normal_(5, 0.5) is x and x._version == 1 and x.dtype.name == dtype
    a = x.numpy()
    assert abs(a.mean() - 5) < five_se(0.5, N) and abs(a.std() - 0.5) < five_se(0.5 * 0.71, N)


def test_in_place_samplers_on_views_write_through():
    x = dl.zeros(4, 6)
    x[:, ::2].uniform_(1, 2)
    a = x.numpy()
    assert np.all(a[:, 1::2] == 0) and np.all(a[:, ::2] >= 1)
    x[1].normal_()
    assert np.all(a[0, 1::2] == 0) and np.any(a[1, 1::2] != 0)


def test_in_place_samplers_reproduce_and_use_generator():
    g = dl.Generator().manual_seed(4)
    a = dl.zeros(5).uniform_(generator=g).tolist()
    g.manual_seed(4)
    assert dl.zeros(5).uniform_(generator=g).tolist() == a


def test_in_place_samplers_errors():
    w = dl.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        w.uniform_()
    with pytest.raises(RuntimeError, match="leaf"):
        w.normal_()
    with dl.no_grad():  # as nn.init does
        w.uniform_(-1, 1)
        w.normal_()
    assert w.requires_grad and w.is_leaf
    with pytest.raises(RuntimeError):  # torch: not implemented for integer tensors
        dl.zeros(3, dtype=dl.int64).uniform_()
    with pytest.raises(RuntimeError):
        dl.zeros(3, dtype=dl.int64).normal_()


def test_random_in_place():
    x = dl.zeros(1000, dtype=dl.int64)
    x.random_(0, 4)
    assert sorted(set(x.tolist())) == [0, 1, 2, 3]
    y = dl.zeros(1000)
    y.random_(10)
    assert y.dtype is dl.float32 and set(y.tolist()) <= set(map(float, range(10)))


def test_like_samplers():
    x = dl.zeros(2, 3, dtype=dl.float64)
    assert dl.rand_like(x).shape == (2, 3) and dl.rand_like(x).dtype is dl.float64
    assert dl.randn_like(x, dtype=dl.float32).dtype is dl.float32
    r = dl.randint_like(dl.zeros(100, dtype=dl.int32), 1, 5)
    assert r.dtype is dl.int32 and 1 <= r.min().item() and r.max().item() < 5
    assert dl.randint_like(x, 3).dtype is dl.float64
