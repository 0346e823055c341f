"""Write the article's data set: x1, x2 ~ N(0, 1), y = 1 if x1 + x2 > 0 else 0.

The article used 100k rows on BigQuery; the values are rounded to 6 decimals and y is computed from the
rounded values, so the file is exactly what it claims to be.

    python examples/article/make_data.py [--rows 100000] [--seed 2017] [-o examples/article/data.csv]
"""

from __future__ import annotations

import argparse
import os

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2017)
    parser.add_argument("-o", "--output", default=os.path.join(os.path.dirname(__file__), "data.csv"))
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    x = np.round(rng.normal(size=(args.rows, 2)), 6)
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    with open(args.output, "w", encoding="ascii") as fh:
        fh.write("x1,x2,y\n")
        for a, b, c in zip(x[:, 0].tolist(), x[:, 1].tolist(), y.tolist(), strict=True):
            fh.write(f"{a:.6f},{b:.6f},{c}\n")
    print(f"wrote {args.rows} rows to {args.output}")


if __name__ == "__main__":
    main()
