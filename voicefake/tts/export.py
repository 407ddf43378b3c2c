"""Export a (fine-tuned) coqui `Vits` as a Piper voice: `NAME.onnx` + `NAME.onnx.json`.

The graph keeps Piper's interface (inputs `input`, `input_lengths`, `scales`; output `output`),
so piper-tts and `voicefake say` both load it, and adds a second output `durations` (frames per
phoneme id) that lip-sync uses. A voice's speaker embedding is baked into the graph.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import fields
from pathlib import Path

import torch
from torch.nn.utils import parametrize

from voicefake.config import NOISE_SCALE, NOISE_W
from voicefake.io.atomic import atomic_output, output_error


class _PiperInterface(torch.nn.Module):
    def __init__(self, model, d_vector: torch.Tensor | None):
        super().__init__()
        self.model = model
        self.register_buffer("d_vector", None if d_vector is None else d_vector.reshape(1, -1))

    def forward(self, phoneme_ids, lengths, scales):
        self.model.inference_noise_scale = scales[0]
        self.model.length_scale = scales[1]
        self.model.inference_noise_scale_dp = scales[2]
        d_vectors = None if self.d_vector is None else self.d_vector.expand(phoneme_ids.shape[0], -1)
        out = self.model.inference(phoneme_ids, aux_input={"x_lengths": lengths, "d_vectors": d_vectors})
        return out["model_outputs"].unsqueeze(1), out["durations"]


def _fresh_copy(model):
    """A new model with `model`'s weights (deepcopy fails on a model trained under DDP)."""
    from voicefake.tts.model import VitsDims, build_vits, has_mel_decoder, use_mel_decoder

    args = model.args
    dims = VitsDims(**{f.name: getattr(args, f.name) for f in fields(VitsDims) if f.name not in ("num_chars", "d_vector_dim")},
                    num_chars=model.text_encoder.emb.num_embeddings,  # coqui's args keep its own tokenizer's size
                    d_vector_dim=args.d_vector_dim if args.use_d_vector_file else 0)
    copy = build_vits(dims)
    if has_mel_decoder(model):
        use_mel_decoder(copy)
    copy.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("disc.")})
    return copy.cpu().eval()


def export_onnx(model, path: str | Path, piper_config: dict, d_vector: torch.Tensor | None = None) -> Path:
    """Write `path` (.onnx) and `path`.json (Piper config), each atomically; returns the .onnx path."""
    path = Path(path)
    model = _fresh_copy(model)
    for module in model.modules():  # fold weight norm into plain weights, as Piper's exporter does
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight")
    wrapper = _PiperInterface(model, d_vector)
    example = (torch.randint(1, 50, (1, 60)), torch.tensor([60]), torch.tensor([NOISE_SCALE, 1.0, NOISE_W]))
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # coqui's shape asserts, harmless here
    with atomic_output(path) as partial, atomic_output(Path(f"{path}.json")) as config_partial:
        try:
            torch.onnx.export(
                wrapper, example, str(partial), dynamo=False, opset_version=15,
                input_names=["input", "input_lengths", "scales"], output_names=["output", "durations"],
                dynamic_axes={"input": {0: "batch_size", 1: "phonemes"}, "input_lengths": {0: "batch_size"},
                              "output": {0: "batch_size", 3: "time"}, "durations": {0: "batch_size", 2: "phonemes"}},
            )
            config_partial.write_text(json.dumps(piper_config, ensure_ascii=False, indent=2), encoding="utf-8")
        except OSError as error:  # a full disk: one line, like every other output
            raise output_error(path, error) from error
    return path
