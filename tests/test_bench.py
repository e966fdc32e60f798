import json
import subprocess
import sys


def test_denoiser_benchmark_runs_and_writes_json(tiny_export, tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "audio_dl.bench", "denoiser", "--model", str(tiny_export),
                             "--seconds", "10", "--repeats", "1", "-o", str(out)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["streaming_tflite_real_time_factor"] > 0 and results["whole_file_saved_model_x_real_time"] > 0
