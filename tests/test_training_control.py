"""Training control: mini-batches, validation split, class weights, early stopping, named runs,
checkpoints and resume, and the optimizers on engines other than DuckDB.

The numpy reference (tests/reference.py) is given the batches the SQL should use, derived here from the
documented rule (:mod:`sqlgrad.batches`): rows ranked by their prepared values, a seeded affine
permutation for the validation split, and per epoch a seeded affine permutation cut into batches. Only
the seeded constants come from :func:`sqlgrad.batches.affine`; the ranking, split and batch membership are
computed independently below.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import reference as R
from conftest import assert_weights_close, load_arrays, make_classification, make_regression
from engines import opened, unique
from sqlgrad import Model, train
from sqlgrad.batches import affine
from sqlgrad.errors import TrainingError, UsageError
from sqlgrad.spec import build_spec, init_weights


def expected_batches(X, y, seed, validation, batch_size, updates):
    """(train row indices in row_key order, validation row indices, the rows of each update)."""
    n = len(y)
    order = np.lexsort([y, *[X[:, j] for j in reversed(range(X.shape[1]))]])
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    n_valid = round(n * validation)
    a, c = affine([seed, 0], n)
    slot = (a * rank + c) % n
    train_rows = np.empty(n - n_valid, dtype=np.int64)
    is_train = slot >= n_valid
    train_rows[slot[is_train] - n_valid] = np.nonzero(is_train)[0]
    valid_rows = np.nonzero(~is_train)[0]
    n_train = n - n_valid
    steps = math.ceil(n_train / batch_size) if batch_size else 1
    batches = []
    keys = np.arange(n_train)
    for t in range(updates):
        if not batch_size:
            batches.append(keys)
            continue
        epoch, b = divmod(t, steps)
        mult, shift = affine([seed, 1, epoch], n_train)
        p = (mult * keys + shift) % n_train
        batches.append(keys[(p >= b * batch_size) & (p < (b + 1) * batch_size)])
    return train_rows, valid_rows, batches


def setup_case(engine, head="softmax", n=90, d=3, seed=5, hidden=(4,), act="tanh", load=None, name="t"):
    if head == "identity":
        X, y = make_regression(seed, n, d)
    else:
        X, y = make_classification(seed, n, d, 3 if head == "softmax" else 2)
    features = [f"f{i}" for i in range(d)]
    (load or load_arrays)(engine, name, {**{f: X[:, i] for i, f in enumerate(features)}, "y": y})
    classes = None if head == "identity" else sorted(set(y.tolist()))
    n_out = len(classes) if head == "softmax" else 1
    spec = build_spec(d, hidden, [act] * len(hidden), head, n_out, 1e-3)
    task = "regression" if head == "identity" else "classification"
    init = Model(features, "y", task, head, list(spec.activations), init_weights(spec, seed + 1), classes)
    return X, y.astype(float), init


def numpy_run(init, X, y, rows, batches, lr, updates, sample_weight=None, **opt):
    Xt, yt = X[rows], y[rows]
    sw = None if sample_weight is None else sample_weight[rows]
    return R.train(
        init.weights,
        init.activations,
        init.head,
        Xt,
        yt,
        lr,
        updates,
        l2=1e-3,
        batches=batches,
        sample_weight=sw,
        **opt,
    )


# --- mini-batches ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["recursive", "stepwise"])
def test_minibatch_adam_with_validation_equals_numpy(engine, strategy):
    X, y, init = setup_case(engine)
    model = train(
        "t",
        "y",
        init=init,
        lr=0.05,
        l2=1e-3,
        optimizer="adam",
        batch_size=16,
        epochs=3,
        validation=0.25,
        seed=11,
        strategy=strategy,
        db=engine,
    )
    updates = model.training["iterations"]
    rows, valid, batches = expected_batches(X, y, 11, 0.25, 16, updates)
    assert updates == 3 * math.ceil(len(rows) / 16) and len(valid) == round(90 * 0.25)
    want, losses = numpy_run(init, X, y, rows, batches, 0.05, updates, optimizer="adam")
    assert_weights_close(model.weights, want)
    got = [h["loss"] for h in model.history[:-1]]
    np.testing.assert_allclose(got, losses, rtol=1e-9)
    # validation loss after each epoch, at the weights of that moment
    checks = [h for h in model.history if "val_loss" in h]
    assert [h["iteration"] + 1 for h in checks] == [updates // 3 * (e + 1) for e in range(3)]
    zs, _ = R.forward(want, init.activations, X[valid])
    z = zs[-1]
    lse = z.max(axis=1) + np.log(np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1))
    val_loss = np.mean(lse - z[np.arange(len(valid)), y[valid].astype(int)])
    assert checks[-1]["val_loss"] == pytest.approx(val_loss, rel=1e-9)
    assert model.training["validation_metrics"]["n"] == len(valid)
    assert model.training["metrics"]["n"] == len(rows)


def test_minibatch_is_reproducible_bit_for_bit(engine):
    _, _, init = setup_case(engine)
    kw = dict(init=init, lr=0.1, optimizer="momentum", batch_size=10, epochs=2, db=engine)
    a = train("t", "y", seed=3, **kw)
    b = train("t", "y", seed=3, **kw)
    c = train("t", "y", seed=4, **kw)
    for (wa, ba), (wb, bb) in zip(a.weights, b.weights, strict=True):
        assert np.array_equal(wa, wb) and np.array_equal(ba, bb)
    assert not np.array_equal(a.weights[0][0], c.weights[0][0])


def test_minibatch_same_weights_on_sqlite():
    """Same batches on another engine: SQLite's stepwise plan matches numpy's (hence DuckDB's)."""
    for eng in opened("sqlite"):
        X, y, init = setup_case(eng, load=server_loader(eng))
        model = train(
            "t",
            "y",
            init=init,
            lr=0.05,
            l2=1e-3,
            optimizer="adam",
            batch_size=16,
            epochs=2,
            validation=0.2,
            seed=2,
            db=eng,
        )
        rows, _, batches = expected_batches(X, y, 2, 0.2, 16, model.training["iterations"])
        want, _ = numpy_run(init, X, y, rows, batches, 0.05, model.training["iterations"], optimizer="adam")
        assert_weights_close(model.weights, want)


def test_minibatch_lateral_form_on_postgres():
    """PostgreSQL runs the recursive plan with LATERAL: the batch table is joined in the outer FROM."""
    for eng in opened("postgres"):
        name = unique()
        X, y, init = setup_case(eng, load=server_loader(eng), name=name)
        model = train(
            name,
            "y",
            init=init,
            lr=0.1,
            l2=1e-3,
            batch_size=20,
            epochs=2,
            seed=9,
            strategy="recursive",
            db=eng,
        )
        rows, _, batches = expected_batches(X, y, 9, 0.0, 20, model.training["iterations"])
        want, _ = numpy_run(init, X, y, rows, batches, 0.1, model.training["iterations"])
        assert_weights_close(model.weights, want)


def server_loader(eng):
    """A loader for :func:`setup_case` that creates the table through the engine's driver."""

    def load(_engine, name, columns):
        kinds = {
            c: "integer" if c == "y" and np.asarray(v).dtype.kind in "iu" else "float"
            for c, v in columns.items()
        }
        rows = list(zip(*[np.asarray(v).tolist() for v in columns.values()], strict=True))
        eng.create_table(name, [(c, kinds[c]) for c in columns], rows)
        eng.created.append(name)

    return load


# --- class weights ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("head", ["softmax", "sigmoid"])
def test_balanced_class_weights_equal_numpy(engine, head):
    X, y, init = setup_case(engine, head=head, n=80)
    model = train("t", "y", init=init, lr=0.3, l2=1e-3, iterations=5, class_weight="balanced", db=engine)
    k = 3 if head == "softmax" else 2
    counts = np.bincount(y.astype(int), minlength=k)
    sw = len(y) / (k * counts[y.astype(int)])
    rows = np.arange(len(y))  # with no validation the training rows are every row, in some order
    want, losses = R.train(init.weights, init.activations, head, X, y, 0.3, 5, l2=1e-3, sample_weight=sw)
    assert_weights_close(model.weights, want)
    np.testing.assert_allclose([h["loss"] for h in model.history[:-1]], losses, rtol=1e-9)
    assert rows.size == model.training["rows"]


def test_explicit_class_weights_and_their_errors(engine):
    X, y, init = setup_case(engine, head="sigmoid", n=60)
    model = train("t", "y", init=init, lr=0.3, l2=1e-3, iterations=4, class_weight={1: 3.0}, db=engine)
    sw = np.where(y == 1, 3.0, 1.0)
    want, _ = R.train(init.weights, init.activations, "sigmoid", X, y, 0.3, 4, l2=1e-3, sample_weight=sw)
    assert_weights_close(model.weights, want)
    with pytest.raises(UsageError, match="not classes"):
        train("t", "y", init=init, iterations=1, class_weight={"7": 2.0}, db=engine)
    with pytest.raises(UsageError, match="> 0"):
        train("t", "y", init=init, iterations=1, class_weight={"1": -2.0}, db=engine)


# --- chunks, named runs, checkpoints and resume ---------------------------------------------------------


def _same(a, b):
    for (wa, ba), (wb, bb) in zip(a.weights, b.weights, strict=True):
        assert np.array_equal(wa, wb) and np.array_equal(ba, bb)


@pytest.mark.parametrize("strategy", ["recursive", "stepwise"])
def test_chunked_and_checkpointed_run_has_the_weights_of_one_run(engine, strategy):
    _, _, init = setup_case(engine)
    kw = dict(init=init, lr=0.05, optimizer="adam", iterations=13, strategy=strategy, db=engine)
    plain = train("t", "y", **kw)
    named = train("t", "y", name="run a", checkpoint_every=4, **kw)
    _same(plain, named)
    checked = train("t", "y", eval_every=3, early_stopping=100, **kw)  # checks cut the run into chunks
    _same(plain, checked)
    hist = engine.query('SELECT "iteration", "epoch", "loss" FROM "run a_history" ORDER BY 1')
    assert [r[0] for r in hist] == list(range(13))
    np.testing.assert_array_equal([r[2] for r in hist], [h["loss"] for h in plain.history[:-1]])
    assert engine.scalar('SELECT "iteration" FROM "run a_checkpoint"') == 13
    with pytest.raises(UsageError, match="already exists"):
        train("t", "y", name="run a", **kw)


def test_resume_continues_to_the_uninterrupted_weights(engine):
    _, _, init = setup_case(engine)
    kw = dict(init=init, lr=0.05, optimizer="adam", batch_size=20, validation=0.2, seed=1, db=engine)
    plain = train("t", "y", epochs=6, **kw)
    first = train("t", "y", epochs=2, name="r1", checkpoint_every=3, **kw)
    assert first.training["iterations"] == plain.training["iterations"] // 3
    resumed = train("t", "y", epochs=6, name="r1", checkpoint_every=3, resume=True, **kw)
    _same(plain, resumed)
    assert resumed.training["resumed_from"] == first.training["iterations"]
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in plain.history]
    # settings must match, and the run must exist
    with pytest.raises(UsageError, match=r"other settings \(optimizer\)"):
        train("t", "y", **{**kw, "lr": 0.5}, epochs=6, name="r1", resume=True)
    with pytest.raises(UsageError, match="no run named"):
        train("t", "y", epochs=6, name="nope", resume=True, **kw)
    with pytest.raises(UsageError, match="needs --name"):
        train("t", "y", epochs=6, resume=True, **kw)


def test_early_stopping_keeps_the_best_weights(engine):
    _, _, init = setup_case(engine, n=60)
    kw = dict(init=init, optimizer="gd", lr=3.0, batch_size=8, validation=0.3, seed=2, db=engine)
    model = train("t", "y", epochs=40, early_stopping=2, **kw)
    best, done = model.training["best_iteration"], model.training["iterations"]
    assert "early stopping" in model.training["stopped"] and done < 40 * 6
    assert best < done
    # the kept weights are those after `best` updates: a plain run of that length
    again = train("t", "y", iterations=best, **kw)
    _same(model, again)
    vals = [h["val_loss"] for h in model.history if "val_loss" in h]
    assert min(vals) == vals[best // 6 - 1]


def test_tolerance_alone_stops_when_the_loss_stops_improving(engine):
    _, _, init = setup_case(engine, n=60)
    model = train("t", "y", init=init, lr=0.5, iterations=300, tolerance=1e-3, db=engine)
    assert "converged" in model.training["stopped"]
    done = model.training["iterations"]
    assert 1 < done < 300
    losses = [h["loss"] for h in model.history[:-1]]
    assert losses[-2] - losses[-1] <= 1e-3 < losses[-3] - losses[-2]


def test_nested_plan_refuses_what_it_cannot_do(engine):
    _, _, init = setup_case(engine)
    with pytest.raises(UsageError, match="nested plan"):
        train("t", "y", init=init, iterations=3, batch_size=10, strategy="nested", db=engine)


def test_run_tables_are_the_only_ones_left(engine):
    _, _, init = setup_case(engine)
    before = {r[0] for r in engine.query("SELECT table_name FROM information_schema.tables")}
    train(
        "t",
        "y",
        init=init,
        iterations=6,
        batch_size=30,
        validation=0.2,
        early_stopping=2,
        name="kept",
        db=engine,
    )
    after = {r[0] for r in engine.query("SELECT table_name FROM information_schema.tables")}
    assert after - before == {"kept_meta", "kept_checkpoint", "kept_history", "kept_best"}


# --- SIGKILL and resume through the CLI -----------------------------------------------------------------


def test_sigkill_then_resume_gives_the_uninterrupted_weights(tmp_path):
    db = tmp_path / "k.sqlite"
    url = f"sqlite:///{db}"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 3))
    y = np.where(X[:, 0] * X[:, 1] > 0, "yes", "no")
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,c,label\n" + "".join(f"{a},{b},{c},{t}\n" for (a, b, c), t in zip(X, y, strict=True)))
    cli = [sys.executable, "-m", "sqlgrad.cli"]
    subprocess.run([*cli, "load", str(csv), "--db", url, "--table", "d"], check=True, capture_output=True)
    args = [
        "train",
        "d",
        "--db",
        url,
        "--target",
        "label",
        "--hidden",
        "5",
        "--optimizer",
        "adam",
        "--lr",
        "0.01",
        "--batch-size",
        "25",
        "--epochs",
        "40",
        "--quiet",
    ]
    proc = subprocess.Popen(
        [*cli, *args, "--name", "k", "--checkpoint-every", "6", "-o", str(tmp_path / "x.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    import sqlite3

    deadline = time.monotonic() + 120
    reached = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            try:
                con = sqlite3.connect(db, timeout=0.1)
                reached = con.execute('SELECT MAX("iteration") FROM "k_checkpoint"').fetchone()[0] or 0
                con.close()
            except sqlite3.Error:
                continue
            if reached >= 12:
                break
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL and reached >= 12
    resumed = subprocess.run(
        [
            *cli,
            *args,
            "--name",
            "k",
            "--checkpoint-every",
            "6",
            "--resume",
            "-o",
            str(tmp_path / "resumed.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    plain = subprocess.run([*cli, *args, "-o", str(tmp_path / "plain.json")], capture_output=True, text=True)
    assert plain.returncode == 0, plain.stderr
    a, b = Model.load(str(tmp_path / "resumed.json")), Model.load(str(tmp_path / "plain.json"))
    assert a.training["resumed_from"] >= 12
    _same(a, b)


# --- optimizers on other engines --------------------------------------------------------------------------

OPTIMIZER_CASES = [
    ("gd", "step", {"gamma": 0.5, "step_size": 2}),
    ("momentum", "exponential", {"gamma": 0.8}),
    ("nesterov", "inverse-time", {"decay": 0.25}),
    ("adam", "constant", {}),
]


@pytest.mark.parametrize("engine_name", ["sqlite", "postgres"])
def test_optimizers_schedules_and_penalties_on_other_engines(engine_name):
    for eng in opened(engine_name):
        name = unique()
        X, y, init = setup_case(eng, load=server_loader(eng), name=name, hidden=(4, 3))
        for optimizer, schedule, sched in OPTIMIZER_CASES:
            lr = 0.05 if optimizer == "adam" else 0.2
            model = train(
                name,
                "y",
                init=init,
                lr=lr,
                l2=1e-3,
                l1=1e-3,
                iterations=6,
                optimizer=optimizer,
                schedule=schedule,
                db=eng,
                **sched,
            )
            want, losses = R.train(
                init.weights,
                init.activations,
                "softmax",
                X,
                y,
                lr,
                6,
                l2=1e-3,
                l1=1e-3,
                optimizer=optimizer,
                schedule=schedule,
                **sched,
            )
            assert_weights_close(model.weights, want)
            np.testing.assert_allclose([h["loss"] for h in model.history[:-1]], losses, rtol=1e-9)


def test_divergence_keeps_the_last_checkpoint(engine):
    X, y = make_regression(1, 50, 2)
    load_arrays(engine, "r", {"a": X[:, 0] * 1e3, "b": X[:, 1], "y": y * 1e3})
    with pytest.raises(TrainingError, match="diverged"):
        train("r", "y", task="regression", lr=10.0, iterations=200, name="div", checkpoint_every=1, db=engine)
    kept = engine.scalar('SELECT "loss" FROM "div_checkpoint"')
    assert kept is None or math.isfinite(kept)


# --- the command line -------------------------------------------------------------------------------------


@pytest.fixture
def labelled_csv(tmp_path):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(120, 3))
    y = np.where(X[:, 0] + X[:, 1] > 0.8, "yes", "no")  # imbalanced
    path = tmp_path / "p.csv"
    rows = (f"{i},{a!r},{b!r},{c!r},{t}\n" for i, ((a, b, c), t) in enumerate(zip(X, y, strict=True)))
    path.write_text("id,a,b,c,label\n" + "".join(rows))
    return str(path)


def _cli(argv, capsys):
    from sqlgrad.cli import main

    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_training_control_options(labelled_csv, tmp_path, capsys):
    out_model = str(tmp_path / "m.json")
    db = f"duckdb:///{tmp_path / 'runs.db'}"
    base = ["train", labelled_csv, "--target", "label", "--exclude", "id", "--hidden", "4", "--db", db]
    base += ["-o", out_model]
    code, out, err = _cli(
        [
            *base,
            "--optimizer",
            "adam",
            "--lr",
            "0.05",
            "--batch-size",
            "16",
            "--epochs",
            "4",
            "--validation",
            "0.25",
            "--early-stopping",
            "3",
            "--class-weight",
            "yes=2,no=1",
            "--name",
            "cli run",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    info = json.loads(out)
    assert (
        info["batch_size"] == 16
        and info["validation_rows"] == 30
        and info["class_weight"] == {"yes": 2.0, "no": 1.0}
    )
    assert info["validation_metrics"]["n"] == 30 and info["name"] == "cli run"
    # warm start continues from the trained model (architecture and encoding from it)
    code, out, err = _cli(
        [
            "train",
            labelled_csv,
            "--target",
            "label",
            "--db",
            db,
            "-o",
            str(tmp_path / "w.json"),
            "--warm-start",
            out_model,
            "--iterations",
            "3",
            "--exclude",
            "id",
            "--quiet",
        ],
        capsys,
    )
    assert code == 0, err
    warm = Model.load(str(tmp_path / "w.json"))
    assert warm.spec.layer_sizes == Model.load(out_model).spec.layer_sizes and warm.features == [
        "a",
        "b",
        "c",
    ]
    code, _, err = _cli(
        [
            "train",
            labelled_csv,
            "--target",
            "label",
            "--db",
            db,
            "-o",
            str(tmp_path / "v.json"),
            "--warm-start",
            out_model,
            "--exclude",
            "a",
            "--quiet",
        ],
        capsys,
    )
    assert code == 2 and "a feature of the starting model" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--epochs", "3"], "--epochs counts passes"),
        (["--resume"], "--resume needs --name"),
        (["--checkpoint-every", "3"], "--checkpoint-every needs --name"),
        (["--class-weight", "yes"], "balanced"),
        (["--validation", "1.5"], "fraction"),
        (["--iterations", "5", "--epochs", "2"], "not allowed with"),
        (["--name", "x" * 41], "1 to 40 characters"),
        (["--batch-size", "0"], ">= 1"),
        (["--strategy", "nested", "--batch-size", "10"], "nested plan"),
        (["--validation", "0.001"], "each needs at least one"),
    ],
)
def test_cli_training_control_errors(labelled_csv, tmp_path, capsys, extra, message):
    argv = [
        "train",
        labelled_csv,
        "--target",
        "label",
        "--hidden",
        "3",
        "-o",
        str(tmp_path / "m.json"),
        *extra,
    ]
    try:
        code, _, err = _cli(argv, capsys)
    except SystemExit as exit_:  # argparse refuses the value itself
        code, (_, err) = exit_.code, capsys.readouterr()
    assert code != 0 and message in err, err
    assert len(err.strip().splitlines()) <= 2 and "Traceback" not in err
    assert not os.path.exists(tmp_path / "m.json")
