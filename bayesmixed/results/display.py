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

    ``correlation`` holds the full correlation matrix of the fixed effects (None
    where a fit has none), whatever the printed text shows of it.

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
    correlation: pd.DataFrame | None = None

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


# ---- lme4's printed forms ------------------------------------------------------------------

def _lastchar(b: list[str], i: int) -> bool:
    return not b[i - 1].isspace() and (i + 1 >= len(b) or b[i + 1].isspace())


def _strip_chars(name: str, minlength: int) -> str:
    """R's C routine ``stripchars`` behind ``abbreviate(use.classes=TRUE)``, for one name."""
    b = list(name)
    nspace = 0

    def short() -> bool:
        return len(b) - nspace <= minlength

    for i in range(len(b) - 1, 0, -1):                        # spaces only mark word boundaries
        nspace += b[i].isspace()
        if short():
            break
    else:
        vowel = "aeiou"
        rules = [lambda i: b[i] in vowel and _lastchar(b, i),  # lower-case vowels ending a word
                 lambda i: b[i] in vowel and not b[i - 1].isspace(),
                 lambda i: b[i].islower() and b[i].isascii() and _lastchar(b, i),
                 lambda i: b[i].islower() and b[i].isascii() and not b[i - 1].isspace(),
                 lambda i: not b[i - 1].isspace() and not b[i].isspace()]   # brute force
        done = False
        for rule in rules:
            for i in range(len(b) - 1, 0, -1):
                if i < len(b) and rule(i):
                    del b[i]
                if short():
                    done = True
                    break
            if done:
                break
    if len(b) > minlength:
        b = [b[0]] + [c for c in b[1:] if not c.isspace()]
    return "".join(b)


def r_abbreviate(names: list[str], minlength: int = 4) -> list[str]:
    """R's ``abbreviate(names, minlength)``: drop lower-case vowels, then lower-case letters,
    from the right until a name is ``minlength`` long; longer where names would clash.

    Examples
    --------
    >>> r_abbreviate(["(Intercept)", "period2", "btypescold", "I(age^2)", "sppDES-L", "Anger"], 6)
    ['(Intr)', 'perid2', 'btypsc', 'I(g^2)', 'sDES-L', 'Anger']
    """
    names = [str(n).strip(" ") for n in names]
    out = list(names)
    redo = [True] * len(names)
    while True:
        for i, n in enumerate(names):
            if redo[i]:
                out[i] = _strip_chars(n, minlength) if len(n) > minlength else n
        seen: dict[str, int] = {}
        clash = set()
        for i, a in enumerate(out):
            if a in seen and names[seen[a]] != names[i]:
                clash.add(a)
            seen.setdefault(a, i)
        if not clash:
            return out
        minlength += 1
        redo = [a in clash for a in out]


def r_format(values, digits: int = 7, nsmall: int = 0) -> list[str]:
    """R's ``format(x, nsmall=)`` of a numeric vector: common decimals (those ``digits`` significant
    digits need, at least ``nsmall``), common width.

    Examples
    --------
    >>> r_format([194.1, 204.2, -92.0, 184.1])
    ['194.1', '204.2', '-92.0', '184.1']
    >>> r_format([100.0, 110.0, -45.0, 90.0])
    ['100', '110', '-45', ' 90']
    >>> r_format([1.0, 0.5], nsmall=3)
    ['1.000', '0.500']
    """
    vals = [float(v) + 0.0 for v in values]
    rgt = nsmall
    for v in vals:
        if v != 0 and np.isfinite(v):
            mant, exp = f"{v:.{digits - 1}e}".split("e")
            nsig = len(mant.lstrip("-").replace(".", "").rstrip("0")) or 1
            rgt = max(rgt, nsig - 1 - int(exp))
    strs = [f"{v:.{rgt}f}" if np.isfinite(v) else ("NA" if np.isnan(v) else ("Inf" if v > 0 else "-Inf"))
            for v in vals]
    w = max(len(x) for x in strs)
    return [x.rjust(w) for x in strs]


def aictab_lines(aic: float, bic: float, loglik: float, deviance: float, df_resid: int) -> list[str]:
    """lme4's ``AIC BIC logLik deviance df.resid`` lines (its ``.prt.aictab``), trailing blanks dropped.

    ``deviance`` is what lme4 prints there: -2 logLik (``summary(fit)$AICtab``), not
    ``deviance(fit)`` of a GLMM.

    Examples
    --------
    >>> print("\\n".join(aictab_lines(194.0531, 204.1799, -92.02657, 184.0531, 51)))
         AIC      BIC   logLik deviance df.resid
       194.1    204.2    -92.0    184.1       51
    """
    cells = r_format([round(v, 1) for v in (aic, bic, loglik, deviance)]) + [str(int(df_resid))]
    names = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
    w = max(len(x) for x in cells + names)
    return [" ".join(x.rjust(w) for x in names), " ".join(x.rjust(w) for x in cells)]


def fixef_correlation_text(corr: pd.DataFrame) -> str:
    """lme4's 'Correlation of Fixed Effects' block: the lower triangle to 3 decimals, rows named
    by ``abbreviate(name, 11)`` and columns by ``abbreviate(name, 6)`` (trailing blanks dropped).

    Examples
    --------
    >>> import pandas as pd
    >>> c = pd.DataFrame([[1, -0.5, 0.25], [-0.5, 1, 0.125], [0.25, 0.125, 1]],
    ...                  index=["(Intercept)", "period2", "period3"], columns=["(Intercept)", "period2", "period3"])
    >>> print(fixef_correlation_text(c))
            (Intr) perid2
    period2 -0.500
    period3  0.250  0.125
    """
    names = [str(n) for n in corr.index]
    p = len(names)
    cells = np.array(r_format(np.round(corr.to_numpy(dtype=float), 3).ravel(), nsmall=3),
                     dtype=object).reshape(p, p)
    rows = r_abbreviate(names, 11)[1:]
    cols = r_abbreviate(names, 6)[:-1]
    body = [[cells[i, j] if j < i else "" for j in range(p - 1)] for i in range(1, p)]
    widths = [max([len(cols[j])] + [len(r[j]) for r in body]) for j in range(p - 1)]
    wr = max(len(r) for r in rows)
    lines = [" " * wr + " " + " ".join(c.ljust(widths[j]) for j, c in enumerate(cols))]
    for name, r in zip(rows, body):
        lines.append(name.ljust(wr) + " " + " ".join(c.ljust(widths[j]) for j, c in enumerate(r)))
    return "\n".join(line.rstrip() for line in lines)
