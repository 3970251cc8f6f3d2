"""Summary: one set of tables rendered as lme4-like text and as HTML."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayesmixed.formula.parse import format_formula


def _fmt(x, digits=4):
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return ""
    if isinstance(x, (int, np.integer)):
        return str(x)
    if isinstance(x, (float, np.floating)):
        return f"{x:.{digits}g}" if abs(x) < 1e5 else f"{x:.{digits + 2}g}"
    return str(x)


@dataclass(frozen=True)
class Summary:
    """Printable summary of a fit (``str()`` like lme4, ``_repr_html_`` for notebooks).

    Examples
    --------
    >>> import pandas as pd
    >>> s = Summary(title="Linear mixed model fit by REML", header=["Formula: y ~ x + (1 | g)"],
    ...             tables={"Fixed effects": pd.DataFrame({"Estimate": [1.5]}, index=["Intercept"])})
    >>> print(s)
    Linear mixed model fit by REML
    Formula: y ~ x + (1 | g)
    <BLANKLINE>
    Fixed effects:
               Estimate
    Intercept       1.5
    >>> s._repr_html_().startswith("<div><h4")
    True
    """

    title: str
    header: list[str]
    tables: dict[str, pd.DataFrame]
    footer: list[str] = field(default_factory=list)
    text_blocks: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = [self.title, *self.header]
        for name, t in self.tables.items():
            parts.append("")
            parts.append(f"{name}:")
            if name in self.text_blocks:
                parts.append(self.text_blocks[name])
            else:
                parts.append(t.to_string(float_format=lambda v: _fmt(v)))
        if self.footer:
            parts.append("")
            parts.extend(self.footer)
        return "\n".join(parts)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        head = "".join(f"<div>{html.escape(h)}</div>" for h in self.header)
        body = "".join(
            f"<h5 style='margin:0.6em 0 0.2em'>{html.escape(name)}</h5>"
            + t.to_html(float_format=lambda v: _fmt(v), na_rep="", border=0)
            for name, t in self.tables.items()
        )
        foot = "".join(f"<div><i>{html.escape(f)}</i></div>" for f in self.footer)
        return f"<div><h4 style='margin:0'>{html.escape(self.title)}</h4>{head}{body}{foot}</div>"


def signif_stars(p: float) -> str:
    """R's significance codes: ``***`` < 0.001 < ``**`` < 0.01 < ``*`` < 0.05 < ``.`` < 0.1.

    Examples
    --------
    >>> [signif_stars(p) for p in (1e-5, 0.004, 0.03, 0.07, 0.5)]
    ['***', '**', '*', '.', '']
    """
    if p is None or np.isnan(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "." if p < 0.1 else ""


def random_effects_text(varcorr: pd.DataFrame, ngroups: dict[str, int] | None = None) -> str:
    """The 'Random effects' block of summary(lmer): Groups, Name, Variance, Std.Dev., Corr.

    Examples
    --------
    >>> import bayesmixed as bm
    >>> fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
    >>> print(random_effects_text(fit.varcorr))
     Groups   Name      Variance Std.Dev. Corr
     Subject  Intercept 612.1    24.74
              Days      35.07    5.922      0.07
     Residual           654.9    25.59
    """
    lines = []
    rows = []
    for grp, sub in varcorr.groupby("grp", sort=False):
        var = sub[sub["var2"].isna()]
        cor = sub[sub["var2"].notna()]
        names = list(var["var1"]) if grp != "Residual" else [""]
        corr = {}
        for _, r in cor.iterrows():
            corr[(r["var1"], r["var2"])] = r["sdcor"]
        for i, (_, r) in enumerate(var.iterrows()):
            cstr = " ".join(f"{corr.get((names[j], names[i]), np.nan):6.2f}" for j in range(i))
            rows.append((grp if i == 0 else "", names[i] if grp != "Residual" else "",
                         f"{r['vcov']:.4g}", f"{r['sdcor']:.4g}", cstr))
    w = [max(len(x[i]) for x in rows + [("Groups", "Name", "Variance", "Std.Dev.", "Corr")]) for i in range(5)]
    has_corr = any(r[4] for r in rows)
    hdr = ("Groups", "Name", "Variance", "Std.Dev.") + (("Corr",) if has_corr else ())
    lines.append(" " + " ".join(h.ljust(w[i]) for i, h in enumerate(hdr)))
    for r in rows:
        cells = r if has_corr else r[:4]
        lines.append(" " + " ".join(c.ljust(w[i]) for i, c in enumerate(cells)))
    return "\n".join(lines)


def formula_label(parsed) -> str:
    """The formula as the user wrote it; with nlme's ``random=`` the bars are written in.

    Examples
    --------
    >>> from bayesmixed.formula import parse_formula
    >>> formula_label(parse_formula("x ~ y", random="~1 | w/v"))
    'x ~ y + (1 | w) + (1 | w:v)'
    """
    if parsed.bars and "|" not in parsed.formula:
        return format_formula(parsed)
    return parsed.formula
