"""Session files: round trip, and clear errors for malformed files."""
import json

import pytest

from models.config import ARCHITECTURES
from models.document.scene import initial_state
from models.document.session import CheckpointRef, SessionError, load_session, resolve_checkpoint_path, save_session


def test_round_trip(tmp_path):
    s = initial_state(ARCHITECTURES["rooms"], 4).move_center(0, 2, (0.3, 0.7)).resample_blocks([1], 3)
    ref = CheckpointRef("ckpt/rooms.safetensors", "ab" * 32, "rooms")
    p = tmp_path / "scene.json"
    save_session(p, s, ref)
    assert load_session(p) == (s, ref)
    assert json.loads(p.read_text())["version"] == 1
    assert resolve_checkpoint_path(ref, p) == str(tmp_path / "ckpt/rooms.safetensors")
    assert not list(tmp_path.glob("*.part"))  # the atomic write left nothing behind


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ("[]", "not a SteerGAN session"),
    ('{"format": "steergan-session", "version": 99, "checkpoint": {}, "state": {}}', "version 99"),
    ('{"format": "steergan-session", "version": 1, "state": {}}', "checkpoint"),
    ('{"format": "steergan-session", "version": 1, "checkpoint": {"path": 3}, "state": {}}', "checkpoint.path"),
    ('{"format": "steergan-session", "version": 1, "checkpoint": {}, "state": {"seed": -4}}', "invalid scene: seed"),
])
def test_malformed_sessions_name_file_and_problem(tmp_path, content, message):
    p = tmp_path / "broken.json"
    p.write_text(content)
    with pytest.raises(SessionError, match=f"broken.json: .*{message}"):
        load_session(p)


def test_missing_and_binary_session(tmp_path):
    with pytest.raises(SessionError, match="gone.json: no such file"):
        load_session(tmp_path / "gone.json")
    p = tmp_path / "bin.json"
    p.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(SessionError, match="bin.json: is not a text file"):
        load_session(p)
