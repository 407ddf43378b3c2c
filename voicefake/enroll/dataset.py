"""Transcripts for enrollment audio: read them, match them to files, spread a file's text over the
utterances cut from it; and transcribe with pocketsphinx when the user has none.

Accepted transcript forms:
- LJSpeech metadata, `file|text` or `file|text|normalized text` lines (file with or without extension);
- the headed form `file|transcript|duration_s` (first line names the columns);
- a text file per recording: `clip.txt` (or `.lab`) beside `clip.wav`, or in a folder given as transcripts;
- one `.txt` file for a single recording.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from voicefake.asr import normalize_words
from voicefake.errors import VoicefakeError

TEXT_SUFFIXES = (".txt", ".lab")


class Transcripts:
    """Texts by recording, looked up by relative path, file name or stem."""

    def __init__(self, source: str = ""):
        self.source = source  # what the report says the texts came from
        self._by_key: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def add(self, key: str, text: str) -> None:
        text = " ".join(text.split())
        if not text:
            return
        for variant in _keys(key):
            self._by_key.setdefault(variant, text)

    def lookup(self, media: Path) -> str | None:
        """The text for `media`, or None; sidecar files beside it count too."""
        for variant in _keys(media.as_posix()):
            if variant in self._by_key:
                return self._by_key[variant]
        for suffix in TEXT_SUFFIXES:
            sidecar = media.with_suffix(suffix)
            if sidecar.is_file():
                return _read_text_file(sidecar) or None
        return None


def _keys(path: str) -> list[str]:
    """Ways a metadata line may name a file: path, path without extension, name, stem."""
    pure = Path(path.strip().replace("\\", "/"))
    return [pure.as_posix(), pure.with_suffix("").as_posix(), pure.name, pure.stem]


def _read_text_file(path: Path) -> str:
    try:
        return " ".join(path.read_text(encoding="utf-8").split())
    except UnicodeDecodeError as error:
        raise VoicefakeError(f"transcript {path} is not UTF-8 text: save it as UTF-8") from error


def load_transcripts(path: str | os.PathLike | None, media: list[Path], folders: Iterable[Path] = ()) -> Transcripts:
    """Texts from `path` (a metadata file, a text file for a single recording, or a folder of text
    files), else from `metadata.csv` files inside the given `folders`; sidecar files always count."""
    if path is None:
        found = Transcripts("")
        for folder in folders:
            metadata = folder / "metadata.csv"
            if metadata.is_file():
                _add_metadata(metadata, found)
                found.source = f"given ({metadata})" if not found.source else "given (metadata.csv files)"
        return found
    path = Path(path)
    if path.is_dir():
        found = Transcripts(f"given (text files in {path})")
        for text_file in sorted(path.rglob("*")):
            if text_file.suffix.lower() in TEXT_SUFFIXES:
                found.add(text_file.relative_to(path).with_suffix("").as_posix(), _read_text_file(text_file))
        return found
    if not path.is_file():
        raise VoicefakeError(f"transcripts {path} do not exist: give a metadata file (file|text lines) or a folder of .txt files")
    text = _read_text_file(path)
    if "|" not in text:  # plain text: only meaningful for one recording
        if len(media) != 1:
            raise VoicefakeError(
                f"{path} is plain text but {len(media)} recordings were given: "
                "use `file|text` lines, one per recording, or one .txt per recording"
            )
        found = Transcripts(f"given ({path})")
        found.add(media[0].as_posix(), text)
        return found
    found = Transcripts(f"given ({path})")
    _add_metadata(path, found)
    if not len(found):
        raise VoicefakeError(f"no transcripts found in {path}: expected `file|text` lines")
    return found


def read_metadata(path: Path) -> list[tuple[str, str]]:
    """(file, text) rows of a metadata file: `file|text` lines, classic LJSpeech (`id|text|normalized
    text`, whose third column wins), or a headed table with `file` and `transcript` (or `text`)
    columns. Rows without text are skipped; a row without a text column is an error."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.reader(handle, delimiter="|", quoting=csv.QUOTE_NONE) if row]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    if "file" in header and ("transcript" in header or "text" in header):
        file_col = header.index("file")
        text_col = header.index("transcript") if "transcript" in header else header.index("text")
        rows = rows[1:]
    else:
        file_col, text_col = 0, 1
    pairs = []
    for number, row in enumerate(rows, 1):
        if len(row) <= max(file_col, text_col):
            raise VoicefakeError(f"{path} line {number}: expected `file|text`, got {'|'.join(row)[:80]!r}")
        text = row[text_col]
        if len(row) == 3 and text_col == 1 and row[2].strip() and not _is_number(row[2]):
            text = row[2]  # LJSpeech's third column is the text with numbers written out
        if text.strip():
            pairs.append((row[file_col].strip(), " ".join(text.split())))
    return pairs


def read_dataset(folder: str | os.PathLike) -> list[tuple[Path, str]]:
    """(audio path, transcript) pairs of an LJSpeech-style folder (metadata.csv, audio in wavs/ or
    beside it; names without an extension are .wav): what enrollment writes and training reads."""
    folder = Path(folder)
    metadata = folder / "metadata.csv"
    if not metadata.is_file():
        raise VoicefakeError(f"{folder} has no metadata.csv: expected an LJSpeech-style folder (wavs/, metadata.csv)")
    pairs = []
    for name, text in read_metadata(metadata):
        name = name if Path(name).suffix else f"{name}.wav"
        pairs.append((folder / name if "/" in name or (folder / name).is_file() else folder / "wavs" / name, text))
    if not pairs:
        raise VoicefakeError(f"{metadata} lists no clips with transcripts")
    return pairs


def _add_metadata(path: Path, into: Transcripts) -> None:
    for key, text in read_metadata(path):
        into.add((path.parent / key).as_posix(), text)
        into.add(key, text)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def spread_text(text: str, durations: list[float], heard: list[str] | None = None) -> list[str]:
    """Share one recording's text among the utterances cut from it, in order.

    With `heard` (what speech recognition heard in each utterance) words go where the
    recogniser matched them; without it, in proportion to each utterance's length.
    """
    tokens = text.split()
    if len(durations) <= 1 or not tokens:
        return [text] if durations else []
    if heard is not None:
        labels = _labels_by_alignment(tokens, heard)
    else:
        labels = _labels_by_length(tokens, durations)
    parts: list[list[str]] = [[] for _ in durations]
    for token, label in zip(tokens, labels):
        parts[label].append(token)
    return [" ".join(words) for words in parts]


def _labels_by_length(tokens: list[str], durations: list[float]) -> list[int]:
    chars = np.cumsum([len(t) + 1 for t in tokens], dtype=float)
    middle = (chars - (np.array([len(t) + 1 for t in tokens]) / 2)) / chars[-1]
    edges = np.cumsum(durations) / sum(durations)
    return [min(int(np.searchsorted(edges, m)), len(durations) - 1) for m in middle]


def _labels_by_alignment(tokens: list[str], heard: list[str]) -> list[int]:
    import jiwer

    ref = [normalize_words(t).replace(" ", "") or "_" for t in tokens]
    hyp, owner = [], []
    for index, words in enumerate(heard):
        for word in normalize_words(words).split():
            hyp.append(word)
            owner.append(index)
    if not hyp:
        return _labels_by_length(tokens, [1.0] * len(heard))
    labels: list[int | None] = [None] * len(ref)
    result = jiwer.process_words(" ".join(ref), " ".join(hyp))
    for chunk in result.alignments[0]:
        if chunk.type in ("equal", "substitute"):
            for offset in range(chunk.ref_end_idx - chunk.ref_start_idx):
                labels[chunk.ref_start_idx + offset] = owner[min(chunk.hyp_start_idx + offset, len(owner) - 1)]
    # words the recogniser missed follow their neighbours
    last = next((label for label in labels if label is not None), 0)
    filled = []
    for label in labels:
        last = label if label is not None else last
        filled.append(last)
    return filled


def transcribe_file(path: str) -> str:
    """What pocketsphinx hears in an audio file (a worker function: importable, picklable)."""
    import soundfile as sf

    from voicefake.asr import transcribe

    audio, rate = sf.read(path, dtype="float32")
    return transcribe(audio, rate)


def _workers_can_start() -> bool:
    """Can spawned worker processes start from this program? A spawned child first re-runs the
    parent's `__main__` from its file. A script read from stdin (`python - <<EOF`) or code
    exec'd under a made-up name has a `__file__` ('<stdin>') that no child can open: every worker
    would die on start (BrokenProcessPool). `python -m`, `python -c`, a REPL or a real script are
    fine. (The stdlib offers no start method that skips this: forkserver prepares the same way,
    and fork is unsafe with the onnxruntime and torch thread pools the parent holds.)"""
    import sys
    from multiprocessing import process

    main = sys.modules.get("__main__")
    if main is None or getattr(getattr(main, "__spec__", None), "name", None):
        return True  # the child imports the main module by name
    path = getattr(main, "__file__", None)
    if path is None:
        return True  # nothing to re-run
    if not os.path.isabs(path) and process.ORIGINAL_DIR is not None:
        path = os.path.join(process.ORIGINAL_DIR, path)
    return os.path.isfile(path)


def transcribe_files(paths: list[str], progress: Callable[[int], None] | None = None) -> list[str]:
    """pocketsphinx over many files, on every core (it is single-threaded and the slowest step)."""
    workers = min(os.cpu_count() or 1, 4, max(1, len(paths) // 8))
    if workers > 1 and not _workers_can_start():
        import logging
        import sys

        logging.getLogger("voicefake").warning(
            "transcribing in this process only: worker processes cannot start from a program read from %s "
            "(run it from a .py file for %d workers)", getattr(sys.modules["__main__"], "__file__", "?"), workers,
        )
        workers = 1
    if workers <= 1:
        results = []
        for path in paths:
            results.append(transcribe_file(path))
            if progress:
                progress(1)
        return results
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the parent holds onnxruntime and torch thread pools that do not survive fork
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = []
        for text in pool.map(transcribe_file, paths, chunksize=4):
            results.append(text)
            if progress:
                progress(1)
    return results


def write_metadata(path: Path, rows: list[tuple[str, ...]]) -> None:
    """LJSpeech-style `id|text|text` lines (no header, no quoting), written atomically."""
    from voicefake.io.atomic import write_text

    write_text(path, "".join("|".join(cell.replace("|", " ").replace("\n", " ") for cell in row) + "\n" for row in rows))
