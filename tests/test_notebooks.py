"""Both Colab notebooks execute top to bottom (papermill) with tiny parameters."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "01_denoise_speech.ipynb": {"PRESET": "tiny", "EPOCHS": 1, "STEPS_PER_EPOCH": 2},
    "02_folk_melody_lstm.ipynb": {"PRESET": "tiny", "EPOCHS": 1, "MIDI_DIR": str(ROOT / "tests" / "data" / "folk")},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY))
def test_notebook_runs_with_tiny_parameters(name, tmp_path):
    import papermill

    output = tmp_path / name
    papermill.execute_notebook(str(ROOT / "notebooks" / name), str(output), cwd=str(tmp_path), kernel_name="python3",
                               parameters={**TINY[name], "RUN_DIR": str(tmp_path / "run")}, progress_bar=False)
    executed = nbformat.read(output, as_version=4)
    outputs = [o for cell in executed.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    audio = [o for o in outputs if "text/html" in o.get("data", {}) and "<audio" in o["data"]["text/html"]]
    assert len(images) >= 3 and len(audio) >= 3


def test_committed_notebooks_have_no_outputs_and_a_parameters_cell():
    for name in TINY:
        notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert all(not cell.outputs and cell.execution_count is None for cell in code), name
        assert sum("parameters" in cell.metadata.get("tags", []) for cell in code) == 1, name
        assert 'if "google.colab" in sys.modules' in code[0].source, name


def test_audio_dl_is_imported_before_tensorflow():
    """Its import sets TensorFlow's C++ log level (audio_dl/__init__.py), which TensorFlow reads when
    it loads: after it, a CPU runtime shows "failed call to cuInit" and a page of INFO lines."""
    for name in TINY:
        source = "\n".join(cell.source for cell in nbformat.read(ROOT / "notebooks" / name, as_version=4).cells
                           if cell.cell_type == "code")
        assert -1 < source.find("import audio_dl") < source.find("import tensorflow"), name
