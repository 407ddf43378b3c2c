"""The PyTorch engine: a Piper voice loaded into coqui-tts `Vits`, the model that gets fine-tuned.

Piper exports only the inference half of VITS to ONNX, without architecture settings; the
dimensions below are recovered from the tensor shapes of Piper "medium" voices, and the
weights are renamed from Piper's module paths to coqui's (see ../shared/notes/piper-to-coqui.md).
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils import parametrize

from voicefake.config import NOISE_SCALE, NOISE_W
from voicefake.vocoder.hifigan import MEL_BANDS, load_vocoder


@dataclass(frozen=True)
class VitsDims:
    """Architecture of a Piper "medium" VITS voice, as coqui `VitsArgs` fields."""

    num_chars: int = 256
    hidden_channels: int = 192
    hidden_channels_ffn_text_encoder: int = 768
    num_heads_text_encoder: int = 2
    num_layers_text_encoder: int = 6
    kernel_size_text_encoder: int = 3
    kernel_size_flow: int = 5
    num_layers_flow: int = 4
    resblock_type_decoder: str = "2"
    resblock_kernel_sizes_decoder: list = field(default_factory=lambda: [3, 5, 7])
    resblock_dilation_sizes_decoder: list = field(default_factory=lambda: [[1, 2], [2, 6], [3, 12]])
    upsample_rates_decoder: list = field(default_factory=lambda: [8, 8, 4])
    upsample_initial_channel_decoder: int = 256
    upsample_kernel_sizes_decoder: list = field(default_factory=lambda: [16, 16, 8])
    use_sdp: bool = True
    d_vector_dim: int = 0  # 256 = conditioned on a resemblyzer speaker embedding (cloned voices)


def build_vits(dims: VitsDims = VitsDims(), discriminator: bool = False):
    """A coqui `Vits` with Piper's architecture and random weights."""
    from TTS.tts.configs.vits_config import VitsConfig
    from TTS.tts.models.vits import Vits, VitsArgs
    from TTS.tts.utils.speakers import SpeakerManager

    args = asdict(dims)
    conditioned = args.pop("d_vector_dim") > 0
    model_args = VitsArgs(**args, init_discriminator=discriminator, use_d_vector_file=conditioned,
                          d_vector_dim=dims.d_vector_dim or 512)
    logging.getLogger("TTS").setLevel(logging.ERROR)  # "Could not identify language": we bring our own phonemes
    with warnings.catch_warnings():  # coqui deprecates the speaker_manager argument it still requires
        warnings.simplefilter("ignore", UserWarning)
        model = Vits(VitsConfig(model_args=model_args), speaker_manager=SpeakerManager() if conditioned else None)
    # coqui sizes the embedding from its own 67-symbol tokenizer; Piper ids need num_chars rows
    model.text_encoder.emb = torch.nn.Embedding(dims.num_chars, dims.hidden_channels)
    return model


def _coqui_name(piper_name: str) -> str:
    """Piper module path -> coqui module path (before the weight-norm split)."""
    name = piper_name
    if name == "sid":  # Piper's exporter named the phoneme embedding after the speaker input
        return "text_encoder.emb.weight"
    name = re.sub(r"^flow\.flows\.(\d+)\.", lambda m: f"flow.flows.{int(m[1]) // 2}.", name)
    dp_flows = {"0": "0", "3": "2", "5": "3", "7": "4"}  # Piper keeps Flip modules as separate flows
    name = re.sub(r"^dp\.flows\.(\d+)\.", lambda m: f"dp.flows.{dp_flows[m[1]]}.", name)
    name = re.sub(r"^dp\.flows\.0\.m$", "dp.flows.0.translation", name)
    name = re.sub(r"^dp\.flows\.0\.logs$", "dp.flows.0.log_scale", name)
    for piper, coqui in (("enc_p.", "text_encoder."), ("dec.", "waveform_decoder."), ("dp.", "duration_predictor.")):
        if name.startswith(piper):
            return coqui + name[len(piper) :]
    return name


def read_piper_onnx(onnx_path: str | Path) -> dict[str, np.ndarray]:
    """Every weight of a Piper ONNX voice, by Piper module path."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    weights = {name: value for name, value in values.items() if re.match(r"^(enc_p|dec|dp|flow)\.|^sid$", name)}
    for node in graph.node:
        # Unnamed flow WN convs: the consuming Conv node's name gives the module path
        if node.op_type == "Conv" and len(node.input) > 1 and node.input[1].startswith("onnx::"):
            module = node.name.strip("/").rsplit("/", 1)[0].replace("/", ".")
            weights[f"{module}.weight"] = values[node.input[1]]
    # exp(-logs) of the first duration flow was constant-folded by the exporter
    weights["dp.flows.0.logs"] = -np.log(values["/dp/flows.0/Exp_output_0"])
    return weights


def piper_state_dict(onnx_path: str | Path, model) -> dict[str, torch.Tensor]:
    """Piper ONNX weights as a state dict for `model` (coqui Vits), weight norm split back out."""
    target = model.state_dict()
    state = {}
    for piper_name, value in read_piper_onnx(onnx_path).items():
        name = _coqui_name(piper_name)
        tensor = torch.from_numpy(np.array(value, dtype=np.float32))
        if name.endswith(".weight") and name not in target:
            # Weight norm was folded before export: W = g * v / ||v|| with g = ||W||, v = W is exact
            stem = name[: -len("weight")] + "parametrizations.weight."
            dims = tuple(range(1, tensor.dim()))
            state[stem + "original1"] = tensor
            state[stem + "original0"] = tensor.norm(dim=dims, keepdim=True)
            continue
        if name not in target:
            raise KeyError(f"Piper weight {piper_name} has no place in the coqui model ({name})")
        state[name] = tensor.reshape(target[name].shape)
    return state


def load_vits(onnx_path: str | Path, dims: VitsDims = VitsDims(), discriminator: bool = False):
    """Load a Piper ONNX voice into a coqui `Vits` (eval mode), ready for inference or fine-tuning.

    Parts the ONNX file lacks (posterior encoder, discriminator, training-only duration flows)
    keep their random initialisation and are reported in `model.missing_from_onnx`. With
    `dims.d_vector_dim`, the speaker-conditioning layers start at zero, so the model still
    speaks exactly as the Piper voice whatever d-vector it is given.
    """
    model = build_vits(dims, discriminator)
    state = piper_state_dict(onnx_path, model)
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise KeyError(f"unexpected weights: {result.unexpected_keys[:5]}")
    model.missing_from_onnx = sorted({".".join(k.split(".")[:2]) for k in result.missing_keys if ".cond" not in k})
    zero_speaker_conditioning(model)
    return model.eval()


def zero_speaker_conditioning(model) -> None:
    """Zero every layer that injects the speaker embedding, outside the posterior encoder."""
    for name, module in model.named_modules():
        if name.startswith("posterior_encoder") or not re.search(r"(^|\.)cond(_layer)?$", name):
            continue
        with torch.no_grad():
            if parametrize.is_parametrized(module, "weight"):
                module.parametrizations.weight.original0.zero_()  # weight norm: zero gain, direction kept
            else:
                module.weight.zero_()
            if module.bias is not None:
                module.bias.zero_()


@torch.inference_mode()
def vits_synthesize(
    model, phoneme_ids: list[int], noise: float = NOISE_SCALE, length_scale: float = 1.0, noise_w: float = NOISE_W,
    d_vector: torch.Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Waveform (float32) and frames per phoneme id for one sentence, through the PyTorch model."""
    model.inference_noise_scale, model.length_scale, model.inference_noise_scale_dp = noise, length_scale, noise_w
    x = torch.tensor([phoneme_ids], dtype=torch.long)
    d_vectors = None if d_vector is None else d_vector.reshape(1, -1)
    out = model.inference(x, aux_input={"x_lengths": torch.tensor([len(phoneme_ids)]), "d_vectors": d_vectors})
    audio = out["model_outputs"][0, 0].float().cpu().numpy()
    return audio, out["durations"][0, 0].long().cpu().numpy()


class MelAdapter(torch.nn.Module):
    """The trained half of a clone's waveform decoder: latent z [B, 192, frames] -> log-mel [B, 80, frames].

    Small on purpose (1.3 M weights, 17 frames of context): the latent already carries the sound,
    the adapter only re-expresses it as the features the universal vocoder reads.
    """

    def __init__(self, latent_channels: int = 192, channels: int = 256, blocks: int = 3, kernel: int = 5):
        super().__init__()
        self.pre = torch.nn.Conv1d(latent_channels, channels, kernel, padding=kernel // 2)
        self.blocks = torch.nn.ModuleList(torch.nn.Conv1d(channels, channels, kernel, padding=kernel // 2) for _ in range(blocks))
        self.post = torch.nn.Conv1d(channels, MEL_BANDS, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        hidden = self.pre(z)
        for block in self.blocks:
            hidden = hidden + block(torch.nn.functional.leaky_relu(hidden, 0.1))
        return self.post(torch.nn.functional.leaky_relu(hidden, 0.1))


class MelWaveformDecoder(torch.nn.Module):
    """A clone's waveform decoder: z -> `MelAdapter` -> log-mel -> the universal HiFi-GAN (frozen).

    Takes the place of Vits.waveform_decoder (same call). The vocoder is deliberately not a
    submodule: checkpoints, optimizers and `best.pt` never carry its 14 M fixed weights; the
    ONNX export bakes them in.
    """

    def __init__(self, adapter: MelAdapter | None = None):
        super().__init__()
        self.adapter = adapter or MelAdapter()
        self.__dict__["vocoder"] = load_vocoder()

    def forward(self, z: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        return self.vocoder.to(z.device)(self.adapter(z))


def use_mel_decoder(model, adapter_state: dict | None = None):
    """Swap `model`'s waveform decoder for a `MelWaveformDecoder` (with the adapter weights given); returns model."""
    decoder = MelWaveformDecoder()
    if adapter_state is not None:
        decoder.adapter.load_state_dict({k: v.float() for k, v in adapter_state.items()})
    model.waveform_decoder = decoder.to(next(model.parameters()).device)
    return model


def has_mel_decoder(model) -> bool:
    """Whether `model` speaks through the universal vocoder (a clone) or its own waveform decoder (Piper)."""
    return isinstance(model.waveform_decoder, MelWaveformDecoder)
