"""The ``sqlgrad`` command line: train, predict, evaluate, and print the SQL.

Every user error ends with one line on standard error (``sqlgrad: error: ...``) and a non-zero exit
code; a traceback reaching a user is a bug.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__
from .errors import SqlgradError, UsageError

EPILOG = """examples:
  sqlgrad train examples/article/data.csv --target y --init examples/article/init.json \\
      --lr 2.0 --l2 1e-3 --iterations 100 -o model.json
  sqlgrad predict model.json examples/article/data.csv -o scored.csv
  sqlgrad evaluate model.json examples/article/data.csv
  sqlgrad train customers.csv --target churned --exclude id --impute median -o churn.json
  sqlgrad sql model.json --dialect postgres --train --strategy recursive --iterations 10
  sqlgrad load examples/article/data.csv --db postgresql://postgres@127.0.0.1:5432/test --table points
  sqlgrad train points --db postgresql://postgres@127.0.0.1:5432/test --target y -o model.json
"""


def _int_list(text: str) -> list[int]:
    if text.strip() in ("", "none"):
        return []
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"layer sizes must be positive, got {text!r}")
    return values


def _name_list(text: str) -> list[str]:
    return [v for v in text.split(",") if v != ""]


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def _positive_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    from .optim import OPTIMIZERS, SCHEDULES
    from .plans import STRATEGIES
    from .spec import ACTIVATIONS

    parser = argparse.ArgumentParser(
        prog="sqlgrad",
        description="Train multi-layer perceptrons in plain SQL, inside the database where the data lives.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sqlgrad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add_db(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--db",
            default=None,
            metavar="URL",
            help="database URL (default: in-memory DuckDB; duckdb:///file.db opens a file)",
        )

    t = sub.add_parser(
        "train",
        help="train a model in the database",
        description="Train an MLP on DATA (a table or view in --db, or a CSV/Parquet file).",
    )
    t.add_argument("data", metavar="DATA")
    t.add_argument("--target", required=True, metavar="COL", help="column to predict")
    t.add_argument(
        "--features",
        type=_name_list,
        default=None,
        metavar="A,B,...",
        help="feature columns (default: every column but the target and --exclude)",
    )
    t.add_argument(
        "--exclude",
        type=_name_list,
        default=[],
        metavar="A,B,...",
        help="columns that are not features (ids...), when --features is not given",
    )
    t.add_argument(
        "--standardize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="train on (x - mean) / std of each numeric feature, computed in SQL and folded into the "
        "model, which still scores raw rows (default: on, off with --init)",
    )
    t.add_argument(
        "--max-categories",
        type=_whole,
        default=20,
        metavar="N",
        help="text features: one-hot inputs for the N most frequent values, the rest as 'other' (default 20)",
    )
    t.add_argument(
        "--impute",
        default=None,
        choices=["mean", "median", "most-frequent"],
        help="fill NULL features with a value computed in SQL and kept in the model (boolean and text "
        "features: the most frequent value; default: a NULL is an error)",
    )
    t.add_argument(
        "--drop-nulls",
        action="store_true",
        help="skip rows with a NULL in the target or in a feature that is not imputed",
    )
    t.add_argument(
        "--hidden",
        type=_int_list,
        default=None,
        metavar="N,N,...",
        help="hidden layer widths, e.g. 16,8 (default: 16; 'none' for no hidden layer)",
    )
    t.add_argument(
        "--activation",
        default=None,
        metavar="NAME",
        help=f"hidden activation, or one per layer separated by commas ({', '.join(ACTIVATIONS)}; "
        "default relu)",
    )
    t.add_argument("--task", default="auto", choices=["auto", "classification", "regression"])
    t.add_argument(
        "--head",
        default=None,
        choices=["softmax", "sigmoid"],
        help="classification head (default softmax; sigmoid for binary)",
    )
    t.add_argument("--lr", type=_positive_float, default=None, help="learning rate (default 0.1)")
    t.add_argument("--l2", type=_positive_float, default=0.0, help="L2 penalty 0.5*l2*sum(W^2) (default 0)")
    t.add_argument("--l1", type=_positive_float, default=0.0, help="L1 penalty l1*sum(|W|) (default 0)")
    t.add_argument(
        "--optimizer",
        default="gd",
        choices=list(OPTIMIZERS),
        help="gradient descent, heavy-ball or Nesterov momentum, or Adam (default gd)",
    )
    t.add_argument(
        "--momentum", type=_positive_float, default=None, help="momentum/nesterov: mu (default 0.9)"
    )
    t.add_argument("--beta1", type=_positive_float, default=None, help="adam: first-moment decay (0.9)")
    t.add_argument("--beta2", type=_positive_float, default=None, help="adam: second-moment decay (0.999)")
    t.add_argument("--eps", type=_positive_float, default=None, help="adam: added to sqrt(v_hat) (1e-8)")
    t.add_argument(
        "--schedule",
        default="constant",
        choices=list(SCHEDULES),
        help="learning rate at update t: constant; step lr*gamma^floor(t/step-size); "
        "exponential lr*gamma^t; inverse-time lr/(1+decay*t) (default constant)",
    )
    t.add_argument(
        "--gamma", type=_positive_float, default=None, help="step (default 0.1) and exponential schedules"
    )
    t.add_argument("--step-size", type=int, default=None, metavar="N", help="step schedule: updates per step")
    t.add_argument("--decay", type=_positive_float, default=None, help="inverse-time schedule: decay")
    t.add_argument("--iterations", type=int, default=100, help="gradient steps (default 100)")
    t.add_argument(
        "--init",
        default=None,
        metavar="FILE",
        help="model or initial-weights JSON: sets the architecture and the starting weights",
    )
    t.add_argument("--seed", type=int, default=0, help="seed of the weight initialisation (default 0)")
    t.add_argument(
        "--strategy",
        default="auto",
        choices=list(STRATEGIES),
        help="how iterations become SQL statements (default auto)",
    )
    add_db(t)
    t.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    t.add_argument("--json", action="store_true", help="print the training summary as JSON")
    t.add_argument("-o", "--output", required=True, metavar="MODEL.json", help="where to write the model")

    p = sub.add_parser("predict", help="score a table with a model, in SQL")
    p.add_argument("model", metavar="MODEL.json")
    p.add_argument("data", metavar="DATA")
    add_db(p)
    p.add_argument("-o", "--output", default=None, metavar="OUT.csv", help="write CSV here (default stdout)")
    p.add_argument(
        "--view",
        default=None,
        metavar="NAME",
        help="instead of scoring now, create a view NAME in --db that scores DATA in SQL",
    )
    p.add_argument("--replace", action="store_true", help="with --view: replace an existing view")

    e = sub.add_parser("evaluate", help="metrics of a model on a table, computed in SQL")
    e.add_argument("model", metavar="MODEL.json")
    e.add_argument("data", metavar="DATA")
    add_db(e)
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")

    ld = sub.add_parser(
        "load",
        help="load a CSV/Parquet/JSON file into a table of any engine",
        description="Create table NAME in --db from FILE (read by DuckDB), for training in place.",
    )
    ld.add_argument("file", metavar="FILE")
    ld.add_argument("--table", required=True, metavar="NAME", help="the table to create")
    add_db(ld)
    ld.add_argument("--replace", action="store_true", help="drop an existing table of that name first")

    s = sub.add_parser("sql", help="print the SQL of a model's prediction or training")
    s.add_argument("model", metavar="MODEL.json")
    s.add_argument(
        "--dialect",
        default="duckdb",
        help="sqlglot dialect: duckdb, postgres, bigquery, sqlite, mysql, spark, trino...",
    )
    what = s.add_mutually_exclusive_group()
    what.add_argument("--predict", action="store_true", help="the scoring query (default)")
    what.add_argument("--train", action="store_true", help="the training statements")
    s.add_argument("--table", default="data", metavar="NAME", help="the data table named in the SQL")
    s.add_argument(
        "--view", default=None, metavar="NAME", help="with --predict: print CREATE VIEW NAME AS ..."
    )
    s.add_argument("--strategy", default="recursive", choices=[x for x in STRATEGIES if x != "auto"])
    s.add_argument("--iterations", type=int, default=10)
    s.add_argument(
        "--lr", type=_positive_float, default=None, help="default: the model's (its optimizer is kept)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return {
            "train": cmd_train,
            "predict": cmd_predict,
            "evaluate": cmd_evaluate,
            "sql": cmd_sql,
            "load": cmd_load,
        }[args.command](args)
    except SqlgradError as err:
        print(f"sqlgrad: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("sqlgrad: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of our output went away (``sqlgrad predict ... | head``): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def cmd_train(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .train import train

    if args.iterations < 0:
        raise UsageError("--iterations must be >= 0")
    if args.init and (args.hidden is not None or args.activation is not None):
        raise UsageError("--init sets the architecture: it cannot be combined with --hidden or --activation")
    activation = args.activation or "relu"
    acts = activation.split(",") if "," in activation else activation
    hidden = args.hidden if args.hidden is not None else ([] if args.init else [16])
    console = _stderr_console()
    columns = [
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
    ]
    # A live bar only on a terminal, and only once training starts (not while the data is checked).
    show = not args.quiet and console.is_terminal
    with Progress(*columns, console=console, disable=not show, transient=False) as bar:
        task = None

        def progress(done: int, loss: float) -> None:
            nonlocal task
            if task is None:
                task = bar.add_task("train", total=args.iterations, loss="-")
            bar.update(task, completed=done, loss="-" if math.isnan(loss) else f"{loss:.6g}")

        model = train(
            args.data,
            args.target,
            features=args.features,
            hidden=hidden,
            activation=acts,
            task=args.task,
            head=args.head,
            lr=args.lr,
            l2=args.l2,
            l1=args.l1,
            iterations=args.iterations,
            optimizer=args.optimizer,
            momentum=args.momentum,
            beta1=args.beta1,
            beta2=args.beta2,
            eps=args.eps,
            schedule=args.schedule,
            gamma=args.gamma,
            step_size=args.step_size,
            decay=args.decay,
            init=args.init,
            seed=args.seed,
            strategy=args.strategy,
            db=args.db,
            progress=progress,
            standardize=args.standardize if args.standardize is not None else not args.init,
            exclude=args.exclude,
            max_categories=args.max_categories,
            impute=args.impute,
            drop_nulls=args.drop_nulls,
        )
    model.save(args.output)
    info = model.training
    if args.json:
        print(json.dumps({"model": args.output, **info}, indent=1))
    elif not args.quiet:
        for note in info.get("notes", []):
            console.print(f"note: {note}", highlight=False)
        m = info["metrics"]
        scores = (
            f"accuracy {m['accuracy']:.4f}, log loss {m['log_loss']:.6g}"
            if model.task == "classification"
            else f"mse {m['mse']:.6g}, r2 {m['r2']:.6g}"
            if m.get("r2") is not None
            else f"mse {m['mse']:.6g}"
        )
        print(
            f"trained {'-'.join(map(str, model.spec.layer_sizes))} network on {info['rows']} rows: "
            f"{info['iterations']} iterations ({info['strategy']}) in {info['seconds']:.2f} s; "
            f"loss {info['loss']:.6g}; training {scores}; model written to {args.output}"
        )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .model import Model
    from .train import predict

    model = Model.load(args.model)
    if args.view:
        from .train import create_view

        if args.output:
            raise UsageError("--view creates a view in the database; it takes no --output")
        create_view(model, args.data, args.view, db=args.db, replace=args.replace)
        print(f"created view {args.view} scoring {args.data}")
        return 0
    names, rows = predict(model, args.data, db=args.db)
    if args.output:
        try:
            fh = open(args.output, "w", newline="", encoding="utf-8")  # noqa: SIM115
        except OSError as err:
            raise UsageError(f"cannot write {args.output}: {err.strerror}") from err
    else:
        fh = sys.stdout
    try:
        writer = csv.writer(fh)
        writer.writerow(names)
        writer.writerows(rows)
    finally:
        if fh is not sys.stdout:
            fh.close()
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .model import Model
    from .train import evaluate

    model = Model.load(args.model)
    metrics = evaluate(model, args.data, db=args.db)
    if args.json:
        print(json.dumps(metrics, indent=1))
    else:
        print("  ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()))
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from .data import load_file
    from .engines import connect

    with connect(args.db) as engine:
        count = load_file(engine, args.file, args.table, replace=args.replace)
    print(f"loaded {count} rows into {args.table}")
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from sqlglot.errors import SqlglotError

    from .data import DataSource, create_temp_table, prepare_select
    from .engines.base import Capabilities
    from .model import Model
    from .optim import optimizer_from_training
    from .plans import PLANS, PlanInput, TrainingProgram
    from .sqlexpr import render
    from .train import view_statement

    model = Model.load(args.model)
    caps = Capabilities(dialect=args.dialect, native_tanh=args.dialect not in ("mysql", "sqlite"))
    src = DataSource(parts=tuple(args.table.split(".")))
    if args.train:
        if args.iterations < 1:
            raise UsageError("--iterations must be >= 1")
        # the optimizer, its hyperparameters and schedule recorded in the model (gradient descent if none)
        program = TrainingProgram(model.spec, optimizer_from_training(model.training, args.lr), caps)
        prepared = "sqlgrad_run_data"
        features = model.features or [f"x{i}" for i in range(model.spec.n_inputs)]
        statements = [
            create_temp_table(
                prepared,
                prepare_select(
                    src.relation(),
                    features,
                    model.target or "y",
                    model.task,
                    model.head,
                    model.classes,
                    model.preprocessing,
                ),
            )
        ]
        inp = PlanInput(program, prepared, model.weights, args.iterations, "sqlgrad_run")
        statements += PLANS[args.strategy].statements(inp)
        last = args.iterations - 1
        comment = {"stepwise": f"-- the last three statements run once per iteration (k = 0 .. {last})"}
    else:
        features = model.features or [f"x{i}" for i in range(model.spec.n_inputs)]
        query = model.predict_select(features, src.relation(), native_tanh=caps.native_tanh)
        statements = [view_statement(args.view, query) if args.view else query]
        comment = {}
    try:
        for st in statements:
            print(render(st, args.dialect, pretty=True) + ";\n")
    except (SqlglotError, ValueError) as err:
        raise UsageError(f"cannot render for dialect {args.dialect!r}: {err}") from err
    if args.train and args.strategy in comment:
        print(comment[args.strategy])
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
