"""Single-line mutation testing for numerics/ and verify/ (not collected by pytest).

Each mutant replaces one exact, unique piece of one line (a flipped constant, inequality or
sign) in a scratch copy of the package, then runs the tests that cover that file. A mutant
is killed when those tests fail (or time out); it survives when they pass. The working tree
is never modified: the copy is laid out as an importable `ntkode` package and put first on
PYTHONPATH, ahead of the editable install.

Usage: python tests/mutation/run_mutants.py [--only SUBSTRING ...] [--timeout SECONDS] [--list]
Prints one line per mutant, then the score and the survivors; exit 1 if any survived.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: package folder -> its place in the scratch copy (mirrors setup.cfg's package_dir)
LAYOUT = {"core": "ntkode", "theory": "ntkode/theory", "numerics": "ntkode/numerics", "verify": "ntkode/verify"}

NUMERICS_TESTS = ("tests/test_mutant_killers.py", "tests/test_numerics_simulate.py", "tests/test_numerics_kernels.py",
                  "tests/test_kernel_precision.py", "tests/test_corpus.py", "tests/test_cli_simulate.py",
                  "tests/test_properties_kernels.py")
VERIFY_TESTS = ("tests/test_verify_runner.py", "tests/test_mutant_killers.py", "tests/test_corpus.py",
                "tests/test_verify_claims.py", "tests/test_verify_cli.py")
FIT_TESTS = ("tests/test_mutant_killers.py", "tests/test_verify_fit.py")


@dataclass(frozen=True)
class Mutant:
    """Replace `old` (must occur exactly once in `path`) by `new`; run `tests`."""

    path: str
    old: str
    new: str
    tests: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.path}: {self.old.strip()!r} -> {self.new.strip()!r}"


def _m(path: str, old: str, new: str, tests: tuple[str, ...] | None = None) -> Mutant:
    default = NUMERICS_TESTS if path.startswith("numerics/") else VERIFY_TESTS
    return Mutant(path, old, new, tests or default)


MUTANTS = [
    # numerics/simulate.py (the ones issue 13 lists first)
    _m("numerics/simulate.py", 'scale = 1.0 / np.sqrt(m) / (n if opts.loss == "mean" else 1)',
       "scale = 1.0 / np.sqrt(m)"),
    _m("numerics/simulate.py", "return np.arange(self.size) % len(self.seeds)",
       "return np.arange(self.size) // len(self.settings)"),
    _m("numerics/simulate.py", 'return "z" if n <= 2 * d else "w"', 'return "z" if n <= 3 * d else "w"'),
    _m("numerics/simulate.py", 'return "z" if n <= 2 * d else "w"', 'return "z" if n < 2 * d else "w"'),
    _m("numerics/simulate.py", "        return np.arange(count)", "        return np.arange(1, count + 1)"),
    _m("numerics/simulate.py", 'track_d=chosen == "z" and (movement or keep_weights),',
       'track_d=chosen == "z" and movement,'),
    _m("numerics/simulate.py", "if np.any(counts > 1):", "if np.any(counts > 2):"),
    _m("numerics/simulate.py", "if count > MAX_SEEDS:", "if count < MAX_SEEDS:"),
    # numerics/data.py
    _m("numerics/data.py", "size=n, replace=False", "size=n, replace=True"),
    _m("numerics/data.py", "return X, 2.0 * position / (len(classes) - 1) - 1.0",
       "return X, 2.0 * position / (len(classes) - 1) + 1.0"),
    _m("numerics/data.py", "int(value) != value or value < 1:", "int(value) != value or value < 0:"),
    _m("numerics/data.py", "huge = np.flatnonzero(np.abs(arr) > NORM_LIMIT)",
       "huge = np.flatnonzero(np.abs(arr) > NORM_LIMIT**2)"),
    _m("numerics/data.py", 'if "Object arrays" in str(err):', 'if "Object arrays" not in str(err):'),
    _m("numerics/data.py", "if n * d > MAX_ENTRIES:", "if n * d < MAX_ENTRIES:"),
    # numerics/kernels.py
    _m("numerics/kernels.py", "i, j = np.nonzero((np.abs(cos) > 0.5) & (outer > 0))",
       "i, j = np.nonzero((np.abs(cos) > 1.5) & (outer > 0))"),
    _m("numerics/kernels.py", "theta[i, j] = 2 * np.arctan2(minus, plus)", "theta[i, j] = np.arctan2(minus, plus)"),
    _m("numerics/kernels.py", "supplement[i, j] = 2 * np.arctan2(plus, minus)",
       "supplement[i, j] = 2 * np.arctan2(minus, plus)"),
    _m("numerics/kernels.py", "H = G * (supplement / (2 * np.pi))", "H = G * (supplement / np.pi)"),
    _m("numerics/kernels.py", "H = H + kappa**2 * outer", "H = H + kappa * outer"),
    _m("numerics/kernels.py", 'return H / X.shape[0] if loss == "mean" else H',
       'return H * X.shape[0] if loss == "mean" else H'),
    _m("numerics/kernels.py", "bad = np.flatnonzero((norms > NORM_LIMIT) |",
       "bad = np.flatnonzero((norms > NORM_LIMIT**2) |"),
    _m("numerics/kernels.py", 'if arr.dtype.kind == "c":', 'if arr.dtype.kind == "z":'),
    _m("numerics/kernels.py", "i, j = np.nonzero(np.triu(1.0 - cos <= rel_tol, k=1) & (outer > 0))",
       "i, j = np.nonzero(np.triu(1.0 - cos >= rel_tol, k=1) & (outer > 0))"),
    _m("numerics/kernels.py", "if lam[0] <= rel_tol * lam[-1]:", "if lam[0] >= rel_tol * lam[-1]:"),
    # numerics/network.py
    _m("numerics/network.py", "a = rng.integers(0, 2, size=width).astype(float) * 2.0 - 1.0",
       "a = rng.integers(0, 2, size=width).astype(float) * 2.0 + 1.0"),
    _m("numerics/network.py", "return np.maximum(W @ X.T, 0.0).T @ a / np.sqrt(W.shape[0])",
       "return np.maximum(W @ X.T, 0.0).T @ a / W.shape[0]"),
    # verify/fit.py
    _m("verify/fit.py", "sigma2 = float(resid @ resid) / (n_obs - n_par)", "sigma2 = float(resid @ resid) / n_obs",
       FIT_TESTS),
    _m("verify/fit.py", "if n_obs <= n_par:", "if n_obs < n_par:", FIT_TESTS),
    # verify/claims_common.py
    _m("verify/claims_common.py", "value = 2.0 * math.sqrt(n / m) + extra", "value = 20.0 * math.sqrt(n / m) + extra",
       ("tests/test_mutant_killers.py", "tests/test_verify_claims.py")),
    _m("verify/claims_common.py", "arr.std(ddof=1)", "arr.std(ddof=0)",
       ("tests/test_mutant_killers.py", "tests/test_verify_claims.py")),
    # verify/claim.py
    _m("verify/claim.py", "return bool(self.checks) and all(c.passed for c in self.checks)",
       "return all(c.passed for c in self.checks)"),
    _m("verify/claim.py", "return self.score <= 1.0", "return self.score < 1.0"),
    _m("verify/claim.py", "return 1.0 + outside / half if outside > 0 else 0.0",
       "return outside / half if outside > 0 else 0.0"),
    _m("verify/claim.py", 'scale = abs(predicted) if self.kind == "rel" else 1.0',
       'scale = abs(predicted) if self.kind != "rel" else 1.0'),
    _m("verify/claim.py", "return max(self.checks, key=lambda c: c.score, default=None)",
       "return min(self.checks, key=lambda c: c.score, default=None)"),
    # verify/report.py
    _m("verify/report.py", '"PASS" if check.passed else "FAIL")', '"FAIL" if check.passed else "PASS")'),
    _m("verify/report.py", 'if meta["status"] == "complete":', 'if meta["status"] != "interrupted":'),
    _m("verify/report.py", 'return dict(meta, complete=meta["status"] == "complete", claims=claims)',
       'return dict(meta, complete=True, claims=claims)'),
    _m("verify/report.py", "if not positive or max(positive) / min(positive) >= 100:",
       "if not positive or max(positive) / min(positive) >= 1:"),
    # verify/runner.py and cli_verify.py
    _m("verify/runner.py", '                save("running")', '                save("complete")'),
    _m("verify/runner.py", "return bool(self.outcomes) and all(o.passed for o in self.outcomes)",
       "return all(o.passed for o in self.outcomes)"),
    _m("verify/runner.py", 'found = {r["name"]: r for r in records if r.get("key") == keys.get(r.get("name"))}',
       'found = {r["name"]: r for r in records}'),
    _m("verify/runner.py", "CLAIM_BLAS_THREADS = 1", "CLAIM_BLAS_THREADS = None"),
    _m("verify/runner.py", "if name in found and (out / f\"{name}.png\").is_file()}", "if name in found}"),
    _m("verify/runner.py", "    out_dir = prepare_out(out, names) if out is not None else None\n",
       "    out_dir = Path(out) if out is not None else None\n"),
    _m("verify/cli_verify.py", "return 0 if report.passed else 1", "return 0"),
]


def scratch_copy(dest: Path) -> None:
    """The package laid out as `ntkode/...` plus tests/ and setup.cfg, under `dest`."""
    for src, target in LAYOUT.items():
        shutil.copytree(ROOT / src, dest / target, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tests", dest / "tests", ignore=shutil.ignore_patterns("__pycache__", "mutation"))
    for name in ("setup.cfg", "pyproject.toml"):
        shutil.copy(ROOT / name, dest / name)


def run_tests(dest: Path, tests: tuple[str, ...], timeout: float) -> str:
    """'pass', 'fail' or 'timeout' for `tests` run in the scratch copy (stop at the first failure)."""
    env = dict(os.environ, PYTHONPATH=str(dest), PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        proc = subprocess.run(cmd, cwd=dest, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout"
    return "pass" if proc.returncode == 0 else "fail"


def target_path(dest: Path, path: str) -> Path:
    folder, _, rest = path.partition("/")
    return dest / LAYOUT[folder] / rest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[],
                        help="run the mutants whose name contains this text (repeatable: any of them)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant (a timeout kills it)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args()
    mutants = [m for m in MUTANTS if not args.only or any(text in m.name for text in args.only)]
    if args.list:
        print("\n".join(m.name for m in mutants))
        return 0
    with tempfile.TemporaryDirectory(prefix="ntkode-mutants-") as tmp:
        dest = Path(tmp)
        scratch_copy(dest)
        baseline = sorted({t for m in mutants for t in m.tests})
        if run_tests(dest, tuple(baseline), args.timeout) != "pass":
            print("baseline: the unmutated tests fail; fix them first", file=sys.stderr)
            return 2
        survivors = []
        for number, mutant in enumerate(mutants, 1):
            path = target_path(dest, mutant.path)
            original = path.read_text()
            if original.count(mutant.old) != 1:
                print(f"[{number:2d}] STALE  {mutant.name} (the text no longer occurs exactly once)")
                survivors.append(mutant)
                continue
            path.write_text(original.replace(mutant.old, mutant.new))
            start = time.perf_counter()
            try:
                verdict = run_tests(dest, mutant.tests, args.timeout)
            finally:
                path.write_text(original)
            killed = verdict != "pass"
            if not killed:
                survivors.append(mutant)
            label = "killed" if killed else "SURVIVED"
            print(f"[{number:2d}] {label:8s} {mutant.name} ({verdict}, {time.perf_counter() - start:.0f} s)",
                  flush=True)
    total = len(mutants)
    print(f"\nmutation score: {total - len(survivors)}/{total} killed ({100 * (total - len(survivors)) / total:.0f}%)")
    for mutant in survivors:
        print(f"  survivor: {mutant.name}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
