"""The PyTorch engine (coqui Vits) carries exactly the Piper voice that onnxruntime runs."""

import numpy as np
import pytest

from voicefake.tts.model import load_vits, vits_synthesize


@pytest.fixture(scope="module")
def vits(voice):
    return load_vits(voice.info.model_path)


def test_only_the_training_parts_are_missing(vits):
    missing = set(vits.missing_from_onnx)
    assert {"posterior_encoder.enc", "duration_predictor.post_flows"} <= missing
    assert not any(m.split(".")[0] in {"text_encoder", "flow", "waveform_decoder"} for m in missing)


@pytest.mark.parametrize("text", ["The quick brown fox jumps over the lazy dog.", "Numbers like 42, and a question?"])
def test_pytorch_and_onnx_engines_agree(voice, vits, text):
    from voicefake.tts.text import text_to_sentences

    (sentence,) = text_to_sentences(text, voice.phoneme_id_map)
    from piper.config import SynthesisConfig

    deterministic = SynthesisConfig(noise_scale=0, noise_w_scale=0)  # the raw graph, before the watermark
    onnx_audio = np.asarray(voice.piper.phoneme_ids_to_audio(sentence.phoneme_ids, deterministic)).reshape(-1)
    torch_audio, frames = vits_synthesize(vits, sentence.phoneme_ids, noise=0, noise_w=0)
    assert len(torch_audio) == len(onnx_audio) == frames.sum() * 256
    assert np.corrcoef(torch_audio, onnx_audio)[0, 1] > 0.999
    assert np.abs(torch_audio - onnx_audio).max() < 1e-3
