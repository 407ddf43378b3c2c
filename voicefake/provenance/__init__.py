"""Saying that a file is synthetic, in ways that survive: every output carries all of these.

    watermark.py   an inaudible, keyed audio mark with a payload (voice, time)
    videomark.py   the same kind of mark in video frames
    manifest.py    metadata tags and a signed C2PA manifest
    detect.py      checks a file for every one of them
"""
