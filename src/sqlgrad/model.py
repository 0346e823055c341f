"""A trained model: the portable JSON file, and its prediction and evaluation as SQL.

The file holds the features, target, task, classes, and ``"layers": [{"W": [[...]], "b": [...],
"activation": "relu"}, ..., {"W": ..., "b": ..., "activation": "softmax"}]``; the last layer's
activation is the head. Weights are written with ``repr`` precision, so a file read back gives the
same doubles.

A model trained on prepared features also has ``"preprocessing"``: one entry per feature column, in the
order of ``features``, telling how the column becomes network inputs (:class:`sqlgrad.data.ColumnPrep`)::

    "preprocessing": [
     {"column": "age", "kind": "numeric", "fill": 41.5, "mean": 40.2, "std": 12.9},
     {"column": "colour", "kind": "categorical", "categories": ["red", "blue"], "other": true},
     {"column": "member", "kind": "boolean"}]

``fill`` replaces a NULL (``COALESCE``); ``categories`` are one-hot inputs in that order, then one
``other`` input when ``other`` is true (every other value, unseen ones included); a boolean is 1/0.
``mean``/``std`` record the standardisation the network was trained with: it is folded into the first
layer's weights (``W[i] / std``, ``b - mean * W[i] / std``), so the stored weights, the prediction SQL
and any numpy forward pass all take the raw value (a ``"constant": true`` column, std 0 in training,
has a zero weight row). A file without ``"preprocessing"`` (every earlier model) casts each feature to
DOUBLE, as before. A row with a NULL in a feature that has no ``fill`` gets NULL predictions.

>>> import numpy as np
>>> m = Model(features=["x1", "x2"], target="y", task="classification", classes=[0, 1],
...           activations=["relu"], head="softmax",
...           weights=[(np.eye(2), np.zeros(2)), (np.eye(2), np.zeros(2))])
>>> Model.from_dict(m.to_dict()).spec.layer_sizes
(2, 2, 2)
>>> q = m.predict_select(["x1", "x2"], source=exp.to_table("points"))
>>> [e.alias_or_name for e in q.expressions]
['x1', 'x2', 'predicted_y', 'probability_0', 'probability_1']
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlglot import exp

from .autodiff import build_graph
from .data import ColumnPrep, encode, raw_encoding
from .errors import ModelFileError, SpecError, UsageError
from .lowering import leaf_columns, sigmoid_expr, stage
from .spec import ModelSpec, Weights
from .sqlexpr import alias, case, col, eq, fexp, ident, num, paren, to_double, value_literal

if TYPE_CHECKING:
    from .engines.base import VectorDot

FORMAT = "sqlgrad-model"
VERSION = 1
PREFIX = "__sg_"
"""Prefix of the internal columns of a prediction query, so they never meet a user's column names."""


@dataclass
class Model:
    """A network with its data contract (features, target, classes) and how it was trained."""

    features: list[str]
    target: str
    task: str
    head: str
    activations: list[str]
    weights: Weights
    classes: list | None = None
    l2: float = 0.0
    l1: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    preprocessing: list[ColumnPrep] | None = None
    """How each feature column becomes inputs; None: every feature is one input, cast to DOUBLE."""

    @property
    def encoding(self) -> list[ColumnPrep]:
        """The feature encoding: :attr:`preprocessing`, or each feature cast to DOUBLE."""
        return list(self.preprocessing) if self.preprocessing is not None else raw_encoding(self.features)

    @property
    def spec(self) -> ModelSpec:
        sizes = [np.shape(w)[0] for w, _ in self.weights] + [np.shape(self.weights[-1][0])[1]]
        return ModelSpec(
            sizes[0], tuple(sizes[1:-1]), tuple(self.activations), self.head, sizes[-1], self.l2, self.l1
        )

    # --- file ----------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        layers = []
        acts = [*self.activations, self.head]
        for (w, b), a in zip(self.weights, acts, strict=True):
            layers.append(
                {"W": np.asarray(w, float).tolist(), "b": np.asarray(b, float).tolist(), "activation": a}
            )
        out: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "features": list(self.features),
        }
        if self.preprocessing is not None:
            out["preprocessing"] = [p.to_dict() for p in self.preprocessing]
        return {
            **out,
            "target": self.target,
            "task": self.task,
            "head": self.head,
            "classes": self.classes,
            "l2": self.l2,
            "l1": self.l1,
            "layers": layers,
            "training": self.training,
            "history": self.history,
        }

    def save(self, path: str) -> None:
        """Write the model as JSON (refusing NaN or infinite weights)."""
        for w, b in self.weights:
            if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
                raise SpecError("the model has NaN or infinite weights; it was not written")
        try:
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(self.to_dict(), fh, indent=1, allow_nan=False)
                fh.write("\n")
        except OSError as err:
            raise UsageError(f"cannot write {path}: {err.strerror}") from err

    @classmethod
    def load(cls, path: str) -> Model:
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError as err:
            raise ModelFileError(f"model file not found: {path}") from err
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ModelFileError(f"{path} is not a readable JSON model file: {err}") from err
        return cls.from_dict(data, origin=path)

    @classmethod
    def from_dict(cls, data: Any, origin: str = "model") -> Model:
        if not isinstance(data, dict):
            raise ModelFileError(f"{origin}: a model file holds a JSON object")
        if data.get("format", FORMAT) != FORMAT:
            raise ModelFileError(f"{origin}: not a sqlgrad model (format {data.get('format')!r})")
        if data.get("version", VERSION) != VERSION:
            raise ModelFileError(
                f"{origin}: model file version {data.get('version')!r}; this sqlgrad reads {VERSION}"
            )
        weights, acts = parse_layers(data.get("layers"), origin)
        head = acts[-1]
        preprocessing = parse_preprocessing(data.get("preprocessing"), data.get("features"), origin)
        try:
            model = cls(
                features=[str(f) for f in data.get("features") or []],
                target=str(data.get("target", "")),
                task=data.get("task") or ("regression" if head == "identity" else "classification"),
                head=head,
                activations=acts[:-1],
                weights=weights,
                classes=data.get("classes"),
                l2=float(data.get("l2", 0.0)),
                l1=float(data.get("l1", 0.0)),
                history=list(data.get("history") or []),
                training=dict(data.get("training") or {}),
                preprocessing=preprocessing,
            )
            model.spec.check_weights(model.weights)
        except (TypeError, ValueError, SpecError) as err:
            raise ModelFileError(f"{origin}: {err}") from err
        if preprocessing is not None:
            width = sum(p.width for p in preprocessing)
            if width != model.spec.n_inputs:
                raise ModelFileError(
                    f"{origin}: the preprocessing makes {width} inputs but the first layer takes "
                    f"{model.spec.n_inputs}"
                )
        elif model.features and len(model.features) != model.spec.n_inputs:
            raise ModelFileError(
                f"{origin}: {len(model.features)} features but the first layer takes "
                f"{model.spec.n_inputs} inputs"
            )
        if head in ("softmax", "sigmoid") and model.classes is not None:
            want = model.spec.n_outputs if head == "softmax" else 2
            if len(model.classes) != want:
                raise ModelFileError(f"{origin}: {len(model.classes)} classes for a {head} head of {want}")
        return model

    # --- SQL -----------------------------------------------------------------------------------------

    def _constants(self, graph: Any) -> dict:
        values: dict = {}
        for (wn, bn), (w, b) in zip(graph.params, self.weights, strict=True):
            values[wn] = [num(float(v)) for v in np.asarray(w, float).ravel()]
            values[bn] = [num(float(v)) for v in np.asarray(b, float).ravel()]
        return values

    def parameter_columns(self) -> list[tuple[str, int, int, int]]:
        """``(column, layer, i, j)`` for every parameter, as a ``params`` relation of
        :meth:`predict_select` names them: ``__sg_w{layer}_{i}_{j}`` for ``W[i][j]`` of a layer (1-based)
        and ``__sg_b{layer}_{j}`` for ``b[j]`` (given ``i = -1``).

        >>> m = Model(["x"], "y", "regression", "identity", [], [(np.ones((1, 1)), np.zeros(1))])
        >>> m.parameter_columns()
        [('__sg_w1_0_0', 1, 0, 0), ('__sg_b1_0', 1, -1, 0)]
        """
        out = []
        for k, (w, _) in enumerate(self.weights, start=1):
            fan_in, fan_out = np.shape(w)
            out += [(f"{PREFIX}w{k}_{i}_{j}", k, i, j) for i in range(fan_in) for j in range(fan_out)]
            out += [(f"{PREFIX}b{k}_{j}", k, -1, j) for j in range(fan_out)]
        return out

    def output_columns(self) -> list[str]:
        """Columns a prediction adds: ``predicted_<target>`` and one ``probability_<class>`` per class."""
        cols = [f"predicted_{self.target or 'value'}"]
        if self.task == "classification":
            cols += [f"probability_{c}" for c in self.class_labels()]
        return cols

    def class_labels(self) -> list:
        if self.classes is not None:
            return list(self.classes)
        return list(range(self.spec.n_outputs if self.head == "softmax" else 2))

    def predict_select(
        self,
        columns: Sequence[str],
        source: exp.Expression,
        native_tanh: bool = True,
        params: exp.Query | None = None,
        vector_dot: VectorDot | None = None,
    ) -> exp.Select:
        """``SELECT <columns>, predicted_<target>, probability_<class>... FROM source``, weights inlined.

        ``columns`` are the source's columns to keep (all of them, for a scoring view). ``params``, when
        given, is a one-row relation with the :meth:`parameter_columns`: it is cross-joined with the
        source and the weights are read from it instead of inlined (:mod:`sqlgrad.export` builds it
        from a weights table). ``native_tanh`` and ``vector_dot`` are the target engine's
        :class:`~sqlgrad.engines.base.Capabilities` of those names (without ``vector_dot`` every product
        is scalar, which every engine accepts).
        """
        clash = [c for c in self.output_columns() if c in columns]
        if clash:
            raise UsageError(f"the data already has a column named {clash[0]!r}")
        if any(c.startswith(PREFIX) for c in columns):
            raise UsageError(f"column names starting with {PREFIX!r} are reserved for sqlgrad")
        missing = [f for f in self.features if f not in columns]
        if missing:
            raise UsageError(f"the data has no column {missing[0]!r}, which the model needs")
        graph = build_graph(self.spec)
        roots = [graph.logits]
        if graph.lse is not None:
            roots += [graph.lse.inputs[1], graph.lse]  # the row max, and log-sum-exp
        st = stage(
            roots,
            native_tanh=native_tanh,
            constants=self._constants(graph) if params is None else None,
            prefix=PREFIX,
            materialize=tuple(roots[1:]),
            vector_dot=vector_dot,
            nullable_rows=True,  # a row with a NULL feature scores NULL (the flag below)
        )
        inputs = encode(self.encoding)
        # A NULL feature without a fill value makes the row's prediction NULL (a ReLU would turn a NULL
        # into 0 and give a number that means nothing).
        unfilled = [p.column for p in self.encoding if p.fill is None]
        null_flag = PREFIX + "null"
        flags = []
        if unfilled:
            any_null = exp.or_(*(exp.Is(this=col(c), expression=exp.Null()) for c in unfilled))
            flags = [alias(case([(any_null, num(1))], num(0)), null_flag)]
        # The user's columns cross the levels under internal names (SQLite would not let a column named
        # TRUE or FALSE out of a derived table) and get their own names back at the top.
        kept = [f"{PREFIX}c{i}" for i in range(len(columns))]
        base = exp.select(
            *(alias(col(c), k) for c, k in zip(columns, kept, strict=True)),
            *flags,
            *(alias(e, PREFIX + x) for e, x in zip(inputs, leaf_columns(graph.x), strict=True)),
        ).from_(source)
        if params is not None:  # the weights come from a one-row relation, carried up as columns
            base = base.select(*(col(c) for c, *_ in self.parameter_columns()), copy=False)
            base = base.join(
                exp.Subquery(this=params, alias=exp.TableAlias(this=ident(PREFIX + "params"))),
                join_type="cross",
                copy=False,
            )
        z = st.exprs(graph.logits)
        preds: list[exp.Expression] = []
        labels = self.class_labels()
        if self.head == "softmax":
            assert graph.lse is not None
            lse = st.exprs(graph.lse)[0]
            zmax = st.exprs(graph.lse.inputs[1])[0]
            preds.append(
                case([(eq(z[j].copy(), zmax.copy()), value_literal(labels[j])) for j in range(len(z))], None)
            )
            preds += [fexp(z[j].copy() - lse.copy()) for j in range(len(z))]
        elif self.head == "sigmoid":
            p = sigmoid_expr(z[0])
            pred = case(
                [(exp.GTE(this=z[0].copy(), expression=num(0)), value_literal(labels[1]))],
                value_literal(labels[0]),
            )
            preds += [pred, num(1) - paren(p.copy()), p]
        else:
            preds.append(z[0])
        if flags:
            preds = [case([(eq(col(null_flag), num(1)), exp.Null())], e) for e in preds]
        out = [alias(col(k), c) for c, k in zip(columns, kept, strict=True)]
        out += [alias(e, n) for e, n in zip(preds, self.output_columns(), strict=True)]
        return st.build(base, out, passthrough=[*kept, *([null_flag] if flags else [])])

    def evaluate_select(
        self, data: exp.Expression, native_tanh: bool = True, vector_dot: VectorDot | None = None
    ) -> exp.Select:
        """Metrics over a prepared relation (``x_i`` DOUBLE columns and ``y`` as in training).

        Classification: ``n``, ``accuracy`` and ``log_loss`` (mean cross-entropy / log loss, no
        penalty); regression: ``n``, ``mse``, ``rmse``, ``mae`` and ``r2``.
        """
        graph = build_graph(self.spec)
        roots = [graph.loss, graph.logits]
        if graph.lse is not None:
            roots.append(graph.lse.inputs[1])
        st = stage(roots, native_tanh=native_tanh, constants=self._constants(graph), vector_dot=vector_dot)
        z, loss, y = st.exprs(graph.logits), st.exprs(graph.loss)[0], col("y")
        n = to_double(exp.Count(this=exp.Star()))
        metrics = [alias(exp.Count(this=exp.Star()), "n")]
        if self.task == "classification":
            if self.head == "softmax":
                assert graph.lse is not None
                zmax = st.exprs(graph.lse.inputs[1])[0]
                hit = case(
                    [(eq(z[j].copy(), zmax.copy()), eq(y.copy(), num(j))) for j in range(len(z))], None
                )
                correct = case([(hit, num(1))], num(0))
            else:
                correct = case(
                    [
                        (
                            eq(
                                case([(exp.GTE(this=z[0].copy(), expression=num(0)), num(1))], num(0)),
                                y.copy(),
                            ),
                            num(1),
                        )
                    ],
                    num(0),
                )
            metrics += [
                alias(exp.Sum(this=correct) / n.copy(), "accuracy"),
                alias(exp.Sum(this=loss) / n.copy(), "log_loss"),
            ]
        else:
            err = paren(z[0].copy() - y.copy())
            sse = exp.Sum(this=loss)
            ss_tot = paren(
                exp.Sum(this=y.copy() * y.copy()) - exp.Sum(this=y.copy()) * exp.Sum(this=y.copy()) / n.copy()
            )
            metrics += [
                alias(sse.copy() / n.copy(), "mse"),
                alias(exp.Sqrt(this=sse.copy() / n.copy()), "rmse"),
                alias(exp.Sum(this=exp.Abs(this=err)) / n.copy(), "mae"),
                alias(num(1) - sse.copy() / exp.Nullif(this=ss_tot, expression=num(0)), "r2"),
            ]
        return st.build(data, metrics)


def parse_layers(layers: Any, origin: str) -> tuple[Weights, list[str]]:
    """``(weights, activations)`` from the ``layers`` list of a model or initial-weights file."""
    if not isinstance(layers, list) or not layers:
        raise ModelFileError(f"{origin}: 'layers' must be a non-empty list")
    weights: Weights = []
    acts: list[str] = []
    for k, layer in enumerate(layers, start=1):
        if not isinstance(layer, dict) or not {"W", "b"} <= set(layer):
            raise ModelFileError(f"{origin}: layer {k} needs 'W' and 'b'")
        try:
            w = np.array(layer["W"], dtype=float)
            b = np.array(layer["b"], dtype=float)
        except (TypeError, ValueError) as err:
            raise ModelFileError(f"{origin}: layer {k} has non-numeric weights") from err
        if w.ndim != 2 or b.ndim != 1 or w.shape[1] != b.shape[0]:
            raise ModelFileError(f"{origin}: layer {k}: W must be fan_in x fan_out and b of length fan_out")
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise ModelFileError(f"{origin}: layer {k} has NaN or infinite weights")
        if weights and weights[-1][0].shape[1] != w.shape[0]:
            raise ModelFileError(
                f"{origin}: layer {k} takes {w.shape[0]} inputs but layer {k - 1} gives "
                f"{weights[-1][0].shape[1]}"
            )
        act = layer.get("activation", "relu" if k < len(layers) else None)
        if not isinstance(act, str):
            raise ModelFileError(f"{origin}: layer {k} needs an 'activation' (the last layer's is the head)")
        weights.append((w, b))
        acts.append(act)
    return weights, acts


def parse_preprocessing(entries: Any, features: Any, origin: str) -> list[ColumnPrep] | None:
    """The ``preprocessing`` list of a model file (None when absent), checked against ``features``."""
    if entries is None:
        return None
    if not isinstance(entries, list):
        raise ModelFileError(f"{origin}: 'preprocessing' must be a list (one entry per feature)")
    preps = [ColumnPrep.from_dict(e, origin) for e in entries]
    if [p.column for p in preps] != [str(f) for f in features or []]:
        raise ModelFileError(f"{origin}: 'preprocessing' must name the features, in their order")
    return preps


def finite_or_none(x: float) -> float | None:
    return x if x is not None and math.isfinite(x) else None
