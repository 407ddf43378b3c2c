"""Lip-sync: make the mouth in a video or photo follow new audio, frame by frame.

    face.py       find and track a face, 68 landmarks per frame
    visemes.py    the mouth shape each moment of the audio asks for
    mouth.py      the classic renderer: warp the real lips, fill the mouth
    bank.py       the mouth bank: a talking video's own mouths, chosen per frame and blended in
    wav2lip.py    the optional neural renderer (user-supplied weights)
    track.py      stage 1: follow the face through the frames (FaceTrack)
    plan.py       stage 2: per output frame, the input frame, mouth target and strength (MouthPlan)
    render.py     stage 3: one frame with its mouth reshaped (classic or wav2lip)
    pipeline.py   the whole job: inputs, track, plan, render, write
"""

from voicefake.lipsync.pipeline import LipsyncReport, lipsync, speak_video

__all__ = ["LipsyncReport", "lipsync", "speak_video"]
