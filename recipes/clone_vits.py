"""Clone a voice from an LJSpeech-style folder, outside the CLI.

    python recipes/clone_vits.py --data LJSPEECH_DIR --out OUT_DIR [--minutes 30] [--device cpu|cuda] [--licence TEXT]
    torchrun --nproc_per_node 2 recipes/clone_vits.py ...     # the same, data-parallel

LJSPEECH_DIR holds wavs/ and metadata.csv (`id|text|normalized text`, or headed
`file|transcript|duration_s`); OUT_DIR receives voice.onnx + voice.onnx.json (a Piper voice)
and checkpoint.pt. The speaker's consent is the caller's responsibility here: declare the
dataset's licence with --licence; it is written into the voice's provenance.
"""

import argparse
import os
import sys

import torch

from voicefake.errors import VoicefakeError
from voicefake.tts.clone import clone_from_dataset


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="LJSpeech-style folder: wavs/ and metadata.csv")
    parser.add_argument("--out", required=True, help="output folder for voice.onnx, voice.onnx.json, checkpoint.pt")
    parser.add_argument("--minutes", type=float, default=30.0, help="training time budget (default 30)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--licence", help="the dataset's licence / consent basis, kept in the voice's provenance")
    parser.add_argument("--language", default="en-us", help="espeak-ng voice of the transcripts (en-us, ru, ...)")
    parser.add_argument("--data-minutes", type=float, help="use only the first N minutes of the data")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument("--max-steps", type=int, help=argparse.SUPPRESS)  # tests: a fixed tiny run
    args = parser.parse_args()

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # started by torchrun
        backend = "nccl" if args.device == "cuda" else "gloo"
        torch.distributed.init_process_group(backend)
        if args.device == "cuda":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    rank = int(os.environ.get("RANK", "0"))

    def report(step, losses, state):
        if rank == 0 and (step % 10 == 0 or step == 1):
            figures = " ".join(f"{k}={v:.3f}" for k, v in losses.items())
            print(f"step {step} {state.seconds / 60:.1f} min {figures}", flush=True)

    try:
        path = clone_from_dataset(
            args.data, args.out, minutes=args.minutes, device=args.device, licence=args.licence, resume=args.resume,
            max_steps=args.max_steps, on_step=report, data_minutes=args.data_minutes, language=args.language,
        )
    except VoicefakeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if rank == 0:
        print(f"wrote {path}")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
