"""Build the trainable base once: rebuild the posterior encoder the bundled Piper voice lacks.

    python recipes/build_base.py [--steps 2000] [--out pretrained/joe-posterior-encoder.pt]

The bundled voice speaks random word strings through onnxruntime; the posterior encoder learns
to recover, from each waveform's spectrogram, the latent z the decoder made it from. Resumable:
run it again after an interruption and it continues from the last 50-step block.
"""

import argparse

from tqdm import tqdm

from voicefake.config import CHECKOUT_PRETRAINED
from voicefake.tts.clone import BASE_FILE, build_base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", default=str(CHECKOUT_PRETRAINED / BASE_FILE))
    args = parser.parse_args()
    bar = tqdm(total=args.steps, desc="distilling the posterior encoder", unit="step")

    def progress(loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")

    path = build_base(args.steps, args.out, batch_size=args.batch_size, progress=progress)
    bar.close()
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
