"""Reproduce the article: its 2-2-2 network, initial weights, lr 2.0 and L2 1e-3, trained for 10 and 100
iterations with each strategy, through the ``sqlgrad`` command line, on embedded DuckDB.

    python examples/article/run.py [--data examples/article/data.csv] [--iterations 10,100]

Prints one line per run (strategy, iterations, training accuracy, loss, seconds). The nested strategy is
the article's own single query; it is skipped above ``--nested-max`` iterations (default 100), where its
cost grows quadratically (docs/strategies.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.path.join(HERE, "data.csv"))
    parser.add_argument("--iterations", default="10,100")
    parser.add_argument("--strategies", default="recursive,stepwise,nested")
    parser.add_argument("--nested-max", type=int, default=100)
    args = parser.parse_args()
    print(f"{'strategy':<10} {'iterations':>10} {'accuracy':>9} {'loss':>10} {'seconds':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for k in [int(v) for v in args.iterations.split(",")]:
            for strategy in args.strategies.split(","):
                if strategy == "nested" and k > args.nested_max:
                    continue
                model = os.path.join(tmp, f"{strategy}_{k}.json")
                cmd = [
                    sys.executable,
                    "-m",
                    "sqlgrad.cli",
                    "train",
                    args.data,
                    "--target",
                    "y",
                    "--init",
                    os.path.join(HERE, "init.json"),
                    "--lr",
                    "2.0",
                    "--l2",
                    "1e-3",
                    "--iterations",
                    str(k),
                    "--strategy",
                    strategy,
                    "-o",
                    model,
                    "--json",
                ]
                info = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
                acc = info["metrics"]["accuracy"]
                print(
                    f"{strategy:<10} {k:>10} {acc:>9.4f} {info['loss']:>10.6f} {info['seconds']:>8.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
