"""Hyper-parameters the numerics tests share: one stable setting per declared method (lr apart)."""

SETTINGS = {
    "gd": {},
    "hb": {"momentum": 0.6},
    "nag-sc": {"momentum": 0.5},
    "nag": {"r": 3.0},
    "mom2": {"momentum": 0.5, "momentum2": 0.2},
}
SETTINGS.update({
    "seed-nag": {"r": 3.0},
    "seed-mom2": {"momentum": 0.5, "momentum2": 0.2},
})

#: the multistep built-ins, whose hyper-parameters the strategies here draw (lr, momentum, momentum2, r);
#: every declared method, the seed-* ones included, is property-tested generically in test_declarations.py
MULTISTEP = ("gd", "hb", "mom2", "nag", "nag-sc")
