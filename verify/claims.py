"""CLAIMS: the theorems `ntkode verify` checks, by name, in the order they run.

Each is a `Claim` (see `claim.py`): a one-line statement, default parameters for the
"quick" (CPU, minutes) and "full" (GPU, wider nets, more seeds) settings, and a
measurement whose docstring gives the theorem, algorithm, guarantee, references,
how it is measured and the tolerance with its reason. Read one with
`print(CLAIMS["hb-linear"].doc)`.
"""
from __future__ import annotations

from .claim import Claim
from .claims_accel import ACCELERATION
from .claims_bias import IMPLICIT_BIAS
from .claims_damping import HB_OPTIMAL_DAMPING
from .claims_declared import QHM_RATE, TRIPLE_MOMENTUM_RATE
from .claims_du import DU_WIDTH
from .claims_linear import GD_LINEAR, HB_LINEAR, MOM2_RATE, NAG_SC_LINEAR
from .claims_nesterov import NAG_DISCRETE_LINEAR, NAG_SUBLINEAR_ODE
from .claims_plstar import PL_STAR
from .claims_seed import SEED_HB_EPOCH, require_mnist
from .claims_width import LAZY_TRAINING, WIDTH_CONVERGENCE

CLAIMS: dict[str, Claim] = {
    claim.name: claim
    for claim in (GD_LINEAR, HB_LINEAR, HB_OPTIMAL_DAMPING, NAG_SUBLINEAR_ODE, NAG_DISCRETE_LINEAR, NAG_SC_LINEAR,
                  MOM2_RATE, WIDTH_CONVERGENCE, LAZY_TRAINING, DU_WIDTH,
                  IMPLICIT_BIAS, PL_STAR,
                  ACCELERATION, QHM_RATE, TRIPLE_MOMENTUM_RATE)
}

#: claims run only when named (`--claims NAME`): they need an extra or take long; `OPT_IN_NEEDS` checks,
#: before anything runs, that what each needs is installed (NtkodeError naming the extra otherwise)
OPT_IN_CLAIMS: dict[str, Claim] = {SEED_HB_EPOCH.name: SEED_HB_EPOCH}
OPT_IN_NEEDS = {SEED_HB_EPOCH.name: require_mnist}

