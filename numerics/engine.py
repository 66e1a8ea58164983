"""One batch of runs of one width, trained together: the engine executes a method's declared step.

A declaration (`ntkode.declaration`) compiles to ops, run in order at every step k = 1, 2, ...:
`GradOp` g = grad(y) at a point y, and `AssignOp` (tuple) assignments, every value a linear
combination of the current variables with coefficients in (k, hyper-parameters). Here a variable
holds, per run of the batch:
  space "z": its preactivations Z = W X^T (B, m, n) (combinations carry over, W -> W X^T is linear);
  space "w": its weights W (B, m, d);
  train="both": also its second-layer part a (B, m);
  track_d (space z, for weight movement or final weights): D (B, m, n) with W - W0 = D X for a point
  and W = D X for a direction (combinations keep this, since point coefficients sum to 1 or 0).
The gradient at a point y: grad_W L = s (a_y * 1{Z_y >= 0} * e_y) X, s = m^{-1/2} (/n for the mean loss),
so grad_Z = S @ (s e_y[:, None] * G) with S = a_y * 1{Z_y >= 0} and G = X X^T (one m x n x n GEMM);
grad_a = s relu(Z_y) e_y; grad_D = S * (s e_y). In space "w": grad_W = (S * s e_y) @ X.

Storage: every component lives in one pool (B, P, size) of P slots. A linear combination of k slots is
one batched matmul (B, 1, k) @ (B, k, size) over a strided view of the pool; a combination that is a
single slot with coefficient 1 (a pure copy such as `W_prev = W`, or a look-ahead equal to W) is an
alias, no pass at all, so multistep methods keep their history as a ring without copying. The error
at a slot is cached until the slot is rewritten: the error recorded at W_k is the error at the
next step's gradient when it is taken at W (GD, heavy ball).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from ntkode.declaration import GradOp, Method

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


def fold_sites(method: Method) -> dict[str, tuple[int, int, int]]:
    """Gradients read exactly once in the step: target -> (op, combination, term) of that one use, whose
    coefficient the engine multiplies into the gradient itself (heavy ball's and Nesterov's -eta)."""
    uses: dict[str, list] = {op.target: [] for op in method.ops if isinstance(op, GradOp)}
    for i, op in enumerate(method.ops):
        for c, combo in enumerate((op.point,) if isinstance(op, GradOp) else op.values):
            for t, (name, _) in enumerate(combo):
                if name in uses:
                    uses[name].append((i, c, t))
    return {target: sites[0] for target, sites in uses.items() if len(sites) == 1}


def pool_slots(method: Method, steps: int = 8) -> int:
    """Slots a batch needs: the engine's own allocation (`Batch._combination`) dry-run on the op program for
    a few steps, structurally (a one-term combination with coefficient 1 is an alias, a gradient read only
    by a two-term sum is overwritten by it); numeric coincidences can only alias more and use fewer."""
    folded = fold_sites(method)
    slot = {name: (0 if init else 1) for name, init in zip(method.state_names, method.initial)}
    top = 1

    def free(busy: set[int]) -> int:
        nonlocal top
        used = set(slot.values()) | busy
        top = max(top, len(used))  # lowest-free allocation with len(used) slots live never goes past this index
        return next(i for i in range(len(used) + 1) if i not in used)

    def combine(i: int, c: int, combo, busy: set[int]) -> int:
        if len(combo) == 1 and combo[0][1] == 1:
            return slot[combo[0][0]]
        spent = in_place(folded, i, c, combo)
        return slot[spent] if spent is not None else free(busy)

    for _ in range(steps):
        for i, op in enumerate(method.ops):
            if isinstance(op, GradOp):
                point = combine(i, 0, op.point, set())
                slot[op.target] = free({point})
            else:
                busy: set[int] = set()
                values = []
                for c, combo in enumerate(op.values):
                    values.append(combine(i, c, combo, busy))
                    busy.add(values[-1])
                slot.update(zip(op.targets, values))
        slot = {name: slot[name] for name in method.state_names}
    return top + 1


def combination_plan(folded: dict, i: int, c: int, combo) -> tuple[str, str | None]:
    """How the engine evaluates combination c of op i, decided once from its structure: ("alias", name) for
    one variable with coefficient 1, ("add", gradient) for X + G' written over a folded gradient
    (`in_place`), ("general", None) otherwise (`Batch._combination`)."""
    if len(combo) == 1 and combo[0][1] == 1:
        return "alias", combo[0][0]
    spent = in_place(folded, i, c, combo)
    return ("add", spent) if spent is not None else ("general", None)


def in_place(folded: dict, i: int, c: int, combo) -> str | None:
    """The gradient whose slot the sum `combo` (op i, combination c) may overwrite: a two-term sum whose other
    coefficient is 1, of a gradient read only here (its coefficient folded into it, so the sum is X + G')."""
    if len(combo) != 2:
        return None
    spent = [name for name, _ in combo if folded.get(name, (None,))[:2] == (i, c)]
    other = [coef for name, coef in combo if name not in spent]
    return spent[0] if len(spent) == 1 and other == [1] else None


def window(slots: list[int]) -> tuple[int, int, int]:
    """(first slot, stride, count) of the strided view that holds the ascending `slots`: exactly the two
    slots of a pair (any distance apart), else every slot from the first to the last."""
    lo, hi = slots[0], slots[-1]
    step = hi - lo if len(slots) == 2 else 1
    return lo, step, (hi - lo) // step + 1


def window_weights(slots: list[int], coefs: list[np.ndarray]) -> np.ndarray:
    """Host weights (B, 1, count) over `window(slots)`: coefs[j] at slot j's place, zeros in the gaps."""
    lo, step, count = window(slots)
    out = np.zeros((coefs[0].shape[0], 1, count))
    for s, c in zip(slots, coefs):
        out[:, 0, (s - lo) // step] = c
    return out


class Pool:
    """P slots of one component, (B, P, *shape), and the strided views that combine them."""

    def __init__(self, xp: ModuleType, B: int, P: int, shape: tuple, dtype):
        self.xp = xp
        self.data = xp.zeros((B, P) + tuple(shape), dtype=dtype)
        self.size = int(np.prod(shape))

    def __getitem__(self, slot: int):
        return self.data[:, slot]

    def combine(self, slots: list[int], weights, out: int) -> None:
        """data[:, out] = sum_j weights[:, 0, j] data[:, window[j]], one batched matmul over a strided view
        of the window `window(slots)`; `weights` (B, 1, len(window)) on the device (`window_weights`)."""
        xp, data = self.xp, self.data
        B = data.shape[0]
        lo, step, count = window(slots)
        view = xp.lib.stride_tricks.as_strided(data[:, lo], shape=(B, count, self.size),
                                               strides=(data.strides[0], step * data.strides[1], data.itemsize))
        xp.matmul(weights, view, out=data[:, out].reshape(B, 1, self.size))

    def take(self, sel) -> None:
        """Keep only the runs `sel`."""
        self.data = self.data[sel]


class Batch:
    """State, work buffers and records of B runs of width m (all arrays with a leading run axis)."""

    def __init__(self, prob: Problem, W0, a0, method: Method, hyper: dict, steps: int, movement: bool,
                 projections: bool, track_d: bool):
        xp = self.xp = prob.xp
        self.prob, self.steps, self.method = prob, steps, method
        self.B, self.m = W0.shape[0], W0.shape[1]
        self.sqrt_m = math.sqrt(self.m)  # a Python float: a NumPy float64 scalar would promote float32 arrays
        self.hyper = [np.asarray(hyper[n], dtype=float) for n in method.hyper_names]  # per run, (B,)
        self.movement, self.track_d = movement, track_d
        self.host = xp is np
        self.fixed_a = prob.train == "W"
        self.active = np.arange(self.B)
        self.active_dev = xp.asarray(self.active)
        self.ops = method.numeric_ops
        self.constant = [None if varies else self._coefficients(fn, 1) for _, fn, varies in self.ops]
        self.folds = fold_sites(method)
        self.constant_scales = self.fold(self.constant, varying=False)
        self.plans = [[combination_plan(self.folds, i, c, combo) for c, combo in enumerate(
            (op.point,) if isinstance(op, GradOp) else op.values)] for i, (op, _, _) in enumerate(self.ops)]
        P = pool_slots(method)
        Z0 = xp.matmul(W0, prob.X.T)
        n = Z0.shape[2]
        self.main = Pool(xp, self.B, P, Z0.shape[1:] if prob.space == "z" else W0.shape[1:], prob.dtype)
        self.apool = None if self.fixed_a else Pool(xp, self.B, P, a0.shape[1:], prob.dtype)
        self.dpool = Pool(xp, self.B, P, Z0.shape[1:], prob.dtype) if track_d else None
        self.pools = [p for p in (self.main, self.apool, self.dpool) if p is not None]
        self.main[0][...] = Z0 if prob.space == "z" else W0
        if self.apool is not None:
            self.apool[0][...] = a0
        self.slot = {name: (0 if init else 1) for name, init in zip(method.state_names, method.initial)}
        self.errors: dict[int, object] = {}  # slot -> error e (B, n) at that slot's point
        self.zcache: dict[int, object] = {}  # space w: slot -> Z = W X^T
        self.S, self.T = xp.empty_like(Z0), xp.empty_like(Z0)
        self.mask = xp.empty(Z0.shape, dtype=bool)
        if self.fixed_a:
            self.a, self.a_wide = a0, self._widen(a0)
        self.Z0 = Z0 if track_d else None
        self.W0 = W0 if (prob.space == "w" and movement) or track_d else None
        rows = steps + 1
        self.rec_norm = xp.full((rows, self.B), np.nan, dtype=prob.dtype)
        self.rec_proj = xp.full((rows, self.B, n), np.nan, dtype=prob.dtype) if projections else None
        self.rec_move = xp.full((rows, self.B), np.nan, dtype=prob.dtype) if movement else None
        self.diverged_step = np.full(self.B, -1)
        self._record(0)
        self.norm0 = to_host(self.rec_norm[0])

    # -- coefficients and slots ----------------------------------------------------------------
    def _coefficients(self, fn, k: int) -> list[list[np.ndarray]]:
        """Per combination of an op, its coefficients at step k as (B,) host arrays (they decide aliases
        without a device synchronisation; `_combination` sends the weights over once)."""
        B = self.active.size
        raw = fn(k, *[h[self.active] for h in self.hyper])
        return [[np.broadcast_to(np.asarray(c, dtype=float), (B,)) for c in combo] for combo in raw]

    def fold(self, coefs: list, varying: bool) -> dict[str, np.ndarray]:
        """Move each once-read gradient's coefficient out of `coefs` (set to 1 there) into the returned
        {gradient: (B,) scale} for the GEMM (`_gradient`). varying=False: the constant ops, once at setup;
        varying=True: the ops whose coefficients depend on k, each step, plus the constant ops' scales."""
        scales = {}
        for target, (i, c, t) in self.folds.items():
            if (self.constant[i] is None) == varying:
                coefs[i] = [list(combo) for combo in coefs[i]]
                scales[target], coefs[i][c][t] = coefs[i][c][t], np.ones_like(coefs[i][c][t])
            elif varying:
                scales[target] = self.constant_scales[target]
        return scales

    def _free_slot(self, busy: set[int]) -> int:
        used = set(self.slot.values()) | busy
        return next(i for i in range(self.main.data.shape[1]) if i not in used)

    def _combination(self, combo, coefs, busy: set[int], plan: tuple[str, str | None]) -> int:
        """The slot holding sum_j coef_j * variable_j (`combination_plan`): an existing slot for an alias; one
        elementwise pass written over the spent gradient for X + G'; otherwise an existing slot when the terms
        merge (shared slots) into one with coefficient 1, else a free slot written by one matmul per component."""
        kind, name = plan
        if kind == "alias":
            return self.slot[name]
        if kind == "add":
            out = self.slot[name]
            other = self.slot[next(n for n, _ in combo if n != name)]
            for pool in self.pools:
                self.xp.add(pool[other], pool[out], out=pool[out])
            self._forget(out)
            return out
        merged: dict[int, np.ndarray] = {}
        for (var, _), coef in zip(combo, coefs):
            s = self.slot[var]
            merged[s] = coef if s not in merged else merged[s] + coef
        if len(merged) == 1:
            (s, coef), = merged.items()
            if np.all(coef == 1):
                return s
        slots = sorted(merged)
        out = self._free_slot(busy)
        weights = self.xp.asarray(window_weights(slots, [merged[s] for s in slots]), dtype=self.prob.dtype)
        for pool in self.pools:
            pool.combine(slots, weights, out)
        self._forget(out)
        return out

    def _forget(self, slot: int) -> None:
        self.errors.pop(slot, None)
        self.zcache.pop(slot, None)

    # -- the network at a point ----------------------------------------------------------------
    def _widen(self, a):
        """a broadcast over n, (B, m, n): a stored copy on the host (NumPy's bool-times-broadcast loop is slow),
        a view on the GPU (where broadcasting is free and a copy costs a read)."""
        wide = self.xp.broadcast_to(a[:, :, None], a.shape + (self.prob.G.shape[0],))
        return self.xp.ascontiguousarray(wide) if self.host else wide

    def _a_at(self, slot: int):
        """Second-layer weights at a point, (B, m)."""
        return self.a if self.fixed_a else self.apool[slot]

    def _z_at(self, slot: int):
        """Preactivations Z = W X^T at a point: the slot itself in space z; a cached GEMM in space w."""
        if self.prob.space == "z":
            return self.main[slot]
        if slot not in self.zcache:
            self.zcache[slot] = self.xp.matmul(self.main[slot], self.prob.X.T)
        return self.zcache[slot]

    def _output(self, total):
        """e = s' total - y for total_i = sum_r a_r relu(Z)_ri, s' = m^{-1/2}."""
        return total / self.sqrt_m - self.prob.y

    def _error(self, slot: int):
        """e = m^{-1/2} relu(Z)^T a - y at the point in `slot` (cached; T used as scratch)."""
        if slot not in self.errors:
            R = self.xp.maximum(self._z_at(slot), 0, out=self.T)
            self.errors[slot] = self._output(self.xp.matmul(self._a_at(slot)[:, None, :], R)[:, 0, :])
        return self.errors[slot]

    def _gradient(self, point: int, out: int, scale: np.ndarray | None = None) -> None:
        """Slot `out` = grad L at the point in slot `point`, every component (times `scale` per run when the
        gradient's one use has its coefficient folded in here: a (B, n) product instead of a pass over (B, m, n))."""
        xp, prob = self.xp, self.prob
        Z, a = self._z_at(point), self._a_at(point)
        xp.greater_equal(Z, 0, out=self.mask)
        xp.multiply(self.mask, self.a_wide if self.fixed_a else a[:, :, None], out=self.S)
        if point not in self.errors and self.host:  # sum_r a_r relu(Z)_ri = sum_r S_ri Z_ri, one pass
            self.errors[point] = self._output(xp.einsum("bri,bri->bi", self.S, Z))
        coef = prob.scale * self._error(point)  # (B, n): s e_y
        if scale is not None:
            coef = coef * self.xp.asarray(scale[:, None], dtype=prob.dtype)
        if not self.fixed_a:  # grad_a = s relu(Z_y) e_y, times the second layer's step factor (`Problem.a_step`)
            R = xp.maximum(Z, 0, out=self.T)
            self.apool[out][...] = xp.matmul(R, (prob.a_step * coef)[:, :, None])[:, :, 0]
        if prob.space == "z":
            xp.matmul(self.S, coef[:, :, None] * prob.G, out=self.main[out])
            if self.dpool is not None:
                xp.multiply(self.S, coef[:, None, :], out=self.dpool[out])
        else:
            P = xp.multiply(self.S, coef[:, None, :], out=self.T)
            xp.matmul(P, prob.X, out=self.main[out])
        self._forget(out)

    # -- a step --------------------------------------------------------------------------------
    def step(self, k: int) -> None:
        """Advance every active run from step k-1 to step k by the method's ops."""
        coefs = [constant if constant is not None else self._coefficients(fn, k)
                 for (_, fn, _), constant in zip(self.ops, self.constant)]
        scales = self.fold(coefs, varying=True)
        for i, ((op, _, _), op_coefs) in enumerate(zip(self.ops, coefs)):
            plans = self.plans[i]
            if isinstance(op, GradOp):
                point = self._combination(op.point, op_coefs[0], set(), plans[0])
                out = self._free_slot({point})
                self._gradient(point, out, scales.get(op.target))
                self.slot[op.target] = out
            else:
                busy: set[int] = set()
                values = []
                for combo, cs, plan in zip(op.values, op_coefs, plans):
                    values.append(self._combination(combo, cs, busy, plan))
                    busy.add(values[-1])
                self.slot.update(zip(op.targets, values))
        self.slot = {name: self.slot[name] for name in self.method.state_names}
        self._record(k)

    def _record(self, k: int) -> None:
        xp, idx = self.xp, self.active_dev
        e = self._error(self.slot["W"])
        self.rec_norm[k, idx] = xp.sqrt(xp.einsum("bi,bi->b", e, e))
        if self.rec_proj is not None:
            self.rec_proj[k, idx] = e @ self.prob.U
        if self.rec_move is not None:
            self.rec_move[k, idx] = self._movement() if k else 0.0

    def _movement(self):
        """max_r ||w_r(k) - w_r(0)|| per run: sum_d (W_k - W_0)_rd^2, or sum_i D_k[r, i] (Z_k - Z_0)[r, i] in space z."""
        xp, w = self.xp, self.slot["W"]
        if self.prob.space == "w":
            diff = self.main[w] - self.W0
            sq = xp.einsum("brd,brd->br", diff, diff)
        else:
            diff = xp.subtract(self.main[w], self.Z0, out=self.T)
            sq = xp.einsum("bri,bri->br", diff, self.dpool[w])
        return xp.sqrt(xp.maximum(xp.max(sq, axis=1), 0))

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
        for pool in self.pools:
            pool.take(sel)
        self.constant = [None if c is None else [[x[keep] for x in combo] for combo in c] for c in self.constant]
        self.constant_scales = {target: scale[keep] for target, scale in self.constant_scales.items()}
        self.errors = {s: e[sel] for s, e in self.errors.items()}
        self.zcache = {s: z[sel] for s, z in self.zcache.items()}
        self.S, self.T, self.mask = self.S[sel], self.T[sel], self.mask[sel]
        if self.fixed_a:
            self.a = self.a[sel]
            self.a_wide = self._widen(self.a)
        if self.Z0 is not None:
            self.Z0 = self.Z0[sel]
        if self.W0 is not None:
            self.W0 = self.W0[sel]

    # -- kernels -------------------------------------------------------------------------------
    def kernels(self):
        """H(W_k) of the active runs, (B_active, n, n) on the host."""
        w, prob = self.slot["W"], self.prob
        H = empirical_from_preactivations(self._z_at(w), self._a_at(w), prob.G, prob.train, prob.loss, prob.a_step)
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
        w = self.slot["W"]
        if self.prob.space == "w":
            W = self.main[w]
        elif self.track_d:
            W = self.W0 + self.xp.matmul(self.dpool[w], self.prob.X)
        else:
            return None
        return self.active.copy(), to_host(W), to_host(self._a_at(w))
