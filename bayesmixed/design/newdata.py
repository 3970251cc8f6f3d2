"""Model matrices for new data, with the training design's columns and levels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayesmixed.design.build import as_pandas, check_columns
from bayesmixed.design.fixed import evaluate_expression, formula_context
from bayesmixed.design.spec import MixedDesign
from bayesmixed.errors import DesignError


@dataclass
class NewDataMatrices:
    X: np.ndarray                      # (m, p)
    codes: list[np.ndarray]            # per term (m,), -1 for a level not seen in training
    Xis: list[np.ndarray]              # per term (m, n_cols)
    offset: np.ndarray                 # (m,)
    index: pd.Index


def _term_Xi(t, frame: pd.DataFrame) -> np.ndarray:
    if t.Xi_spec is not None:
        mm = t.Xi_spec.get_model_matrix(frame, output="pandas")
        return mm.to_numpy(dtype=float)
    cols = []
    for c in t.cnames:
        cols.append(np.ones(len(frame)) if c == "Intercept" else frame[c].to_numpy(dtype=float))
    return np.column_stack(cols)


def new_matrices(design: MixedDesign, newdata, *, include_random: bool = True,
                 allow_new_levels: bool = False) -> NewDataMatrices:
    """Evaluate the fixed and random parts of ``design`` on ``newdata``.

    Unseen levels of a grouping factor are refused by name unless
    ``allow_new_levels=True``, in which case their code is -1.
    """
    frame = as_pandas(newdata)
    parsed = design.parsed
    response_vars = set()
    if parsed.response:
        from bayesmixed.formula import parse_formula  # local: avoid import cycle

        response_vars = set(parse_formula(f"{parsed.response} ~ 1").variables)
    needed = sorted(v for v in parsed.variables - response_vars if v not in formula_context())
    if not include_random:
        group_vars = {c for b in parsed.bars for c in b.group_columns}
        needed = [v for v in needed if v not in group_vars or v in _fixed_vars(design)]
    check_columns(needed, frame, what="newdata for predict()")
    # fixed part
    if design.fixed_spec is not None:
        try:
            mm = design.fixed_spec.get_model_matrix(frame, output="pandas", na_action="ignore")
        except Exception as exc:
            raise DesignError(f"could not build the fixed-effects matrix on newdata: {exc}") from exc
        Xfull = pd.DataFrame(mm)
        X = Xfull[list(design.fixef_names)].to_numpy(dtype=float)
    else:
        cols = [np.ones(len(frame)) if c == "Intercept" else frame[c].to_numpy(dtype=float)
                for c in design.fixef_names]
        X = np.column_stack(cols) if cols else np.zeros((len(frame), 0))
    off = np.zeros(len(frame))
    for expr in parsed.offsets:
        off = off + np.asarray(evaluate_expression(expr, frame), dtype=float)
    codes, Xis = [], []
    if include_random:
        for t in design.reterms:
            Xis.append(_term_Xi(t, frame))
            labels = _labels(frame, t.group_columns if hasattr(t, "group_columns") else t.group.split(":"))
            lookup = {lev: i for i, lev in enumerate(t.levels)}
            c = np.array([lookup.get(lab, -1) for lab in labels], dtype=np.int64)
            if (c < 0).any() and not allow_new_levels:
                new = sorted(set(np.asarray(labels)[c < 0].tolist()))
                raise DesignError(
                    f"newdata has level(s) of {t.group!r} not seen in the fit: "
                    f"{', '.join(map(repr, new[:10]))}{' ...' if len(new) > 10 else ''}; pass "
                    "allow_new_levels=True to predict them from the population (random effect 0 "
                    "for point fits, a fresh draw for posterior fits)"
                )
            codes.append(c)
    return NewDataMatrices(X=X, codes=codes, Xis=Xis, offset=off, index=frame.index)


def _fixed_vars(design: MixedDesign) -> set[str]:
    from bayesmixed.formula import parse_formula

    rhs = design.parsed.fixed_rhs
    return set(parse_formula(f"y__ ~ {rhs}").variables) - {"y__"}


def _labels(frame: pd.DataFrame, cols) -> list[str]:
    from bayesmixed.design.random import _label

    parts = []
    for c in cols:
        s = frame[c.strip()]
        parts.append([_label(v) for v in s.to_numpy()])
    return [":".join(p) for p in zip(*parts)]
