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
from dataclasses import replace
from typing import Any, NoReturn

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
  sqlgrad export model.json --dialect bigquery --table shop.points --view shop.scores
  sqlgrad history --db duckdb:///runs.db --name RUN --plot history.png
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


def _positive_int(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return value


def _nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _class_weight(text: str) -> str | dict[str, float]:
    """``balanced`` or ``LABEL=W,LABEL=W`` (labels as text; matched to the classes' text)."""
    if text == "balanced":
        return text
    out: dict[str, float] = {}
    for part in text.split(","):
        label, sep, weight = part.rpartition("=")
        try:
            out[label] = float(weight)
        except ValueError:
            sep = ""
        if not sep or not label:
            raise argparse.ArgumentTypeError(f"expected 'balanced' or LABEL=WEIGHT,..., got {text!r}")
    return out


def _number(text: str) -> float:
    """Any number: the range of each hyperparameter is checked where it is used, with its own message."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


class _Parser(argparse.ArgumentParser):
    """Argument errors as one line (and where to read more), not the whole usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from .optim import OPTIMIZERS, SCHEDULES
    from .plans import STRATEGIES
    from .spec import ACTIVATIONS

    parser = _Parser(
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

    def add_data(p: argparse.ArgumentParser) -> None:
        p.add_argument("data", metavar="DATA", nargs="?", help="a table or view in --db, or a data file")
        p.add_argument(
            "--query",
            default=None,
            metavar="SQL",
            help="read the rows of this SQL query instead of DATA: one SELECT in the dialect of --db, run "
            "as written (the only option whose text is read as SQL; names are never parsed)",
        )

    t = sub.add_parser(
        "train",
        help="train a model in the database",
        description="Train an MLP on DATA (a table or view in --db, or a CSV/Parquet file), or on the rows "
        "of --query.",
    )
    add_data(t)
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
    t.add_argument("--lr", type=_number, default=None, help="learning rate (default 0.1)")
    t.add_argument("--l2", type=_number, default=0.0, help="L2 penalty 0.5*l2*sum(W^2) (default 0)")
    t.add_argument("--l1", type=_number, default=0.0, help="L1 penalty l1*sum(|W|) (default 0)")
    t.add_argument(
        "--optimizer",
        default="gd",
        choices=list(OPTIMIZERS),
        help="gradient descent, heavy-ball or Nesterov momentum, or Adam (default gd)",
    )
    t.add_argument("--momentum", type=_number, default=None, help="momentum/nesterov: mu (default 0.9)")
    t.add_argument("--beta1", type=_number, default=None, help="adam: first-moment decay (0.9)")
    t.add_argument("--beta2", type=_number, default=None, help="adam: second-moment decay (0.999)")
    t.add_argument("--eps", type=_number, default=None, help="adam: added to sqrt(v_hat) (1e-8)")
    t.add_argument(
        "--schedule",
        default="constant",
        choices=list(SCHEDULES),
        help="learning rate at update t: constant; step lr*gamma^floor(t/step-size); "
        "exponential lr*gamma^t; inverse-time lr/(1+decay*t) (default constant)",
    )
    t.add_argument("--gamma", type=_number, default=None, help="step (default 0.1) and exponential schedules")
    t.add_argument("--step-size", type=int, default=None, metavar="N", help="step schedule: updates per step")
    t.add_argument("--decay", type=_number, default=None, help="inverse-time schedule: decay")
    length = t.add_mutually_exclusive_group()
    length.add_argument("--iterations", type=_whole, default=None, help="updates (default 100)")
    length.add_argument(
        "--epochs", type=_positive_int, default=None, help="passes over the training rows (with --batch-size)"
    )
    t.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        metavar="N",
        help="mini-batches of N rows, drawn in SQL from --seed, reshuffled each epoch (default: full batch)",
    )
    t.add_argument(
        "--validation",
        type=_fraction,
        default=0.0,
        metavar="FRACTION",
        help="hold out this fraction of the rows; validation loss and accuracy at every check",
    )
    t.add_argument(
        "--early-stopping",
        type=_positive_int,
        default=None,
        metavar="PATIENCE",
        help="stop after PATIENCE checks without improvement (validation loss, else training loss); "
        "keep the best weights",
    )
    t.add_argument(
        "--tolerance",
        type=_nonnegative_float,
        default=None,
        help="an improvement must exceed this; alone: stop at the first check that improves less",
    )
    t.add_argument(
        "--eval-every",
        type=_positive_int,
        default=None,
        metavar="N",
        help="updates between checks (default one epoch; one update in full batch)",
    )
    t.add_argument(
        "--class-weight",
        type=_class_weight,
        default=None,
        metavar="balanced|LABEL=W,...",
        help="weight each row's loss by its class",
    )
    t.add_argument(
        "--name",
        default=None,
        metavar="RUN",
        help="name the run: its history, checkpoints and settings stay in tables RUN_history, "
        "RUN_checkpoint, RUN_meta",
    )
    t.add_argument(
        "--checkpoint-every",
        type=_positive_int,
        default=None,
        metavar="N",
        help="with --name: checkpoint every N updates",
    )
    t.add_argument(
        "--resume", action="store_true", help="with --name: continue the run from its last checkpoint"
    )
    start = t.add_mutually_exclusive_group()
    start.add_argument(
        "--init",
        default=None,
        metavar="FILE",
        help="model or initial-weights JSON: sets the architecture and the starting weights",
    )
    start.add_argument(
        "--warm-start",
        default=None,
        metavar="MODEL.json",
        help="continue training a model: its architecture, encoding and weights (standardisation stays on)",
    )
    t.add_argument(
        "--seed", type=int, default=0, help="seed of the initialisation, the validation split and batches"
    )
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
    add_data(p)
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
    add_data(e)
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
    s.add_argument("--lr", type=_number, default=None, help="default: the model's (its optimizer is kept)")
    s.add_argument(
        "--gather",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with --train: wide layers' gradients summed as list dot products over blocks of rows, as "
        "train() does on DuckDB when the rows fit in memory (default: as the model's training did)",
    )
    _add_interfaces(sub, add_db)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            _prepare_train(args)
        return {
            "train": cmd_train,
            "predict": cmd_predict,
            "evaluate": cmd_evaluate,
            "sql": cmd_sql,
            "load": cmd_load,
            "export": cmd_export,
            "history": cmd_history,
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


def _data(args: argparse.Namespace) -> Any:
    """DATA, or the :class:`~sqlgrad.sources.Query` of ``--query``: exactly one of them."""
    from .sources import Query

    if args.query is not None:
        if args.data is not None:
            raise UsageError(f"give DATA or --query, not both (DATA is {args.data!r})")
        return Query(args.query)
    if args.data is None:
        raise UsageError("DATA is missing: name a table, a view or a file, or give --query SQL")
    return args.data


def cmd_train(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .train import train

    if args.iterations is not None and args.iterations < 0:
        raise UsageError("--iterations must be >= 0")
    if args.epochs is not None and args.batch_size is None:
        raise UsageError(
            "--epochs counts passes of --batch-size mini-batches; in full batch use --iterations"
        )
    start = args.init or args.warm_start
    flag = "--init" if args.init else "--warm-start"
    if start and (args.hidden is not None or args.activation is not None):
        raise UsageError(f"{flag} sets the architecture: it cannot be combined with --hidden or --activation")
    activation = args.activation or "relu"
    acts = activation.split(",") if "," in activation else activation
    hidden = args.hidden if args.hidden is not None else ([] if start else [16])
    console = _stderr_console()
    columns = [
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[speed]}"),
        TimeElapsedColumn(),
    ]
    # A live bar only on a terminal, and only once training starts (not while the data is checked).
    show = not args.quiet and console.is_terminal
    with Progress(*columns, console=console, disable=not show, transient=False) as bar:
        task = None
        meter = _Throughput(args.batch_size)

        def progress(done: int, loss: float, rows: int | None = None) -> None:
            nonlocal task
            meter.rows_per_update = args.batch_size or rows or meter.rows_per_update
            if task is None:
                # with --epochs the number of updates is known once the rows are counted
                total = args.iterations if args.iterations is not None else (None if args.epochs else 100)
                task = bar.add_task("train", total=total, loss="-", speed="")
            loss_text = "-" if math.isnan(loss) else f"{loss:.6g}"
            bar.update(task, completed=done, loss=loss_text, speed=meter.text(done))

        model = train(
            _data(args),
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
            init=start,
            seed=args.seed,
            strategy=args.strategy,
            db=args.db,
            progress=progress,
            standardize=args.standardize if args.standardize is not None else not args.init,
            batch_size=args.batch_size,
            epochs=args.epochs,
            validation=args.validation,
            early_stopping=args.early_stopping,
            tolerance=args.tolerance,
            eval_every=args.eval_every,
            class_weight=args.class_weight,
            name=args.name,
            checkpoint_every=args.checkpoint_every,
            resume=args.resume,
            exclude=args.exclude,
            max_categories=args.max_categories,
            impute=args.impute,
            drop_nulls=args.drop_nulls,
        )
    model.save(args.output)
    _save_to_db(args, model)
    info = model.training
    if args.json:
        print(json.dumps({"model": args.output, **info}, indent=1))
    elif not args.quiet:
        for note in info.get("notes", []):
            console.print(f"note: {note}", highlight=False)
        console.print(_summary_table(model, args.output))
        if sys.stdout.isatty():  # the table said it all; the line below is for scripts and logs
            return 0
        m = info["metrics"]
        scores = (
            f"accuracy {m['accuracy']:.4f}, log loss {m['log_loss']:.6g}"
            if model.task == "classification"
            else f"mse {m['mse']:.6g}, r2 {m['r2']:.6g}"
            if m.get("r2") is not None
            else f"mse {m['mse']:.6g}"
        )
        if info.get("stopped"):
            console.print(f"note: {info['stopped']}", highlight=False)
        val = info.get("validation_metrics")
        if val:
            scores += (
                f"; validation accuracy {val['accuracy']:.4f}"
                if model.task == "classification"
                else f"; validation mse {val['mse']:.6g}"
            )
        print(
            f"trained {'-'.join(map(str, model.spec.layer_sizes))} network on {info['rows']} rows: "
            f"{info['iterations']} iterations ({info['strategy']}) in {info['seconds']:.2f} s; "
            f"loss {info['loss']:.6g}; training {scores}; model written to {args.output}"
        )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .store import resolve_model
    from .train import predict

    model = resolve_model(args.model, args.db)
    data = _data(args)
    if args.view:
        from .train import create_view

        if args.output:
            raise UsageError("--view creates a view in the database; it takes no --output")
        sql = create_view(model, data, args.view, db=args.db, replace=args.replace)
        shown = args.data if args.query is None else "the query"
        if args.json:
            print(json.dumps({"view": args.view, "data": shown, "sql": sql}, indent=1))
        else:
            print(f"created view {args.view} scoring {shown}")
        return 0
    names, rows = predict(model, data, db=args.db)
    if args.output:
        try:
            fh = open(args.output, "w", newline="", encoding="utf-8")  # noqa: SIM115
        except OSError as err:
            raise UsageError(f"cannot write {args.output}: {err.strerror}") from err
    else:
        fh = sys.stdout
    try:
        if args.json:  # JSON Lines: one object per row
            for row in rows:
                fh.write(json.dumps(dict(zip(names, map(_json_value, row), strict=True))) + "\n")
        else:
            writer = csv.writer(fh)
            writer.writerow(names)
            writer.writerows(rows)
    finally:
        if fh is not sys.stdout:
            fh.close()
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .engines import connect
    from .store import resolve_model
    from .train import evaluate

    if args.plot:
        from .plots import require_matplotlib

        require_matplotlib()
    with connect(args.db) as engine:
        model = resolve_model(args.model, engine)
        data = _data(args)
        metrics = evaluate(model, data, db=engine)
        if args.plot:
            _evaluate_plot(engine, model, data, args.plot)
            metrics["plot"] = args.plot
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
    if args.json:
        print(json.dumps({"table": args.table, "rows": count}))
    else:
        print(f"loaded {count} rows into {args.table}")
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from sqlglot.errors import SqlglotError

    from .data import DataSource, create_temp_table, prepare_select
    from .engines import ENGINE_CLASSES, capabilities_for
    from .optim import optimizer_from_training
    from .plans import PLANS, PlanInput, TrainingProgram
    from .sqlexpr import render
    from .store import resolve_model
    from .train import view_statement

    model = resolve_model(args.model, args.db)
    caps = capabilities_for(args.dialect)  # the SQL that engine would run
    src = DataSource(parts=tuple(args.table.split(".")))
    if args.train:
        if args.iterations < 1:
            raise UsageError("--iterations must be >= 1")
        # the optimizer, its hyperparameters and schedule recorded in the model (gradient descent if none)
        unable = PLANS[args.strategy].problem(caps, args.iterations)
        if unable and args.dialect in ENGINE_CLASSES:  # SQL that engine would refuse: say so instead
            raise UsageError(unable)
        program = TrainingProgram(model.spec, optimizer_from_training(model.training, args.lr), caps)
        gather = bool(model.training.get("gathered_layers")) if args.gather is None else args.gather
        if gather and PLANS[args.strategy].gathers:  # a dialect that cannot gather has nothing to gather
            program = replace(program, gather=True)
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
                    model.class_labels() if model.task == "classification" else None,
                    model.preprocessing,
                ),
            )
        ]
        inp = PlanInput(program, prepared, model.weights, args.iterations, "sqlgrad_run")
        statements += PLANS[args.strategy].statements(inp)
        last = args.iterations - 1
        per_update = len(statements) - 2  # after the prepared data and the state table
        each = (
            f"-- the last {per_update} statement(s) run once per update (k = 0 .. {last})"
            if caps.mutable_tables
            else f"-- the last statement runs once per update, with k = 0 .. {last} in place of 0"
        )
        comment = {"stepwise": each}
    else:
        features = model.features or [f"x{i}" for i in range(model.spec.n_inputs)]
        query = model.predict_select(
            features, src.relation(), native_tanh=caps.native_tanh, vector_dot=caps.vector_dot
        )
        statements = [view_statement(args.view, query) if args.view else query]
        comment = {}
    try:
        texts = [render(st, args.dialect, pretty=True) for st in statements]
    except (SqlglotError, ValueError) as err:
        raise UsageError(f"cannot render for dialect {args.dialect!r}: {err}") from err
    if args.json:
        print(json.dumps({"dialect": args.dialect, "statements": texts}, indent=1))
        return 0
    for text in texts:
        print(text + ";\n")
    if args.train and args.strategy in comment:
        print(comment[args.strategy])
    return 0


# --- export, history, saved models, plots and --json (the interfaces of issue 7) ------------------------


def _add_interfaces(sub: Any, add_db: Any) -> None:
    """Options and subcommands added to the parser built above: ``train --save-to-db``, ``--json`` on
    predict/load/sql, ``evaluate --plot``, ``sqlgrad export`` and ``sqlgrad history``."""
    from .export import DIALECTS

    t = sub.choices["train"]
    t.add_argument(
        "--save-to-db",
        default=None,
        metavar="NAME",
        help="also store the model in --db's table sqlgrad_models under NAME (then MODEL can be db:NAME)",
    )
    t.add_argument("--replace", action="store_true", help="with --save-to-db: replace a model of that name")
    model_help = " (MODEL.json, or db:NAME for a model saved in --db)"
    for name in ("predict", "evaluate", "sql"):
        for action in sub.choices[name]._actions:
            if action.dest == "model":
                action.help = f"the model{model_help}"
    sub.choices["predict"].add_argument(
        "--json", action="store_true", help="write JSON Lines (one object per row) instead of CSV"
    )
    sub.choices["evaluate"].add_argument(
        "--plot",
        default=None,
        metavar="FILE.png",
        help="draw a confusion matrix (classification; counts by GROUP BY in SQL) or predicted against "
        "actual values (regression; at most 5,000 rows sampled in SQL); needs sqlgrad[plot]",
    )
    sub.choices["load"].add_argument("--json", action="store_true", help="print the result as JSON")
    sql = sub.choices["sql"]
    sql.add_argument("--json", action="store_true", help="print the statements as a JSON object")
    add_db(sql)

    x = sub.add_parser(
        "export",
        help="write SQL that scores a table with no sqlgrad installed",
        description="Write the scoring SQL of a model for a dialect: a query, or CREATE VIEW with --view; "
        "weights inlined as literals, or kept in a weights table (layer, i, j, value) with "
        "--weights-table. The model's preprocessing is part of the SQL, as in sqlgrad predict.",
    )
    x.add_argument("model", metavar="MODEL", help=f"the model{model_help}")
    x.add_argument(
        "--dialect", default="duckdb", metavar="NAME", help=f"{', '.join(DIALECTS)} (default duckdb)"
    )
    x.add_argument("--table", default="data", metavar="DATA", help="the table or view scored (default data)")
    x.add_argument(
        "--columns",
        type=_name_list,
        default=None,
        metavar="A,B,...",
        help="columns of DATA the output keeps, in order (default: the model's features, which are "
        "always kept)",
    )
    x.add_argument("--view", default=None, metavar="NAME", help="write CREATE VIEW NAME AS the query")
    x.add_argument("--replace", action="store_true", help="with --view: CREATE OR REPLACE VIEW")
    x.add_argument(
        "--weights-table",
        default=None,
        metavar="NAME",
        help="keep the weights in table NAME (layer, i, j, value; i = -1 for biases): the output "
        "creates and fills it, and the query reads it",
    )
    x.add_argument(
        "--weights-only",
        action="store_true",
        help="with --weights-table: only DELETE FROM NAME and INSERT the weights (to put a retrained "
        "model of the same architecture and preprocessing under an exported view)",
    )
    add_db(x)
    x.add_argument("-o", "--output", default=None, metavar="FILE.sql", help="write here (default stdout)")
    x.add_argument("--json", action="store_true", help="print the statements as a JSON object")

    h = sub.add_parser(
        "history",
        help="show a named run's history (loss, validation) as a table, JSON or a plot",
        description="Print the history table RUN_history of a run trained with --name in --db.",
    )
    add_db(h)
    h.add_argument("--name", required=True, metavar="RUN", help="the run's name (train --name)")
    h.add_argument(
        "--plot",
        default=None,
        metavar="FILE.png",
        help="draw loss (and validation loss and accuracy) against iteration; needs sqlgrad[plot]",
    )
    h.add_argument("--json", action="store_true", help="print the history as a JSON object")


def _summary_table(model: Any, output: str) -> Any:
    """The end-of-training table: the run, the loss, the scores (training and validation)."""
    from rich.table import Table

    info = model.training
    table = Table(title="sqlgrad: training summary", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    seconds = info["seconds"]
    rows_seen = info["rows"] * info["iterations"] if not info.get("batch_size") else None
    if info.get("batch_size"):
        rows_seen = info["batch_size"] * info["iterations"]
    speed = (
        f"{info['iterations'] / seconds:,.1f} it/s, {_si(rows_seen / seconds)} rows/s" if seconds > 0 else "-"
    )
    network = "-".join(map(str, model.spec.layer_sizes))
    acts = ", ".join(model.activations) or "none"
    table.add_row("network", f"{network} ({acts}; {model.head} head)")
    table.add_row("engine / strategy", f"{info['engine']} / {info['strategy']}")
    batches = f", batches of {info['batch_size']}" if info.get("batch_size") else ""
    table.add_row("training rows", f"{info['rows']:,}{batches}")
    optimizer = f"{info['optimizer']}, lr {info['lr']:g}"
    table.add_row("updates", f"{info['iterations']:,} ({optimizer})")
    table.add_row("time", f"{seconds:.2f} s ({speed})")
    table.add_row("final loss", f"{info['loss']:.6g}")
    for label, metrics in (("training", info["metrics"]), ("validation", info.get("validation_metrics"))):
        if metrics:
            shown = [
                k for k in ("accuracy", "log_loss", "mse", "rmse", "mae", "r2") if metrics.get(k) is not None
            ]
            table.add_row(
                label,
                ", ".join(
                    f"{k.replace('_', ' ')} {metrics[k]:{'.4f' if k == 'accuracy' else '.6g'}}" for k in shown
                ),
            )
    if info.get("stopped"):
        table.add_row("stopped", f"{info['stopped']} (best at update {info.get('best_iteration')})")
    table.add_row("model", output)
    return table


class _Throughput:
    """Updates and rows per second for the progress bar: rows per update are the batch size, or the
    training rows when :func:`sqlgrad.train.train` passes them as ``progress(done, loss, rows)``."""

    def __init__(self, rows_per_update: int | None = None) -> None:
        self.rows_per_update = rows_per_update
        self.start: float | None = None

    def text(self, done: int) -> str:
        import time

        now = time.perf_counter()
        if self.start is None:
            self.start = now
        if done <= 0 or now <= self.start:
            return ""
        rate = done / (now - self.start)
        out = f"{rate:,.1f} it/s"
        if self.rows_per_update:
            out += f", {_si(rate * self.rows_per_update)} rows/s"
        return out


def _si(x: float) -> str:
    """``12.3k``, ``4.56M``: a rate in three significant digits."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def _json_value(value: Any) -> Any:
    """A value of a result row as JSON: numbers (NaN and infinities as null), text, ISO dates."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    try:
        number = float(value)  # Decimal, numpy scalars
    except (TypeError, ValueError):
        return str(value)
    return number if math.isfinite(number) else None


def _prepare_train(args: argparse.Namespace) -> None:
    """Before training: ``--init``/``--warm-start db:NAME`` read from ``--db``; ``--save-to-db`` needs a
    database that keeps the model, and a free name."""
    from .store import is_reference, resolve_model

    for option in ("init", "warm_start"):
        ref = getattr(args, option, None)
        if isinstance(ref, str) and is_reference(ref):
            setattr(args, option, resolve_model(ref, args.db))  # train() takes a Model as well as a path
    if args.replace and not args.save_to_db:
        raise UsageError("--replace applies to --save-to-db")
    if not args.save_to_db:
        return
    if not args.db or args.db.split("://", 1)[-1] in ("", "/", "/:memory:", ":memory:"):
        raise UsageError("--save-to-db stores the model in --db: give a database URL that persists")
    if args.replace:
        return
    from .engines import connect
    from .store import TABLE, list_models

    with connect(args.db) as engine:
        if args.save_to_db in {name for name, _ in list_models(engine)}:
            raise UsageError(f"model {args.save_to_db!r} is already in {TABLE}; pass --replace to replace it")


def _save_to_db(args: argparse.Namespace, model: Any) -> None:
    """``train --save-to-db NAME``: store the trained model in ``--db``'s ``sqlgrad_models``."""
    if not args.save_to_db:
        return
    from .engines import connect
    from .store import TABLE, save_model

    with connect(args.db) as engine:
        save_model(engine, args.save_to_db, model, replace=args.replace)
    if not args.quiet and not args.json:
        _stderr_console().print(f"model saved in {TABLE} as {args.save_to_db}", highlight=False)


def _evaluate_plot(engine: Any, model: Any, data: Any, path: str) -> None:
    from .plots import confusion_counts, plot_confusion, plot_regression, regression_sample

    if model.task == "classification":
        labels, counts = confusion_counts(engine, model, data)
        shown = data if isinstance(data, str) else "query"
        plot_confusion(labels, counts, path, f"{model.target}: confusion matrix ({shown})")
    else:
        actual, predicted, n = regression_sample(engine, model, data)
        shown = f"{len(actual)} of {n} rows" if len(actual) < n else f"{n} rows"
        plot_regression(actual, predicted, path, f"{model.target}: predicted vs actual ({shown})")


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_statements, render_statements
    from .store import resolve_model

    model = resolve_model(args.model, args.db)
    statements = export_statements(
        model,
        args.dialect,
        table_name=args.table,
        columns=args.columns,
        view=args.view,
        replace=args.replace,
        weights_table=args.weights_table,
        weights_only=args.weights_only,
    )
    texts = render_statements(statements, args.dialect, pretty=True)
    if args.json:
        text = json.dumps(
            {
                "dialect": args.dialect,
                "view": args.view,
                "weights_table": args.weights_table,
                "statements": texts,
            },
            indent=1,
        )
    else:
        text = ";\n\n".join(texts) + ";"
    if not args.output:
        print(text)
        return 0
    try:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    except OSError as err:
        raise UsageError(f"cannot write {args.output}: {err.strerror}") from err
    if not args.json:
        print(f"wrote {len(texts)} {args.dialect} statements to {args.output}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from .engines import connect
    from .plots import plot_history, read_history, require_matplotlib

    if args.plot:
        require_matplotlib()
    if not args.db:
        raise UsageError("history reads a run's table from --db: give the database URL it trained in")
    with connect(args.db) as engine:
        columns, rows = read_history(engine, args.name)
    if args.plot:
        plot_history(rows, args.plot, f"run {args.name}")
    if args.json:
        out: dict[str, Any] = {"run": args.name, "columns": columns, "rows": rows}
        if args.plot:
            out["plot"] = args.plot
        print(json.dumps(out, indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table

    view = Table(title=f"run {args.name}: {len(rows)} rows", title_justify="left")
    for c in columns:
        view.add_column(c, justify="right")
    for r in rows:
        view.add_row(*(_cell(r[c]) for c in columns))
    Console(soft_wrap=False).print(view)
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
