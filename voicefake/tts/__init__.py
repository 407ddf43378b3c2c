"""Text to speech: a VITS voice, served and fine-tuned.

VITS is three networks in one: a text encoder (phonemes -> prior), a normalising flow (prior <->
latent), and a HiFi-GAN decoder that turns latents into waveforms: the decoder is the vocoder.

    text.py            text -> phoneme ids (espeak-ng)
    voice.py           serving: a Piper ONNX voice through onnxruntime, audio chunks with phoneme timings
    model.py           the same voice in PyTorch (coqui-tts `Vits`), the model that gets fine-tuned
    train.py           fine-tuning on a speaker's utterances; discriminator.py trains the vocoder adversarially
    clone.py           cloning: enrollment data -> trained model -> exported voice (export.py writes ONNX)
    naturalness.py     how natural speech sounds (DistillMOS), a judge during cloning
"""
