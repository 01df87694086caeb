"""The boundaries the code keeps, checked rather than promised: the import contracts in
pyproject.toml (models/ and kernels/ never import Qt or the studio, kernels/ never imports
models/, the document needs no torch, models/ layered by dependency), and the same at run
time: the document modules import with torch unavailable, models/ and kernels/ with Qt
unavailable."""
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def run_python(prelude: str, code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def blocking(*packages: str) -> str:
    """Python source that makes importing any of `packages` fail, as if not installed."""
    return textwrap.dedent(f"""
        import sys
        for name in {packages!r}:
            sys.modules[name] = None  # import raises ModuleNotFoundError
    """)


def test_the_import_contracts_hold():
    out = subprocess.run([str(LINT_IMPORTS)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    contracts = (ROOT / "pyproject.toml").read_text().count("[[tool.importlinter.contracts]]")
    assert contracts >= 4 and f"{contracts} kept, 0 broken" in out.stdout


def test_the_contracts_catch_a_forbidden_import(tmp_path):
    """The same contracts on a copy of the tree where models/ imports the studio: broken."""
    for package in ("app", "models", "kernels"):
        for path in (ROOT / package).rglob("*.py"):
            target = tmp_path / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(path.read_text())
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    scene = tmp_path / "models" / "document" / "scene.py"
    scene.write_text(scene.read_text() + "\nimport torch  # noqa\n")
    out = subprocess.run([str(LINT_IMPORTS)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(tmp_path), "PATH": str(LINT_IMPORTS.parent)})
    assert out.returncode != 0
    assert "the scene document and the configs need no torch BROKEN" in out.stdout
    assert "models.document.scene -> torch" in out.stdout


def test_the_document_imports_without_torch():
    out = run_python(blocking("torch", "numpy"), """
        import models.config, models.document.fileio, models.document.scene, models.document.session
        print("imported")
    """)
    assert out.returncode == 0 and "imported" in out.stdout, out.stderr[-2000:]


def all_modules(package: str) -> list[str]:
    root = ROOT / package
    return [package] + [f"{package}.{m.name}" for m in pkgutil.walk_packages([str(root)], prefix="")]


@pytest.mark.parametrize("package,blocked", [("models", ("PySide6", "pyqtgraph", "app")),
                                             ("kernels", ("PySide6", "pyqtgraph", "app", "models"))])
def test_every_module_imports_without_what_it_must_not_use(package, blocked):
    modules = all_modules(package)
    assert len(modules) > 5
    out = run_python(blocking(*blocked), f"""
        import importlib
        for name in {modules!r}:
            importlib.import_module(name)
        print("imported", len({modules!r}))
    """)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"imported {len(modules)}" in out.stdout


def test_the_studio_shows_its_window_before_torch_is_imported():
    """`steergan` paints its window before torch loads (the measured start-up, README):
    the modules it imports first must not import torch, even indirectly."""
    out = run_python("", """
        import sys
        import app.cli, app.main_window, app.studio
        print("torch loaded:", "torch" in sys.modules)
    """)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "torch loaded: False" in out.stdout
