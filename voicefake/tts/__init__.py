"""Text to speech: a VITS voice, served and fine-tuned.

VITS is three networks in one: a text encoder (phonemes -> prior), a normalising flow (prior <->
latent), and a HiFi-GAN decoder that turns latents into waveforms: the decoder is the vocoder.
A clone replaces that decoder with a mel adapter (latent -> log-mel, model.py) in front of the
universal vocoder (voicefake/vocoder/), which is never fine-tuned.

    text.py            text -> phoneme ids (espeak-ng)
    voice.py           serving: a Piper ONNX voice through onnxruntime, audio chunks with phoneme timings
    model.py           the same voice in PyTorch (coqui-tts `Vits`), the model that gets fine-tuned
    train.py           fine-tuning on a speaker's utterances (in mel space; or the own decoder, discriminator.py)
    clone.py           cloning: enrollment data -> trained model -> exported voice (export.py writes ONNX)
    naturalness.py     how natural speech sounds (DistillMOS), a judge during cloning
"""
