"""What the examples' ``run.py`` scripts share: arguments, the split, the DuckDB tables, the scikit-learn
reference, ``results.json`` and the figure.

Each ``examples/<name>/run.py`` keeps what is specific to its data set (loading it, the tables it writes,
the sqlgrad route it shows and its settings) and imports this module with::

    sys.path.insert(0, os.path.dirname(HERE))
    import _common as common

The figure is drawn from ``results["plot"]`` alone (every curve, matrix, point and label it shows), and
that is written to ``results.json`` beside it; the PNG carries the SHA-256 of that data (:func:`digest`)
in a text chunk named :data:`FIGURE_KEY`. ``tests/test_examples.py`` compares the plotted data of the CI
run with the committed ``docs/figures/examples/quick.json``, and the digest ties each committed PNG to it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

FIGURE_KEY = "sqlgrad-figure-sha256"


# --- arguments, split, tables ----------------------------------------------------------------------------


def parse_args(doc: str, here: str) -> argparse.Namespace:
    """``--quick``, ``--out`` (created; default: the example's folder) and ``--seed``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small network, few iterations (CI)")
    parser.add_argument("--out", default=here, help="where results.json and the figure go")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and of both initialisations")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    return args


def split(X: np.ndarray, y: np.ndarray, seed: int, stratify: np.ndarray | None = None) -> list[np.ndarray]:
    """75/25 split, stratified by ``stratify`` (default: ``y``): X_train, X_test, y_train, y_test."""
    from sklearn.model_selection import train_test_split

    return train_test_split(
        X, y, test_size=0.25, stratify=y if stratify is None else stratify, random_state=seed
    )


def write_table(con, name: str, columns: Sequence[str], X: np.ndarray, target: str, values) -> None:
    """Create table ``name`` in DuckDB from the feature matrix and the target column (no pandas needed);
    a text target (numpy ``str`` array) becomes a ``VARCHAR`` column."""
    values = np.asarray(values)
    data = {c: X[:, j] for j, c in enumerate(columns)}
    data[target] = values
    con.register("rows_in", data)
    if values.dtype.kind == "U":
        con.execute(
            f"CREATE TABLE {name} AS "
            f'SELECT * REPLACE (CAST("{target}" AS VARCHAR) AS "{target}") FROM rows_in'
        )
    else:
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM rows_in")
    con.unregister("rows_in")


def architecture(inputs: int, hidden: Sequence[int], outputs: int) -> str:
    return "-".join(map(str, [inputs, *hidden, outputs]))


def settings(cfg: dict, l2: float, **extra: Any) -> dict:
    """The ``settings`` of ``results.json`` for full-batch Adam (``extra`` appended)."""
    return {
        "activation": "relu",
        "optimizer": "adam",
        "lr": cfg["lr"],
        "iterations": cfg["iterations"],
        "batch": "full",
        "l2": l2,
        "alpha": cfg["alpha"],
        "standardize": True,
        **extra,
    }


def sqlgrad_side(route: str, test: dict, info: dict, wall: float, train_metric: str, epochs: bool = False):
    """The ``sqlgrad`` part of ``results.json``: the held-out metrics ``test``, then from the training
    summary ``info`` (``model.training`` or ``sqlgrad train --json``) the training metric, final loss,
    iterations (epochs when ``epochs``, the updates beside them), time, engine and strategy."""
    side = {
        "route": route,
        **test,
        f"train_{train_metric}": info["metrics"][train_metric],
        "final_loss": info["loss"],
    }
    if epochs:
        side.update(iterations=round(info["epochs"]), updates=info["iterations"])
    else:
        side["iterations"] = info["iterations"]
    side.update(
        seconds=info["seconds"],
        wall_seconds=round(wall, 3),
        engine=info["engine"],
        strategy=info["strategy"],
    )
    return side


def confusion(labels: Sequence, true: Iterable, pred: Iterable, counts: Iterable[int] | None = None):
    """Confusion matrix (rows: true, columns: predicted, in the order of ``labels``) of the pairs
    ``true``, ``pred``, each counted once or ``counts`` times."""
    true, pred = list(true), list(pred)
    counts = [1] * len(true) if counts is None else list(counts)
    cm = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p, n in zip(true, pred, counts, strict=True):
        cm[labels.index(t), labels.index(p)] += n
    return cm.tolist()


# --- the scikit-learn reference ----------------------------------------------------------------------------


def mlp(
    cfg: dict, seed: int, *, regression: bool = False, batch: int, iterations: int, shuffle: bool = False
):
    """scikit-learn's MLP with sqlgrad's settings: ReLU, Adam, ``batch`` rows per step, ``iterations``
    epochs and no early stop."""
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    return (MLPRegressor if regression else MLPClassifier)(
        hidden_layer_sizes=tuple(cfg["hidden"]),
        activation="relu",
        solver="adam",
        learning_rate_init=cfg["lr"],
        alpha=cfg["alpha"],
        batch_size=batch,
        max_iter=iterations,
        n_iter_no_change=iterations + 1,  # no early stop: run every iteration
        shuffle=shuffle,
        random_state=seed,
    )


def fit(estimator, X: np.ndarray, y: np.ndarray) -> float:
    """Fit without the convergence warning (the iterations are fixed on purpose); the seconds taken."""
    from sklearn.exceptions import ConvergenceWarning

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(X, y)
    return time.perf_counter() - t0


def sklearn_classifier(clf, mlp, seconds: float, X_train, y_train, X_test, y_test, classes: int):
    """The ``sklearn`` part of ``results.json`` for a classifier pipeline ending in ``mlp``, and its
    predictions on the test rows."""
    from sklearn.metrics import accuracy_score, log_loss

    pred = clf.predict(X_test)
    side = {
        "accuracy": float(accuracy_score(y_test, pred)),
        "log_loss": float(log_loss(y_test, clf.predict_proba(X_test), labels=range(classes))),
        "train_accuracy": float(clf.score(X_train, y_train)),
        "final_loss": float(mlp.loss_),
        "iterations": int(mlp.n_iter_),
        "seconds": round(seconds, 3),
    }
    return side, pred


def full_batch_classifier(
    name: str,
    args: argparse.Namespace,
    cfg: dict,
    l2: float,
    arch: str,
    source: str,
    classes: list[str],
    splits: Sequence[np.ndarray],
    sqlgrad: dict,
    sqlgrad_confusion: list[list[int]],
    history: list[dict],
    **settings_extra: Any,
) -> None:
    """The rest of a full-batch classification example once sqlgrad has trained and scored (iris, wine,
    breast cancer): scikit-learn's MLP on the same split with the same settings, ``results.json`` and
    the figure (loss curves, confusion matrices). ``source`` names the data set, ``classes`` the
    labels; ``sqlgrad`` is ``results.json``'s ``sqlgrad`` part (:func:`sqlgrad_side`)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X_train, X_test, y_train, y_test = splits
    data = {
        "source": source,
        "train_rows": len(y_train),
        "test_rows": len(y_test),
        "features": X_train.shape[1],
        "classes": classes,
        "split": "stratified, 25% test",
    }
    # scikit-learn, same split, same architecture and settings: full batch, like sqlgrad
    net = mlp(cfg, args.seed, batch=len(y_train), iterations=cfg["iterations"])
    clf = make_pipeline(StandardScaler(), net)
    sk_seconds = fit(clf, X_train, y_train)
    sk_side, sk_pred = sklearn_classifier(
        clf, net, sk_seconds, X_train, y_train, X_test, y_test, len(classes)
    )
    report = results(
        name,
        "classification",
        args,
        data,
        arch,
        settings(cfg, l2, **settings_extra),
        sqlgrad=sqlgrad,
        sklearn=sk_side,
        confusion_matrix={
            "labels": classes,
            "sqlgrad": sqlgrad_confusion,
            "sklearn": confusion(range(len(classes)), y_test.tolist(), sk_pred.tolist()),
        },
    )
    curves = [
        curve("sqlgrad (in SQL)", [h["iteration"] for h in history], [h["loss"] for h in history]),
        curve("scikit-learn MLPClassifier", range(len(net.loss_curve_)), net.loss_curve_, "--"),
    ]
    plot = {
        "size": [14, 4.5],
        "loss": loss_panel(
            report, curves, "iteration (full-batch Adam step)", "training loss (log loss + L2)"
        ),
        "panels": confusion_panels(report),
    }
    finish(report, plot, args.out)


# --- results.json and the figure ---------------------------------------------------------------------------


def results(name: str, task: str, args: argparse.Namespace, data: dict, arch: str, settings: dict, **rest):
    """The ``results.json`` object; ``rest`` holds ``sqlgrad``, ``sklearn`` and what the example adds."""
    return {
        "example": name,
        "task": task,
        "quick": args.quick,
        "seed": args.seed,
        "data": data,
        "architecture": arch,
        "settings": settings,
        **rest,
        "figure": f"{name}.png",
    }


def curve(label: str, x: Iterable, y: Iterable, style: str = "-") -> dict:
    return {"label": label, "style": style, "x": [int(v) for v in x], "y": [float(v) for v in y]}


def loss_panel(results: dict, curves: list[dict], xlabel: str, ylabel: str, yscale: str = "log") -> dict:
    return {
        "title": f"{results['example']} {results['architecture']}: training loss",
        "xlabel": xlabel,
        "ylabel": ylabel,
        "yscale": yscale,
        "curves": curves,
    }


def side_title(who: str, text: str) -> str:
    return f"{'sqlgrad' if who == 'sqlgrad' else 'scikit-learn'}: {text}"


def confusion_panels(results: dict, rotation: int = 30) -> list[dict]:
    """Middle and right panels: the held-out confusion matrices of ``results["confusion_matrix"]``."""
    cms = results["confusion_matrix"]
    return [
        {
            "title": side_title(who, f"test accuracy {results[who]['accuracy']:.3f}"),
            "confusion": {"labels": cms["labels"], "matrix": cms[who], "rotation": rotation},
        }
        for who in ("sqlgrad", "sklearn")
    ]


def scatter_panel(title: str, true: Iterable, pred: Iterable, span: Sequence[float], xlabel: str) -> dict:
    return {
        "title": title,
        "scatter": {
            "x": [float(v) for v in true],
            "y": [float(v) for v in pred],
            "span": list(span),
            "xlabel": xlabel,
            "ylabel": "predicted",
        },
    }


def digest(plot: dict) -> str:
    """SHA-256 of the plotted data in canonical JSON (sorted keys; floats as ``repr``, which a JSON
    round trip keeps)."""
    text = json.dumps(plot, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def draw(plot: dict, path: str) -> None:
    """Draw the figure of ``plot`` (a loss panel and two side panels) into the PNG ``path``, with the
    digest of ``plot`` in its text chunk :data:`FIGURE_KEY`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=tuple(plot["size"]), width_ratios=[1.4, 1, 1])
    ax, loss = axes[0], plot["loss"]
    for c in loss["curves"]:
        ax.plot(c["x"], c["y"], c["style"], label=c["label"])
    ax.set(xlabel=loss["xlabel"], ylabel=loss["ylabel"], yscale=loss["yscale"])
    ax.set_title(loss["title"])
    ax.legend()
    for ax, panel in zip(axes[1:], plot["panels"], strict=True):
        if "confusion" in panel:
            labels, cm = panel["confusion"]["labels"], np.array(panel["confusion"]["matrix"])
            ax.imshow(cm, cmap="Blues")
            for (i, j), v in np.ndenumerate(cm):
                color = "white" if v > cm.max() / 2 else "black"
                ax.text(j, i, str(v), ha="center", va="center", color=color)
            ax.set_xticks(range(len(labels)), labels, rotation=panel["confusion"]["rotation"])
            ax.set_yticks(range(len(labels)), labels)
            ax.set(xlabel="predicted", ylabel="true")
        else:
            sc = panel["scatter"]
            lo, hi = sc["span"]
            ax.scatter(sc["x"], sc["y"], s=12, alpha=0.7)
            ax.plot([lo, hi], [lo, hi], color="grey", lw=1)
            ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel=sc["xlabel"], ylabel=sc["ylabel"])
            ax.set_aspect("equal")
        ax.set_title(panel["title"])
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight", metadata={FIGURE_KEY: digest(plot)})
    plt.close(fig)


def finish(results: dict, plot: dict, out: str, unit: str = "iterations", extra: str = "") -> None:
    """Put ``plot`` into ``results``, write ``results.json`` and the figure to ``out``, print a summary."""
    results["plot"] = plot
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=1)
        fh.write("\n")
    draw(plot, os.path.join(out, results["figure"]))
    s, k = results["sqlgrad"], results["sklearn"]
    metric, label = ("accuracy", "accuracy") if results["task"] == "classification" else ("r2", "R²")
    print(
        f"{results['example']} {results['architecture']}: sqlgrad {label} {s[metric]:.4f} in "
        f"{s['wall_seconds']:.1f} s ({s['iterations']} {unit}, {s['strategy']}); scikit-learn {label} "
        f"{k[metric]:.4f} in {k['seconds']:.2f} s ({k['iterations']} {unit}){extra}; wrote "
        f"{out}/results.json, {results['figure']}"
    )
