"""The article's network (2-2-2, ReLU, softmax, L2 1e-3, lr 2.0, its initial weights) on its data,
through the CLI: 100 iterations reach >= 99% accuracy and all three strategies give the same weights."""

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


def test_article_init_weights_are_the_articles():
    m = Model.load(INIT)
    (w, b), (w2, b2) = m.weights
    assert w.tolist() == [[-0.00569693, 0.00186517], [0.00414431, 0.0105101]]
    assert w2.tolist() == [[-0.01312284, -0.01269512], [0.00379152, -0.01218354]]
    assert b.tolist() == [0.0, 0.0] and b2.tolist() == [0.0, 0.0]
    assert m.activations == ["relu"] and m.head == "softmax"


@pytest.mark.slow
def test_article_100_iterations_all_strategies(tmp_path, capsys):
    data = np.loadtxt(DATA, delimiter=",", skiprows=1)
    X, y = data[:, :2], data[:, 2]
    init = Model.load(INIT)
    want, _ = R.train_gd(init.weights, ["relu"], "softmax", X, y, 2.0, 1e-3, 100)
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
                "100",
                "--strategy",
                strategy,
                "-o",
                out,
            ]
        )
        stdout, stderr = capsys.readouterr()
        assert code == 0, stderr
        assert f"100 iterations ({strategy})" in stdout
        models[strategy] = Model.load(out)
        assert models[strategy].training["metrics"]["accuracy"] >= 0.99
        assert_weights_close(models[strategy].weights, want)
    assert_weights_close(models["stepwise"].weights, models["recursive"].weights)
    assert_weights_close(models["nested"].weights, models["recursive"].weights)
