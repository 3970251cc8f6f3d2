"""The documentation site builds strictly, has its pages, and its examples stay true.

``mkdocs build --strict`` turns every warning (a broken link, a docstring mkdocstrings
cannot parse, a page missing from the nav) into a failure. The ``>>>`` examples in the
markdown pages are run like doctests, so the output pasted into the docs is the output
the library gives.
"""

from __future__ import annotations

import doctest
import html
import importlib.util
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
OPTIONFLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS


def _missing_doc_tools() -> str | None:
    for mod in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        try:
            if importlib.util.find_spec(mod) is None:
                return mod
        except ModuleNotFoundError:
            return mod
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    missing = _missing_doc_tools()
    if missing:
        pytest.skip(f"{missing} is not installed; install the docs tools with pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _plain(path: Path) -> str:
    """The page's text without tags (syntax highlighting splits code into spans)."""
    return html.unescape(re.sub(r"<[^>]+>", "", _text(path)))


PAGES = ["index.html", "lme4/index.html", "methods/index.html", "priors/index.html",
         "case-studies/index.html", "troubleshooting/index.html", "api/index.html"]


@pytest.mark.parametrize("page", PAGES)
def test_page_is_built(site: Path, page: str) -> None:
    assert (site / page).is_file(), f"{page} missing from the built site"


def test_getting_started_shows_the_sleepstudy_fit(site: Path) -> None:
    page = _plain(site / "index.html")
    assert "REML criterion at convergence: 1743.6283" in page
    assert "make demo" in page and "make test" in page


def test_translation_table_covers_the_lme4_vocabulary(site: Path) -> None:
    page = _plain(site / "lme4/index.html")
    for word in ("lmer", "glmer", "glmer.nb", "nAGQ", "fixef", "ranef", "VarCorr", "as.data.frame(VarCorr(fit))",
                 "isSingular", "Satterthwaite", "broom.mixed::tidy", "re.form = NA", "check_nobs_vs_nlev",
                 "cbind(s, f)", "offset(log(t))", "brm(", "bambi", 'random="~1 | w/v"'):
        assert word in page, f"{word!r} not on the lme4 page"
    assert "\\|" not in page, "an escaped pipe is shown literally (no escaping needed inside code spans)"


def test_api_reference_renders_the_public_objects(site: Path) -> None:
    page = _text(site / "api/index.html")
    # mkdocstrings gives each documented object an anchor with its dotted path.
    for anchor in ("bayesmixed.Model", "bayesmixed.Model.fit", "bayesmixed.compare.anova",
                   "bayesmixed.compare.compare", "bayesmixed.load_dataset",
                   "bayesmixed.results.likelihood.LikelihoodFit",
                   "bayesmixed.results.likelihood.LikelihoodFit.tidy",
                   "bayesmixed.errors.SingularFitWarning"):
        assert f'id="{anchor}"' in page, f"no API entry for {anchor}"
    # The docstring examples are shown on the page.
    assert "fit.fixef.round(3).to_dict()" in _plain(site / "api/index.html")


def test_every_case_study_notebook_has_a_page(site: Path) -> None:
    notebooks = sorted(p for p in (ROOT / "case_studies").glob("*.py") if not p.name.startswith("_"))
    index = _text(site / "case-studies/index.html")
    for nb in notebooks:
        page = site / "case-studies" / nb.stem / "index.html"
        assert page.is_file(), f"no page for {nb.name}"
        assert f'href="{nb.stem}/"' in index
    if not notebooks:
        assert "No case-study notebooks" in index


# ---- the hook that turns notebooks into pages ---------------------------------------------

def _hook():
    spec = importlib.util.spec_from_file_location("case_studies_hook", DOCS / "hooks" / "case_studies.py")
    mod = importlib.util.module_from_spec(spec)
    pytest.importorskip("mkdocs")
    spec.loader.exec_module(mod)
    return mod


NOTEBOOK = '''# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # Radon: three kinds of pooling
#
# From [the seed](../data/seed_000.txt); see [lme4](https://cran.r-project.org/package=lme4).

# %%
import bayesmixed as bm
fit = bm.Model("Reaction ~ Days + (1 | Subject)", bm.load_dataset("sleepstudy")).fit()

# %% [markdown]
# The estimate is $\\hat\\beta$.
'''


@pytest.mark.parametrize("use_jupytext", [True, False])
def test_hook_renders_a_percent_notebook(tmp_path: Path, monkeypatch, use_jupytext: bool) -> None:
    hook = _hook()
    if not use_jupytext:
        monkeypatch.setitem(sys.modules, "jupytext", None)   # the fallback parser
    path = tmp_path / "radon.py"
    path.write_text(NOTEBOOK, encoding="utf-8")
    title, md = hook._render(path)
    assert title == "Radon: three kinds of pooling"
    assert md.startswith("# Radon: three kinds of pooling")
    assert md.count("```python") == 1
    assert 'fit = bm.Model("Reaction ~ Days + (1 | Subject)"' in md
    # A link to a repository file is named, not linked (it is not part of the site) ...
    assert "the seed (`../data/seed_000.txt`)" in md
    # ... while web links are kept; the jupytext header is not shown.
    assert "[lme4](https://cran.r-project.org/package=lme4)" in md
    assert "jupyter:" not in md


# ---- examples written in the markdown pages -------------------------------------------------

FENCE = re.compile(r"^\s*```.*$", re.MULTILINE)


def _markdown_doctest(page: Path) -> doctest.DocTest:
    # Code fences would read as expected output of the last example: blank them out.
    text = FENCE.sub("", _text(page))
    return doctest.DocTestParser().get_doctest(text, {}, page.name, str(page), 0)


MD_PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))


@pytest.mark.parametrize("page", MD_PAGES)
def test_markdown_examples(page: str) -> None:
    test = _markdown_doctest(DOCS / page)
    if not test.examples:
        pytest.skip(f"{page} has no >>> examples")
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in docs/{page} failed"


def test_getting_started_examples_are_checked() -> None:
    # The first-model page must keep runnable examples (not only pasted text).
    assert len(_markdown_doctest(DOCS / "index.md").examples) >= 8
    assert len(_markdown_doctest(DOCS / "lme4.md").examples) >= 8


def test_hook_shows_outputs_of_executed_cells() -> None:
    hook = _hook()
    outputs = [
        {"output_type": "stream", "name": "stdout", "text": "251.405 10.467\n"},
        {"output_type": "execute_result", "data": {"text/plain": "Intercept    251.405", "text/html": "<table></table>"}},
        {"output_type": "display_data", "data": {"image/png": "iVBORw0KGgo=\n", "text/plain": "<Figure>"}},
        {"output_type": "error", "ename": "AssertionError", "evalue": "",
         "traceback": ["\x1b[31mAssertionError\x1b[39m: numbers differ"]},
    ]
    md = hook._outputs_md(outputs)
    assert md[0] == "```text\n251.405 10.467\n```"
    assert "<table></table>" in md[1] and md[1].startswith('<div class="nb-output"')   # HTML preferred
    assert md[2] == '<img alt="figure" src="data:image/png;base64,iVBORw0KGgo=">'     # PNG preferred
    assert md[3] == "```text\nAssertionError: numbers differ\n```"                       # colours stripped


def test_pasted_summary_is_the_real_summary() -> None:
    # The getting-started page pastes print(fit.summary()); its header and random-effects
    # block (4 significant digits) must be what the library prints today.
    import bayesmixed as bm

    text = _text(DOCS / "index.md")
    start = text.index("Linear mixed model fit by REML")
    pasted = text[start:text.index("Number of obs", start)].splitlines()
    fit = bm.Model("Reaction ~ Days + (Days | Subject)", bm.load_dataset("sleepstudy")).fit()
    real = str(fit.summary())
    real = real[:real.index("Number of obs")].splitlines()
    squash = lambda lines: [" ".join(line.split()) for line in lines]   # noqa: E731
    assert squash(pasted) == squash(real)
