"""Every chapter notebook runs top to bottom under papermill (quick profile) and the book builds;
notebooks hold no logic, and their setup cell installs a pinned release."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib

import nbformat
import pytest
import yaml

from untrainable import reproduce
from untrainable.paths import repo_root

NOTEBOOKS = reproduce.notebooks()


def test_there_are_chapter_notebooks_in_reading_order():
    names = [nb.name for nb in NOTEBOOKS]
    assert names[:2] == ["00_overview.ipynb", "01_inductive_bias.ipynb"]
    assert names == sorted(names)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_clean_with_a_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks without outputs"
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    for name in ("profile", "seeds", "device"):
        assert f"{name} =" in params[0].source
    assert "untrainable" in nb.cells[1].source and "find_spec" in nb.cells[1].source, "Colab-safe setup cell"


#: The one setup cell every notebook carries (its repository and pinned release live here only).
SETUP_CELL = repo_root() / "book" / "notebook_setup.py"


def test_setup_cell_source_names_the_book_repository_and_its_release():
    source = SETUP_CELL.read_text()
    repository, release = re.search(r'REPOSITORY, RELEASE = "([^"]+)", "([^"]+)"', source).groups()
    config = yaml.safe_load((repo_root() / "_config.yml").read_text())
    version = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]["version"]
    assert repository == config["repository"]["url"]
    assert release == f"v{version}", "the setup cell installs the release of this version, never a moving branch"
    assert '"--branch", RELEASE' in source and "print(" in source, "pinned, and it says what it does"
    assert source.index("print(") < source.index("subprocess.run")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_setup_cell_is_the_pinned_one(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[1].source == SETUP_CELL.read_text().rstrip("\n"), f"copy {SETUP_CELL.name} into cell 1"


#: What a code cell may not contain: notebooks show question -> call -> figure -> meaning, and the
#: logic lives in the library (functions, classes, loops, branches and comprehensions of any kind).
FORBIDDEN = {ast.FunctionDef: "def", ast.AsyncFunctionDef: "async def", ast.ClassDef: "class",
             ast.Lambda: "lambda", ast.For: "for", ast.While: "while", ast.If: "if", ast.IfExp: "if-expression",
             ast.ListComp: "list comprehension", ast.SetComp: "set comprehension",
             ast.DictComp: "dict comprehension", ast.GeneratorExp: "generator expression"}


def logic_in(source: str) -> list[str]:
    """The forbidden constructs of one code cell, as 'kind (line n)'."""
    tree = ast.parse(source)
    return [f"{FORBIDDEN[type(node)]} (line {node.lineno})" for node in ast.walk(tree) if type(node) in FORBIDDEN]


def test_the_logic_check_catches_each_construct():
    assert logic_in("x = f(a, b)\nplot(x)") == []
    for source in ("def f():\n    pass", "for i in x:\n    pass", "y = [a for a in b]", "y = a if b else c",
                   "while x:\n    break", "class A:\n    pass", "f = lambda: 1", "if x:\n    y = 1"):
        assert logic_in(source), source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_code_cells_hold_no_logic(path):
    nb = nbformat.read(path, as_version=4)
    found = [f"cell {i}: {', '.join(logic_in(c.source))}" for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and i != 1 and logic_in(c.source)]  # cell 1: the setup cell, checked above
    assert not found, "move this logic into untrainable.analysis or untrainable.plotting:\n" + "\n".join(found)


def test_unknown_notebook_prefix_is_a_clear_error():
    with pytest.raises(reproduce.ReproduceError, match="matches no notebook"):
        reproduce.notebooks(["99"])


def test_cli_rejects_an_unknown_profile():
    proc = subprocess.run([sys.executable, "-m", "untrainable", "reproduce", "--profile", "fast"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "invalid choice: 'fast'" in proc.stderr


#: A folded block of the site (a code cell's source behind its "show code" toggle).
FOLDED = re.compile(r"<details\b.*?</details>", re.DOTALL)
#: A ``<script>`` whose ``src`` names another host (``https://…`` or ``//…``).
EXTERNAL_SCRIPT = re.compile(r"<script\b[^>]*\bsrc=[\"'](?:https?:)?//", re.IGNORECASE)


@pytest.mark.slow
def test_reproduce_quick_executes_every_notebook_and_builds_the_book():
    runs = reproduce.reproduce("quick")
    assert [r.notebook for r in runs] == [nb.name for nb in NOTEBOOKS]
    html = repo_root() / "_build" / "html"
    unlabelled = []
    for nb in NOTEBOOKS:
        executed = nbformat.read(repo_root() / "_build" / "executed" / "quick" / nb.name, as_version=4)
        errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors
        page = (html / "notebooks" / f"{nb.stem}.html").read_text()
        if "profile quick" not in page and nb.stem != "00_overview":
            unlabelled.append(nb.stem)
    assert not unlabelled, f"these pages never state the profile their results come from: {unlabelled}"
    chapter = (html / "notebooks" / "01_inductive_bias.html").read_text()
    assert chapter.count("<img") >= 1 and "Subramaniam" in chapter
    # the site reads offline: no page loads a script from another host (MathJax is served from _static)
    online = sorted(str(p.relative_to(html)) for p in html.rglob("*.html") if EXTERNAL_SCRIPT.search(p.read_text()))
    assert not online, f"these pages load a script from another host and break offline: {online}"
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert "What the <code" in (html / "book" / "intro.html").read_text()  # the landing page's results
    api = (html / "book" / "api.html").read_text()  # the API reference, from the docstrings
    assert 'id="untrainable.guidance.GuidanceLoss"' in api and 'id="untrainable.similarity.linear_cka"' in api
    # code is folded or removed (pages.site_tags); no page names the machine's folders
    for nb in NOTEBOOKS:
        page = (html / "notebooks" / f"{nb.stem}.html").read_text()
        visible = FOLDED.sub("", page)
        assert visible.count('class="cell_input') == visible.count("tag_show-input"), f"{nb.stem} shows code unfolded"
        assert "tag_injected-parameters" not in page and "tag_parameters" not in page, nb.stem
        assert str(repo_root()) not in page, f"{nb.stem} prints a path of this machine"
        assert ">NaN<" not in page and "…</td>" not in page, f"{nb.stem} shows a NaN or truncated table cell"
        assert '<img alt="../_images' not in page, f"{nb.stem} has a figure whose alt text is its file name"


def test_a_failing_notebook_is_named_with_its_cell(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('profile = "full"\nseeds = None\ndevice = "auto"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("raise ValueError('broken on purpose')"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source = tmp_path / "07_broken.ipynb"
    nbformat.write(nb, source)
    with pytest.raises(reproduce.ReproduceError) as err:
        reproduce.execute_notebook(source, tmp_path / "out" / source.name, "quick")
    message = str(err.value)
    assert "07_broken.ipynb" in message and "ValueError: broken on purpose" in message and "cell" in message
