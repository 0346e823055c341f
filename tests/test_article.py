"""The article's network (2-2-2, ReLU, softmax, L2 1e-3, lr 2.0, its initial weights) on its data,
through the CLI: 100 iterations reach >= 99% accuracy, all three strategies give the same weights, and
the accuracies and losses of ``examples/article/README.md`` ("What we measured") are what these runs give.

The article example has no figure; its README's table is checked instead (to the digits it prints; its
seconds are not checked)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import reference as R
from conftest import assert_weights_close
from sqlgrad.cli import main
from sqlgrad.model import Model

HERE = os.path.dirname(__file__)
ARTICLE = os.path.join(HERE, "..", "examples", "article")
DATA = os.path.join(ARTICLE, "data.csv")
INIT = os.path.join(ARTICLE, "init.json")
README = os.path.join(ARTICLE, "README.md")


def measured() -> dict[tuple[str, int], tuple[str, str]]:
    """The README's table "What we measured": (strategy, iterations) -> (accuracy, loss) as printed."""
    with open(README, encoding="utf-8") as fh:
        text = fh.read()
    section = text.split("## What we measured", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in ("recursive", "stepwise", "nested"):
            rows[(cells[0], int(cells[1]))] = (cells[2], cells[3])
    return rows


def test_article_readme_table_is_complete():
    assert set(measured()) == {(s, k) for s in ("recursive", "stepwise", "nested") for k in (10, 100)}


def test_article_init_weights_are_the_articles():
    m = Model.load(INIT)
    (w, b), (w2, b2) = m.weights
    assert w.tolist() == [[-0.00569693, 0.00186517], [0.00414431, 0.0105101]]
    assert w2.tolist() == [[-0.01312284, -0.01269512], [0.00379152, -0.01218354]]
    assert b.tolist() == [0.0, 0.0] and b2.tolist() == [0.0, 0.0]
    assert m.activations == ["relu"] and m.head == "softmax"


@pytest.mark.slow
@pytest.mark.parametrize("iterations", [10, 100])
def test_article_all_strategies(tmp_path, capsys, iterations):
    data = np.loadtxt(DATA, delimiter=",", skiprows=1)
    X, y = data[:, :2], data[:, 2]
    init = Model.load(INIT)
    want, _ = R.train_gd(init.weights, ["relu"], "softmax", X, y, 2.0, 1e-3, iterations)
    table = measured()
    models = {}
    for strategy in ("recursive", "stepwise", "nested"):
        out = str(tmp_path / f"{strategy}.json")
        code = main(
            [
                "train",
                DATA,
                "--target",
                "y",
                "--init",
                INIT,
                "--lr",
                "2.0",
                "--l2",
                "1e-3",
                "--iterations",
                str(iterations),
                "--strategy",
                strategy,
                "-o",
                out,
            ]
        )
        stdout, stderr = capsys.readouterr()
        assert code == 0, stderr
        assert f"{iterations} iterations ({strategy})" in stdout
        models[strategy] = Model.load(out)
        training = models[strategy].training
        if iterations == 100:
            assert training["metrics"]["accuracy"] >= 0.99
        assert_weights_close(models[strategy].weights, want)
        # the README shows what this run gives, to the digits it prints
        got = (f"{training['metrics']['accuracy']:.4f}", f"{training['loss']:.6f}")
        assert got == table[(strategy, iterations)], (README, strategy, iterations, got)
    assert_weights_close(models["stepwise"].weights, models["recursive"].weights)
    assert_weights_close(models["nested"].weights, models["recursive"].weights)
