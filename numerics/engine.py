"""One batch of runs of one width, trained together on the device (the inner loop of `simulate`).

Every method is the recursion of `ntkode.theory.methods` (step k = 1, 2, ...):
    Y_k = sum_j c_j(k) W_{k-1-j},   W_k = sum_j a_j(k) W_{k-1-j} - eta grad L(Y_k),
with grad_W L = s (a * 1{Y X^T >= 0} * e) X, s = m^{-1/2} (and 1/n for the mean loss).
The recursion is linear, so it holds for Z = W X^T with grad_Z = grad_W X^T = s (a * act * e) G,
G = X X^T: in space "z" one GEMM (m x n x n) per step replaces the two of space "w" (m x n x d).
Weight movement in space "z" tracks D_k with W_k - W_0 = D_k X (the same recursion, gradient
s a * act * e); since sum_j a_j = 1 for every method, D_k G = Z_k - Z_0 and
||w_r(k) - w_r(0)||^2 = sum_i D_k[r, i] (Z_k - Z_0)[r, i].
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np

from .backend import to_host
from .kernels import empirical_from_preactivations

#: a run has diverged once ||e_k|| > DIVERGENCE_FACTOR * ||e_0|| or is not finite
DIVERGENCE_FACTOR = 1e6
#: steps between divergence checks (each one synchronises with the device)
CHECK_EVERY = 8


@dataclass
class Problem:
    """What every batch of one width shares, already on the device."""

    xp: ModuleType
    X: object  # (n, d)
    G: object  # (n, n) = X X^T
    y: object  # (n,)
    U: object  # (n, n) eigenvectors of H-inf, ascending
    scale: float  # m^{-1/2}, divided by n for the mean loss
    space: str  # "z" or "w"
    train: str  # "W" or "both"
    loss: str
    dtype: object


def combine(xp: ModuleType, hist: list, coefs, out, tmp, minus=None):
    """out = sum_j coefs[j] * hist[j] (- minus), coefs[j] of shape (B,); tmp may be `minus` (read first)."""
    shape = (-1,) + (1,) * (hist[0].ndim - 1)
    xp.multiply(hist[0], coefs[0].reshape(shape), out=out)
    if minus is not None:
        xp.subtract(out, minus, out=out)
    for h_j, c_j in zip(hist[1:], coefs[1:]):
        xp.multiply(h_j, c_j.reshape(shape), out=tmp)
        xp.add(out, tmp, out=out)
    return out


class Batch:
    """State, work buffers and records of B runs of width m (all arrays with a leading run axis)."""

    def __init__(self, prob: Problem, W0, a0, lr, A, C, steps: int, movement: bool, projections: bool, track_d: bool):
        xp = self.xp = prob.xp
        self.prob, self.steps = prob, steps
        self.B, self.m = W0.shape[0], W0.shape[1]
        self.q = A.shape[1]
        self.A, self.C = xp.asarray(A, dtype=prob.dtype), xp.asarray(C, dtype=prob.dtype)
        self.lr = xp.asarray(lr, dtype=prob.dtype)
        self.trivial_c = bool(np.all(C[:, 0] == 1) and np.all(C[:, 1:] == 0))
        self.same_ac = bool(np.array_equal(A, C)) and not self.trivial_c  # Nesterov: W_k = Y_k - eta grad
        self.movement, self.track_d = movement, track_d
        self.active = np.arange(self.B)
        self.active_dev = xp.asarray(self.active)
        Z0 = xp.matmul(W0, prob.X.T)
        self.Zh = [Z0.copy() for _ in range(self.q + 1)]  # history (most recent first) + spare
        self.ah = [a0.copy() for _ in range(self.q + 1)]
        self.S, self.T = xp.empty_like(Z0), xp.empty_like(Z0)
        self.mask = xp.empty(Z0.shape, dtype=bool)
        self.Y = None if self.trivial_c else xp.empty_like(Z0)
        needs_p = prob.space == "w" or track_d
        self.P = xp.empty_like(Z0) if needs_p else None
        if prob.space == "w":
            self.Wh = [W0.copy() for _ in range(self.q + 1)]
            self.TW = xp.empty_like(W0)
        self.W0 = W0 if (prob.space == "w" and movement) or track_d else None
        if track_d:
            self.Dh = [xp.zeros_like(Z0) for _ in range(self.q + 1)]
            self.Z0 = Z0
        rows = steps + 1
        self.rec_norm = xp.full((rows, self.B), np.nan, dtype=prob.dtype)
        self.rec_proj = xp.full((rows, self.B, Z0.shape[2]), np.nan, dtype=prob.dtype) if projections else None
        self.rec_move = xp.full((rows, self.B), np.nan, dtype=prob.dtype) if movement else None
        self.diverged_step = np.full(self.B, -1)
        self.e = self._error(self.Zh[0], self.ah[0])
        self._record(0)
        self.norm0 = to_host(self.rec_norm[0])

    # -- pieces of a step ------------------------------------------------------------------
    def _error(self, Z, a):
        """e = s' relu(Z)^T a - y with s' = m^{-1/2} (T used as scratch)."""
        xp = self.xp
        R = xp.maximum(Z, 0, out=self.T)
        u = xp.matmul(a[:, None, :], R)[:, 0, :] / np.sqrt(self.m)
        return u - self.prob.y

    def _movement(self):
        """max_r ||w_r(k) - w_r(0)|| per run."""
        xp = self.xp
        if self.prob.space == "w":
            xp.subtract(self.Wh[0], self.W0, out=self.TW)
            sq = xp.sum(self.TW * self.TW, axis=2)
        else:
            xp.subtract(self.Zh[0], self.Z0, out=self.T)
            xp.multiply(self.T, self.Dh[0], out=self.T)
            sq = xp.sum(self.T, axis=2)
        return xp.sqrt(xp.maximum(xp.max(sq, axis=1), 0))

    def _record(self, k: int):
        idx = self.active_dev
        self.rec_norm[k, idx] = self.xp.linalg.norm(self.e, axis=1)
        if self.rec_proj is not None:
            self.rec_proj[k, idx] = self.e @ self.prob.U
        if self.rec_move is not None:
            self.rec_move[k, idx] = self._movement() if k else 0.0

    def step(self, k: int) -> None:
        """Advance every active run from W_{k-1} to W_k."""
        xp, prob = self.xp, self.prob
        act = self.active_dev
        a_k, c_k = self.A[k - 1][:, act], self.C[k - 1][:, act]
        if self.trivial_c:
            Y, aY, eY = self.Zh[0], self.ah[0], self.e
        else:
            Y = combine(xp, self.Zh[: self.q], c_k, self.Y, self.T)
            aY = combine(xp, self.ah[: self.q], c_k, xp.empty_like(self.ah[0]), xp.empty_like(self.ah[0]))
            eY = self._error(Y, aY)
        coef = (prob.scale * self.lr[act])[:, None] * eY  # (B, n): eta s e_Y
        xp.greater_equal(Y, 0, out=self.mask)
        xp.multiply(self.mask, aY[:, :, None], out=self.S)
        if prob.train == "both":
            xp.multiply(Y, self.mask, out=self.T)
            grad_a = xp.matmul(self.T, coef[:, :, None])[:, :, 0]
            if self.same_ac:
                a_new = xp.subtract(aY, grad_a, out=self.ah[self.q])
            else:
                a_new = combine(xp, self.ah[: self.q], a_k, self.ah[self.q], xp.empty_like(grad_a), grad_a)
            self.ah = [a_new] + self.ah[: self.q]
        if self.P is not None:
            xp.multiply(self.S, coef[:, None, :], out=self.P)
        if prob.space == "w":
            xp.matmul(self.P, prob.X, out=self.TW)
            W_new = combine(xp, self.Wh[: self.q], a_k, self.Wh[self.q], self.TW, self.TW)
            self.Wh = [W_new] + self.Wh[: self.q]
            Z_new = xp.matmul(W_new, prob.X.T, out=self.Zh[self.q])
        else:
            xp.matmul(self.S, coef[:, :, None] * prob.G, out=self.T)
            if self.same_ac:
                Z_new = xp.subtract(Y, self.T, out=self.Zh[self.q])
            else:
                Z_new = combine(xp, self.Zh[: self.q], a_k, self.Zh[self.q], self.T, self.T)
        self.Zh = [Z_new] + self.Zh[: self.q]
        if self.track_d:
            D_new = combine(xp, self.Dh[: self.q], a_k, self.Dh[self.q], self.P, self.P)
            self.Dh = [D_new] + self.Dh[: self.q]
        self.e = self._error(self.Zh[0], self.ah[0])
        self._record(k)

    # -- divergence ----------------------------------------------------------------------------
    def check(self, first: int, last: int) -> None:
        """Mark runs whose error blew up in steps first..last and drop them from the batch."""
        norms = to_host(self.rec_norm[first : last + 1][:, self.active])
        bad = ~np.isfinite(norms) | (norms > DIVERGENCE_FACTOR * self.norm0[self.active])
        hit = bad.any(axis=0)
        if not hit.any():
            return
        self.diverged_step[self.active[hit]] = first + np.argmax(bad[:, hit], axis=0)
        self._compact(~hit)

    def _compact(self, keep: np.ndarray) -> None:
        xp = self.xp
        sel = xp.asarray(np.flatnonzero(keep))
        self.active = self.active[keep]
        self.active_dev = xp.asarray(self.active)
        take = lambda arrs: [arr[sel] for arr in arrs]  # noqa: E731
        self.Zh, self.ah = take(self.Zh), take(self.ah)
        self.S, self.T, self.mask = self.S[sel], self.T[sel], self.mask[sel]
        self.e = self.e[sel]
        if self.Y is not None:
            self.Y = self.Y[sel]
        if self.P is not None:
            self.P = self.P[sel]
        if self.prob.space == "w":
            self.Wh, self.TW = take(self.Wh), self.TW[sel]
        if self.W0 is not None:
            self.W0 = self.W0[sel]
        if self.track_d:
            self.Dh, self.Z0 = take(self.Dh), self.Z0[sel]

    # -- kernels -------------------------------------------------------------------------------
    def kernels(self):
        """H(W_k) of the active runs, (B_active, n, n) on the host."""
        return to_host(empirical_from_preactivations(self.Zh[0], self.ah[0], self.prob.G, self.prob.train, self.prob.loss))

    def run(self, drift_steps, on_step=None) -> dict:
        """Run all steps; return host records, the drift kernels at `drift_steps` and final state."""
        kernels = {}
        if 0 in drift_steps:
            kernels[0] = (self.active.copy(), self.kernels())
        last_checked = 0
        for k in range(1, self.steps + 1):
            self.step(k)
            if k % CHECK_EVERY == 0 or k == self.steps:
                self.check(last_checked + 1, k)
                last_checked = k
            if k in drift_steps and self.active.size:
                kernels[k] = (self.active.copy(), self.kernels())
            if on_step is not None:
                on_step()
            if not self.active.size:
                if on_step is not None:
                    on_step(self.steps - k)
                break
        return self._records(kernels)

    def _records(self, kernels) -> dict:
        norm = to_host(self.rec_norm).T.copy()
        proj = None if self.rec_proj is None else to_host(self.rec_proj).transpose(1, 0, 2).copy()
        move = None if self.rec_move is None else to_host(self.rec_move).T.copy()
        for run in np.flatnonzero(self.diverged_step >= 0):
            after = self.diverged_step[run] + 1
            for arr in (norm, proj, move):
                if arr is not None:
                    arr[run, after:] = np.nan
        return {"error_norm": norm, "projections": proj, "weight_movement": move,
                "diverged_step": self.diverged_step.copy(), "kernels": kernels,
                "final": self._final_weights()}

    def _final_weights(self):
        """(active run indices, W (B_a, m, d), a (B_a, m)) on the host, or None when W is not tracked."""
        if self.prob.space == "w":
            W = self.Wh[0]
        elif self.track_d:
            W = self.W0 + self.xp.matmul(self.Dh[0], self.prob.X)
        else:
            return None
        return self.active.copy(), to_host(W), to_host(self.ah[0])
