"""The house rules of issue #16: one home per idea, layers that say what they are, and the
package layering (models/ without Qt, models/document/ without torch, kernels/ without models/)."""
import ast
import pickle
from pathlib import Path

import pytest

from models.document.fileio import ExportError, FileError, write_image
from models.document.scene import MAX_SIGMA, MAX_STRENGTH, SEED_LIMIT
from models.document.session import SessionError, load_session
from models.io.checkpoint import CheckpointError, load_checkpoint
from models.training.state import TrainStateError

ROOT = Path(__file__).resolve().parents[1]

# ---- one home per idea -------------------------------------------------------------------

# Each idea's one definition; a second top-level assignment of the name anywhere in the
# code is the duplicate this test exists to catch.
HOMES = {
    "SEED_LIMIT": "models/document/scene.py",
    "MAX_SIGMA": "models/document/scene.py",
    "MAX_STRENGTH": "models/document/scene.py",
    "DEFAULT_OBJECT_SIGMA": "models/document/scene.py",
    "DEFAULT_ROOT_SIGMA": "models/document/scene.py",
    "CHECKPOINT_DIR": "models/io/bundled.py",
}
# The names the old copies had: they must not come back under their old names either.
RETIRED = ("SEED_MAX", "OBJECT_SIGMA", "HIERARCHY_SIGMA", "DEFAULT_SIGMA")


def _top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        else:
            targets = [node.target] if isinstance(node, ast.AnnAssign) else []
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def _sources(*packages: str) -> list[Path]:
    return [p for package in packages for p in sorted((ROOT / package).rglob("*.py"))]


def test_each_shared_constant_is_defined_once_in_its_home():
    defined: dict[str, list[str]] = {}
    for path in _sources("models", "app", "kernels"):
        for name in _top_level_names(path):
            defined.setdefault(name, []).append(path.relative_to(ROOT).as_posix())
    for name, home in HOMES.items():
        assert defined.get(name) == [home], f"{name} should be defined only in {home}, found in {defined.get(name)}"
    for name in RETIRED:
        assert name not in defined, f"{name} is back in {defined[name]}; import the one home instead"


def test_the_seed_sigma_and_strength_controls_use_the_scenes_limits(qtbot):
    from PySide6.QtGui import QAction

    from app.document import Document
    from app.panels import MtmPanel, ObjectRow, SamplePanel

    document = Document()
    sample = SamplePanel(document, QAction("New sample"))
    row = ObjectRow(document, 0, 1, "object 1", "#ff0000")
    mtm = MtmPanel(document, QAction("Offsets"), QAction("Field"))
    for widget in (sample, row, mtm):
        qtbot.addWidget(widget)
    assert sample.seed.minimum() == 0
    assert sample.seed.maximum() == SEED_LIMIT - 1  # seeds are in [0, SEED_LIMIT)
    assert row.sigma.maximum() == MAX_SIGMA
    assert mtm.strength.spin.maximum() == MAX_STRENGTH


# ---- one error for an unusable file ------------------------------------------------------

@pytest.mark.parametrize("error", [CheckpointError, SessionError, ExportError, TrainStateError])
def test_each_file_error_is_a_file_error_with_the_shared_message(error):
    assert issubclass(error, FileError)
    assert error.__init__ is FileError.__init__  # one constructor, not a copy per kind
    exc = error("some/file.ext", "is broken")
    assert (str(exc), exc.path, exc.problem) == ("some/file.ext: is broken", "some/file.ext", "is broken")
    copied = pickle.loads(pickle.dumps(exc))
    assert (type(copied), str(copied), copied.problem) == (error, str(exc), exc.problem)


def test_catching_file_error_catches_a_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(b"\xff" * 64)  # a header length far past the end of the file
    with pytest.raises(FileError) as caught:
        load_checkpoint(bad)
    assert type(caught.value) is CheckpointError
    assert str(caught.value).startswith(f"{bad}: ")
    assert caught.value.path == str(bad)


def test_catching_file_error_catches_a_malformed_session(tmp_path):
    bad = tmp_path / "scene.json"
    bad.write_text('{"format": "steergan-session", ')
    with pytest.raises(FileError) as caught:
        load_session(bad)
    assert type(caught.value) is SessionError
    assert str(caught.value).startswith(f"{bad}: is not valid JSON")


def test_catching_file_error_catches_an_image_that_cannot_be_written(tmp_path):
    import numpy as np

    target = tmp_path / "frame.bmp"
    with pytest.raises(FileError) as caught:
        write_image(target, np.zeros((4, 4, 3), np.uint8))
    assert type(caught.value) is ExportError
    assert str(caught.value) == f"{target}: unknown image type '.bmp'; use one of ['.jpeg', '.jpg', '.png', '.webp']"
    assert not target.exists()


# ---- layers that say what they are ------------------------------------------------------

def test_print_generator_says_what_each_layer_is(tiny_generators):
    generator = tiny_generators["tiny-figures"]
    cfg = generator.config
    text = str(generator)
    assert cfg.mtm and cfg.hierarchical  # what this test is about: MTM layers and SEL_norm
    for res in cfg.resolutions():
        convs = generator.convs[str(res)]
        for k, _conv in enumerate(convs):
            cin = cfg.channels[res // 2] if (res > 4 and k == 0) else cfg.channels[res]
            expected = (f"name='{res}.{k}', cin={cin}, cout={cfg.channels[res]}, resolution={res},"
                        f" upsample={res > 4 and k == 0}, mtm={res in cfg.mtm}, noise={cfg.noise}\n")
            assert expected in text
        assert repr(generator.torgbs[str(res)]).startswith(f"ToRGB(\n  cin={cfg.channels[res]}, cout=3\n")
    assert "mtm=True" in text and "mtm=False" in text and "upsample=True" in text
    mapping = f"z_dim={cfg.z_dim}, w_dim={cfg.w_dim}, layers={cfg.mapping_layers}"
    assert mapping in repr(generator.mapping)
    assert f"EqualLinear(in={cfg.z_dim}, out={cfg.w_dim}, lr_mul=0.01, activate=True)" in text
    assert f"StyleAffine(w_dim={cfg.w_dim}, channels={cfg.channels[4]})" in text
    assert "EqualConv2d(cin=1, cout=" in text  # the first SEL_norm block sees only its heatmap
    assert "has_coarser=False" in text and "has_coarser=True" in text


def test_tracked_tree_travels_to_a_gpu():
    """The working tree goes to the GPU machine whole (at most 64 MiB there): the tracked files
    stay under 56 MiB, leaving room for what a run carries beside them (issue 24)."""
    import shutil
    import subprocess

    root = Path(__file__).resolve().parents[1]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    paths = [root / p.decode() for p in listed.split(b"\0") if p]
    total = sum(p.stat().st_size for p in paths if p.is_file())
    assert total <= 56 * 2**20, f"tracked files are {total / 2**20:.1f} MiB; at most 56 MiB travel to a GPU"
