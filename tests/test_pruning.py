"""Top-prob and random pruning: the water-filling closed form, budgets, masks, blocks, retraining, MST overlap, CLI."""


import numpy as np
import pytest
import torch

from biornn import pruning as pr
from biornn.core.errors import BiornnError
from biornn.nn.constraints import sign_violations
from biornn.nn.models import make_signs

N = 128


def dale_matrix(seed, n=N, zero_frac=0.2, batch=()):
    """Trained-like Dale matrix: half-normal magnitudes, column signs (80 % E), a fraction of exact zeros."""
    g = torch.Generator().manual_seed(seed)
    mag = torch.randn((*batch, n, n), generator=g, dtype=torch.float64).abs()
    keep = torch.rand((*batch, n, n), generator=g, dtype=torch.float64) >= zero_frac
    return mag * keep * make_signs(n).double()


def iterative_waterfill(a):
    """The reference's loop (docs/paper/fig3-topprob-pruning.md section 2, step 4), verbatim in numpy."""
    P = a.copy()
    for _ in range(100000):
        r = np.maximum(P - 1, 0).sum()
        if r <= 0:
            break
        under = P < 1
        delta = r / under.sum() if under.any() else 0.0
        P[under] += delta
        P[~under] = 1.0
    return P


DENSITIES = [0.0, 0.01, 0.0862, 0.3, 0.5, 0.6, 0.79, 0.9, 1.0]


@pytest.mark.parametrize("p", DENSITIES)
def test_closed_form_equals_iterative_default(p):
    W = dale_matrix(0).numpy()
    P = pr.topprob_probabilities(torch.from_numpy(W), p).numpy()
    E = W != 0
    B = min(E.sum(), p * W.size)
    ref = np.zeros_like(W)
    ref[E] = iterative_waterfill(B / np.abs(W[E]).sum() * np.abs(W[E]))
    np.testing.assert_allclose(P, ref, rtol=0, atol=1e-12)
    assert abs(P.sum() - B) < 1e-9
    assert P.min() >= 0 and P.max() <= 1 and np.all(P[~E] == 0)


@pytest.mark.parametrize("p", DENSITIES)
def test_closed_form_equals_iterative_as_published(p):
    W = dale_matrix(1).numpy()
    P = pr.topprob_probabilities(torch.from_numpy(W), p, eligibility="as_published").numpy()
    A = np.abs(W + 1e-25)  # floor on every entry; z0 = 0 zeros + N
    s = 1 - p
    s_prime = (s * N * N - N) / (N * N - N)
    B_ref = N * N * (1 - s_prime)
    ref = iterative_waterfill(B_ref / A.sum() * A)
    np.testing.assert_allclose(P, ref, rtol=0, atol=1e-12)
    assert abs(P.sum() - min(B_ref, N * N)) < 1e-9


def test_probabilities_shape_of_the_solution():
    """P in [0, 1], non-decreasing in |w|, uncapped entries affine in |w| with slope kappa, Dale zeros at P = 0."""
    W = dale_matrix(2)
    for p in (0.05, 0.4, 0.7):
        P = pr.topprob_probabilities(W, p)
        x = W.abs()
        E = x > 0
        order = torch.argsort(x[E])
        assert torch.all(torch.diff(P[E][order]) >= -1e-15)
        B = min(int(E.sum()), p * N * N)
        kappa = B / x.sum()
        free = E & (P < 1)
        delta = P[free] - kappa * x[free]
        assert float(delta.max() - delta.min()) < 1e-12 and float(delta.min()) >= -1e-15
        if p >= 0.4:
            assert int((P == 1).sum()) > 0  # capping happens and the excess lifts every free entry equally
            assert float(delta.min()) > 0
    # proportional ablation: P = min(1, c |w|), same budget, no additive lift
    P = pr.topprob_probabilities(W, 0.6, redistribution="proportional")
    E = W != 0
    assert abs(float(P.sum()) - 0.6 * N * N) < 1e-9
    free = E & (P < 1)
    ratio = P[free] / W.abs()[free]
    assert float(ratio.max() - ratio.min()) < 1e-12


def test_batched_probabilities_equal_per_matrix():
    W = dale_matrix(3, batch=(3,))
    P = pr.topprob_probabilities(W, 0.45)
    for s in range(3):
        torch.testing.assert_close(P[s], pr.topprob_probabilities(W[s], 0.45), rtol=0, atol=1e-13)


def test_as_published_budget_is_0p79_percent_above_target():
    W = dale_matrix(4)
    for p in (0.01, 0.3, 0.6):
        B = float(pr.keep_budget(W, p, eligibility="as_published"))
        assert B == pytest.approx(1.00787 * p * N * N, rel=1e-5)
        assert float(pr.topprob_probabilities(W, p, eligibility="as_published").sum()) == pytest.approx(B)
        assert float(pr.keep_budget(W, p, method="random", eligibility="as_published")) == pytest.approx(p * N * N)
        # default: the budget is p N^2, or every nonzero when that is fewer
        assert float(pr.keep_budget(W, p)) == pytest.approx(min(p * N * N, float((W != 0).sum())))


@pytest.mark.parametrize("method", pr.PRUNING_METHODS)
def test_achieved_density_within_binomial_error(method):
    """Mean kept count over 50 seeds within 3 binomial SDs of the budget, every draw within 5 exact SDs, at 19
    densities (128 x 128, 20 % Dale zeros)."""
    seeds = list(range(50))
    W = dale_matrix(5, batch=(50,))
    E = (W != 0).sum(dim=(1, 2)).double()
    for p in np.round(np.arange(0.05, 0.951, 0.05), 2):
        P = pr.topprob_probabilities(W, p) if method == "topprob" else pr.random_probabilities(W, p)
        mask, achieved = (pr.topprob_mask if method == "topprob" else pr.random_mask)(W, p, seeds)
        B = torch.minimum(E, torch.tensor(p * N * N))
        torch.testing.assert_close(P.sum(dim=(1, 2)), B, rtol=0, atol=1e-8)
        kept = mask.sum(dim=(1, 2)).double()
        torch.testing.assert_close(achieved, kept / (N * N))
        q = B / (N * N)
        binom_sd_mean = float((N * N * q * (1 - q)).sum().sqrt()) / len(seeds)
        assert abs(float(kept.mean() - B.mean())) <= 3 * binom_sd_mean + 1e-9, (method, p)
        var = (P * (1 - P)).sum(dim=(1, 2))  # exact Poisson-binomial variance of each count (<= binomial)
        assert torch.all((kept - B).abs() <= 5 * var.sqrt() + 1e-9), (method, p)
        assert not bool((mask & (W == 0)).any())  # Dale zeros are never kept by default


@pytest.mark.parametrize("method", pr.PRUNING_METHODS)
@pytest.mark.parametrize("eligibility", pr.ELIGIBILITY)
def test_end_points(method, eligibility):
    W = dale_matrix(6)
    empty, d0 = pr.prune(W, method, 0.0, seed=1, eligibility=eligibility)[1:]
    full, d1 = pr.prune(W, method, 1.0, seed=1, eligibility=eligibility)[1:]
    assert not bool(empty.any()) and float(d0) == 0.0
    if eligibility == "default":
        assert torch.equal(full, W != 0)
    else:  # the floor makes every entry eligible: the whole matrix is kept
        assert bool(full.all()) and float(d1) == 1.0


@pytest.mark.parametrize("method", pr.PRUNING_METHODS)
def test_pruning_only_zeroes_and_keeps_dale_signs(method):
    W = dale_matrix(7, batch=(2,)).float()
    Wp, mask, _ = pr.prune(W, method, 0.3, seed=[0, 1])
    assert Wp.dtype == W.dtype
    assert torch.equal(Wp[mask], W[mask]) and bool((Wp[~mask] == 0).all())
    assert not bool(torch.signbit(Wp[~mask]).any())  # +0, never -0
    assert sign_violations(Wp, make_signs(N)) == 0 and sign_violations(W, make_signs(N)) == 0
    stats = pr.mask_stats(W, mask)
    torch.testing.assert_close(stats["functional_density"], stats["nominal_density"])


def test_seeding_draws_and_common_random_numbers():
    W = dale_matrix(8)
    a = pr.topprob_mask(W, 0.3, seed=3)[0]
    assert torch.equal(a, pr.topprob_mask(W, 0.3, seed=3)[0])
    assert not torch.equal(a, pr.topprob_mask(W, 0.3, seed=4)[0])
    assert not torch.equal(a, pr.topprob_mask(W, 0.3, seed=3, draw=1)[0])
    # one seed per matrix of a stack: slice s equals the single-matrix draw with seed s
    Ws = dale_matrix(9, batch=(2,))
    stack = pr.random_mask(Ws, 0.4, seed=[5, 6])[0]
    assert torch.equal(stack[1], pr.random_mask(Ws[1], 0.4, seed=6)[0])
    # common random numbers: one U per (seed, draw) shared by levels, so random masks are nested
    lo = pr.random_mask(W, 0.2, seed=3, common_random_numbers=True)[0]
    hi = pr.random_mask(W, 0.6, seed=3, common_random_numbers=True)[0]
    assert bool((lo & ~hi).sum() == 0) and int(hi.sum()) > int(lo.sum())
    # without them, levels are independent draws (not nested)
    lo = pr.random_mask(W, 0.2, seed=3)[0]
    hi = pr.random_mask(W, 0.6, seed=3)[0]
    assert int((lo & ~hi).sum()) > 0


def test_exclude_diagonal_and_eligible_mask():
    W = dale_matrix(10, zero_frac=0.0)
    P = pr.topprob_probabilities(W, 0.9, exclude_diagonal=True)
    assert bool((torch.diagonal(P) == 0).all()) and float(P.sum()) == pytest.approx(0.9 * N * N)
    mask = pr.random_mask(W, 1.0, seed=0, exclude_diagonal=True)[0]
    assert int(mask.sum()) == N * N - N
    only_e = torch.zeros(N, N, dtype=torch.bool)
    only_e[:, :102] = True
    P = pr.topprob_probabilities(W, 0.1, eligible=only_e)
    assert bool((P[:, 102:] == 0).all()) and float(P.sum()) == pytest.approx(0.1 * N * N)


def test_as_published_floor_entries_get_the_lift_only():
    """Spec 4: top-prob keeps floor (Dale-zero) entries with probability ~ Delta, i.e. only once capping starts."""
    W = dale_matrix(11)
    zero = W == 0
    P_low = pr.topprob_probabilities(W, 0.01, eligibility="as_published")
    P_high = pr.topprob_probabilities(W, 0.9, eligibility="as_published")
    assert float(P_low[zero].max()) < 1e-20
    assert float(P_high[zero].min()) > 0.3
    assert not bool(pr.topprob_mask(W, 0.01, 0)[0][zero].any())


# ---------------------------------------------------------------------------------------------------------------
# Block-wise pruning
# ---------------------------------------------------------------------------------------------------------------
def _blocks_case(n=240, P=5, seed=0):
    rng = np.random.default_rng(seed)
    pop = rng.choice(P, size=n, p=[0.4, 0.25, 0.2, 0.1, 0.05])
    table = rng.uniform(0.05, 0.95, size=(P, P))
    table[0, 1] = table[3, 3] = 0.0
    table[2, 0] = 1.0
    return pop, table


def test_blockwise_equals_whole_matrix_pruning_of_each_block():
    pop, table = _blocks_case()
    W = dale_matrix(12, n=pop.size)
    P = pr.blockwise_probabilities(W, table, pop)
    for a in range(5):
        for b in range(5):
            rows, cols = np.flatnonzero(pop == a), np.flatnonzero(pop == b)
            sub = W[rows][:, cols]
            want = pr.topprob_probabilities(sub, table[a, b])
            torch.testing.assert_close(P[rows][:, cols], want, rtol=0, atol=1e-12)
    Pr = pr.blockwise_probabilities(W, table, pop, method="random")
    rows, cols = np.flatnonzero(pop == 1), np.flatnonzero(pop == 2)
    torch.testing.assert_close(Pr[rows][:, cols], pr.random_probabilities(W[rows][:, cols], table[1, 2]))


@pytest.mark.parametrize("method", pr.PRUNING_METHODS)
def test_blockwise_hits_each_block_density(method):
    pop, table = _blocks_case(seed=1)
    n = pop.size
    W = dale_matrix(13, n=n, zero_frac=0.0, batch=(20,))
    mask, achieved = pr.blockwise_mask(W, table, pop, method=method, seed=list(range(20)))
    assert achieved.shape == (20, 5, 5)
    sizes = np.bincount(pop, minlength=5)
    block_n = np.outer(sizes, sizes)
    sd = np.sqrt(table * (1 - table) / (block_n * 20))  # binomial SD of the mean density over 20 seeds
    err = np.abs(achieved.mean(0).numpy() - table)
    assert np.all(err <= 3 * sd + 1e-12)
    for a, b in ((0, 1), (3, 3)):
        assert not bool(mask[:, pop == a][:, :, pop == b].any())  # density-0 blocks are exactly empty
    assert bool(mask[:, pop == 2][:, :, pop == 0].all())  # density-1 block kept whole


def test_blockwise_at_celltype_scale():
    """1440 x 1440 with 18 x 18 blocks (the Fig 4 size) hits every block's density; speed is benchmarked elsewhere."""
    rng = np.random.default_rng(0)
    n, P = 1440, 18
    pop = rng.integers(0, P, n)
    table = rng.uniform(0, 1, (P, P))
    W = torch.from_numpy(rng.standard_normal((n, n))).float()
    mask, achieved = pr.blockwise_mask(W, table, pop, seed=1)
    assert np.nanmax(np.abs(achieved.numpy() - table)) < 0.1


# ---------------------------------------------------------------------------------------------------------------
# Masked retraining never revives pruned synapses
# ---------------------------------------------------------------------------------------------------------------
def test_masked_retraining_never_revives_pruned_weights():
    from biornn.nn.train import fig2_config, train

    sizes = dict(seeds=(0, 1), hidden=32, n_train=200, n_test=40, batch_size=20, steps=20)
    dense = train(fig2_config("flipflop", "dales", "quick", epochs=1, **sizes), progress=False)
    W = torch.from_numpy(dense.weights["W_final"])
    mask, _ = pr.topprob_mask(W, 0.3, seed=[0, 1])
    outside = ~mask.numpy()
    signs = torch.from_numpy(dense.weights["signs"])
    steps = []

    def check(model, step):
        Wh = model.w_hh.detach()
        assert np.all(Wh.numpy()[outside] == 0), f"pruned synapse revived at step {step}"
        assert sign_violations(Wh, signs) == 0, f"column sign violated at step {step}"
        steps.append(step)

    res = train(fig2_config("flipflop", "dales", "quick", epochs=5, **sizes), init_weights=dense.weights,
                mask=mask.numpy().astype(np.float32), on_step=check, progress=False)
    assert len(steps) >= 50
    W_after = res.weights["W_final"]
    assert np.any(W_after[~outside] != W.numpy()[~outside])  # kept synapses did train


# ---------------------------------------------------------------------------------------------------------------
# Maximum-spanning-tree overlap
# ---------------------------------------------------------------------------------------------------------------
def _kruskal_max(A):
    R, C = A.shape
    parent = list(range(R + C))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    edges = set()
    for flat in np.argsort(-A.ravel(), kind="stable"):
        i, j = divmod(int(flat), C)
        a, b = find(i), find(R + j)
        if a != b:
            parent[a] = b
            edges.add((i, j))
    return edges


def test_max_spanning_tree_matches_kruskal():
    rng = np.random.default_rng(0)
    for shape in ((6, 6), (10, 10), (5, 8)):
        A = rng.standard_normal(shape)
        rows, cols = pr.max_spanning_tree_edges(A)
        assert len(rows) == sum(shape) - 1
        assert set(zip(rows.tolist(), cols.tolist())) == _kruskal_max(np.abs(A))
    # zero weights are still edges (scipy reads 0 as "no edge"; ranks avoid that)
    A = np.zeros((4, 4))
    A[0, 0] = 1.0
    assert len(pr.max_spanning_tree_edges(A)[0]) == 7


def test_expected_overlap_uniform_n100():
    """Spec 6.4/12: exact expected top-prob overlap ~ min(1, 2(1 - s)) and >= random at every s."""
    W = np.random.default_rng(1).random((100, 100))
    for s in np.linspace(0, 1, 21):
        top = pr.expected_overlap(W, s)
        rand = pr.expected_overlap(W, s, method="random")
        assert rand == pytest.approx(1 - s, abs=1e-12)
        assert top == pytest.approx(min(1.0, 2 * (1 - s)), abs=0.02)
        assert top >= rand - 1e-12


def test_empirical_overlap_above_corrected_bound():
    """Mean empirical overlap over random 10 x 10 matrices and draws is >= the corrected lower bound (docs §6.4)."""
    rng = np.random.default_rng(2)
    mats = [rng.random((10, 10)) for _ in range(40)]
    for s in np.linspace(0, 1, 21):
        emp, bound = [], []
        for k, A in enumerate(mats):
            W = torch.from_numpy(A)
            mask = pr.topprob_mask(W, 1 - s, seed=k)[0]
            emp.append(pr.empirical_overlap(A, mask))
            P = pr.topprob_probabilities(W, 1 - s).numpy().ravel()
            bound.append(pr.overlap_lower_bound(10, s, np.sort(P)[::-1]))
        assert np.mean(emp) >= np.mean(bound) - 1e-12, s
        if 0 < s < 0.4:
            assert np.mean(bound) == pytest.approx(0.391, abs=2e-3)  # the loose plateau at N = 10
    # random pruning's bound uses P = 1 - s for every rank
    assert pr.overlap_lower_bound(10, 0.5) == pytest.approx(0.5 * pr.overlap_lower_bound(10, 0.0))


def test_reference_bound_and_expectation_as_published():
    A = np.random.default_rng(3).random((10, 10))
    # W-independent constant while the 10 heaviest weights are kept with certainty (Fig 3 docs page 6.3, defect 3)
    assert pr.reference_lower_bound(A, 0.1) == pytest.approx(0.20840, abs=5e-6)
    assert pr.reference_lower_bound(A, 1.0) == 0.0
    # defect 2: the shrinking denominator makes the "bound" exceed the random expectation at s = 0.95
    assert pr.reference_lower_bound(A, 0.95) > 0.05
    s = np.linspace(0, 1, 21)
    got = [pr.reference_random_expectation(v) for v in s]
    want = [1, .95, .9, .85, .8, .75, .7, .64, .6, .55, .5, .44, .39, .35, .29, .25, .19, .14, .09, .04, 0]
    np.testing.assert_allclose(got, want)


# ---------------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("density, needle", [(1.3, "1.3 is outside [0, 1]"), (-0.1, "-0.1 is outside [0, 1]"),
                                             (float("nan"), "nan is outside"), ("abc", "not a number")])
def test_bad_density(density, needle):
    with pytest.raises(BiornnError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        pr.topprob_mask(dale_matrix(0, n=8), density)


def test_bad_inputs():
    W = dale_matrix(0, n=8)
    bad = W.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(BiornnError, match="1 NaN"):
        pr.prune(bad, "topprob", 0.5)
    with pytest.raises(BiornnError, match="unknown pruning method 'magnitude'"):
        pr.prune(W, "magnitude", 0.5)
    with pytest.raises(BiornnError, match="unknown redistribution"):
        pr.topprob_probabilities(W, 0.5, redistribution="greedy")
    with pytest.raises(BiornnError, match="shape"):
        pr.topprob_probabilities(torch.ones(5), 0.5)
    with pytest.raises(BiornnError, match="eligible mask has shape"):
        pr.topprob_probabilities(W, 0.5, eligible=np.ones((3, 3), bool))
    with pytest.raises(BiornnError, match="population vector has shape \\(7,\\) but the weights have 8 units"):
        pr.blockwise_mask(W, np.full((2, 2), 0.5), np.zeros(7, int))
    with pytest.raises(BiornnError, match="block density table has shape \\(2, 3\\)"):
        pr.blockwise_mask(W, np.full((2, 3), 0.5), np.zeros(8, int))
    with pytest.raises(BiornnError, match="P >= 3"):
        pr.blockwise_mask(W, np.full((2, 2), 0.5), np.arange(8) % 3)
    with pytest.raises(BiornnError, match=r"block density \[1, 0\] = 1.5"):
        pr.blockwise_mask(W, np.array([[0.5, 0.5], [1.5, 0.5]]), np.arange(8) % 2)
    with pytest.raises(BiornnError, match="seeds"):
        pr.topprob_mask(dale_matrix(0, n=8, batch=(2,)), 0.5, seed=[1, 2, 3])


def _run_cli(monkeypatch, args):
    import biornn.cli as cli

    # isolate from modules still being written
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("biornn.experiments.fig3",))
    return cli.main(args)


def test_cli_prune_contract(tmp_path, monkeypatch):
    W = dale_matrix(14, n=16, batch=(3,)).float().numpy()
    np.savez(tmp_path / "weights.npz", W_final=W, signs=make_signs(16).numpy())
    out = tmp_path / "pruned.npz"
    rc = _run_cli(monkeypatch, ["prune", "--weights", str(tmp_path / "weights.npz"), "--method", "topprob",
                                "--density", "0.3", "--seed", "2", "--out", str(out)])
    assert rc == 0
    with np.load(out) as f:
        mask, Wp, density = f["mask"], f["W"], f["density"]
    assert mask.shape == Wp.shape == (3, 16, 16) and density.shape == (3,)
    np.testing.assert_array_equal(Wp, np.where(mask, W, 0))
    np.testing.assert_allclose(density, mask.mean(axis=(1, 2)))
    want = pr.topprob_mask(torch.from_numpy(W), 0.3, seed=2)[0].numpy()
    np.testing.assert_array_equal(mask, want)


@pytest.mark.parametrize("case, needle", [
    ("no_w_final", "has no W_final array"),
    ("missing", "no weights file"),
    ("density", "--density 1.3 is outside [0, 1]"),
    ("nan", "NaN"),
])
def test_cli_prune_errors_are_one_line(tmp_path, monkeypatch, capsys, case, needle):
    W = dale_matrix(15, n=8, batch=(2,)).float().numpy()
    path = tmp_path / "weights.npz"
    density = "0.3"
    if case == "no_w_final":
        np.savez(path, W_init=W)
    elif case == "nan":
        W[0, 1, 1] = np.nan
        np.savez(path, W_final=W)
    elif case == "density":
        np.savez(path, W_final=W)
        density = "1.3"
    rc = _run_cli(monkeypatch, ["prune", "--weights", str(path), "--method", "random", "--density", density,
                                "--out", str(tmp_path / "o.npz")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and needle in err and "Traceback" not in err
    assert not (tmp_path / "o.npz").exists()
