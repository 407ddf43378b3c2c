import logging

import pytest

from voicefake.errors import VoicefakeError
from voicefake.tts.text import (
    MAX_TEXT_CHARS,
    clean_text,
    phonemize,
    split_long,
    text_to_sentences,
)


@pytest.mark.parametrize("text", ["", "   \n\t ", "😀🎉", "你好世界", "Привет мир", "... !!! ???"])
def test_unspeakable_text_is_a_clear_error(text):
    with pytest.raises(VoicefakeError) as error:
        clean_text(text)
    assert "text" in str(error.value) and "\n" not in str(error.value)


def test_too_long_text_names_the_limit():
    with pytest.raises(VoicefakeError, match=f"{MAX_TEXT_CHARS:,}"):
        clean_text("word " * 4000)


def test_emoji_and_other_scripts_are_dropped_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="voicefake"):
        cleaned = clean_text("Hello 😀 world 你好.")
    assert "😀" not in cleaned and "你" not in cleaned and "Hello" in cleaned
    assert "dropped" in caplog.text


def test_numbers_dates_and_abbreviations_are_read_as_words():
    assert phonemize("42") == phonemize("forty two")
    assert phonemize(clean_text("I paid $5.")) == phonemize("I paid five dollars.")
    assert phonemize(clean_text("$3.50")) == phonemize("three dollars fifty cents")
    assert len(phonemize("Dr. Smith")) >= 1  # espeak expands and may split at "Dr."


def test_sentences_are_split_and_long_runs_cut_at_word_breaks(voice):
    sentences = text_to_sentences("One. Two? Three!", voice.phoneme_id_map)
    assert len(sentences) == 3
    long_run = (list("abc") + [" "]) * 300
    pieces = split_long(long_run, limit=100)
    assert all(len(p) <= 100 for p in pieces) and sum(len(p) for p in pieces) <= len(long_run)
    assert all(p[0] != " " for p in pieces)


def test_ids_follow_piper_layout(voice):
    (sentence,) = text_to_sentences("Hi.", voice.phoneme_id_map)
    ids, id_map = sentence.phoneme_ids, voice.phoneme_id_map
    assert ids[0] == id_map["^"][0] and ids[-1] == id_map["$"][0]
    assert ids[1::2] == [id_map["_"][0]] * (len(sentence.phonemes) + 1)


def test_markup_tags_are_not_read_aloud(caplog, voice):
    """SSML as users paste it: the tags go (with a warning), <break> is a pause, the words stay."""
    ssml = '<speak>Hello <emphasis level="strong">world</emphasis>, <break time="1s"/> read this &amp; that.</speak>'
    with caplog.at_level(logging.WARNING, logger="voicefake"):
        (sentence,) = text_to_sentences(ssml, voice.phoneme_id_map)
    assert "markup" in caplog.text and "<emphasis>" in caplog.text and "<break>" in caplog.text
    (plain,) = text_to_sentences("Hello world, read this and that.", voice.phoneme_id_map)
    assert sentence.phonemes == plain.phonemes  # no "speak", "emphasis", "break", "slash", "amp"
    for tag_word in ("speak", "emphasis level strong", "break time", "less than"):
        spoken = "".join(phonemize(tag_word)[0])
        assert spoken not in "".join(sentence.phonemes)
    # a <break> between words is a pause (a comma), as in "Hello, world"
    assert phonemize(clean_text("Hello <break/> world")) == phonemize("Hello, world")
    # comparisons in plain text are not markup
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="voicefake"):
        assert clean_text("3 < 5 and 7 > 2") == "3 < 5 and 7 > 2"
    assert "markup" not in caplog.text


@pytest.mark.parametrize("text", ['<speak><break time="2s"/></speak>', "<p></p>", "<!-- nothing -->"])
def test_text_of_tags_only_has_nothing_speakable(text):
    with pytest.raises(VoicefakeError, match="nothing speakable"):
        clean_text(text)
