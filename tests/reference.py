"""A plain numpy implementation of the same networks and full-batch training (gradient descent,
momentum, Nesterov, Adam, learning-rate schedules, L1 and L2 penalties), written independently of
sqlgrad's graph and SQL (hand-derived backward pass, optimizers as in PyTorch's documentation), to hold
every SQL result against."""

from __future__ import annotations

import math

import numpy as np

LEAKY = 0.01


def act(kind: str, z: np.ndarray) -> np.ndarray:
    if kind == "relu":
        return np.maximum(z, 0.0)
    if kind == "leaky_relu":
        return np.where(z > 0, z, LEAKY * z)
    if kind == "tanh":
        return np.tanh(z)
    if kind == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if kind == "identity":
        return z
    raise ValueError(kind)


def act_grad(kind: str, z: np.ndarray, a: np.ndarray) -> np.ndarray:
    if kind == "relu":
        return (z > 0).astype(float)
    if kind == "leaky_relu":
        return np.where(z > 0, 1.0, LEAKY)
    if kind == "tanh":
        return 1.0 - a * a
    if kind == "sigmoid":
        return a * (1.0 - a)
    if kind == "identity":
        return np.ones_like(z)
    raise ValueError(kind)


def forward(weights, activations, X):
    """Pre-activations and activations of every layer; the last entry holds the logits."""
    zs, hs = [], [X]
    h = X
    for k, (w, b) in enumerate(weights):
        z = h @ w + b
        zs.append(z)
        h = act(activations[k], z) if k < len(weights) - 1 else z
        hs.append(h)
    return zs, hs


def loss_and_grads(weights, activations, head, X, y, l2, l1=0.0, sample_weight=None):
    """Mean loss + 0.5*l2*sum(W^2) + l1*sum(|W|), and its (sub)gradient for every (W, b).

    With ``sample_weight`` the mean is weighted: ``sum(w * loss) / sum(w)``."""
    if sample_weight is not None:
        return _weighted_loss_and_grads(weights, activations, head, X, y, l2, l1, sample_weight)
    n = X.shape[0]
    zs, hs = forward(weights, activations, X)
    z = zs[-1]
    if head == "softmax":
        m = z.max(axis=1, keepdims=True)
        lse = m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))
        yi = y.astype(int)
        data_loss = np.mean(lse[:, 0] - z[np.arange(n), yi])
        p = np.exp(z - lse)
        p[np.arange(n), yi] -= 1.0
        dz = p
    elif head == "sigmoid":
        z1 = z[:, 0]
        data_loss = np.mean(np.maximum(z1, 0) - z1 * y + np.log(1.0 + np.exp(-np.abs(z1))))
        dz = (1.0 / (1.0 + np.exp(-z1)) - y)[:, None]
    elif head == "identity":
        d = z[:, 0] - y
        data_loss = np.mean(d * d)
        dz = (2.0 * d)[:, None]
    else:
        raise ValueError(head)
    loss = data_loss + 0.5 * l2 * sum(float(np.sum(w * w)) for w, _ in weights)
    loss += l1 * sum(float(np.sum(np.abs(w))) for w, _ in weights)
    grads = [None] * len(weights)
    for k in range(len(weights) - 1, -1, -1):
        w, _ = weights[k]
        grads[k] = (hs[k].T @ dz / n + l2 * w + l1 * np.sign(w), dz.sum(axis=0) / n)
        if k > 0:
            dh = dz @ w.T
            dz = dh * act_grad(activations[k - 1], zs[k - 1], hs[k])
    return loss, grads


def _weighted_loss_and_grads(weights, activations, head, X, y, l2, l1, sw):
    """The weighted mean: per-row losses and output gradients scaled by ``sw / sum(sw)``."""
    zs, hs = forward(weights, activations, X)
    z = zs[-1]
    if head == "softmax":
        m = z.max(axis=1, keepdims=True)
        lse = m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))
        yi = y.astype(int)
        rows = lse[:, 0] - z[np.arange(len(y)), yi]
        dz = np.exp(z - lse)
        dz[np.arange(len(y)), yi] -= 1.0
    elif head == "sigmoid":
        z1 = z[:, 0]
        rows = np.maximum(z1, 0) - z1 * y + np.log(1.0 + np.exp(-np.abs(z1)))
        dz = (1.0 / (1.0 + np.exp(-z1)) - y)[:, None]
    else:
        d = z[:, 0] - y
        rows = d * d
        dz = (2.0 * d)[:, None]
    total = sw.sum()
    loss = float(np.sum(sw * rows) / total)
    loss += 0.5 * l2 * sum(float(np.sum(w * w)) for w, _ in weights)
    loss += l1 * sum(float(np.sum(np.abs(w))) for w, _ in weights)
    dz = dz * (sw / total)[:, None]
    grads = [None] * len(weights)
    for k in range(len(weights) - 1, -1, -1):
        w, _ = weights[k]
        grads[k] = (hs[k].T @ dz + l2 * w + l1 * np.sign(w), dz.sum(axis=0))
        if k > 0:
            dz = (dz @ w.T) * act_grad(activations[k - 1], zs[k - 1], hs[k])
    return loss, grads


def train_gd(weights, activations, head, X, y, lr, l2, iterations):
    """Full-batch gradient descent; returns final weights and the loss before each update."""
    weights = [(w.astype(float).copy(), b.astype(float).copy()) for w, b in weights]
    losses = []
    for _ in range(iterations):
        loss, grads = loss_and_grads(weights, activations, head, X, y, l2)
        losses.append(loss)
        weights = [(w - lr * gw, b - lr * gb) for (w, b), (gw, gb) in zip(weights, grads, strict=True)]
    return weights, losses


def scheduled_lr(lr, schedule, t, gamma=None, step_size=None, decay=None):
    """The learning rate of update t (0-based) under a schedule."""
    if schedule == "constant":
        return lr
    if schedule == "step":
        return lr * gamma ** math.floor(t / step_size)
    if schedule == "exponential":
        return lr * gamma**t
    if schedule == "inverse-time":
        return lr / (1.0 + decay * t)
    raise ValueError(schedule)


def train(
    weights,
    activations,
    head,
    X,
    y,
    lr,
    iterations,
    *,
    l2=0.0,
    l1=0.0,
    optimizer="gd",
    momentum=0.9,
    beta1=0.9,
    beta2=0.999,
    eps=1e-8,
    schedule="constant",
    gamma=None,
    step_size=None,
    decay=None,
    batches=None,
    sample_weight=None,
):
    """Full-batch training (or, with ``batches``, update t uses the rows ``batches[t]``); returns final
    weights and the loss before each update (on the update's rows).

    With g the full gradient (penalties included) and lr_t the scheduled rate of update t:
    gd: p -= lr_t * g. momentum (PyTorch SGD, dampening 0): buf = mu * buf + g (buf = g at the first
    step); p -= lr_t * buf. nesterov: the same buf; p -= lr_t * (g + mu * buf). adam (PyTorch):
    m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; with s = t + 1, p -= lr_t * (m / (1 - b1^s)) /
    (sqrt(v / (1 - b2^s)) + eps).
    """
    params = [a.astype(float).copy() for w, b in weights for a in (w, b)]
    buf = [None] * len(params)
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    losses = []
    for t in range(iterations):
        pairs = [(params[i], params[i + 1]) for i in range(0, len(params), 2)]
        rows = slice(None) if batches is None else batches[t]
        sw = None if sample_weight is None else sample_weight[rows]
        loss, grads = loss_and_grads(pairs, activations, head, X[rows], y[rows], l2, l1, sw)
        losses.append(loss)
        flat = [g for gw, gb in grads for g in (gw, gb)]
        rate = scheduled_lr(lr, schedule, t, gamma, step_size, decay)
        for i, g in enumerate(flat):
            if optimizer == "gd":
                params[i] = params[i] - rate * g
            elif optimizer in ("momentum", "nesterov"):
                buf[i] = g.copy() if buf[i] is None else momentum * buf[i] + g
                step = g + momentum * buf[i] if optimizer == "nesterov" else buf[i]
                params[i] = params[i] - rate * step
            elif optimizer == "adam":
                m[i] = beta1 * m[i] + (1.0 - beta1) * g
                v[i] = beta2 * v[i] + (1.0 - beta2) * g * g
                s = t + 1
                m_hat = m[i] / (1.0 - beta1**s)
                v_hat = v[i] / (1.0 - beta2**s)
                params[i] = params[i] - rate * m_hat / (np.sqrt(v_hat) + eps)
            else:
                raise ValueError(optimizer)
    return [(params[i], params[i + 1]) for i in range(0, len(params), 2)], losses


def predict_scores(weights, activations, head, X):
    """Class probabilities (softmax), positive-class probability (sigmoid) or value (identity)."""
    zs, _ = forward(weights, activations, X)
    z = zs[-1]
    if head == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if head == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z[:, 0]))
    return z[:, 0]
