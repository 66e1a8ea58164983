"""Issue 9 leftovers: kernels read before round-off, the second data set, the pl-star certificate."""
import math

import pytest

from ntkode.errors import NtkodeError
from ntkode.verify.claims import CLAIMS
from ntkode.verify.claims_common import roundoff_step, sphere_problem
from ntkode.verify.claims_width import lazy_read_step


def test_roundoff_step_by_hand():
    """0.5^10 = 9.8e-4 <= 1e-3 < 0.5^9; 10 * 0.5^10 = 9.8e-3 <= 1e-2 < 9 * 0.5^9 = 1.8e-2."""
    assert roundoff_step(0.5, floor=1e-3) == 10
    assert roundoff_step(0.5, power=1.0, floor=1e-2) == 10
    assert roundoff_step(0.5) == math.ceil(10 * math.log(10) / math.log(2))
    with pytest.raises(NtkodeError):
        roundoff_step(1.0)


def test_lazy_training_reads_drift_where_theory_reaches_1e_10():
    """GD at eta = 1/lam_max: (1 - lam_0/lam_max)^T <= 1e-10, the first such T, well before the last step."""
    params = CLAIMS["lazy-training"].params("quick")
    prob = sphere_problem(params)
    rho = 1 - prob.lam0 / prob.lam_max
    T = lazy_read_step(prob, params)
    assert rho ** T <= 1e-10 < rho ** (T - 1)
    assert T < params["steps"]
