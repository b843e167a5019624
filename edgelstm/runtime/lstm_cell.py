"""A numpy reference LSTM cell that shows its gates: what ``edgelstm explain`` runs to see inside a model.

The standard equations, one step, for input ``x`` and the previous state ``(h, C)``::

    i  = sigmoid(W_i x + R_i h + b_i + P_i * C)      input gate
    f  = sigmoid(W_f x + R_f h + b_f + P_f * C)      forget gate
    C~ = tanh(W_c x + R_c h + b_c)                   candidate
    C' = f * C + i * C~                              new cell state
    o  = sigmoid(W_o x + R_o h + b_o + P_o * C')     output gate
    h' = o * tanh(C')                                new hidden state

(``P`` are ONNX's optional peepholes, zero in torch models.) Weights are kept in the ONNX operator's layout
and gate order **i, o, f, c** (``W`` (4H, F), ``R`` (4H, H), one bias ``b = Wb + Rb``); torch's ``nn.LSTM``
stacks its gates **i, f, g, o** and :meth:`LSTMWeights.from_torch` reorders them. :func:`onnx_lstm` runs the
ONNX ``LSTM`` operator's semantics (forward direction, default activations, layouts 0 and 1), so the cell can
be checked against onnxruntime and the operator's test vectors.

numpy only: part of the torch-free runtime.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike

from edgelstm.errors import UsageError

ONNX_GATES = "iofc"   # order of the gate blocks in ONNX W, R, B
TORCH_GATES = "ifgo"  # order in torch.nn.LSTM's weight_ih / weight_hh / biases (g = the candidate c)
_TORCH_TO_ONNX = (0, 3, 1, 2)  # torch block index of each ONNX block: i, o, f, c(g)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), written through tanh so that large |z| neither overflows nor warns."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass(frozen=True)
class LSTMWeights:
    """One unidirectional LSTM layer in ONNX layout (gate order i, o, f, c)."""

    W: np.ndarray               # (4H, F) input weights
    R: np.ndarray               # (4H, H) recurrent weights
    b: np.ndarray               # (4H,) input bias + recurrent bias
    p: np.ndarray | None = None  # (3H,) peepholes i, o, f (ONNX); None: none

    def __post_init__(self) -> None:
        h = self.R.shape[-1]
        shapes = {"W": (self.W.ndim == 2 and self.W.shape[0] == 4 * h), "R": self.R.shape == (4 * h, h),
                  "b": self.b.shape == (4 * h,), "p": self.p is None or self.p.shape == (3 * h,)}
        bad = [k for k, ok in shapes.items() if not ok]
        if bad:
            got = ", ".join(f"{k} {list(getattr(self, k).shape)}" for k in ("W", "R", "b") +
                            (("p",) if self.p is not None else ()))
            raise UsageError(f"LSTM weights of shapes {got} (wrong: {', '.join(bad)})",
                             expected="W (4H, F), R (4H, H), b (4H,) and peepholes (3H,) for one hidden size H",
                             fix="pass one layer and one direction, with the bias summed (Wb + Rb)")

    @property
    def hidden(self) -> int:
        return int(self.R.shape[1])

    @property
    def input_size(self) -> int:
        return int(self.W.shape[1])

    @classmethod
    def from_onnx(cls, W: np.ndarray, R: np.ndarray, B: np.ndarray | None = None,
                  P: np.ndarray | None = None, *, dtype: DTypeLike = np.float64) -> LSTMWeights:
        """From an ONNX ``LSTM`` node's W (1, 4H, F), R (1, 4H, H), B (1, 8H) and P (1, 3H) (a leading axis of
        one direction, or none)."""
        w2: np.ndarray = np.asarray(W, dtype)
        r2: np.ndarray = np.asarray(R, dtype)
        w2, r2 = w2.reshape(-1, w2.shape[-1]), r2.reshape(-1, r2.shape[-1])  # drop the one-direction axis
        h = r2.shape[-1]
        b: np.ndarray = np.zeros(4 * h, dtype) if B is None else np.asarray(B, dtype).reshape(-1)
        if b.shape == (8 * h,):
            b = b[:4 * h] + b[4 * h:]  # Wb + Rb
        p: np.ndarray | None = None if P is None else np.asarray(P, dtype).reshape(-1)
        return cls(w2, r2, b, p if p is not None and p.any() else None)

    @classmethod
    def from_torch(cls, weight_ih: np.ndarray, weight_hh: np.ndarray, bias_ih: np.ndarray | None = None,
                   bias_hh: np.ndarray | None = None, *, dtype: DTypeLike = np.float64) -> LSTMWeights:
        """From one layer of ``torch.nn.LSTM`` (``weight_ih_l0`` ... as numpy arrays), gates i, f, g, o."""
        W: np.ndarray = np.asarray(weight_ih, dtype)
        R: np.ndarray = np.asarray(weight_hh, dtype)
        h = R.shape[-1]
        b: np.ndarray = np.zeros(4 * h, dtype)
        for bias in (bias_ih, bias_hh):
            if bias is not None:
                b = b + np.asarray(bias, dtype)

        def reorder(a: np.ndarray) -> np.ndarray:
            blocks = np.split(a, 4, axis=0)
            return np.concatenate([blocks[k] for k in _TORCH_TO_ONNX], axis=0)

        return cls(reorder(W), reorder(R), reorder(b))


@dataclass(frozen=True)
class Gates:
    """Everything one step computed, each (..., N, H): gates i, f, o, the candidate C~ (``g``), and the new
    cell and hidden state."""

    i: np.ndarray
    f: np.ndarray
    g: np.ndarray
    o: np.ndarray
    c: np.ndarray
    h: np.ndarray


def step(w: LSTMWeights, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> Gates:
    """One step of one layer: x (N, F), h and c (N, H) -> the gates and the new state."""
    hd, dt = w.hidden, w.W.dtype
    x, h, c = (np.asarray(a, dt) for a in (x, h, c))  # one dtype: a mixed-type matmul skips BLAS (~100x slower)
    z = x @ w.W.T + h @ w.R.T + w.b  # (N, 4H) in ONNX order i, o, f, c
    zi, zo, zf, zc = (z[:, k * hd:(k + 1) * hd] for k in range(4))
    if w.p is not None:
        pi, po, pf = w.p[:hd], w.p[hd:2 * hd], w.p[2 * hd:]
        zi, zf = zi + pi * c, zf + pf * c
    i, f, g = sigmoid(zi), sigmoid(zf), np.tanh(zc)
    c_new = f * c + i * g
    if w.p is not None:
        zo = zo + po * c_new
    o = sigmoid(zo)
    return Gates(i, f, g, o, c_new, o * np.tanh(c_new))


def run(layers: Sequence[LSTMWeights], X: np.ndarray, h0: np.ndarray | None = None, c0: np.ndarray | None = None,
        *, resets: np.ndarray | None = None) -> Gates:
    """A stacked LSTM over a sequence: X (T, N, F) time-major, h0 and c0 (L, N, H) (default zeros).

    ``resets`` (T,) bool zeroes every layer's state before step t where true (a stream's reset policy).
    Returns every step's gates and state, each (T, L, N, H); layer k's h feeds layer k + 1.
    """
    if not layers:
        raise UsageError("no LSTM layers", expected="at least one LSTMWeights", fix="pass the model's layers")
    X = np.asarray(X)
    if X.ndim != 3 or X.shape[2] != layers[0].input_size:
        raise UsageError(f"LSTM input of shape {list(X.shape)}",
                         expected=f"(T, N, {layers[0].input_size}): time-major, one row per stream",
                         fix="pass the sequence time first; one stream is X[:, None]")
    t_len, n, hd, nl = X.shape[0], X.shape[1], layers[0].hidden, len(layers)
    dtype = layers[0].W.dtype
    zero = np.zeros((nl, n, hd), dtype)
    h = zero.copy() if h0 is None else np.asarray(h0, dtype).copy()
    c = zero.copy() if c0 is None else np.asarray(c0, dtype).copy()
    out = {k: np.empty((t_len, nl, n, hd), dtype) for k in ("i", "f", "g", "o", "c", "h")}
    for t in range(t_len):
        if resets is not None and resets[t]:
            h[:], c[:] = 0.0, 0.0
        x = X[t]
        for k, w in enumerate(layers):
            gates = step(w, x, h[k], c[k])
            h[k], c[k], x = gates.h, gates.c, gates.h
            for name in out:
                out[name][t, k] = getattr(gates, name)
    return Gates(**out)


def onnx_lstm(X: np.ndarray, W: np.ndarray, R: np.ndarray, B: np.ndarray | None = None,
              initial_h: np.ndarray | None = None, initial_c: np.ndarray | None = None, P: np.ndarray | None = None,
              *, layout: int = 0, direction: str = "forward") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ONNX ``LSTM`` operator on the reference cell: returns Y, Y_h, Y_c as the operator does.

    Layout 0: X (T, N, F), Y (T, 1, N, H), Y_h and Y_c (1, N, H); layout 1: batch first, X (N, T, F),
    Y (N, T, 1, H), Y_h and Y_c (N, 1, H). Only the forward direction and the default activations
    (sigmoid, tanh, tanh) without clip are supported.
    """
    if direction != "forward" or np.shape(W)[0] != 1:
        raise UsageError(f"an LSTM with direction '{direction}' and {np.shape(W)[0]} direction(s) of weights",
                         expected="direction 'forward' (one direction)",
                         fix="run each direction of a bidirectional LSTM as a separate forward layer on the "
                             "(reversed) sequence")
    if layout not in (0, 1):
        raise UsageError(f"LSTM layout {layout}", expected="0 (time-major) or 1 (batch-major)",
                         fix="use layout 0 or 1, as the ONNX operator defines them")
    w = LSTMWeights.from_onnx(W, R, B, P, dtype=np.result_type(np.asarray(X).dtype, np.float32))
    if layout == 1:
        X = np.swapaxes(X, 0, 1)
        initial_h = None if initial_h is None else np.swapaxes(initial_h, 0, 1)
        initial_c = None if initial_c is None else np.swapaxes(initial_c, 0, 1)
    trace = run([w], X, initial_h, initial_c)
    Y = trace.h  # (T, 1, N, H): the layer axis is ONNX's num_directions axis
    Y_h, Y_c = trace.h[-1], trace.c[-1]  # (1, N, H)
    if layout == 1:
        return np.transpose(Y, (2, 0, 1, 3)), np.swapaxes(Y_h, 0, 1), np.swapaxes(Y_c, 0, 1)
    return Y, Y_h, Y_c
