"""Build the trainable base once: the posterior encoder the bundled Piper voice lacks, and the mel adapter.

    python recipes/build_base.py [--steps 2000] [--adapter-steps 3000] [--folder pretrained]

The bundled voice speaks random word strings through onnxruntime. The posterior encoder learns
to recover, from each waveform's spectrogram, the latent z the decoder made it from (resumable:
run it again after an interruption and it continues from the last 50-step block); then the mel
adapter learns to turn that z into the log-mel spectrogram of what was said, which is where a
clone's waveform decoder starts (it speaks through the universal HiFi-GAN).
"""

import argparse
from pathlib import Path

from tqdm import tqdm

from voicefake.config import CHECKOUT_PRETRAINED
from voicefake.tts.clone import ADAPTER_FILE, BASE_FILE, build_base, build_mel_adapter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--adapter-steps", type=int, default=3000)
    parser.add_argument("--folder", type=Path, default=CHECKOUT_PRETRAINED)
    args = parser.parse_args()
    with tqdm(total=args.steps, desc="distilling the posterior encoder", unit="step") as bar:
        path = build_base(args.steps, args.folder / BASE_FILE, batch_size=args.batch_size, progress=progress_of(bar))
    print(f"wrote {path}")
    with tqdm(total=args.adapter_steps, desc="fitting the mel adapter", unit="step") as bar:
        path = build_mel_adapter(args.adapter_steps, args.folder / ADAPTER_FILE, progress=progress_of(bar))
    print(f"wrote {path}")


def progress_of(bar):
    def progress(loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")

    return progress


if __name__ == "__main__":
    main()
