"""Text front end: clean the text, phonemize it with espeak-ng, turn phonemes into model ids.

espeak-ng (bundled in piper-tts) expands numbers, dates, currency and abbreviations and
splits sentences, exactly as for the Piper voices, so fine-tuned voices read text the same way.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from voicefake.errors import VoicefakeError

log = logging.getLogger("voicefake")

MAX_TEXT_CHARS = 10_000  # one request; longer texts go in several requests (about 12 minutes of speech each)
MAX_SENTENCE_PHONEMES = 400  # VITS attention grows with the square of the length: cut longer runs at word breaks

BOS, EOS, PAD = "^", "$", "_"  # Piper's begin, end and between-phoneme pad symbols

_phonemizer = None
_phonemizer_lock = threading.Lock()  # espeak-ng keeps global state


@dataclass
class Sentence:
    """One unit of synthesis: the phonemes of a sentence and the model ids that encode them."""

    phonemes: list[str]
    phoneme_ids: list[int]


def _speakable(char: str, latin_only: bool = True) -> bool:
    """Latin-script text, digits, punctuation and common symbols; not emoji or other scripts."""
    code = ord(char)
    if char.isspace():
        return True
    category = unicodedata.category(char)
    if category.startswith("C"):  # control and unassigned characters
        return False
    if not latin_only and category[0] in "LMNP":  # letters, marks, digits, punctuation of any script
        return True
    return (
        code < 0x0250  # Basic Latin, Latin-1, Latin Extended-A/B
        or 0x1E00 <= code < 0x1F00  # Latin Extended Additional
        or 0x2000 <= code < 0x2070  # dashes, quotes, ellipsis
        or 0x20A0 <= code < 0x20D0  # currency signs
    )


# espeak reads "$5" as "dollar five": spell amounts out as "5 dollars" and let espeak read the digits
_CURRENCY = {"$": ("dollar", "cent"), "£": ("pound", "penny"), "€": ("euro", "cent"), "¥": ("yen", "sen")}
_AMOUNT = re.compile(r"([$£€¥])\s?(\d[\d,]*)(?:\.(\d{2}))?\b")


def _plural(count: str, unit: str) -> str:
    if count.lstrip("0") == "1" or unit == "yen":
        return f"{count} {unit}"
    return f"{count} {'pence' if unit == 'penny' else unit + 's'}"


def _spell_amount(match: re.Match) -> str:
    main, small = _CURRENCY[match[1]]
    words = _plural(match[2], main)
    if match[3] and match[3] != "00":
        words += " " + _plural(str(int(match[3])), small)
    return words


# Markup (SSML, HTML): espeak would read "<emphasis>" out as "emphasis" and "<break/>" as "break
# slash". Tags are recognised strictly (a name, then only name="value" attributes), so plain
# text such as "3 < 5 and 7 > 2" is left alone. Of SSML only <break> is honoured, as a comma
# (the pause the voice makes at a comma); everything else is stripped with a warning.
_ATTRIBUTE = r"""\s+[\w:.-]+\s*=\s*(?:"[^"<>]*"|'[^'<>]*'|[^\s"'<>/=]+)"""
_TAG = re.compile(rf"<!--.*?-->|<\?[^<>]*\?>|<!DOCTYPE[^<>]*>|</?([A-Za-z][\w:.-]*)(?:{_ATTRIBUTE})*\s*/?>", re.DOTALL)
_ENTITY = re.compile(r"&(?:[A-Za-z]+|#\d+|#x[0-9A-Fa-f]+);")


def strip_markup(text: str) -> str:
    """`text` without SSML/HTML tags (with a warning): <break> becomes a pause (a comma), other
    tags go, and character entities (&amp;) are decoded. Text without tags is returned as is."""
    import html

    found: list[str] = []

    def replace(match: re.Match) -> str:
        name = (match[1] or "").lower()
        found.append(f"<{name}>" if name else "<!-- -->" if match[0].startswith("<!--") else match[0][:2] + ">")
        return " , " if name.rsplit(":", 1)[-1] == "break" else " "

    stripped = _TAG.sub(replace, text)
    if not found:
        return text
    if _ENTITY.search(stripped):
        stripped = html.unescape(stripped)
    names = sorted(set(found))
    shown = " ".join(names[:10]) + (" ..." if len(names) > 10 else "")
    log.warning("removed %d markup tag(s) the voice would read aloud: %s (only <break> is kept, as a pause)", len(found), shown)
    return stripped


def clean_text(text: str, espeak_voice: str = "en-us") -> str:
    """Check `text` and drop what the voice cannot speak (with a warning).

    For English, characters of other scripts and emoji are dropped rather than spelled out by
    espeak ("Chinese letter", "grinning face"); other languages keep the letters of any script.
    If nothing speakable is left, that is an error.
    """
    latin_only = espeak_voice.startswith("en")
    if not isinstance(text, str):
        raise VoicefakeError(f"text must be a string, not {type(text).__name__}")
    if not text.strip():
        raise VoicefakeError("the text is empty: give some words to speak")
    if len(text) > MAX_TEXT_CHARS:
        raise VoicefakeError(
            f"the text is {len(text):,} characters long; the limit is {MAX_TEXT_CHARS:,} per request: "
            "split it into several requests"
        )
    text = _AMOUNT.sub(_spell_amount, strip_markup(unicodedata.normalize("NFC", text)))
    dropped = sorted({c for c in text if not _speakable(c, latin_only)})
    if dropped:
        shown = " ".join(dropped[:10]) + (" ..." if len(dropped) > 10 else "")
        log.warning("dropped %d kind(s) of character the voice cannot speak: %s", len(dropped), shown)
        text = "".join(c if _speakable(c, latin_only) else " " for c in text)
    if not any(c.isalnum() for c in text):
        raise VoicefakeError(
            "the text has nothing speakable left (this voice reads Latin-script text, digits and punctuation)"
        )
    return text


def phonemize(text: str, espeak_voice: str = "en-us") -> list[list[str]]:
    """Phonemes of each sentence of `text`, as espeak-ng produces them for Piper voices."""
    global _phonemizer
    with _phonemizer_lock:
        if _phonemizer is None:
            from piper.phonemize_espeak import EspeakPhonemizer

            _phonemizer = EspeakPhonemizer()
        sentences = _phonemizer.phonemize(espeak_voice, text)
    return [s for s in sentences if s]


def split_long(phonemes: list[str], limit: int = MAX_SENTENCE_PHONEMES) -> list[list[str]]:
    """Cut a run of phonemes longer than `limit` at word breaks (or hard, if a word is longer)."""
    pieces: list[list[str]] = []
    while len(phonemes) > limit:
        cut = max((i for i in range(limit // 2, limit) if phonemes[i] == " "), default=limit)
        pieces.append(phonemes[:cut])
        phonemes = phonemes[cut:]
        while phonemes and phonemes[0] == " ":
            phonemes = phonemes[1:]
    if phonemes:
        pieces.append(phonemes)
    return pieces


def phonemes_to_ids(phonemes: Sequence[str], id_map: Mapping[str, Sequence[int]]) -> list[int]:
    """Piper's id layout: BOS, then each phoneme followed by a pad, then EOS. Unknown phonemes are dropped."""
    ids = [*id_map[BOS], *id_map[PAD]]
    unknown = set()
    for phoneme in phonemes:
        if phoneme not in id_map:
            unknown.add(phoneme)
            continue
        ids += [*id_map[phoneme], *id_map[PAD]]
    if unknown:
        log.warning("dropped phonemes the voice does not know: %s", " ".join(sorted(unknown)))
    return ids + list(id_map[EOS])


def text_to_sentences(text: str, id_map: Mapping[str, Sequence[int]], espeak_voice: str = "en-us") -> list[Sentence]:
    """Clean, phonemize and encode `text`, one Sentence per spoken sentence (long ones cut)."""
    sentences = []
    for phonemes in phonemize(clean_text(text, espeak_voice), espeak_voice):
        for piece in split_long(phonemes):
            sentences.append(Sentence(piece, phonemes_to_ids(piece, id_map)))
    if not sentences:
        raise VoicefakeError("the text produced no phonemes: give some words to speak")
    return sentences
