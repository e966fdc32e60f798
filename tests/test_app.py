"""The web app: API checks with Flask's client, and the two pages driven in real headless Chromium.

Browser tests need Debian's chromium (`.ci/run` installs it); without it they are skipped locally
and fail in CI. Screenshots go to $AUDIO_DL_ARTIFACTS (default: test-artifacts/).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import sys
import threading
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import soundfile
from werkzeug.serving import make_server

from audio_dl import midi_io
from audio_dl.app import server
from audio_dl.app.__main__ import is_loopback
from audio_dl.app.server import create_app, load_models
from audio_dl.compose import TEMPERATURES
from conftest import SIGNALS, free_port, stop_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("AUDIO_DL_ARTIFACTS", "test-artifacts"))
RED, BLUE = np.array([0xD6, 0x27, 0x28]) / 255, np.array([0x1F, 0x77, 0xB4]) / 255  # matplotlib tab:red/tab:blue


@pytest.fixture(scope="module")
def app(tiny_melody_run, tiny_export):
    models = load_models(tiny_melody_run / "export" / "1", tiny_export)
    assert models.melody and models.denoiser, (models.melody_problem, models.denoiser_problem)
    return create_app(models, max_upload_mb=1)


def decode_data_url(url: str) -> bytes:
    assert url.startswith("data:")
    return base64.b64decode(url.split(",", 1)[1])


def colour_pixels(png: bytes, colour: np.ndarray) -> int:
    image = matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3]
    return int((np.abs(image - colour).max(axis=-1) < 0.05).sum())


def wav(url: str) -> np.ndarray:
    audio, _ = soundfile.read(io.BytesIO(decode_data_url(url)), dtype="float32")
    return audio


# --- API -----------------------------------------------------------------------------------------

def test_melody_api_continues_a_note_string(app):
    reply = app.test_client().post("/api/melody", json={"text": "G4 G4 G4 D4 E4 E4 D4:2", "seed": 1})
    assert reply.status_code == 200, reply.json
    tune = reply.json
    assert [n["pitch"] for n in tune["primer"]] == [67, 67, 67, 62, 64, 64, 62] and tune["generated"]
    assert colour_pixels(decode_data_url(tune["piano_roll"]), RED) > 100
    assert colour_pixels(decode_data_url(tune["piano_roll"]), BLUE) > 100
    assert np.abs(wav(tune["wav"])).max() > 0.1 and decode_data_url(tune["midi"])[:4] == b"MThd"


def test_a_chord_played_on_the_piano_keeps_its_top_note(app):
    chord = [{"pitch": pitch, "start": 0.01 * i, "end": 0.5} for i, pitch in enumerate((60, 67, 64))]
    body = {"notes": chord + [{"pitch": 69, "start": 0.6, "end": 1.0}], "max_notes": 2, "qpm": 120}
    reply = app.test_client().post("/api/melody", json=body)
    assert reply.status_code == 200, reply.json
    assert [n["pitch"] for n in reply.json["primer"]] == [67, 69] and reply.json["chord_notes_left_out"] == 2


def test_a_quick_run_on_the_piano_keeps_every_note():
    run = [{"pitch": pitch, "start": 0.1 * i, "end": 0.1 * i + 0.09} for i, pitch in enumerate((60, 62, 64, 65))]
    notes, notices = server.primer_from_request({"notes": run}, 4, 0.15)  # steps longer than the notes
    assert [(n.pitch, n.start, n.duration) for n in notes] == [(60, 0, 1), (62, 1, 1), (64, 2, 1), (65, 3, 1)]
    assert notices["chord_notes_left_out"] == 0


def test_a_key_struck_twice_at_once_is_one_note_not_a_chord():
    bounce = [{"pitch": 67, "start": 0.0, "end": 0.01}, {"pitch": 67, "start": 0.02, "end": 0.6},
              {"pitch": 69, "start": 0.6, "end": 0.9}]
    notes, notices = server.primer_from_request({"notes": bounce}, 4, 0.15)
    assert [(n.pitch, n.start, n.duration) for n in notes] == [(67, 0, 4), (69, 4, 2)]
    assert notices["chord_notes_left_out"] == 0
    chord = [{"pitch": 60, "start": 0.0, "end": 0.5}, {"pitch": 60, "start": 0.01, "end": 0.5},
             {"pitch": 64, "start": 0.02, "end": 0.5}]
    assert server.primer_from_request({"notes": chord}, 4, 0.15)[1]["chord_notes_left_out"] == 1
    # the top key struck again within the chord, 0.3 step later (past the bounce window): one note to its last end
    chord = [{"pitch": 67, "start": 0.0, "end": 0.03}, {"pitch": 60, "start": 0.0, "end": 1.2},
             {"pitch": 64, "start": 0.02, "end": 1.2}, {"pitch": 67, "start": 0.045, "end": 1.2}]
    notes, notices = server.primer_from_request({"notes": chord}, 4, 0.15)
    assert [(n.pitch, n.start, n.duration) for n in notes] == [(67, 0, 8)] and notices["chord_notes_left_out"] == 2


def test_the_piano_groups_chords_and_rounds_ends_as_midi_files_are_read():
    def played(*notes):
        return {"notes": [{"pitch": pitch, "start": start, "end": end} for pitch, start, end in notes]}

    # at 30 qpm (a step of 0.5 s) a chord rolled over 120 ms is one chord, its top note from its first onset
    notes, notices = server.primer_from_request(played((60, 0.0, 2.0), (64, 0.06, 2.0), (67, 0.12, 2.0)), 4, 0.5)
    assert [(n.pitch, n.start, n.duration) for n in notes] == [(67, 0, 4)] and notices["chord_notes_left_out"] == 2
    # at 60 qpm (0.25 s) a high grace note let go as the main note starts, 30 ms before it, is no chord
    notes, notices = server.primer_from_request(played((72, 0.0, 0.03), (71, 0.03, 1.0)), 4, 0.25)
    assert [n.pitch for n in notes] == [72, 71] and notices["chord_notes_left_out"] == 0
    # start and end go to the nearest step each, as midi_io.snap_to_grid puts them
    timed = [(60, 0.0, 0.15), (62, 0.21, 0.39)]  # seconds; 1.4 to 2.6 steps of 0.15 s
    notes, _ = server.primer_from_request(played(*timed), 4, 0.15)
    assert notes == midi_io.snap_to_grid((p, a / 0.15, b / 0.15) for p, a, b in timed)[0] == \
        [midi_io.Note(60, 0, 1), midi_io.Note(62, 1, 2)]
    # a run played faster than the grid keeps every note, each a step after the one before, and says so
    notes, notices = server.primer_from_request(played((60, 0.0, 0.1), (62, 0.1, 0.2), (64, 0.2, 0.3)), 4, 0.25)
    assert [(n.pitch, n.start) for n in notes] == [(60, 0), (62, 1), (64, 2)] and notices["notes_spread_by_grid"] == 2
    assert notices["notes_moved_to_grid"] == notices["notes_dropped_by_grid"] == 0


def test_the_melody_api_says_what_reading_a_typed_primer_changed(app):
    client = app.test_client()
    reply = client.post("/api/melody", json={"text": "G4 R:4", "max_notes": 2})
    assert reply.status_code == 200, reply.json
    assert reply.json["rest_dropped"] is True and reply.json["notes_moved_to_grid"] == 0
    reply = client.post("/api/melody", json={"text": "G4:1/3 A4:2/3 B4", "max_notes": 2})
    assert reply.json["rest_dropped"] is False and reply.json["notes_moved_to_grid"] == 2
    assert [n["start"] for n in reply.json["primer"]] == [0, 1, 4] and reply.json["notes_dropped_by_grid"] == 0
    reply = client.post("/api/melody", json={"text": "C4:1/6 D4:1/6 E4:1/6 F4:1/2", "max_notes": 2})
    assert reply.json["notes_moved_to_grid"] == 3 and reply.json["notes_dropped_by_grid"] == 1


@pytest.mark.parametrize("body, message", [({"text": "G4 Q4"}, "unknown note"), ({"notes": []}, "play a few notes"),
                                           ({"text": "G4", "temperature": 0}, "temperature must be between"),
                                           ({"notes": [{"pitch": 60}]}, "pitch, start and end"),
                                           ({"notes": [{"pitch": 60, "start": 0, "end": 1e300}]}, "finite seconds"),
                                           ({"text": "C4:400"}, "grid steps long"),  # the model's own limit
                                           ({"text": "C4:400", "qpm": 30}, "the primer lasts 800 s at 30 qpm"),
                                           ({"text": "C4:" + "9" * 400}, "at most 16 characters"),
                                           ({"text": "C4:1/" + "1" * 5000}, "at most 16 characters"),  # int limit
                                           ({"text": "C4:" + "9" * 16}, "leaves no room to continue it"),  # 16 digits: exact, then too long
                                           ({"text": "C4 " * 3000}, "at most 8192 characters"),
                                           ({"text": "G4", "seed": True}, "seed must be a number"),
                                           ({"text": "G4", "seed": 1.5}, "seed must be a whole number"),
                                           ({"text": "G4", "max_notes": "1.9"}, "max_notes must be a whole number"),
                                           ({"text": ["G4"]}, "text must be a string"),
                                           ({"notes": [{"pitch": True, "start": 0, "end": 1}]}, "pitch, start and end"),
                                           ({"notes": [{"pitch": 60.5, "start": 0, "end": 1}]}, "pitch, start and end"),
                                           ({"text": "G#9"}, "outside MIDI's range"),
                                           ({"text": "G4", "seed": -1}, "seed must be between 0 and 2147483647"),
                                           ({"text": "G4", "seed": 10**400}, "seed must be between 0 and 2147483647"),
                                           ({"text": "G4", "qpm": -10**400}, "qpm must be between 30 and 300"),
                                           ({"notes": {"pitch": 60}}, "notes must be a list of")])
def test_melody_api_errors_are_one_line_json(app, body, message):
    reply = app.test_client().post("/api/melody", json=body)
    assert reply.status_code == 400 and message in reply.json["error"], reply.json


def test_melody_api_refuses_json_nested_thousands_deep_or_too_large(app):
    reply = app.test_client().post("/api/melody", data="[" * 100000 + "]" * 100000, content_type="application/json")
    assert reply.status_code == 400 and "send the primer as JSON" in reply.json["error"]
    reply = app.test_client().post("/api/melody", json={"text": "G4", "pad": "x" * 300_000})
    assert reply.status_code == 413 and "at most 256 KB" in reply.json["error"]
    chunked = json.dumps({"text": "G4", "pad": "x" * 300_000}).encode()  # no Content-Length: cut at 256 KB
    reply = app.test_client().post("/api/melody", input_stream=io.BytesIO(chunked), content_type="application/json",
                                   headers={"Transfer-Encoding": "chunked"},
                                   environ_overrides={"wsgi.input_terminated": True})
    assert reply.status_code == 400 and "send the primer as JSON" in reply.json["error"]


def test_denoise_api_with_a_bundled_sample_and_noise(app):
    client = app.test_client()
    sample = client.get("/api/status").json["samples"][0]
    reply = client.post("/api/denoise", data={"sample": sample, "noise": "birds", "snr": "0", "strength": "20"})
    assert reply.status_code == 200, reply.json
    noisy, denoised, clean = wav(reply.json["noisy"]), wav(reply.json["denoised"]), wav(reply.json["clean"])
    assert len(noisy) == len(denoised) == len(clean) and not np.allclose(noisy, denoised, atol=1e-3)


@pytest.mark.parametrize("name, payload, status, message", [
    ("notes.txt", b"hello", 400, "unsupported file type"),
    ("fake.wav", b"RIFF" + bytes(300), 400, "not an audio file"),
    ("big.wav", bytes(2 * 1024 * 1024), 413, "larger than 1 MB"),
])
def test_denoise_api_rejects_bad_uploads(app, name, payload, status, message):
    reply = app.test_client().post("/api/denoise", data={"file": (io.BytesIO(payload), name)},
                                   content_type="multipart/form-data")
    assert reply.status_code == status and message in reply.json["error"]


def _wav_bytes(audio: np.ndarray, subtype: str = "FLOAT") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, 8000, format="WAV", subtype=subtype)
    return buffer.getvalue()


def test_denoise_api_names_an_upload_without_samples_as_such(app):
    reply = app.test_client().post("/api/denoise", data={"file": (io.BytesIO(_wav_bytes(np.zeros(0))), "empty.wav")},
                                   content_type="multipart/form-data")
    assert reply.status_code == 400 and reply.json["error"] == "empty.wav holds no samples"


def test_the_melody_api_takes_the_temperatures_the_cli_takes(app):
    for temperature in TEMPERATURES:
        reply = app.test_client().post("/api/melody", json={"text": "G4 A4", "temperature": temperature, "max_notes": 2})
        assert reply.status_code == 200, reply.json


def test_denoise_api_rejects_samples_that_are_not_finite_audio(app):
    for audio in (np.full(800, np.nan, np.float32), np.full(800, 1e20, np.float32)):
        reply = app.test_client().post("/api/denoise", data={"file": (io.BytesIO(_wav_bytes(audio)), "x.wav"),
                                                             "noise": "birds"}, content_type="multipart/form-data")
        assert reply.status_code == 400 and "not finite or beyond" in reply.json["error"]


def test_denoise_api_bounds_what_an_upload_decodes_to(app, monkeypatch):
    monkeypatch.setattr(server, "MAX_UPLOAD_SAMPLES", 1000)  # the real bound: 2 min of 48 kHz stereo
    many = _wav_bytes(np.zeros((600, 2), np.float32), "PCM_16")  # 1,200 samples
    reply = app.test_client().post("/api/denoise", data={"file": (io.BytesIO(many), "x.wav")},
                                   content_type="multipart/form-data")
    assert reply.status_code == 400 and "decodes to 2 channels x 600 frames" in reply.json["error"]


def test_denoise_api_checks_the_snr_even_without_a_noise(app):
    sample = app.test_client().get("/api/status").json["samples"][0]
    reply = app.test_client().post("/api/denoise", data={"sample": sample, "snr": "loud"})
    assert reply.status_code == 400 and "snr must be a number" in reply.json["error"]


def test_denoise_api_never_opens_a_client_path(app):
    reply = app.test_client().post("/api/denoise", data={"sample": "../../../../etc/passwd"})
    assert reply.status_code == 400 and "choose a bundled sample" in reply.json["error"]


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


@SIGNALS
def test_sigterm_and_ctrl_c_stop_the_app_with_one_line_as_the_clis_do(tiny_export, tmp_path, signum, code, line):
    port = free_port()
    result = stop_server([sys.executable, "-m", "audio_dl.app", "--port", port, "--denoiser-model", str(tiny_export),
                          "--melody-model", str(tmp_path / "no-melody")], f"http://127.0.0.1:{port}/api/status", signum)
    assert result.returncode == code, result.stderr[-2000:]
    assert result.stderr.rstrip().endswith(f"python -m audio_dl.app: {line}") and "Traceback" not in result.stderr


def test_a_port_in_use_is_one_line_exit_2_before_the_models_load(tmp_path, capsys):
    from audio_dl import cli
    from audio_dl.app.__main__ import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert cli.run_main(main, ["--port", port, "--melody-model", str(tmp_path / "none"),
                                   "--denoiser-model", str(tmp_path / "none")]) == 2
    assert f"error: cannot serve the app on 127.0.0.1:{port}: Address already in use" in capsys.readouterr().err


# --- real browser --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser_page(app):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium")
        pytest.skip("no chromium here (CI installs it)")
    from playwright.sync_api import sync_playwright

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"])
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        page.goto(f"http://127.0.0.1:{server.server_port}/")
        yield page
        browser.close()
    server.shutdown()


@pytest.mark.slow
def test_browser_piano_records_keys_and_makes_a_tune(browser_page):
    page = browser_page
    page.click("#tab-piano")
    page.click("#record")
    for pitch in (67, 67, 67, 62, 64, 64, 62):  # Old MacDonald on the on-screen keys
        key = page.locator(f'.key[data-pitch="{pitch}"]')
        key.dispatch_event("mousedown")
        page.wait_for_timeout(120)
        key.dispatch_event("mouseup")
        page.wait_for_timeout(60)
    page.keyboard.press("g")  # a computer key: G4
    page.click("#record")
    assert "8 notes recorded" in page.inner_text("#recorded")
    page.click("#make-tune")
    page.wait_for_selector("#piano-result:not([hidden])", timeout=60_000)
    roll = decode_data_url(page.get_attribute("#piano-roll", "src"))
    assert colour_pixels(roll, RED) > 100 and colour_pixels(roll, BLUE) > 100
    audio = wav(page.get_attribute("#tune-audio", "src"))
    assert np.abs(audio).max() > 0.1
    assert page.get_attribute("#download-midi", "href").startswith("data:audio/midi")
    assert "notes of yours (red)" in page.inner_text("#tune-summary")
    page.screenshot(path=str(ARTIFACTS / "piano.png"), full_page=True)


@pytest.mark.slow
def test_browser_piano_says_a_run_faster_than_the_grid_was_spread(browser_page):
    page = browser_page
    page.click("#tab-piano")
    page.fill("#qpm", "30")  # a grid step of 0.5 s: four keys 0.2 s apart fall on two steps
    try:
        page.click("#record")
        for pitch in (60, 62, 64, 65):
            key = page.locator(f'.key[data-pitch="{pitch}"]')
            key.dispatch_event("mousedown")
            page.wait_for_timeout(100)
            key.dispatch_event("mouseup")
            page.wait_for_timeout(100)
        page.click("#record")
        page.evaluate("document.getElementById('tune-summary').textContent = ''")
        page.click("#make-tune")
        page.wait_for_function("document.getElementById('tune-summary').textContent.length > 0", timeout=60_000)
        assert "were played faster than the 1/16-note grid: each moved a step after the one before" in \
            page.inner_text("#tune-summary")
    finally:  # the page serves the module's later tests
        page.fill("#qpm", "100")


@pytest.mark.slow
def test_browser_piano_shows_errors_in_the_page(browser_page):
    page = browser_page
    page.click("#tab-piano")
    page.fill("#primer-text", "G4 nonsense")
    page.click("#make-tune")
    page.wait_for_function("document.getElementById('piano-error').textContent.length > 0")
    assert "unknown note 'nonsense'" in page.inner_text("#piano-error")
    page.fill("#primer-text", "")


@pytest.mark.slow
def test_browser_piano_says_a_typed_primer_lost_its_trailing_rest(browser_page):
    page = browser_page
    page.click("#tab-piano")
    page.evaluate("document.getElementById('tune-summary').textContent = ''")
    page.fill("#primer-text", "G4:1/3 R:4")
    page.click("#make-tune")
    page.wait_for_function("document.getElementById('tune-summary').textContent.length > 0", timeout=60_000)
    summary = page.inner_text("#tune-summary")
    assert "the rest at the end of your notes dropped" in summary and "1 note(s) moved onto the 1/16-note grid" in summary
    page.fill("#primer-text", "")


@pytest.mark.slow
def test_browser_denoiser_bundled_sample_and_three_signals(browser_page):
    page = browser_page
    page.click("#tab-denoiser")
    page.select_option("#noise", "birds")
    page.fill("#snr", "0")
    page.click("#run-denoise")
    page.wait_for_selector("#denoise-result:not([hidden])", timeout=60_000)
    sources = {}
    for signal in ("noisy", "denoised", "clean"):
        page.click(f'.play[data-signal="{signal}"]')
        assert page.get_attribute("#denoise-audio", "data-playing") == signal
        sources[signal] = page.get_attribute("#denoise-audio", "src")
    page.wait_for_function("!document.getElementById('denoise-audio').paused")
    noisy, denoised = wav(sources["noisy"]), wav(sources["denoised"])
    assert len(noisy) == len(denoised) and np.abs(noisy - denoised).max() > 1e-3
    assert page.get_attribute("#spectrograms", "src").startswith("data:image/png")
    page.screenshot(path=str(ARTIFACTS / "denoiser.png"), full_page=True)


@pytest.mark.slow
def test_browser_denoiser_upload_and_bad_uploads(browser_page, tmp_path):
    page = browser_page
    page.click("#tab-denoiser")
    page.select_option("#noise", "")
    rng = np.random.default_rng(0)
    noisy_file = tmp_path / "noisy.wav"
    t = np.arange(16000) / 16000
    soundfile.write(noisy_file, (0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * rng.standard_normal(16000)).astype(np.float32),
                    16000)
    page.set_input_files("#upload", str(noisy_file))
    page.click("#run-denoise")
    page.wait_for_function("document.getElementById('download-denoised').href.startsWith('data:audio/wav')")
    page.wait_for_selector("#denoise-result:not([hidden])")
    assert page.inner_text("#denoise-error") == ""

    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is not audio" * 10)
    page.set_input_files("#upload", str(not_audio))
    page.click("#run-denoise")
    page.wait_for_function("document.getElementById('denoise-error').textContent.length > 0")
    assert "not an audio file" in page.inner_text("#denoise-error")

    too_large = tmp_path / "large.wav"
    too_large.write_bytes(bytes(2 * 1024 * 1024))
    page.set_input_files("#upload", str(too_large))
    page.click("#run-denoise")
    page.wait_for_function("document.getElementById('denoise-error').textContent.includes('larger')")
    page.screenshot(path=str(ARTIFACTS / "denoiser-error.png"), full_page=True)
    page.set_input_files("#upload", [])
