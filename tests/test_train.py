"""Fine-tuning at tiny scale, with the real model: losses fall, checkpoints resume, export matches."""

import subprocess
import sys

import numpy as np
import onnxruntime
import pytest
import soundfile as sf
import torch

from tests.helpers import TINY_DIMS_ARGS
from voicefake.config import CHECKOUT_PRETRAINED
from voicefake.enroll.dataset import read_dataset
from voicefake.errors import VoicefakeError
from voicefake.tts import clone, train
from voicefake.tts.discriminator import MelDiscriminator
from voicefake.tts.model import has_mel_decoder, vits_synthesize

TEXTS = ["Cats sit on mats.", "Dogs run fast.", "Birds can fly high."]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, voice):
    """A tiny LJSpeech folder of generated speech (classic `id|text|normalized` form)."""
    folder = tmp_path_factory.mktemp("data")
    (folder / "wavs").mkdir()
    rows = []
    for i, text in enumerate(TEXTS):
        audio = np.concatenate([c.audio for c in voice.synthesize(text, speed=1.3)])
        sf.write(folder / "wavs" / f"clip{i}.wav", audio, 22050)
        rows.append(f"clip{i}|{text}|{text}")
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A trainable base distilled for two steps only (the shipped one trained for thousands)."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("base")
    clone.build_base(steps=2, out=folder / clone.BASE_FILE, batch_size=2)
    clone.build_mel_adapter(steps=2, out=folder / clone.ADAPTER_FILE, sentences=3)
    return folder

def test_metadata_forms_are_both_read(dataset, tmp_path):
    assert [p.name for p, _ in read_dataset(dataset)] == ["clip0.wav", "clip1.wav", "clip2.wav"]
    (tmp_path / "wavs").mkdir()
    (tmp_path / "metadata.csv").write_text("file|transcript|duration_s\nwavs/a.flac|Hello there.|1.2\n")
    assert read_dataset(tmp_path) == [(tmp_path / "wavs" / "a.flac", "Hello there.")]
    with pytest.raises(VoicefakeError, match="metadata.csv"):
        read_dataset(tmp_path / "wavs")
    (tmp_path / "metadata.csv").write_text("just one column\n")
    with pytest.raises(VoicefakeError, match="line 1: expected `file|text`"):
        read_dataset(tmp_path)


@pytest.mark.slow
def test_posterior_encoder_distillation_reduces_its_loss(voice):
    from voicefake.tts.model import VitsDims, load_vits
    from voicefake.tts.text import text_to_sentences

    torch.manual_seed(0)
    model = load_vits(voice.info.model_path, VitsDims(d_vector_dim=256))
    sentences = [s.phoneme_ids for t in TEXTS for s in text_to_sentences(t, voice.phoneme_id_map)]
    d_vector = torch.nn.functional.normalize(torch.randn(256), dim=0)
    losses = train.distill_posterior_encoder(model, sentences, 12, d_vector, batch_size=3, lr=1e-3)
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


@pytest.mark.slow
def test_a_few_steps_reduce_the_loss_on_a_fixed_batch(base, dataset, voice):
    model, d_vector = clone.load_base(vocoder="own", folder=base)
    utterances = train.load_utterances(dataset, voice.phoneme_id_map)
    batch = train.collate(utterances)
    target = d_vector.reshape(1, -1).expand(len(utterances), -1)

    def loss() -> float:
        torch.manual_seed(1)  # same segments and posterior noise each time
        with torch.no_grad():
            return float(train.generator_losses(model, batch, target)["total"])

    before = loss()
    optimizer = torch.optim.AdamW(train.trainable_parameters(model), lr=2e-4)
    model.train()
    for step in range(6):
        torch.manual_seed(100 + step)
        losses = train.generator_losses(model, batch, target)
        optimizer.zero_grad()
        losses["total"].backward()
        optimizer.step()
    model.eval()
    assert loss() < before


@pytest.mark.slow
@pytest.mark.parametrize(("prior_weight", "adversarial_weight", "quefrencies", "judged_from"),
                         [(0.0, 0.0, 0, 0), (1.0, 0.0, 0, 0), (1.0, 0.0, 20, 0), (0.0, 1.0, 0, 0), (0.0, 1.0, 0, 20)])
def test_the_mel_objective_learns_a_fixed_batch_and_never_runs_the_vocoder(base, dataset, voice, monkeypatch,
                                                                          prior_weight, adversarial_weight,
                                                                          quefrencies, judged_from):
    model, d_vector = clone.load_base(folder=base)
    assert has_mel_decoder(model)
    batch = train.collate(train.load_utterances(dataset, voice.phoneme_id_map))
    target = d_vector.reshape(1, -1).expand(len(batch["x"]), -1)
    monkeypatch.setattr(model.waveform_decoder, "vocoder", None)  # training must not need it
    settings = train.TrainSettings(prior_mel_weight=prior_weight, adversarial_weight=adversarial_weight,
                                   prior_mel_quefrencies=quefrencies, adversarial_quefrencies=judged_from)
    if adversarial_weight:
        model.disc = MelDiscriminator()
    terms = train.MelObjective(model, settings).weights
    expected = {"mel", "kl", "duration", "total"} | ({"prior_mel"} if prior_weight else set())
    expected |= {"adversarial", "features", "discriminator"} if adversarial_weight else set()

    def loss() -> float:
        torch.manual_seed(1)  # the same posterior noise each time
        with torch.no_grad():
            return float(train.mel_losses(model, batch, target)["mel"])  # the posterior path, whatever else trains

    before = loss()
    optimizer = torch.optim.AdamW(train.parameter_groups(model, settings))
    model.train()
    for step in range(6):
        torch.manual_seed(100 + step)
        losses = train.mel_losses(model, batch, target, **terms)
        assert set(losses) == expected
        optimizer.zero_grad()
        losses["total"].backward()
        optimizer.step()
    model.eval()
    assert loss() < before
    assert not any(k.startswith("waveform_decoder.vocoder") for k in model.state_dict())  # checkpoints stay small


def deterministic_take(voice) -> np.ndarray:
    """One sentence of the bundled voice without sampling noise: DistillMOS of sampled takes varies
    2.6-4.0 from take to take, too much for a threshold test."""
    take = voice.synthesize("Glue the sheet to the dark blue background.", noise=0.0, noise_w=0.0)
    return np.concatenate([c.audio for c in take])


def test_the_universal_vocoder_renders_speech_from_its_mel_spectrogram(voice):
    from voicefake.tts import naturalness
    from voicefake.vocoder import load_vocoder, log_mel

    speech = deterministic_take(voice)
    mel = log_mel(torch.from_numpy(speech)[None])
    assert mel.shape[1] == 80 and abs(mel.shape[2] - len(speech) / 256) <= 1  # one frame per hop, like VITS
    with torch.no_grad():
        rendered = load_vocoder()(mel)[0, 0]
    assert abs(len(rendered) - 256 * mel.shape[2]) == 0
    again = log_mel(rendered[None])[:, :, : mel.shape[2]]
    assert float((again - mel[:, :, : again.shape[2]]).abs().mean()) < 0.6  # log-mel L1; unrelated speech is > 2
    assert naturalness.mos(rendered.numpy(), 22050) > 3.0


def test_the_mel_adapter_fits_latents_to_mel_spectrograms():
    from voicefake.tts.model import MelAdapter

    torch.manual_seed(0)
    mixing = torch.randn(80, 192) / 14
    examples = [(z, mixing @ z) for z in (torch.randn(192, 40) for _ in range(6))]
    losses = train.fit_mel_adapter(MelAdapter(), examples, steps=30, batch_size=4, window=32)
    assert losses[-1] < 0.5 * losses[0]


def tiny_model(seed: int = 0):
    """The tiny test voice's architecture, speaker-conditioned: checkpoints are the same at any size."""
    from voicefake.tts.model import VitsDims, build_vits

    torch.manual_seed(seed)
    return build_vits(VitsDims(**TINY_DIMS_ARGS, d_vector_dim=256))


@pytest.mark.slow
def test_checkpoints_round_trip_and_resume_continues(dataset, voice, tmp_path):
    utterances = train.load_utterances(dataset, voice.phoneme_id_map)
    settings = train.TrainSettings(batch_size=2, speaker_weight=1.0)
    model, d_vector = tiny_model(), torch.nn.functional.normalize(torch.ones(256), dim=0)
    path = tmp_path / "checkpoint.pt"
    trained = {}  # the weights training left; the model returns holding their average (train.WeightAverage)

    def keep_trained(step, losses, state):
        trained.update({k: v.clone() for k, v in model.state_dict().items()})

    first = train.fine_tune(model, utterances, d_vector, path, settings, seconds=600, max_steps=2, on_step=keep_trained)
    assert first.step == 2 and path.exists()

    restored = tiny_model(seed=1)
    state = train.Checkpoint.load(path, restored)
    assert state.step == 2
    for name, value in restored.state_dict().items():
        assert torch.equal(value, trained[name]), name  # resume goes on from the trained weights, not the average

    again = train.fine_tune(restored, utterances, d_vector, path, settings, seconds=600, max_steps=3, resume=True)
    assert again.step == 3

    with pytest.raises(VoicefakeError, match="settings changed.*batch_size"):
        train.fine_tune(restored, utterances, d_vector, path, train.TrainSettings(batch_size=3), 600, 4, resume=True)

    def interrupt(step, losses, state):  # Ctrl-C (or the app's cancel) after step 4
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.fine_tune(restored, utterances, d_vector, path, settings, 600, 10, resume=True, on_step=interrupt)
    assert train.Checkpoint.load(path, restored).step == 4  # the interrupted run kept every finished step


@pytest.mark.slow
def test_conditioned_model_exports_to_a_matching_piper_voice(base, voice, tmp_path):
    from piper import PiperVoice
    from piper.config import SynthesisConfig

    model, _ = clone.load_base(folder=base)
    torch.manual_seed(3)
    with torch.no_grad():  # give the (zero-initialised) speaker layers something to do
        for name, p in model.named_parameters():
            if "cond" in name:
                p.add_(0.01 * torch.randn_like(p))
    d_vector = torch.nn.functional.normalize(torch.randn(256), dim=0)
    path = clone.export_onnx(model, tmp_path / "v.onnx", {"audio": {"sample_rate": 22050}, "espeak": {"voice": "en-us"},
                             "phoneme_id_map": voice.phoneme_id_map, "num_symbols": 256, "num_speakers": 1,
                             "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8}}, d_vector)
    ids = voice.piper.phonemes_to_ids(voice.piper.phonemize("Exported voices speak alike.")[0])
    expected, frames = vits_synthesize(model, ids, noise=0, noise_w=0, d_vector=d_vector)
    piper_voice = PiperVoice.load(path)
    audio, samples = piper_voice.phoneme_ids_to_audio(ids, SynthesisConfig(noise_scale=0, noise_w_scale=0), True)
    assert np.corrcoef(audio, expected)[0, 1] > 0.999
    assert np.array_equal(samples // 256, frames)
    session = onnxruntime.InferenceSession(str(path))
    assert [o.name for o in session.get_outputs()] == ["output", "durations"]


def test_cuda_requested_without_a_gpu_is_refused():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(VoicefakeError, match="no CUDA GPU"):
        clone.check_device("cuda")


@pytest.mark.slow
def test_recipe_runs_data_parallel_under_torchrun_gloo(base, dataset, tmp_path, monkeypatch):
    if not (CHECKOUT_PRETRAINED / clone.BASE_FILE).exists():
        monkeypatch.setenv("VOICEFAKE_CACHE", str(base))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           "recipes/clone_vits.py", "--data", str(dataset), "--out", str(out), "--max-steps", "2", "--licence", "test"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=CHECKOUT_PRETRAINED.parent,
                            env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "voice.onnx").exists() and (out / "voice.onnx.json").exists()
    assert train.Checkpoint.load(out / "checkpoint.pt", clone.load_base(folder=base)[0]).step == 2


def test_stft_loss_is_zero_for_the_same_wave_and_grows_with_noise():
    torch.manual_seed(0)
    t = torch.arange(8192) / 22050
    wave = (0.3 * torch.sin(2 * torch.pi * 220 * t) * torch.sin(2 * torch.pi * 3 * t)).reshape(1, 1, -1)
    assert float(train.stft_loss(wave, wave)) < 1e-4
    slightly = train.stft_loss(wave + 0.003 * torch.randn_like(wave), wave)
    badly = train.stft_loss(wave + 0.05 * torch.randn_like(wave), wave)
    assert 0 < float(slightly) < float(badly)
    made = (wave + 0.05 * torch.randn_like(wave)).requires_grad_()
    train.stft_loss(made, wave).backward()
    assert made.grad is not None and made.grad.abs().sum() > 0


def test_decoder_rate_scale_zero_trains_only_its_speaker_conditioning(base):
    model, _ = clone.load_base(vocoder="own", folder=base)
    groups = train.parameter_groups(model, train.TrainSettings(decoder_rate_scale=0.0))
    trained = {id(p) for group in groups for p in group["params"]}
    decoder = {n: p for n, p in model.named_parameters() if n.startswith("waveform_decoder.")}
    assert {n for n, p in decoder.items() if id(p) in trained} == {"waveform_decoder.cond_layer.weight",
                                                                  "waveform_decoder.cond_layer.bias"}
    assert not any(p.requires_grad for n, p in decoder.items() if "cond" not in n)
    rates = sorted({group["lr"] for group in groups})
    assert rates == [2e-5, 2e-4]  # the flow at a tenth; the conditioning and the posterior encoder at full rate


@pytest.mark.slow
def test_the_best_validated_weights_are_kept_and_returned(base, dataset, voice, tmp_path):
    """Checkpoint choice: the run ends holding the weights of its best check, not its last step."""
    utterances = train.load_utterances(dataset, voice.phoneme_id_map)
    model, d_vector = clone.load_base(folder=base)
    scores = iter([0.5, 0.9, 0.7, 0.6])
    snapshots = {}

    def validate(m):
        snapshots[len(snapshots) + 1] = {k: v.clone() for k, v in m.state_dict().items()}
        return {"similarity": 0.5, "score": next(scores)}

    trained = {}  # the weights each step left (the validation judged their average)

    def keep_trained(step, losses, state):
        trained[step] = {k: v.clone() for k, v in model.state_dict().items()}

    path = tmp_path / "checkpoint.pt"
    settings = train.TrainSettings(batch_size=2, autoencoder_steps=0)
    state = train.fine_tune(model, utterances, d_vector, path, settings, seconds=600, on_step=keep_trained,
                            max_steps=10, validate=validate, validate_every=1, patience=2)
    assert state.step == 4  # two checks without a new best after step 2: early stop
    assert [row[2]["score"] for row in state.history] == [0.5, 0.9, 0.7, 0.6]
    assert train.Checkpoint.load(path, clone.load_base(folder=base)[0]).step == 4  # resume continues from the last step
    assert torch.load(train.best_weights_path(path), weights_only=True)["step"] == 2
    for name, value in model.state_dict().items():
        assert torch.equal(value, snapshots[2][name]), name
    # what step 2's check judged is the weight average: the first step's weights, then 2/11 of them kept
    name = "waveform_decoder.adapter.post.weight"
    assert torch.equal(snapshots[1][name], trained[1][name])
    assert torch.allclose(snapshots[2][name], 2 / 11 * trained[1][name] + 9 / 11 * trained[2][name], atol=1e-6)
    assert not torch.allclose(snapshots[2][name], trained[2][name])


def test_the_weight_average_follows_the_trained_weights_and_swaps_back():
    layer = torch.nn.Linear(2, 1, bias=False)
    average = train.WeightAverage(layer, decay=0.5)
    for value in (1.0, 3.0):
        with torch.no_grad():
            layer.weight.fill_(value)
        average.update(layer)  # the first update copies; then the decay ramps up: 2/11 of the average kept
    average.swap(layer)
    assert torch.allclose(layer.weight, torch.full((1, 2), 2 / 11 * 1.0 + 9 / 11 * 3.0))
    average.swap(layer)
    assert torch.equal(layer.weight, torch.full((1, 2), 3.0))
    voice_and_judge = torch.nn.ModuleDict({"voice": layer, "disc": MelDiscriminator()})
    assert set(train.WeightAverage(voice_and_judge, decay=0.5).shadow) == {"voice.weight"}  # a voice has no judge


@pytest.mark.slow
def test_a_clone_first_autoencodes_her_mel_then_learns_the_prior_and_resumes_across_the_phases(
        base, dataset, voice, tmp_path):
    utterances = train.load_utterances(dataset, voice.phoneme_id_map)
    settings = train.TrainSettings(batch_size=2, autoencoder_steps=2)
    model, d_vector = clone.load_base(folder=base)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []

    def watch(step, losses, state):
        seen.append((step, set(losses), {k: v.clone() for k, v in model.state_dict().items()}))

    path = tmp_path / "checkpoint.pt"
    train.fine_tune(model, utterances, d_vector, path, settings, seconds=600, max_steps=2, on_step=watch,
                    validate=lambda m: {"score": 1.0}, validate_every=1)
    after_phase_one = seen[-1][2]
    changed = {k.split(".")[0] for k, v in after_phase_one.items() if not torch.equal(v, start[k])}
    assert changed == {"posterior_encoder", "waveform_decoder"}  # the encoder and the adapter, nothing else
    assert seen[0][1] == {"mel", "total"} and train.Checkpoint.load(path, model).history == []  # no check in phase 1

    resumed, _ = clone.load_base(folder=base)
    state = train.fine_tune(resumed, utterances, d_vector, path, settings, seconds=600, max_steps=4, on_step=watch,
                            resume=True, validate=lambda m: {"score": 1.0}, validate_every=1)
    assert {"mel", "kl", "duration"} <= seen[-1][1]  # phase 2: the clone objective
    assert [row[0] for row in state.history] == [3, 4]
    assert any(not torch.equal(v, after_phase_one[k]) for k, v in resumed.state_dict().items() if k.startswith("flow."))


def test_the_adapter_learns_faster_in_phase_one_and_every_rate_returns_in_phase_two(base):
    model, _ = clone.load_base(folder=base)
    settings = train.TrainSettings()
    optimizer = torch.optim.AdamW(train.parameter_groups(model, settings))
    adapter = {id(p) for p in model.waveform_decoder.parameters()}

    def rates(step):
        train.use_phase(optimizer, model, step, settings)
        return {any(id(p) in adapter for p in g["params"]): g["lr"] for g in optimizer.param_groups}

    assert rates(0)[True] == pytest.approx(settings.autoencoder_adapter_rate_scale * settings.learning_rate)
    assert rates(settings.autoencoder_steps)[True] == pytest.approx(settings.learning_rate)
    assert not train.autoencoding(model, settings.autoencoder_steps, settings)
    assert not train.autoencoding(tiny_model(), 0, settings)  # the own-vocoder path has no phase 1


def test_voice_score_is_the_weakest_figure_against_its_goal():
    assert clone.voice_score(0.85, 3.6, 0.23, base_wer=0.2) == pytest.approx(1.0)
    # likeness far above its goal does not buy back a collapse in naturalness
    assert clone.voice_score(0.95, 1.8, 0.2, base_wer=0.2) == pytest.approx(0.5)
    assert clone.voice_score(0.9, 4.0, 0.46, base_wer=0.2) == pytest.approx(0.5)


def test_naturalness_tells_clean_speech_from_noise(voice):
    from voicefake.tts import naturalness

    speech = deterministic_take(voice)
    noisy = speech + np.random.default_rng(0).normal(0, 0.1, len(speech)).astype(np.float32)
    clean_mos, noisy_mos = naturalness.mos(speech, 22050), naturalness.mos(noisy, 22050)
    assert clean_mos > 3.5 and noisy_mos < clean_mos - 1.0


@pytest.mark.slow
def test_adversarial_fine_tuning_trains_the_discriminator_and_resumes(base, dataset, voice, tmp_path):
    utterances = train.load_utterances(dataset, voice.phoneme_id_map)
    settings = train.TrainSettings(vocoder="own", batch_size=2, adversarial_weight=1.0, stft_weight=1.0)
    model, d_vector = clone.load_base(vocoder="own", folder=base)
    seen = []
    path = tmp_path / "checkpoint.pt"
    train.fine_tune(model, utterances, d_vector, path, settings, seconds=600, max_steps=1,
                    on_step=lambda step, losses, state: seen.append(losses))
    assert {"adversarial", "features", "discriminator", "stft"} <= set(seen[0])
    before = {k: v.clone() for k, v in model.disc.state_dict().items()}
    restored, _ = clone.load_base(vocoder="own", folder=base)
    train.fine_tune(restored, utterances, d_vector, path, settings, seconds=600, max_steps=2, resume=True)
    assert any(not torch.equal(before[k], v) for k, v in restored.disc.state_dict().items())  # it learned on resume


@pytest.mark.slow
def test_a_long_clip_is_cut_at_its_pauses_into_pieces_with_their_own_words(voice):
    """Three spoken sentences with 0.4 s of silence between them, as one 8 s+ clip with one transcript:
    cut for training at 4 s, every cut lies in a silence and each piece holds its sentences' phonemes."""
    from voicefake.tts.pauses import cut_at_pauses
    from voicefake.tts.text import phonemes_to_ids, phonemize

    texts = ["The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
             "It is easy to tell the depth of a well."]
    gap = np.zeros(int(0.4 * 22050), np.float32)
    # a fixed rhythm (2.2, 2.2 and 2.0 s): with sampled durations two short takes can share one 4 s piece
    spoken = [np.concatenate([c.audio for c in voice.synthesize(t, noise_w=0.0)]) for t in texts]
    audio = np.concatenate([spoken[0], gap, spoken[1], gap, spoken[2]])
    silences = [(len(spoken[0]), len(spoken[0]) + len(gap))]
    silences.append((silences[0][1] + len(spoken[1]), silences[0][1] + len(spoken[1]) + len(gap)))
    phonemes = [p for sentence in phonemize(" ".join(texts)) for p in [*sentence, " "]][:-1]
    whole = train.Utterance(audio, phonemes_to_ids(phonemes, voice.phoneme_id_map), " ".join(texts))
    short = train.Utterance(spoken[0], [1, 0, 2], "kept as it is")
    model, _ = clone.load_base("cpu")

    pieces = cut_at_pauses(model, [short, whole], 4.0, voice.phoneme_id_map)

    assert pieces[0] is short and len(pieces) == 4
    assert all(len(p.audio) <= 4.0 * 22050 for p in pieces)
    ends = np.cumsum([len(p.audio) for p in pieces[1:]])[:-1]
    assert all(any(lo <= end <= hi for lo, hi in silences) for end in ends)
    for piece, text in zip(pieces[1:], texts):
        own = [p for sentence in phonemize(text) for p in [*sentence, " "]][:-1]
        assert piece.phoneme_ids == phonemes_to_ids(own, voice.phoneme_id_map)


def test_the_envelope_keeps_the_formants_and_drops_the_harmonics():
    bands = torch.arange(80, dtype=torch.float32)
    formants = -3.0 + 2.0 * torch.exp(-((bands - 12) / 6) ** 2) + 1.5 * torch.exp(-((bands - 40) / 8) ** 2)
    harmonics = 0.8 * torch.cos(2 * torch.pi * bands / 4)  # a ripple every 4 bands: voiced speech's partials
    plain, rippled = (train._envelope(m.reshape(1, 80, 1), 20) for m in (formants, formants + harmonics))
    ripple = (plain - rippled).abs().mean()
    assert ripple < 0.2 * harmonics.abs().mean()  # the pitch's ripple hardly reaches the envelope
    moved = train._envelope((formants + 0.5 * torch.exp(-((bands - 25) / 6) ** 2)).reshape(1, 80, 1), 20)
    assert (plain - moved).abs().mean() > 2 * ripple  # a moved formant does
    fine = train._fine_structure((formants + harmonics).reshape(1, 80, 1), 20).flatten()
    assert (fine - harmonics).abs().mean() < 0.2 * harmonics.abs().mean()  # what the envelope leaves: the ripple
    assert train._fine_structure(formants.reshape(1, 80, 1), 20).abs().mean() < 0.2 * harmonics.abs().mean()
