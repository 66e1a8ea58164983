"""The generic linear-rate claim's run length when the recursion has memory outside the kernel's spectrum
(verify/claims_declared.py: memory_rate, memory_steps, settle_steps, claim_steps), and `ntkode verify --method`
for gd, hb and aggmo on the exact linear-recursion double (pass at H-inf, fail at H-inf x 1.1)."""
import math
from types import SimpleNamespace

import numpy as np
import pytest

from ntkode.declaration import load_method
from ntkode.errors import NtkodeError
from ntkode.symbols import lam
from ntkode.theory import optimal, spectral_radius
from ntkode.verify import claims_common, claims_declared
from ntkode.verify.claims_common import sphere_problem
from ntkode.verify.claims_declared import (
    DECAY, MIN_STEPS, claim_steps, memory_rate, memory_steps, settle_steps, user_claim,
)
from ntkode.verify.cli import main

from doubles import recursion_double

#: the setting of the finding: r_0 = 1 - a^2 = 0.99 > rho = 0.9597 on the sphere
AGGMO_SLOW = {"eta": 0.5, "a": 0.1}
#: cut but fittable: QHM's momentum buffer fades like beta = 0.99 > rho = 0.980
QHM_SLOW = {"alpha": 1.0, "beta": 0.99, "nu": 0.5}


@pytest.fixture
def prob():
    return sphere_problem(claims_common.PROBLEM_QUICK)


@pytest.fixture
def params():
    return {**claims_common.PROBLEM_QUICK, "width": 65536, "seeds": 3, "max_steps": 2000}


@pytest.fixture
def delta(monkeypatch):
    """Fix the lazy diagnostic's seed-worst kernel error bound (the claim's delta) without drawing nets."""
    def install(value):
        monkeypatch.setattr(claims_declared, "diagnostics",
                            lambda prob, width, seeds: [SimpleNamespace(rate_error_bound=value)] * seeds)
    return install


@pytest.mark.parametrize("name, hyper, expected", [
    ("gd", {"eta": 1.0}, 0.0),                          # W alone: only the point mode z = 1
    ("hb", {"eta": 1.0, "beta": 0.3}, 0.3),             # at lam = 0: z^2 - (1 + beta) z + beta = (z - 1)(z - beta)
    ("aggmo", AGGMO_SLOW, 0.99),                        # velocities damped by 1 - a and 1 - a^2 (the paper's 0.9, 0.99)
    ("aggmo", {"eta": 0.5, "a": 0.3}, 0.91),
    ("qhm", QHM_SLOW, 0.99),
])
def test_memory_rate_is_the_largest_root_at_lam_zero_besides_the_point_mode(name, hyper, expected):
    assert memory_rate(load_method(name), hyper) == pytest.approx(expected, abs=1e-9)


def test_memory_rate_matches_the_transition_matrix_at_lam_zero():
    """Independent route: eigenvalues of the numeric T(0) of AggMo's declaration (states W, v2, v3)."""
    m = load_method("aggmo")
    values = {s: AGGMO_SLOW[n] for s, n in zip(m.symbols, m.hyper_names)}
    T = np.array(m.transition.subs(values).subs(lam, 0), dtype=float)
    eig = sorted(np.abs(np.linalg.eigvals(T)))
    assert eig[-1] == pytest.approx(1.0) and memory_rate(m, AGGMO_SLOW) == pytest.approx(eig[-2])


def test_no_cut_while_the_memory_fades_at_least_as_fast_as_rho(prob, params, delta):
    delta(0.03)
    for name, hyper in [("gd", {"eta": 1.0}), ("hb", {"eta": 1.0, "beta": 0.3}),
                        ("aggmo", optimal("aggmo", prob.lam0, prob.lam_max)["hyper"])]:
        m = load_method(name)
        rate = spectral_radius(m, prob.lam, **hyper).rate
        assert memory_steps(m, hyper, prob, params) is None
        assert claim_steps(m, hyper, prob, params) == max(MIN_STEPS, math.ceil(DECAY / -math.log(rate)))


def test_memory_steps_is_where_delta_r0_to_the_k_meets_rho_to_the_k(prob, params, delta):
    """k* = log(1/delta)/log(r_0/rho): there delta r_0^k* = rho^k* (to one step), and it grows with 1/delta."""
    m = load_method("qhm")
    rho = spectral_radius(m, prob.lam, **QHM_SLOW).rate
    delta(0.03)
    k = memory_steps(m, QHM_SLOW, prob, params)
    assert 0.03 * 0.99 ** k <= rho ** k and 0.03 * 0.99 ** (k + 1) > rho ** (k + 1)
    delta(0.003)
    assert memory_steps(m, QHM_SLOW, prob, params) > k


def test_a_cut_run_stops_at_memory_steps(prob, params, delta):
    delta(0.03)
    m = load_method("qhm")
    full = math.ceil(DECAY / -math.log(spectral_radius(m, prob.lam, **QHM_SLOW).rate))
    k = memory_steps(m, QHM_SLOW, prob, params)
    assert MIN_STEPS <= k < full and claim_steps(m, QHM_SLOW, prob, params) == k


def test_settle_steps_is_where_the_next_root_falls_to_the_share(prob):
    """AggMo at AGGMO_SLOW, lambda_0: a complex pair of modulus rho and a real root rho_2, from the cubic
    (z - 1)(z - b2)(z - b3) + (eta lam/3)[(z - b2)(z - b3) + z (z - b3) + z (z - b2)] (aggmo.toml)."""
    b2, b3, c = 0.9, 0.99, AGGMO_SLOW["eta"] * prob.lam0 / 3
    cubic = (np.poly1d([1, -1]) * np.poly1d([1, -b2]) * np.poly1d([1, -b3])
             + c * (np.poly1d([1, -b2]) * np.poly1d([1, -b3]) + np.poly1d([1, 0]) * np.poly1d([1, -b3])
                    + np.poly1d([1, 0]) * np.poly1d([1, -b2])))
    mods = np.sort(np.abs(cubic.roots))
    rho2, rho = mods[0], mods[-1]
    m = load_method("aggmo")
    assert spectral_radius(m, prob.lam, **AGGMO_SLOW).rate == pytest.approx(rho)
    k = settle_steps(m, AGGMO_SLOW, prob, 0.03)
    assert (rho2 / rho) ** k == pytest.approx(0.03)
    assert settle_steps(load_method("gd"), {"eta": 1.0}, prob, 0.03) == 0.0


def test_the_finding_is_refused_whatever_delta(prob, params, delta):
    """log(rho/rho_2) = 0.017 < 2 log(r_0/rho) = 0.062: refused at every delta (every width), one line."""
    m = load_method("aggmo")
    for value in (0.03, 1e-4):
        delta(value)
        with pytest.raises(NtkodeError, match="cannot be isolated") as err:
            claim_steps(m, AGGMO_SLOW, prob, params)
        assert err.value.param == "hyper" and "\n" not in str(err.value)


def test_the_refusal_boundary_is_twice_the_settling_step(prob, params, delta, monkeypatch):
    """Refused exactly when memory_steps < 2 settle_steps (mutants of the inequality fail one side)."""
    delta(0.03)
    m = load_method("qhm")
    k = memory_steps(m, QHM_SLOW, prob, params)
    monkeypatch.setattr(claims_declared, "settle_steps", lambda *a: k / 2)
    assert claim_steps(m, QHM_SLOW, prob, params) == k
    monkeypatch.setattr(claims_declared, "settle_steps", lambda *a: k / 2 + 0.5)
    with pytest.raises(NtkodeError, match="cannot be isolated"):
        claim_steps(m, QHM_SLOW, prob, params)


def test_the_cli_refuses_the_finding_before_anything_runs(tmp_path, capsys, monkeypatch):
    def no_simulation(*a, **k):
        raise AssertionError("simulate must not run")
    monkeypatch.setattr(claims_common, "simulate", no_simulation)
    assert main(["verify", "--method", "aggmo", "--hyper", "eta=0.5,a=0.1", "--device", "cpu",
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot be isolated" in err and "--hyper" in err


@pytest.fixture
def double(monkeypatch):
    def install(scale):
        monkeypatch.setattr(claims_common, "simulate", recursion_double(scale))
    return install


@pytest.mark.parametrize("name, hyper", [
    ("gd", "eta=1"), ("hb", "eta=1,beta=0.3"), ("aggmo", "eta=0.2,a=0.2"),  # the last one's run is cut
])
@pytest.mark.parametrize("scale, code", [(1.0, 0), (1.1, 1)])
def test_user_claim_on_the_exact_recursion(name, hyper, scale, code, double, tmp_path):
    double(scale)
    assert main(["verify", "--method", name, "--hyper", hyper, "--device", "cpu",
                 "--out", str(tmp_path / "r")]) == code


def test_the_cut_aggmo_setting_is_cut(prob, params):
    claim = user_claim("aggmo", {"eta": 0.2, "a": 0.2})
    assert claim is not None
    m = load_method("aggmo")
    hyper = {"eta": 0.2, "a": 0.2}
    assert claim_steps(m, hyper, prob, params) == memory_steps(m, hyper, prob, params)


def test_a_double_root_computed_a_hair_below_rho_still_counts_as_attaining_it(prob):
    """Polyak-tuned QHM (nu = 1): every eigenvalue attains sqrt(beta) = rho in exact arithmetic; numerically
    lambda_0's double root reads rho (1 - 2.8e-8), and the fit must still follow the labels' mode 0."""
    hyper = optimal("qhm", prob.lam0, prob.lam_max)["hyper"]
    theory = spectral_radius("qhm", prob.lam, **hyper)
    assert 1e-9 < 1 - theory.radius[0] / theory.rate < claims_declared.ATTAIN
    assert claims_declared.fitted_mode(theory) == 0


def test_a_cut_shorter_than_min_steps_is_refused_even_when_settled(prob, params, delta, monkeypatch):
    delta(0.9)  # k* = log(1/0.9)/log(0.99/0.980) ~ 10 steps < MIN_STEPS
    monkeypatch.setattr(claims_declared, "settle_steps", lambda *a: 0.0)
    with pytest.raises(NtkodeError, match="cannot be isolated"):
        claim_steps(load_method("qhm"), QHM_SLOW, prob, params)


def test_user_claim_refuses_up_front_only_when_every_setting_refuses(monkeypatch):
    """quick refusing alone leaves the claim to fail at its measurement; quick and full refusing raise now."""
    def refuse_at(widths):
        def steps(method, hyper, prob, params):
            if params["width"] in widths:
                raise NtkodeError("cannot be isolated (test)", param="hyper")
            return 100
        return steps
    quick, full = (user_claim("gd", {"eta": 1.0}).params(s)["width"] for s in ("quick", "full"))
    monkeypatch.setattr(claims_declared, "claim_steps", refuse_at({quick}))
    assert user_claim("gd", {"eta": 1.0}).name == "gd-declared-rate"
    monkeypatch.setattr(claims_declared, "claim_steps", refuse_at({quick, full}))
    with pytest.raises(NtkodeError, match="cannot be isolated"):
        user_claim("gd", {"eta": 1.0})
