"""Lip-sync: make the mouth in a video or photo follow new audio, frame by frame.

    face.py       find and track a face, 68 landmarks per frame
    visemes.py    the mouth shape each moment of the audio asks for
    mouth.py      the classic renderer: warp the real lips, fill the mouth
    wav2lip.py    the optional neural renderer (user-supplied weights)
    pipeline.py   the whole job: track, plan, render, write
"""

from voicefake.lipsync.pipeline import LipsyncReport, lipsync, speak_video

__all__ = ["LipsyncReport", "lipsync", "speak_video"]
