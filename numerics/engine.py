"""One batch of runs of one width, trained together on the device (the inner loop of `simulate`).

Every method is the recursion of `ntkode.theory.methods` (step k = 1, 2, ...):
    Y_k = sum_j c_j(k) W_{k-1-j},   W_k = sum_j a_j(k) W_{k-1-j} - eta grad L(Y_k),
with grad_W L = s (a * 1{Y X^T >= 0} * e) X, s = m^{-1/2} (and 1/n for the mean loss).
The recursion is linear, so it holds for Z = W X^T with grad_Z = grad_W X^T = s (a * act * e) G,
G = X X^T: in space "z" one GEMM (m x n x n) per step replaces the two of space "w" (m x n x d).
Weight movement in space "z" tracks D_k with W_k - W_0 = D_k X (the same recursion, gradient
s a * act * e); since sum_j a_j = 1 for every method, D_k G = Z_k - Z_0 and
||w_r(k) - w_r(0)||^2 = sum_i D_k[r, i] (Z_k - Z_0)[r, i].

Cost per step: outside the GEMM every pass over a (B, m, n) array counts (NumPy and CuPy are
memory-bound there). Each linear combination of the history is one batched matmul
(`History.combine`); S = a_Y * 1{Y >= 0} is built once for the GEMM; on the host the output at Y
comes from S in one pass, sum_r a_r relu(Y)_ri = sum_r S_ri Y_ri, and a fixed a is stored
broadcast over n (NumPy's bool-times-broadcast loop is slow).
"""
from __future__ import annotations

import math
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
    a_step: float = 1.0  # the second layer's step factor: m in the standard parametrisation (network.standard_to_ntk)


def ring_weights(coefs: np.ndarray) -> np.ndarray:
    """Per-step matmul weights (steps, B, 1, q) for `History` from coefs (steps, q, B) = x_j(k).

    At step k the newest iterate X_{k-1} sits in slot (k-1) mod q and X_{k-1-j} in slot (k-1-j) mod q,
    so weight[k-1, b, 0, (k-1-j) mod q] = coefs[k-1, j, b].
    """
    steps, q, _ = coefs.shape
    out = np.empty((steps, coefs.shape[2], 1, q))
    for k in range(1, steps + 1):
        slots = [(k - 1 - j) % q for j in range(q)]
        out[k - 1, :, 0, slots] = coefs[k - 1]
    return out


class History:
    """The q latest iterates X_{k-1}, ..., X_{k-q} of B runs, kept in one (B, q, ...) array as a ring.

    Before step k (k = 1, 2, ...) X_{k-1-j} sits in slot (k-1-j) mod q; X_{-j} = X_0 fills every slot at first.
    """

    def __init__(self, xp: ModuleType, first, q: int):
        self.xp, self.q = xp, q
        self.buf = xp.ascontiguousarray(xp.repeat(first[:, None], q, axis=1))
        self.newest = 0  # slot of X_{k-1}

    def latest(self):
        """X_{k-1}, a (B, ...) view."""
        return self.buf[:, self.newest]

    def combine(self, weights, out):
        """out = sum_j x_j X_{k-1-j}, one batched matmul (B, 1, q) @ (B, q, size); weights from `ring_weights`."""
        B = self.buf.shape[0]
        self.xp.matmul(weights, self.buf.reshape(B, self.q, -1), out=out.reshape(B, 1, -1))
        return out

    def advance(self):
        """Free the slot of X_{k-q} (read no more) and return it, now X_k, for the caller to write."""
        self.newest = (self.newest + 1) % self.q
        return self.buf[:, self.newest]

    def take(self, sel) -> None:
        """Keep only the runs `sel`."""
        self.buf = self.buf[sel]


class Batch:
    """State, work buffers and records of B runs of width m (all arrays with a leading run axis)."""

    def __init__(self, prob: Problem, W0, a0, lr, A, C, steps: int, movement: bool, projections: bool, track_d: bool):
        xp = self.xp = prob.xp
        self.prob, self.steps = prob, steps
        self.B, self.m = W0.shape[0], W0.shape[1]
        self.sqrt_m = math.sqrt(self.m)  # a Python float: a NumPy float64 scalar would promote float32 arrays
        self.q = A.shape[1]
        self.Aw, self.Cw = (xp.asarray(ring_weights(T), dtype=prob.dtype) for T in (A, C))
        self.trivial_c = bool(np.all(C[:, 0] == 1) and np.all(C[:, 1:] == 0))
        self.trivial_a = bool(np.all(A[:, 0] == 1) and np.all(A[:, 1:] == 0))  # gradient descent: W_k = W_{k-1} - ...
        self.same_ac = bool(np.array_equal(A, C)) and not self.trivial_c  # Nesterov: W_k = Y_k - eta grad
        self.step_size = xp.asarray(prob.scale * np.asarray(lr)[:, None], dtype=prob.dtype)  # (B, 1): eta s
        self.movement, self.track_d = movement, track_d
        self.active = np.arange(self.B)
        self.active_dev = xp.asarray(self.active)
        Z0 = xp.matmul(W0, prob.X.T)
        self.Z = History(xp, Z0, self.q)
        self.S, self.T = xp.empty_like(Z0), xp.empty_like(Z0)
        self.mask = xp.empty(Z0.shape, dtype=bool)
        self.Y = None if self.trivial_c else xp.empty_like(Z0)
        self.fixed_a = prob.train == "W"
        self.host = xp is np
        if self.fixed_a:
            self.a, self.a_wide = a0, self._widen(a0)
        else:
            self.ah = History(xp, a0, self.q)
        needs_p = prob.space == "w" or track_d
        self.P = xp.empty_like(Z0) if needs_p else None
        if prob.space == "w":
            self.Wh = History(xp, W0, self.q)
            self.TW, self.CW = xp.empty_like(W0), xp.empty_like(W0)
        self.W0 = W0 if (prob.space == "w" and movement) or track_d else None
        if track_d:
            self.Dh = History(xp, xp.zeros_like(Z0), self.q)
            self.Z0 = Z0
        rows = steps + 1
        self.rec_norm = xp.full((rows, self.B), np.nan, dtype=prob.dtype)
        self.rec_proj = xp.full((rows, self.B, Z0.shape[2]), np.nan, dtype=prob.dtype) if projections else None
        self.rec_move = xp.full((rows, self.B), np.nan, dtype=prob.dtype) if movement else None
        self.diverged_step = np.full(self.B, -1)
        self.e = self._error(self.Z.latest(), self._a_latest())
        self._record(0)
        self.norm0 = to_host(self.rec_norm[0])

    # -- pieces of a step ------------------------------------------------------------------
    def _widen(self, a):
        """a broadcast over n, (B, m, n): a stored copy on the host (NumPy's bool-times-broadcast loop is slow),
        a view on the GPU (where broadcasting is free and a copy costs a read)."""
        wide = self.xp.broadcast_to(a[:, :, None], a.shape + (self.prob.G.shape[0],))
        return self.xp.ascontiguousarray(wide) if self.host else wide

    def _a_latest(self):
        """a_{k-1}, (B, m)."""
        return self.a if self.fixed_a else self.ah.latest()

    def _error(self, Z, a):
        """e = s' relu(Z)^T a - y with s' = m^{-1/2} (T used as scratch)."""
        R = self.xp.maximum(Z, 0, out=self.T)
        return self._output(self.xp.matmul(a[:, None, :], R)[:, 0, :])

    def _output(self, total):
        """e = s' total - y for total_i = sum_r a_r relu(Z)_ri, s' = m^{-1/2}."""
        return total / self.sqrt_m - self.prob.y

    def _movement(self):
        """max_r ||w_r(k) - w_r(0)|| per run: sum_d (W_k - W_0)_rd^2, or sum_i D_k[r, i] (Z_k - Z_0)[r, i] in space z."""
        xp = self.xp
        if self.prob.space == "w":
            diff = xp.subtract(self.Wh.latest(), self.W0, out=self.TW)
            sq = xp.einsum("brd,brd->br", diff, diff)
        else:
            diff = xp.subtract(self.Z.latest(), self.Z0, out=self.T)
            sq = xp.einsum("bri,bri->br", diff, self.Dh.latest())
        return xp.sqrt(xp.maximum(xp.max(sq, axis=1), 0))

    def _record(self, k: int):
        xp, idx = self.xp, self.active_dev
        self.rec_norm[k, idx] = xp.sqrt(xp.einsum("bi,bi->b", self.e, self.e))
        if self.rec_proj is not None:
            self.rec_proj[k, idx] = self.e @ self.prob.U
        if self.rec_move is not None:
            self.rec_move[k, idx] = self._movement() if k else 0.0

    def _lookahead(self, k: int):
        """(Y_k, a at Y_k): Z_{k-1} and a_{k-1} for methods with c = (1, 0, ...), else sum_j c_j(k) (Z, a)_{k-1-j}."""
        if self.trivial_c:
            return self.Z.latest(), self._a_latest()
        Y = self.Z.combine(self.Cw[k - 1], self.Y)
        if self.fixed_a:
            return Y, self.a
        return Y, self.ah.combine(self.Cw[k - 1], self.xp.empty_like(self.ah.latest()))

    def _build_s(self, Y, aY) -> None:
        """S = a_Y * 1{Y >= 0}."""
        xp = self.xp
        xp.greater_equal(Y, 0, out=self.mask)
        xp.multiply(self.mask, self.a_wide if self.fixed_a else aY[:, :, None], out=self.S)

    def _error_at_lookahead(self, Y, aY):
        """e at Y_k: e_{k-1} when Y_k = Z_{k-1}; on the host from S in one pass,
        sum_r a_r relu(Y)_ri = sum_r S_ri Y_ri; on the GPU relu(Y) and a matmul (`_error`)."""
        if self.trivial_c:
            return self.e
        if self.host:
            return self._output(self.xp.einsum("bri,bri->bi", self.S, Y))
        return self._error(Y, aY)

    def _train_a(self, k: int, Y, aY, coef) -> None:
        """a_k = sum_j a_j(k) a_{k-1-j} - c eta s relu(Y) e_Y (relu(Y) in T), c = `Problem.a_step`."""
        xp = self.xp
        R = xp.maximum(Y, 0, out=self.T)
        grad_a = xp.matmul(R, coef[:, :, None])[:, :, 0]
        if self.prob.a_step != 1.0:
            grad_a *= self.prob.a_step
        self._advance(self.ah, k, grad_a, xp.empty_like(aY), aY)

    def _advance(self, hist: History, k: int, grad, scratch, lookahead=None):
        """X_k = sum_j a_j(k) X_{k-1-j} - grad, written into the slot `hist` frees; the combination is
        the look-ahead Y_k itself when a = c (Nesterov), X_{k-1} when a = (1, 0, ...) (GD), else built in `scratch`."""
        if lookahead is not None and self.same_ac:
            combo = lookahead
        elif self.trivial_a:
            combo = hist.latest()
        else:
            combo = hist.combine(self.Aw[k - 1], scratch)
        return self.xp.subtract(combo, grad, out=hist.advance())

    def step(self, k: int) -> None:
        """Advance every active run from W_{k-1} to W_k."""
        xp, prob = self.xp, self.prob
        Y, aY = self._lookahead(k)
        self._build_s(Y, aY)
        coef = self.step_size * self._error_at_lookahead(Y, aY)  # (B, n): eta s e_Y
        if not self.fixed_a:
            self._train_a(k, Y, aY, coef)
        if self.P is not None:
            xp.multiply(self.S, coef[:, None, :], out=self.P)
        if prob.space == "w":
            xp.matmul(self.P, prob.X, out=self.TW)
            W_new = self._advance(self.Wh, k, self.TW, self.CW)
            xp.matmul(W_new, prob.X.T, out=self.Z.advance())
        else:
            xp.matmul(self.S, coef[:, :, None] * prob.G, out=self.T)
            self._advance(self.Z, k, self.T, self.S, Y)
        if self.track_d:
            self._advance(self.Dh, k, self.P, self.T)
        self.e = self._error(self.Z.latest(), self._a_latest())
        self._record(k)

    # -- divergence ----------------------------------------------------------------------------
    def check(self, first: int, last: int) -> None:
        """Mark runs whose error blew up in steps first..last and drop them from the batch."""
        norms = to_host(self.rec_norm[first : last + 1])[:, self.active]  # host index on host data
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
        self.Aw, self.Cw, self.step_size = self.Aw[:, sel], self.Cw[:, sel], self.step_size[sel]
        self.S, self.T, self.mask = self.S[sel], self.T[sel], self.mask[sel]
        self.e = self.e[sel]
        self.Z.take(sel)
        if self.fixed_a:
            self.a = self.a[sel]
            self.a_wide = self._widen(self.a)
        else:
            self.ah.take(sel)
        if self.Y is not None:
            self.Y = self.Y[sel]
        if self.P is not None:
            self.P = self.P[sel]
        if self.prob.space == "w":
            self.Wh.take(sel)
            self.TW, self.CW = self.TW[sel], self.CW[sel]
        if self.W0 is not None:
            self.W0 = self.W0[sel]
        if self.track_d:
            self.Dh.take(sel)
            self.Z0 = self.Z0[sel]

    # -- kernels -------------------------------------------------------------------------------
    def kernels(self):
        """H(W_k) of the active runs, (B_active, n, n) on the host."""
        prob = self.prob
        H = empirical_from_preactivations(self.Z.latest(), self._a_latest(), prob.G, prob.train, prob.loss, prob.a_step)
        return to_host(H)

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
            W = self.Wh.latest()
        elif self.track_d:
            W = self.W0 + self.xp.matmul(self.Dh.latest(), self.prob.X)
        else:
            return None
        return self.active.copy(), to_host(W), to_host(self._a_latest())
