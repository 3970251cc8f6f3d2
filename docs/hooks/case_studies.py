"""MkDocs hook: pages for the case-study notebooks and stand-ins for pages not yet written.

``case_studies/*.py`` are jupytext (py:percent) notebooks. Each becomes a page under
``case-studies/``: markdown cells as they are, code cells as Python blocks. By default
nothing is executed at build time (the test suite executes the notebooks; the site
shows the code and the prose), which keeps ``mkdocs build`` fast and free of side
effects. With ``BAYESMIXED_DOCS_EXECUTE=1`` in the environment the notebooks are run
(nbclient, as the tests run them) and their outputs, tables and figures are shown
under each cell; that build takes as long as the notebooks do.

Pages owned by other parts of the project (``priors.md``, ``troubleshooting.md``) are
in the nav from the start; while a file is missing, a short stand-in page is generated
so that ``mkdocs build --strict`` still passes, and the build log says so.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.case_studies")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "case_studies"
OUT_DIR = "case-studies"
NAV_KEY = "Case studies"

STAND_INS = {
    "priors.md": ("Default priors",
                  "The table of default priors is written together with the Bayesian engine "
                  "(`bayesmixed/bayes/`). Until then, `model.priors` shows the priors "
                  "`method=\"nuts\"` will use for a given model."),
    "troubleshooting.md": ("Troubleshooting",
                           "This page collects the library's warnings and errors with their causes "
                           "and fixes. It is being written; meanwhile every warning and error "
                           "message says what went wrong and what to try next, and the classes are "
                           "listed in the [API reference](api.md#errors-and-warnings)."),
}

# [text](target) where target is relative and not a page of this site: the notebooks
# link to files of the repository (seeds, data scripts) that the site does not contain.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")


def _notebooks() -> list[Path]:
    return sorted(p for p in NOTEBOOKS.glob("*.py") if not p.name.startswith("_")) if NOTEBOOKS.is_dir() else []


def _cells(path: Path):
    """(cell_type, source, outputs) of a jupytext notebook, via jupytext when installed."""
    text = path.read_text(encoding="utf-8")
    try:
        import jupytext
    except ImportError:  # plain py:percent parsing: '# %%' starts code, '# %% [markdown]' prose
        return [(kind, src, []) for kind, src in _split_percent(text)]
    nb = jupytext.reads(text, fmt="py:percent")
    if os.environ.get("BAYESMIXED_DOCS_EXECUTE") == "1":
        nb = _execute(nb)
        if any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", [])):
            # Shown on the page; a warning, so that a --strict build fails on it.
            log.warning("case study %s raised an error when executed", path.name)
    return [(c.cell_type, c.source, c.get("outputs", [])) for c in nb.cells]


def _execute(nb):
    import nbclient

    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "MPLBACKEND")}
    # The kernel inherits the environment: import this checkout; figures inline as PNG.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), saved["PYTHONPATH"]]))
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    try:
        nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": str(ROOT)}}).execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def _outputs_md(outputs) -> list[str]:
    """Markdown for a code cell's outputs: text as text blocks, HTML tables as they are, PNGs inline."""
    parts = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            text = out.get("text", "")
            if text.strip():
                parts.append(f"```text\n{text.rstrip()}\n```")
        elif kind in ("execute_result", "display_data"):
            data = out.get("data", {})
            if "image/png" in data:
                png = "".join(data["image/png"]).replace("\n", "")
                parts.append(f'<img alt="figure" src="data:image/png;base64,{png}">')
            elif "text/html" in data:
                parts.append('<div class="nb-output" markdown="0">\n'
                             + "".join(data["text/html"]).strip() + "\n</div>")
            elif "text/plain" in data:
                parts.append(f"```text\n{''.join(data['text/plain']).rstrip()}\n```")
        elif kind == "error":
            trace = _ANSI.sub("", "\n".join(out.get("traceback", [])))
            parts.append(f"```text\n{trace.rstrip()}\n```")
    return parts


def _split_percent(text: str):
    kind, lines, first = "code", [], True
    for line in text.splitlines():
        if line.startswith("# %%"):
            # Before the first marker only comments is the jupytext header, not a cell.
            header = first and all(not s.strip() or s.startswith("#") for s in lines)
            if any(s.strip() for s in lines) and not header:
                yield kind, "\n".join(lines).strip("\n")
            first = False
            kind = "markdown" if "[markdown]" in line else "code"
            lines = []
        elif kind == "markdown":
            lines.append(line[2:] if line.startswith("# ") else line.lstrip("#"))
        else:
            lines.append(line)
    if any(s.strip() for s in lines):
        yield kind, "\n".join(lines).strip("\n")


def _fix_links(md: str) -> str:
    def repl(m: re.Match) -> str:
        text, target = m.group(1), m.group(2)
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            return m.group(0)                       # absolute URL or anchor: keep
        return f"{text} (`{target}`)"               # a repository file: name it, do not link
    return _LINK.sub(repl, md)


def _title(path: Path, cells) -> tuple[str, int | None]:
    """The notebook's first ``# heading`` and the index of its cell (None: from the file name)."""
    for i, (kind, src, _) in enumerate(cells):
        if kind == "markdown":
            for line in src.splitlines():
                if line.startswith("# "):
                    return line[2:].strip(), i
    return path.stem.replace("_", " "), None


def _render(path: Path) -> tuple[str, str]:
    cells = _cells(path)
    title, at = _title(path, cells)
    parts = [f"# {title}",
             f"!!! note \"Notebook `case_studies/{path.name}`\"\n"
             f"    A jupytext notebook: run it as a script, or open it in Jupyter after "
             f"`jupytext --to ipynb case_studies/{path.name}`. The test suite executes it and "
             f"checks the numbers it reproduces; outputs are not stored in the file."]
    if any(outputs for _, _, outputs in cells):
        parts[1] = parts[1].replace("outputs are not stored in the file.",
                                    "the outputs below are from running it when this site was built.")
    for i, (kind, src, outputs) in enumerate(cells):
        if kind == "markdown":
            if i == at:                              # the title is already the page heading
                src = src.replace(f"# {title}", "", 1).strip("\n")
            if src.strip():
                parts.append(_fix_links(src))
        elif kind == "code" and src.strip():
            parts.append(f"```python\n{src.rstrip()}\n```")
            parts.extend(_outputs_md(outputs))
    return title, "\n\n".join(parts) + "\n"


def _index(entries: list[tuple[str, str]]) -> str:
    lines = ["# Case studies", "",
             "Each case study reproduces a worked example with bayesmixed and says where the numbers "
             "agree with R's output and why they differ when they do. They live in `case_studies/` "
             "as jupytext notebooks (plain `.py` files you can run, or open in Jupyter).",
             "",
             "The pages show the code and the prose. To see the outputs, tables and figures under "
             "each cell, build the site with the notebooks executed: "
             "`BAYESMIXED_DOCS_EXECUTE=1 mkdocs build` (a few minutes).", ""]
    if entries:
        lines += [f"- [{title}]({Path(uri).name})" for title, uri in entries]
    else:
        lines.append("No case-study notebooks are in `case_studies/` yet.")
    return "\n".join(lines) + "\n"


_rendered: list[tuple[str, str, str]] = []   # (title, src_uri, markdown), filled in on_config


def on_config(config):
    _rendered.clear()
    for path in _notebooks():
        title, md = _render(path)
        _rendered.append((title, f"{OUT_DIR}/{path.stem}.md", md))
    # Put the notebooks into the nav under "Case studies", after its index page.
    section = [{"Overview": f"{OUT_DIR}/index.md"}] + [{t: uri} for t, uri, _ in _rendered]
    nav = config.get("nav") or []
    for i, item in enumerate(nav):
        if isinstance(item, dict) and NAV_KEY in item:
            nav[i] = {NAV_KEY: section}
    return config


def on_files(files: Files, config) -> Files:
    for name, (title, text) in STAND_INS.items():
        if files.get_file_from_path(name) is None:
            log.info("%s is not written yet: using a stand-in page", name)
            files.append(File.generated(config, name, content=f"# {title}\n\n{text}\n"))
    files.append(File.generated(config, f"{OUT_DIR}/index.md",
                                content=_index([(t, uri) for t, uri, _ in _rendered])))
    for _, uri, md in _rendered:
        files.append(File.generated(config, uri, content=md))
    return files
