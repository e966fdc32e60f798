"""Real speech and noise corpora built offline from Debian and PyPI packages, and the bundled subset.

A corpus folder looks like::

    ROOT/speech/<speaker>/.../*.flac   one top-level folder per voice (the validation split unit)
    ROOT/noise/*.flac                  one recording per file
    ROOT/splits.json                   {"val_speakers": [...], "val_noises": [...]} (optional)
    ROOT/SOURCES.md                    every file's package, path inside it and license

`build_denoiser_corpus` downloads the packages with the ordinary clients (`apt-get download`,
`pip download`), extracts the recordings, converts them to mono FLAC and writes that table.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np
import soundfile

from audio_dl import audio_io
from audio_dl.atomic import staged_folder, write_failures_named
from audio_dl.errors import UsageError
from audio_dl.paths import expand_home

log = logging.getLogger(__name__)

BUNDLED = "bundled"


def bundled_denoiser_root() -> Path:
    """Folder of the small real corpus shipped inside the package (speech/, noise/, splits.json)."""
    return Path(str(resources.files("audio_dl") / "assets" / "denoiser"))


def resolve(specs: tuple[str, ...], kind: str) -> tuple[str, ...]:
    """Replace the word `bundled` by the bundled corpus' `speech` or `noise` folder."""
    root = bundled_denoiser_root()
    return tuple(str(root / kind) if spec == BUNDLED else spec for spec in specs)


def read_splits(specs: tuple[str, ...]) -> dict:
    """The `splits.json` of the corpus a speech/noise folder belongs to (beside the folder, or in
    it for a prepared TFRecord folder); {} when there is none."""
    splits: dict[str, list[str]] = {}
    for spec in specs:
        folder = Path(expand_home(spec))
        candidates = [folder / "splits.json", folder.parent / "splits.json"]
        candidate = next((c for c in candidates if c.is_file()), None)
        if folder.is_dir() and candidate is not None:
            for key, values in _splits_file(candidate).items():
                splits.setdefault(key, []).extend(values)
    return splits


def _splits_file(path: Path) -> dict[str, list[str]]:
    """A splits.json's {"val_speakers": [names], "val_noises": [names]} (either may be missing);
    UsageError naming the file for anything else."""
    try:
        splits = json.loads(path.read_bytes())
    except ValueError:  # not JSON, or not UTF-8
        splits = None
    if not (isinstance(splits, dict) and splits.keys() <= {"val_speakers", "val_noises"} and all(
            isinstance(names, list) and all(isinstance(name, str) for name in names) for names in splits.values())):
        raise UsageError(f'{path} is not a splits file: it holds {{"val_speakers": [names], "val_noises": [names]}}')
    return splits


@dataclasses.dataclass(frozen=True)
class Source:
    """Recordings inside one package.

    package: `debian:NAME` (apt-get download) or `pypi:NAME==VERSION` (+ `:sdist` for the source
    archive). members: glob patterns of paths inside the extracted package.
    """

    kind: str  # "speech" or "noise"
    name: str  # speaker folder (speech) or file-name prefix (noise)
    package: str
    members: tuple[str, ...]
    license: str
    split: str = "train"  # "train" or "val": its side of the held-out split in the built corpus (splits.json)
    bundle_seconds: float = 0.0  # how much of it the bundled corpus keeps (0: none)
    exclude: tuple[str, ...] = ()  # file stems that are not what the source says (e.g. animal noises)
    catalogue: str = ""  # an OpenTTD sound catalogue (.cat) in the package; members then glob its NN.wav entries


_SONIC_PI = "usr/share/sonic-pi/samples/{}.flac"
_OPENSFX = "usr/share/games/openttd/baseset/opensfx/opensfx.cat"
# OpenSFX (OpenTTD's sound set): edited field recordings, each entry credited in the catalogue.
# Kept: sustained real-world sounds; left out: toy-land effects, clicks and bangs under 1 s,
# voices (crowd "oooh", animal calls) and second edits of a kept recording (heavy wind, horn mixes).
OPENSFX_NOISES = {
    "train": {3: "factory_whistle", 4: "steam_train", 6: "ship_horn", 7: "ferry_horn", 8: "propeller_plane",
              9: "jet_departure", 10: "diesel_horn", 11: "elevator_machinery", 12: "electric_sparks",
              13: "steam_engine", 14: "level_crossing", 25: "truck_start", 27: "bus_passing", 28: "old_bus",
              33: "jackhammer", 39: "smithy", 40: "circular_saw", 52: "wind", 55: "tree_cutting",
              56: "chainsaw", 59: "jet_landing", 65: "metro", 66: "bird_call", 71: "train_passby",
              72: "bird_song"},
    "val": {24: "helicopter", 29: "applause", 36: "sheep_field", 61: "jets_flyby"},
}
_AST = "usr/share/asterisk/sounds/"
# asterisk prompts that are animal noises or tones, not speech
_NOT_SPEECH = ("tt-monkeys", "beep", "beeperr", "ascending-2tone", "descending-2tone")

SOURCES: tuple[Source, ...] = (
    # --- speech ---------------------------------------------------------------------------
    Source("speech", "allison/en", "debian:asterisk-core-sounds-en-wav", (_AST + "en_US_f_Allison/*.wav",),
           "CC-BY-SA-3.0", "train", 240, exclude=_NOT_SPEECH),
    Source("speech", "allison/es", "debian:asterisk-core-sounds-es-wav", (_AST + "es_MX_f_Allison/*.wav",),
           "CC-BY-SA-3.0", "train", exclude=_NOT_SPEECH),
    Source("speech", "menardi", "debian:asterisk-prompt-it-menardi-wav", (_AST + "it_IT_f_Menardi/*.wav",),
           "CC-BY-SA-3.0-IT", "val", 200, exclude=_NOT_SPEECH),
    # GSM-coded (13 kbit/s): its coding noise makes it a poor clean reference, so it trains.
    Source("speech", "armelle", "debian:asterisk-prompt-fr-armelle", (_AST + "fr/*.gsm",),
           "BSD-style (see package copyright)", "train", 150),
    Source("speech", "codec2", "debian:codec2-examples",
           tuple(f"usr/share/codec2/wav/{n}.wav" for n in ("hts1a", "hts2a", "forig", "morig", "cross", "big_dog"))
           + ("usr/share/codec2/raw/speech_orig_16k.wav",), "LGPL-2.1", "train", 60),
    Source("speech", "fillets_nl", "debian:fillets-ng-data-nl", ("usr/share/games/fillets-ng/sound/*/nl/*.ogg",),
           "GPL-2+", "train", 240),
    # More voices of the Asterisk family (each speaker's name is in its folder and the package credits)
    Source("speech", "june", "debian:asterisk-core-sounds-fr-wav", (_AST + "fr_CA_f_June/*.wav",),
           "CC-BY-SA-3.0", "train", exclude=_NOT_SPEECH),
    Source("speech", "carlo", "debian:asterisk-core-sounds-it-wav", (_AST + "it_IT_m_Carlo/*.wav",),
           "CC-BY-3.0", "train", exclude=_NOT_SPEECH),
    Source("speech", "ivrvoice_ru", "debian:asterisk-core-sounds-ru-wav", (_AST + "ru_RU_f_IvrvoiceRU/*.wav",),
           "CC-BY-3.0", "train", exclude=_NOT_SPEECH + ("is",)),  # is.wav is empty
    Source("speech", "july_co", "debian:asterisk-prompt-es-co", (_AST + "es/*.gsm",), "GPL-2", "train"),  # GSM-coded
    # Czech dialogs of Fish Fillets: several actors, the big fish a male voice (about 35 of 100 min)
    Source("speech", "fillets_cs", "debian:fillets-ng-data-cs", ("usr/share/games/fillets-ng/sound/*/cs/*.ogg",),
           "GPL-2+", "train"),
    Source("speech", "alsa", "debian:alsa-utils", ("usr/share/sounds/alsa/*.wav",), "GPL-2+", "train", 15,
           exclude=("Noise",)),  # ALSA's pink-noise test file
    Source("speech", "librivox", "pypi:pocketsphinx==5.1.1:sdist", ("*/test/data/librivox/*.wav",),
           "public domain (LibriVox)", "val", 60),
    Source("speech", "cards", "pypi:pocketsphinx==5.1.1:sdist", ("*/test/data/cards/*.wav",),
           "BSD-2-Clause (pocketsphinx)", "val", 60),
    Source("speech", "pyannote", "pypi:pyannote.audio==4.0.7", ("pyannote/audio/sample/sample.wav",),
           "MIT (pyannote.audio)", "val", 30),
    Source("speech", "arctic", "pypi:pysptk==1.0.1:sdist", ("*/pysptk/example_audio_data/arctic_a0007.wav",),
           "CMU ARCTIC (permissive, see package)", "train", 10),
    # --- noise ----------------------------------------------------------------------------
    *(Source("noise", n, "debian:sonic-pi-samples", (_SONIC_PI.format(n),), "CC0-1.0", "train", 10)
      for n in ("ambi_sauna", "ambi_glass_hum", "ambi_drone", "ambi_lunar_land", "vinyl_hiss",
                "loop_safari", "loop_industrial", "ambi_soft_buzz", "ambi_dark_woosh")),
    *(Source("noise", n, "debian:sonic-pi-samples", (_SONIC_PI.format(n),), "CC0-1.0", "val", 10)
      for n in ("loop_3d_printer", "ambi_haunted_hum")),
    Source("noise", "water", "pypi:onsen==0.1.1", ("onsen/assets/water.wav",), "MIT (onsen)", "train", 40),
    Source("noise", "birds", "pypi:opensoundscape==0.13.2:sdist", ("*/opensoundscape/sample_data/birds_10s.wav",),
           "MIT (opensoundscape)", "val", 10),
    *(Source("noise", f"sfx_{name}", "debian:openttd-opensfx", (f"{entry:02d}.wav",),
             "CC-BY-SA-3.0 (OpenSFX)", split, catalogue=_OPENSFX)
      for split, entries in OPENSFX_NOISES.items() for entry, name in entries.items()),
)


CORPUS_MAX_RATE = 16000  # Hz: recordings above it are resampled down when extracted


CORPUS_ENTRIES = {"speech", "noise", "splits.json", "SOURCES.md"}  # all that a corpus folder holds


def build_denoiser_corpus(out_dir: str | Path, bundle: bool = False, cache_dir: str | Path | None = None) -> dict:
    """Download the packages in SOURCES, extract their recordings into `out_dir` as mono FLAC
    (at most CORPUS_MAX_RATE). Writes SOURCES.md and splits.json.

    bundle=True keeps only each source's `bundle_seconds` (the subset shipped in the package).
    The corpus is built beside `out_dir` and renamed into place when complete (an interrupted
    build leaves no half corpus to train on); an earlier corpus there is replaced, a folder
    holding anything else is refused (UsageError).
    Returns counts {"speech_files", "noise_files", "seconds", "skipped"}.
    """
    out = Path(out_dir)
    entries = {p.name for p in out.iterdir()} if out.is_dir() else set()
    if entries and not (entries <= CORPUS_ENTRIES and {"splits.json", "SOURCES.md"} <= entries):
        raise UsageError(f"{out} holds other files, not a corpus built by this command; give a new or empty folder")
    cache = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "audio_dl-packages"
    cache.mkdir(parents=True, exist_ok=True)
    with staged_folder(out, replace=True) as staging:
        counts = _extract_sources(staging, bundle, cache)
    return counts


def _extract_sources(out: Path, bundle: bool, cache: Path) -> dict:
    """build_denoiser_corpus's work, into the folder `out`."""
    rows, counts = [], {"speech_files": 0, "noise_files": 0, "seconds": 0.0, "skipped": 0}
    for source in SOURCES:
        if bundle and source.bundle_seconds <= 0:
            continue
        root = _fetch(source.package, cache)
        base = _catalogue_entries(root / source.catalogue) if source.catalogue else root
        members = sorted({p for pattern in source.members for p in base.glob(pattern)
                          if p.stem not in source.exclude})
        if not members:
            raise UsageError(f"{source.package}: nothing matches {source.members}")
        if bundle:  # a varied subset, the same every time
            np.random.default_rng(0).shuffle(members)
        budget = source.bundle_seconds if bundle else float("inf")
        for path in members:
            if budget < 0.5:
                break
            info = audio_io.probe(path)
            if info is None:
                counts["skipped"] += 1
                continue
            rate = min(info.sample_rate, CORPUS_MAX_RATE)
            try:
                audio = audio_io.read_audio(path, rate, duration_seconds=min(budget, info.seconds))
            except ValueError:
                audio = np.zeros(0, np.float32)
            if audio.size < rate // 10:  # undecodable or under 0.1 s
                counts["skipped"] += 1
                continue
            budget -= len(audio) / rate
            folder = out / source.kind / (source.name if source.kind == "speech" else "")
            target = _unused_name(folder, path.stem if source.kind == "speech" else source.name, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(audio_io.native_path(target), audio / max(1.0, float(np.abs(audio).max())), rate,
                            subtype="PCM_16")
            counts[f"{source.kind}_files"] += 1
            counts["seconds"] += len(audio) / rate
            credit = path.with_suffix(".txt").read_text().strip() if source.catalogue else ""
            rows.append((target.relative_to(out).as_posix(), source, path.relative_to(root).as_posix(), credit))
    _write_sources_table(out, rows)
    splits = {
        "val_speakers": sorted({s.name.split("/")[0] for s in SOURCES if s.kind == "speech" and s.split == "val"}),
        "val_noises": sorted({s.name for s in SOURCES if s.kind == "noise" and s.split == "val"}),
    }
    (out / "splits.json").write_text(json.dumps(splits, indent=2) + "\n")
    return counts


def _unused_name(folder: Path, stem: str, member: Path) -> Path:
    """folder/<stem>.flac, or, when that is taken (packages reuse a file name in several folders,
    e.g. one per game level), <parent>_<stem>.flac with as many of the member's parent folders
    as it takes to be new."""
    names = [stem]
    for parent in member.parents:
        names.append(f"{parent.name}_{names[-1]}")
    for name in names:
        if not (folder / f"{name}.flac").exists():
            return folder / f"{name}.flac"
    raise UsageError(f"{member}: two recordings of the same source would share the name {stem}.flac")


def _write_sources_table(out: Path, rows) -> None:
    lines = ["# Sources of every recording in this folder", "",
             "Built by `python -m audio_dl.datasets denoiser-corpus`; all from Debian or PyPI packages.", "",
             "| file | package | path inside the package | license | split |", "|---|---|---|---|---|"]
    for rel, source, inner, credit in rows:
        license = f"{source.license}: {credit}" if credit else source.license
        lines.append(f"| {rel} | {source.package} | {inner} | {license.replace('|', '/')} | {source.split} |")
    (out / "SOURCES.md").write_text("\n".join(lines) + "\n")


def _fetch(package: str, cache: Path) -> Path:
    """Download and unpack one package into the cache; returns the folder of its contents (a full
    cache is named as such, not as the corpus being built)."""
    kind, _, spec = package.partition(":")
    target = cache / package.replace(":", "_").replace("==", "-")
    if (target / ".complete").is_file():
        return target
    with write_failures_named(cache), tempfile.TemporaryDirectory(dir=cache) as tmp:
        tmp_path = Path(tmp)
        if kind == "debian":
            _run(["apt-get", "download", spec], cwd=tmp_path, retry_after=["apt-get", "update", "-qq"])
            (deb,) = tmp_path.glob("*.deb")
            unpack = tmp_path / "unpacked"
            _run(["dpkg-deb", "-x", str(deb), str(unpack)], cwd=tmp_path)
        elif kind == "pypi":
            name_version, _, flavour = spec.partition(":")
            name = name_version.split("==")[0]
            extra = ["--no-binary", name] if flavour == "sdist" else ["--only-binary", ":all:"]
            _run([sys.executable, "-m", "pip", "download", "--no-deps", *extra,
                  name_version, "-d", str(tmp_path)], cwd=tmp_path)
            (archive,) = [p for p in tmp_path.iterdir() if p.suffix in (".whl", ".gz", ".zip")]
            unpack = tmp_path / "unpacked"
            if archive.suffix == ".gz":
                with tarfile.open(archive) as tar:
                    tar.extractall(unpack, filter="data")
            else:
                with zipfile.ZipFile(archive) as zf:
                    zf.extractall(unpack)
        else:
            raise UsageError(f"unknown package kind in {package!r}")
        if target.exists():
            shutil.rmtree(target)
        unpack.rename(target)
        (target / ".complete").touch()
    return target


def _catalogue_entries(catalogue: Path) -> Path:
    """Folder of a sound catalogue's entries beside it in the package cache (split once)."""
    folder = catalogue.with_name(catalogue.name + ".d")
    if not (folder / ".complete").is_file():
        with write_failures_named(folder):  # a full cache is named as such, not as the corpus being built
            split_sound_catalogue(catalogue, folder)
            (folder / ".complete").touch()
    return folder


def split_sound_catalogue(catalogue: Path, out_dir: Path) -> int:
    """OpenTTD sound catalogue (.cat) -> OUT/NN.wav + OUT/NN.txt (the entry's title, author and
    license). The file starts with a table of little-endian uint32 (offset, size) pairs (the top
    bit is a flag); each entry is a length-prefixed description followed by a RIFF WAV. Entries
    that are not WAV data (the set's empty placeholders) are left out. Returns entries written."""
    data = catalogue.read_bytes()
    mask = 0x7FFFFFFF
    entries = (int.from_bytes(data[:4], "little") & mask) // 8
    table = np.frombuffer(data, "<u4", count=2 * entries).reshape(entries, 2) & mask
    out_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for index, (offset, size) in enumerate(table.tolist()):
        name_length = data[offset]
        description = data[offset + 1:offset + 1 + name_length].rstrip(b"\0").decode("utf-8", "replace")
        wav = data[offset + 1 + name_length:offset + size]
        if wav[:4] != b"RIFF":
            continue
        (out_dir / f"{index:02d}.wav").write_bytes(wav)
        (out_dir / f"{index:02d}.txt").write_text(description + "\n")
        written += 1
    return written


def _run(command: list[str], cwd: Path, retry_after: list[str] | None = None) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0 and retry_after:
        subprocess.run(retry_after, capture_output=True)
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise UsageError(f"{' '.join(command[:3])} failed: {last[0]}")


# --- folk melodies: music21's public-domain ABC collections -> MIDI with Debian's abc2midi ------

MUSIC21_PACKAGE = "pypi:music21==10.5.1"
ABCMIDI_PACKAGE = "debian:abcmidi"
FOLK = "folk"  # MelodyConfig.midi_dir's name for the default corpus in the cache
FOLK_COLLECTIONS = {  # collection -> license; the default training corpus
    "oneills1850": "public domain (O'Neill's Music of Ireland, 1850; music21 transcription, BSD-3)",
    "ryansMammoth": "public domain (Ryan's Mammoth Collection, 1883; music21 transcription, BSD-3)",
    "miscFolk": "public domain (music21 corpus, BSD-3)",
}
# Held out for evaluation only, never trained on by a shipped model.
EVALUATION_COLLECTIONS = {
    "airdsAirs": "public domain (Aird's Selection of Scotch, English, Irish and Foreign Airs, 1782-1803; "
                 "music21 transcription, BSD-3)",
    "essenFolksong": "Essen Folksong Collection: non-commercial use only",
}
# Short names for MelodyConfig.midi_dir / eval_midi_dir and --midi-dir -> cached collections.
MIDI_ALIASES = {FOLK: tuple(FOLK_COLLECTIONS), "airds": ("airdsAirs",), "essen": ("essenFolksong",)}
# Each collection's own name (as `datasets folk-corpus --collections` spells it) is one too, where
# no file or folder of that name is found from the current folder.
COLLECTION_ALIASES = {name: (name,) for name in {**FOLK_COLLECTIONS, **EVALUATION_COLLECTIONS}}
# abc2midi: no guitar-chord accompaniment (-NGUI; it also skips Ryan's fingering marks written
# in chord-symbol syntax), no grace notes (-NGRA): the melody line only.
ABC2MIDI_FLAGS = ("-quiet", "-silent", "-NGUI", "-NGRA")
NOT_CONVERTED = "NOT_CONVERTED.tsv"  # one line per tune abc2midi wrote no MIDI file for: file, X:n, why


def default_folk_dir() -> Path:
    """Cache folder of the default folk corpus (`$AUDIO_DL_CACHE` or ~/.cache/audio_dl)."""
    return Path(os.environ.get("AUDIO_DL_CACHE", Path.home() / ".cache" / "audio_dl")) / "folk-midi"


def resolve_midi(specs: tuple[str, ...]) -> tuple[str, ...]:
    """Replace the MIDI_ALIASES (`folk`, `airds`, `essen`) and COLLECTION_ALIASES by the cached
    collection folders, converting them if needed."""
    out = []
    for spec in specs:
        names = MIDI_ALIASES.get(spec) or (COLLECTION_ALIASES.get(spec) if not Path(spec).exists() else None)
        if names is None:
            out.append(spec)
            continue
        root = default_folk_dir()
        if not all((root / name).is_dir() for name in names):
            log.warning("converting %s to MIDI in %s (once)", ", ".join(names), root)
            build_folk_corpus(root, names)
        out += [str(root / name) for name in names]
    return tuple(out)


def build_folk_corpus(out_dir: str | Path, collections: tuple[str, ...] = tuple(FOLK_COLLECTIONS),
                      cache_dir: str | Path | None = None) -> dict[str, dict[str, int | None]]:
    """Convert music21's ABC collections to one MIDI file per tune: OUT/<collection>/*.mid.

    Each collection folder is written atomically. A tune abc2midi writes no MIDI file for (it
    exits 0 even then) is counted and listed, with the reason, in <collection>/NOT_CONVERTED.tsv.
    Returns {collection: {"midi_files": written, "not_converted": tunes listed there}} ("not_converted"
    is None for a folder converted before the listing was written).
    """
    known = {**FOLK_COLLECTIONS, **EVALUATION_COLLECTIONS}
    unknown = sorted(set(collections) - set(known))
    if unknown:
        raise UsageError(f"unknown collection(s) {unknown}; choose from {sorted(known)}")
    out = Path(out_dir)
    cache = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "audio_dl-packages"
    cache.mkdir(parents=True, exist_ok=True)
    abc_root = _fetch(MUSIC21_PACKAGE, cache) / "music21" / "corpus"
    abc2midi = _fetch(ABCMIDI_PACKAGE, cache) / "usr" / "bin" / "abc2midi"
    counts = {}
    for name in collections:
        target = out / name
        if not target.is_dir():
            with staged_folder(target) as staging:
                not_converted = [line for abc in sorted((abc_root / name).rglob("*.abc"))
                                 for line in _convert_abc(abc2midi, abc, staging)]
                (staging / "LICENSE.txt").write_text(
                    f"{name}: {known[name]}\nABC source: {MUSIC21_PACKAGE} music21/corpus/{name}; "
                    f"converted with {ABCMIDI_PACKAGE} abc2midi {' '.join(ABC2MIDI_FLAGS)}\n")
                (staging / NOT_CONVERTED).write_text("".join(f"{line}\n" for line in not_converted))
                if not_converted:
                    log.warning("%s: abc2midi wrote no MIDI file for %d tune(s), listed in %s", name,
                                len(not_converted), target / NOT_CONVERTED)
        listing = target / NOT_CONVERTED
        counts[name] = {"midi_files": len(list(target.glob("*.mid"))),
                        "not_converted": len(listing.read_text().splitlines()) if listing.exists() else None}
    return counts


def _convert_abc(abc2midi: Path, abc: Path, folder: Path) -> list[str]:
    """Convert the tunes of one ABC file into `folder` as abc2midi names them (<stem><X>.mid: the
    names the corpus has always had); return those that got no MIDI file there, each as
    "file\tX:n\twhy" (why: abc2midi's first 'Error in line-char L-C : ...' message within the tune's
    lines, or the name another tune took first). abc2midi runs in a folder of its own, so a tune of
    another file whose name it would overwrite (book1 X:11 and book11 X:1) is kept and this one listed;
    a file it names otherwise (an X: field that is not a number: <stem>0.mid) is kept where its name is free."""
    work = folder / ".abc2midi"
    work.mkdir()
    try:
        shutil.copy(abc, work / abc.name)
        result = subprocess.run([str(abc2midi), abc.name, *ABC2MIDI_FLAGS], cwd=work,
                                capture_output=True, text=True, errors="replace")
        lines = abc.read_text(errors="replace").splitlines()
        starts = [(number, int(m.group(1))) for number, line in enumerate(lines, 1)
                  if (m := re.match(r"\s*X:\s*(\d+)", line))]
        errors = [(int(m.group(1)), m.group(2).strip()) for m in re.finditer(
            r"^Error in line-char (\d+)-\d+ :(.*)$", result.stdout + result.stderr, flags=re.M)]
        missing, seen, kept = [], set(), 0
        for (first, x), end in zip(starts, [line for line, _ in starts[1:]] + [math.inf]):
            name = f"{abc.stem}{x}.mid"
            if x in seen:
                why = f"another tune of this file is X:{x} too: abc2midi writes one MIDI file for both (the last)"
            elif (folder / name).exists():
                why = f"{name} is the name of a tune of another ABC file"
            elif (work / name).exists():
                (work / name).rename(folder / name)
                why, kept = None, kept + 1
            else:
                why = next((message for line, message in errors if first <= line < end), "no error printed")
            seen.add(x)
            if why:
                missing.append(f"{abc.name}\tX:{x}\t{why}")
        expected = {f"{abc.stem}{x}.mid" for _, x in starts}  # those left here are listed above
        for other in sorted(path for path in work.glob("*.mid") if path.name not in expected):
            if (folder / other.name).exists():
                missing.append(f"{abc.name}\t-\tabc2midi also wrote {other.name}, the name of another tune: not kept")
            else:
                other.rename(folder / other.name)
                kept += 1
        if not kept and not missing:
            missing.append(f"{abc.name}\t-\tno X: field, so no tune")
        return missing
    finally:
        shutil.rmtree(work)
