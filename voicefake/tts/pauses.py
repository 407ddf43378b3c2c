"""Long training clips cut at their pauses, so that cloning learns from all of the speech given.

Training reads clips of at most `TrainSettings.max_clip_seconds` (8 s): longer ones cost much more
a step. Read speech is often longer (in the dev corpus 40 % of the first 5 minutes is in clips
over 8 s), and dropping those clips left 3 of 5 minutes to learn from. The base model aligns each
long clip's phonemes to its frames (VITS's monotonic alignment search, the prior against the
flowed posterior), and the clip is cut where a word boundary is aligned to a silence, into pieces
with the phonemes of their own words.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from voicefake.config import HOP_LENGTH, SAMPLE_RATE

MIN_PAUSE_SECONDS = 0.1  # a word boundary is cut only where it is aligned to this much silence
MIN_PIECE_SECONDS = 0.5  # as load_utterances' shortest clip
SILENCE_SHARE = 0.25  # silent: frame level below the quietest 5 % plus this share of the way to the loudest 5 %
EDGE_FRAMES = 2  # how far beyond a word boundary's aligned frames its silence may lie
# A pause is aligned to the space between two words, the punctuation before it or their pads:
# the boundary's frames run from two ids before the space (Piper's layout) to two after it.
BOUNDARY_IDS = 2


@torch.no_grad()
def alignment(model, phoneme_ids: list[int], audio: np.ndarray, d_vector: torch.Tensor | None = None) -> np.ndarray:
    """Frames aligned to each phoneme id ([len(phoneme_ids)] ints, summing to the clip's frames)."""
    from monotonic_alignment_search import maximum_path

    from voicefake.tts.train import spectrogram

    device = next(model.parameters()).device
    x = torch.tensor([phoneme_ids], device=device)
    spec = spectrogram(torch.from_numpy(audio.astype(np.float32))[None, None]).to(device)
    g = None if d_vector is None else torch.nn.functional.normalize(d_vector.reshape(1, -1).float(), dim=-1)[..., None].to(device)
    _, m_p, logs_p, x_mask = model.text_encoder(x, torch.tensor([x.shape[1]], device=device))
    _, m_q, _, y_mask = model.posterior_encoder(spec, torch.tensor([spec.shape[2]], device=device), g=g)
    z_p = model.flow(m_q, y_mask, g=g)
    # log-likelihood of each frame under each phoneme's Gaussian, as Vits.forward_mas computes it; not
    # called, because it also runs the duration predictor, which draws noise and would shift training's seed
    inverse = torch.exp(-2 * logs_p)
    logp = (
        torch.sum(-0.5 * math.log(2 * math.pi) - logs_p - 0.5 * m_p**2 * inverse, [1]).unsqueeze(-1)
        + torch.einsum("klm, kln -> kmn", inverse, -0.5 * z_p**2)
        + torch.einsum("klm, kln -> kmn", m_p * inverse, z_p)
    )
    path = maximum_path(logp, (x_mask.unsqueeze(-1) * y_mask.unsqueeze(2)).squeeze(1))
    return path[0].sum(-1).round().long().cpu().numpy()


def silent_frames(audio: np.ndarray, frames: int) -> np.ndarray:
    """Whether each spectrogram frame of `audio` is silence (relative to the clip's own levels)."""
    import librosa

    level = librosa.amplitude_to_db(librosa.feature.rms(y=audio, frame_length=1024, hop_length=HOP_LENGTH)[0], ref=1.0)
    level = np.pad(level, (0, max(0, frames - len(level))), mode="edge")[:frames]
    quiet, loud = np.percentile(level, [5, 95])
    return level < quiet + SILENCE_SHARE * (loud - quiet)


def cut_points(durations: np.ndarray, boundaries: np.ndarray, silent: np.ndarray) -> list[tuple[int, int]]:
    """(phoneme index of a word boundary, frame to cut at) for each boundary aligned to a pause."""
    starts = np.concatenate([[0], np.cumsum(durations)])
    points = []
    for index in np.flatnonzero(boundaries):
        first, last = max(0, index - BOUNDARY_IDS), min(len(durations) - 1, index + BOUNDARY_IDS)
        lo, hi = max(0, starts[first] - EDGE_FRAMES), min(len(silent), starts[last + 1] + EDGE_FRAMES)
        quiet = np.flatnonzero(silent[lo:hi])
        if len(quiet) * HOP_LENGTH >= MIN_PAUSE_SECONDS * SAMPLE_RATE:
            points.append((int(index), int(lo + quiet[len(quiet) // 2])))
    return points


def pieces(points: list[tuple[int, int]], frames: int, max_frames: int, min_frames: int) -> list[tuple[int, int]]:
    """Spans (first frame, end frame) of the pieces a clip of `frames` is cut into, each at most
    `max_frames`: every cut the furthest pause that keeps the piece short enough. What cannot be
    cut short enough is left out."""
    spans, start = [], 0
    while frames - start > max_frames:
        reachable = [frame for _, frame in points if start + min_frames <= frame <= start + max_frames]
        if not reachable:
            later = [frame for _, frame in points if frame > start + max_frames]
            if not later:
                return spans
            start = later[0]  # the stretch up to the next pause is too long: skip it
            continue
        spans.append((start, max(reachable)))
        start = spans[-1][1]
    if frames - start >= min_frames:
        spans.append((start, frames))
    return spans


def cut_at_pauses(model, utterances: list, max_seconds: float, id_map: dict, d_vector: torch.Tensor | None = None) -> list:
    """`utterances`, each longer than `max_seconds` replaced by its pieces (cut at pauses between
    words, see the module's docstring); a clip with no usable pause is left as it is. `model` is the
    base model (its alignment, not a clone's half-trained one: a resumed run gets the same pieces),
    `id_map` the phoneme ids its clips were written with."""
    from voicefake.tts.train import Utterance

    max_frames, min_frames = int(max_seconds * SAMPLE_RATE / HOP_LENGTH), int(MIN_PIECE_SECONDS * SAMPLE_RATE / HOP_LENGTH)
    kept = []
    for utterance in utterances:
        if len(utterance.audio) <= max_seconds * SAMPLE_RATE:
            kept.append(utterance)
            continue
        ids = np.asarray(utterance.phoneme_ids)
        durations = alignment(model, utterance.phoneme_ids, utterance.audio, d_vector)
        frames = int(durations.sum())
        points = cut_points(durations, np.isin(ids, id_map[" "]), silent_frames(utterance.audio, frames))
        if not points:
            kept.append(utterance)
            continue
        boundary_at = {frame: index for index, frame in points}
        spans = pieces(points, frames, max_frames, min_frames)
        for number, (first, end) in enumerate(spans):
            # Piper's layout: BOS, PAD, (phoneme, PAD)..., EOS; a piece keeps the words between its cuts
            begin = boundary_at[first] + 2 if first in boundary_at else 2
            stop = boundary_at[end] if end in boundary_at else len(ids) - 1
            kept.append(Utterance(
                utterance.audio[first * HOP_LENGTH : end * HOP_LENGTH],
                [*utterance.phoneme_ids[:2], *utterance.phoneme_ids[begin:stop], utterance.phoneme_ids[-1]],
                f"{utterance.text} [part {number + 1} of {len(spans)}]",
            ))
    return kept
