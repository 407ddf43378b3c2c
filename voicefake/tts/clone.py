"""Cloning: turn recordings of a speaker into a Piper voice that speaks as them.

    trainable base  the bundled voice in PyTorch + a posterior encoder rebuilt once by distillation
    fine-tune       that base on the target's clips, conditioned on their d-vector (train.py)
    export          a Piper voice (voice.onnx + voice.onnx.json) that `voicefake say` serves
"""

from __future__ import annotations

import json
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from voicefake.asr import HARVARD_SENTENCES
from voicefake.config import (
    CHECKOUT_PRETRAINED,
    DEFAULT_VOICE,
    NOISE_SCALE,
    NOISE_W,
    SAMPLE_RATE,
    cache_dir,
    check_name,
    voice_folder,
)
from voicefake.errors import VoicefakeError
from voicefake.io.atomic import atomic_output, output_error
from voicefake.tts.export import export_onnx
from voicefake.tts.model import VitsDims, load_vits
from voicefake.tts.voice import load_voice

BASE_FILE = "joe-posterior-encoder.pt"  # the part of the trainable base the ONNX voice lacks
ADAPTER_FILE = "joe-mel-adapter.pt"  # the base voice's latent -> log-mel map, where a clone's decoder starts
SPEAKER_DIMS = VitsDims(d_vector_dim=256)
# Apart from the 20 Harvard sentences benchmarks test on, and from any training transcript.
VALIDATION_SENTENCES = HARVARD_SENTENCES[20:] + [
    "We walked along the river until the sun went down.",
    "Please bring the red box from the kitchen table.",
    "She bought three apples and a loaf of bread.",
]


@dataclass(frozen=True)
class VoiceGoals:
    """What a clone must reach on all three judges at once (the checkpoint choice weighs them so)."""

    similarity: float = 0.85  # resemblyzer, to the speaker's profile; her own clips score about 0.9
    naturalness: float = 3.6  # DistillMOS; the bundled voice scores 4.09, clean real speech 4.47
    wer_ratio: float = 1.15  # pocketsphinx word error rate, against the base voice's on the same sentences
    wer_floor: float = 0.05  # a base voice recognised perfectly still leaves the clone this much room


GOALS = VoiceGoals()


def voice_score(similarity: float, naturalness: float, wer: float, base_wer: float, goals: VoiceGoals = GOALS) -> float:
    """The weakest of the three figures as a fraction of its goal: above 1.0 only when all three are met."""
    wer_goal = goals.wer_ratio * max(base_wer, goals.wer_floor)
    return min(similarity / goals.similarity, naturalness / goals.naturalness, wer_goal / max(wer, 1e-3))


def _random_sentences(count: int, seed: int) -> list[str]:
    """Phonetically varied word strings (from the CMU dictionary bundled with pocketsphinx)."""
    import pocketsphinx

    words_file = Path(pocketsphinx.get_model_path()) / "en-us" / "cmudict-en-us.dict"
    words = [line.split(" ", 1)[0] for line in words_file.read_text(encoding="utf-8").splitlines()]
    words = [w for w in words if re.fullmatch(r"[a-z]{2,10}", w)]
    rng = random.Random(seed)
    return [" ".join(rng.sample(words, rng.randint(3, 7))).capitalize() + "." for _ in range(count)]


def onnx_teacher(model_path: Path, features=None):
    """`teacher(sentences)` for distillation from the Piper ONNX graph: (waveform, z) pairs at RTF 0.04.

    z is the decoder's input, exposed as an extra graph output (`/Mul_7_output_0` is `z * y_mask`
    in Piper's exported graph, the tensor `dec.conv_pre` consumes).
    """
    import onnx
    import onnxruntime

    from voicefake.tts import train

    graph = onnx.load(str(model_path))
    consumer = next(n for n in graph.graph.node if n.name == "/dec/conv_pre/Conv")
    graph.graph.output.append(onnx.helper.ValueInfoProto(name=consumer.input[0]))
    session = onnxruntime.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    scales = np.array([NOISE_SCALE, 1.0, NOISE_W], dtype=np.float32)

    def teach(sentences: list[list[int]]):
        pairs = [session.run(None, {"input": np.array([ids]), "input_lengths": np.array([len(ids)]), "scales": scales})
                 for ids in sentences]
        return train.pad_pairs([p[0] for p in pairs], [p[1][0] for p in pairs], features or train.spectrogram)

    return teach


def base_path(file: str = BASE_FILE) -> Path:
    """Where a part of the trainable base is: shipped in pretrained/, else built into the cache."""
    shipped = CHECKOUT_PRETRAINED / file
    return shipped if shipped.exists() else cache_dir() / file


def build_base(steps: int = 2000, out: Path | None = None, resume: bool = True, batch_size: int = 8,
               progress=None) -> Path:
    """Distil the posterior encoder from the bundled voice's own speech; resumable, cached.

    Saves the encoder (fp16) and the base voice's own d-vector, which is what it was trained with.
    """
    from voicefake import speaker
    from voicefake.tts import train
    from voicefake.tts.text import text_to_sentences

    out = Path(out or cache_dir() / BASE_FILE)
    out.parent.mkdir(parents=True, exist_ok=True)
    voice = load_voice(DEFAULT_VOICE)
    model = load_vits(voice.info.model_path, SPEAKER_DIMS)
    sentences = [s.phoneme_ids for t in _random_sentences(2000, seed=1) for s in text_to_sentences(t, voice.phoneme_id_map)]
    own_speech = np.concatenate([c.audio for t in VALIDATION_SENTENCES for c in voice.synthesize(t)])
    d_vector = torch.from_numpy(speaker.embed(own_speech, SAMPLE_RATE))
    optimizer = torch.optim.AdamW(model.posterior_encoder.parameters(), lr=2e-4, betas=(0.8, 0.99))
    teacher = onnx_teacher(voice.info.model_path)
    done, partial = 0, out.with_suffix(".training")
    if resume and partial.exists():
        state = torch.load(partial, map_location="cpu", weights_only=True)
        model.posterior_encoder.load_state_dict(state["encoder"])
        optimizer.load_state_dict(state["optimizer"])
        done = state["step"]
    while done < steps:
        chunk = min(50, steps - done)
        train.distill_posterior_encoder(model, sentences, chunk, d_vector, batch_size, optimizer=optimizer,
                                        teacher=teacher, progress=progress)
        done += chunk
        with atomic_output(partial) as tmp:  # a unique temporary name: two runs never write the same one
            torch.save({"encoder": model.posterior_encoder.state_dict(), "optimizer": optimizer.state_dict(),
                        "step": done}, tmp)
    half = {k: v.half() for k, v in model.posterior_encoder.state_dict().items()}
    with atomic_output(out) as tmp:
        torch.save({"posterior_encoder": half, "d_vector": d_vector, "steps": steps}, tmp)
    partial.unlink(missing_ok=True)
    return out


def _base_part(file: str, folder: Path | None) -> dict:
    path = Path(folder) / file if folder else base_path(file)
    if not path.exists():
        raise VoicefakeError(f"the trainable base is missing ({path}): build it once with `python recipes/build_base.py`")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_base(device: str = "cpu", vocoder: str = "universal", folder: Path | None = None):
    """The trainable base: (coqui Vits conditioned on d-vectors, the base voice's d-vector).

    With the "universal" vocoder (what clones speak through) its waveform decoder is the mel
    adapter + HiFi-GAN; with "own" it is the bundled voice's. Its parts are read from `folder`
    when given, else from pretrained/ or the cache (`base_path`)."""
    from voicefake.tts.model import use_mel_decoder

    if vocoder not in ("universal", "own"):
        raise VoicefakeError(f"unknown vocoder {vocoder!r}: use universal or own")
    state = _base_part(BASE_FILE, folder)
    model = load_vits(load_voice(DEFAULT_VOICE).info.model_path, SPEAKER_DIMS)
    model.posterior_encoder.load_state_dict({k: v.float() for k, v in state["posterior_encoder"].items()})
    if vocoder == "universal":
        use_mel_decoder(model, _base_part(ADAPTER_FILE, folder)["adapter"])
    return model.to(device), state["d_vector"].float()


def build_mel_adapter(steps: int = 3000, out: Path | None = None, sentences: int = 800, progress=None) -> Path:
    """Fit the mel adapter to the bundled voice's own speech (latent z -> log-mel of what it says); saved fp16.

    The examples are made once (800 random word strings, ~3 minutes), then reused: ~10 minutes on 2 cores."""
    from voicefake.tts import train
    from voicefake.tts.model import MelAdapter
    from voicefake.tts.text import text_to_sentences
    from voicefake.vocoder.hifigan import log_mel

    out = Path(out or cache_dir() / ADAPTER_FILE)
    voice = load_voice(DEFAULT_VOICE)
    teacher = onnx_teacher(voice.info.model_path, features=log_mel)
    examples = []
    for text in _random_sentences(sentences, seed=1):
        for sentence in text_to_sentences(text, voice.phoneme_id_map):
            mel, frames, z = teacher([sentence.phoneme_ids])
            examples.append((z[0, :, : int(frames[0])], mel[0, :, : int(frames[0])]))
    adapter = MelAdapter()
    train.fit_mel_adapter(adapter, examples, steps, progress=progress)
    with atomic_output(out) as tmp:
        torch.save({"adapter": {k: v.half() for k, v in adapter.state_dict().items()}, "steps": steps}, tmp)
    return out


def check_device(device: str) -> str:
    """`cpu` or `cuda`, refusing `cuda` with a clear message where there is no GPU."""
    if device not in ("cpu", "cuda"):
        raise VoicefakeError(f"unknown device {device!r}: use cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise VoicefakeError("--device cuda was asked for, but PyTorch sees no CUDA GPU here: use --device cpu")
    return device


def speaking_pace(utterances, base_voice, count: int = 40) -> float:
    """How much slower (> 1) or faster the speaker talks than the base voice, on the same phonemes.

    The duration predictor stays frozen while cloning (it keeps the words clear), so the
    speaker's tempo is matched instead by the exported voice's length scale.
    """
    import librosa

    theirs = ours = 0.0
    for u in utterances[:count]:
        made = np.asarray(base_voice.piper.phoneme_ids_to_audio(u.phoneme_ids), dtype=np.float32).reshape(-1)
        theirs += len(librosa.effects.trim(u.audio, top_db=40)[0])
        ours += len(librosa.effects.trim(made, top_db=40)[0])
    return float(np.clip(theirs / max(ours, 1.0), 0.75, 1.33))


def piper_config(base_config: dict, provenance: dict, pace: float = 1.0) -> dict:
    """The exported voice's .onnx.json: the base voice's phoneme map and audio, its pace, and provenance."""
    config = json.loads(json.dumps(base_config))
    config.setdefault("inference", {})["length_scale"] = round(pace, 3)
    config["voicefake"] = provenance
    return config


def _speak_validation(model, profile: np.ndarray, phoneme_id_map, device: str) -> list[np.ndarray]:
    """The model speaks the validation sentences (deterministic: every DDP rank must reach the same verdict)."""
    from voicefake.tts.model import vits_synthesize
    from voicefake.tts.text import text_to_sentences

    d_vector = torch.from_numpy(profile).to(device)
    return [np.concatenate([vits_synthesize(model, s.phoneme_ids, noise=0, noise_w=0, d_vector=d_vector)[0]
                            for s in text_to_sentences(text, phoneme_id_map)]) for text in VALIDATION_SENTENCES]


def _chosen_check(history: list) -> dict:
    """The validation the exported weights come from (fine_tune keeps the best-scoring one)."""
    checks = [row for row in history if isinstance(row[2], dict)]
    if not checks:
        return {}
    step, _, figures = max(checks, key=lambda row: row[2]["score"])
    return {"chosen_step": step, "validation": figures}


def clone_validator(profile: np.ndarray, base_voice, device: str):
    """`validate(model) -> figures`: likeness, naturalness and intelligibility on unseen sentences, and their score."""
    from voicefake import speaker
    from voicefake.asr import transcribe, word_error_rate
    from voicefake.tts import naturalness

    def wer_of(clips) -> float:
        return word_error_rate(VALIDATION_SENTENCES, [transcribe(c, SAMPLE_RATE) for c in clips])

    base_clips = [np.concatenate([c.audio for c in base_voice.synthesize(t, noise=0, noise_w=0)])
                  for t in VALIDATION_SENTENCES]
    base_wer = wer_of(base_clips)

    def validate(model) -> dict:
        clips = _speak_validation(model, profile, base_voice.phoneme_id_map, device)
        figures = {
            "similarity": speaker.similarity(speaker.embed(np.concatenate(clips), SAMPLE_RATE), profile),
            "naturalness": naturalness.mean_mos(clips, SAMPLE_RATE),
            "wer": wer_of(clips),
        }
        figures["score"] = voice_score(**figures, base_wer=base_wer)
        return {k: round(v, 4) for k, v in figures.items()} | {"base_wer": round(base_wer, 4)}

    return validate


def voice_profile(data_dir: Path, utterances) -> np.ndarray:
    """The d-vector cloning trains toward: the profile enrollment wrote (profile.npz, the same one its
    speaker checks used), or for a plain dataset folder the mean over its first 40 clips."""
    from voicefake import speaker

    enrolled = Path(data_dir) / "profile.npz"
    if enrolled.is_file():
        with np.load(enrolled, allow_pickle=False) as saved:
            return speaker.unit(saved["mean_embedding"])
    return speaker.profile([u.audio for u in utterances[:40]], SAMPLE_RATE)


def clone_from_dataset(
    data_dir: Path, out_dir: Path, minutes: float = 30.0, device: str = "cpu", licence: str | None = None,
    resume: bool = False, max_steps: int | None = None, on_step=None, settings=None, data_minutes: float | None = None,
    language: str = "en-us",
) -> Path:
    """Fine-tune the trainable base on an LJSpeech-style folder; write OUT/voice.onnx (+ .json, checkpoint.pt).

    `language` is the espeak-ng voice of the transcripts (en-us, ru, de, ...); the clone speaks
    any language the base voice's phoneme set covers, English best.
    """
    from voicefake.tts import train
    from voicefake.tts.pauses import cut_at_pauses

    device = check_device(device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base_voice = load_voice(DEFAULT_VOICE)
    utterances = train.load_utterances(data_dir, base_voice.phoneme_id_map, language, minutes=data_minutes)
    kept = sum(len(u.audio) for u in utterances) / SAMPLE_RATE / 60
    if kept < 1.0 and max_steps is None:
        raise VoicefakeError(f"only {kept:.1f} minutes of usable speech in {data_dir}: cloning needs at least 1 minute")
    profile = voice_profile(data_dir, utterances)
    settings = settings or train.TrainSettings()
    model, _ = load_base(device, settings.vocoder)
    utterances = cut_at_pauses(model, utterances, settings.max_clip_seconds, base_voice.phoneme_id_map, torch.from_numpy(profile))

    validate = clone_validator(profile, base_voice, device)
    state = train.fine_tune(
        model, utterances, torch.from_numpy(profile), out_dir / "checkpoint.pt", settings, seconds=minutes * 60,
        max_steps=max_steps, resume=resume, validate=validate, on_step=on_step,
    )
    if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return out_dir / "voice.onnx"  # rank 0 exports
    pace = speaking_pace(utterances, base_voice)
    provenance = {
        "tool": "voicefake", "base_voice": DEFAULT_VOICE, "trained_minutes": round(state.seconds / 60, 2), "pace": round(pace, 3),
        "steps": state.step, **_chosen_check(state.history), "data_minutes": round(kept, 2), "data_language": language,
        "licence": licence or "not declared",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "d_vector": profile.round(5).tolist(),
    }
    base_config = json.loads(Path(f"{base_voice.info.model_path}.json").read_text(encoding="utf-8"))
    return export_onnx(model.cpu(), out_dir / "voice.onnx", piper_config(base_config, provenance, pace),
                       d_vector=torch.from_numpy(profile))


def clone_voice(name: str, minutes: float = 30.0, device: str = "cpu", resume: bool = False, restart: bool = False,
                on_step=None, max_steps: int | None = None) -> Path:
    """Clone an enrolled voice: refuses without a passing consent record; the result speaks with `say --voice NAME`.

    Every argument is checked before anything is read or changed: a refused run never deletes a checkpoint."""
    from voicefake.enroll.consent import describe, require_consent
    from voicefake.enroll.enrollment import espeak_voice_for
    from voicefake.tts import train

    check_clone_arguments(name, minutes, device, resume, restart, max_steps)
    record = require_consent(name)
    folder = voice_folder(name)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    language = espeak_voice_for(manifest.get("language", "en"))
    checkpoint = folder / "checkpoint.pt"
    if checkpoint.exists() and not (resume or restart):
        raise VoicefakeError(f"voice {name!r} has a checkpoint from an earlier run: add --resume to continue it, "
                             "or --restart to start over")
    if resume and checkpoint.exists():
        train.check_checkpoint(checkpoint)  # a damaged one fails now, not after loading everything
    if restart:  # the last step before training: only a run that is going to start discards the old one
        checkpoint.unlink(missing_ok=True)
    return clone_from_dataset(
        folder, folder, minutes=minutes, device=device, licence=describe(record), resume=resume, on_step=on_step,
        language=language, max_steps=max_steps,
    )


def check_clone_arguments(name: str, minutes: float, device: str = "cpu", resume: bool = False,
                          restart: bool = False, max_steps: int | None = None) -> None:
    """Refuse bad `clone` arguments, touching nothing (the CLI calls this before anything else)."""
    check_name(name)
    if not 0 < minutes <= 24 * 60:
        raise VoicefakeError(f"--minutes {minutes} is out of range: give 1 to 1440")
    check_device(device)
    if resume and restart:
        raise VoicefakeError("--resume and --restart contradict each other: give one of them")
    if max_steps is not None and max_steps < 1:
        raise VoicefakeError(f"a step limit of {max_steps} is out of range: give 1 or more, or none")


def export_voice(name: str, folder: str | Path) -> Path:
    """Copy a cloned voice out as a Piper voice: FOLDER/NAME.onnx + FOLDER/NAME.onnx.json."""
    import shutil

    from voicefake.tts.voice import list_voices

    check_name(name)  # the name becomes a file name below
    voices = {v.name: v for v in list_voices()}
    if name not in voices:
        raise VoicefakeError(f"unknown voice {name!r}: see `voicefake voices`")
    info = voices[name]
    if info.model_path is None or info.state == "bundled":
        raise VoicefakeError(f"voice {name!r} is {info.state}: only cloned voices can be exported")
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise output_error(folder, error) from error
    target = folder / f"{name}.onnx"
    for source, dest in ((info.model_path, target), (Path(f"{info.model_path}.json"), Path(f"{target}.json"))):
        with atomic_output(dest) as partial:
            try:
                shutil.copyfile(source, partial)
            except OSError as error:
                raise output_error(dest, error) from error
    return target
