"""Enrollment's quality gates: the thresholds an utterance must pass, each with how it was
calibrated, and how the report words each rejection."""

MIN_UTTERANCE = 1.0  # s; shorter utterances teach a voice little
CLIP_LIMIT = 0.001  # share of samples at |x| >= 0.97; clean speech peaking at full scale has ~0.0001
# speech.snr_db: the real clean clips in ../shared (671 clips >= 1 s) score 20.7-60 dB (1st
# percentile 25); the same speech with white noise added at 15 / 10 / 5 dB scores 13.6 / 9.0 / 4.3.
SNR_LIMIT = 15.0
SPEECH_PROB_LIMIT = 0.6  # mean silero-vad probability an utterance must reach (music and noise score ~0.0)
# resemblyzer cosine of one utterance to the voice's centre (median d-vector); below = another
# speaker. Calibrated on ../shared clips >= 1 s: at 0.75 the speaker's own clips are rejected
# 0.3-3.6% of the time (mostly 1-2 s clips), the other speaker's clips accepted 0.3-0.8%.
SPEAKER_LIMIT = 0.75
SEED_LIMIT = 0.70  # utterance-to-utterance cosine that counts as the same voice when finding the main one
# resemblyzer cosine of a 1.6 s window of an utterance (a partial d-vector) to the voice's centre;
# below = someone else speaks in that window, and the utterance is split around it (a cut between
# two speakers' turns separated by a short pause holds both). A window between PARTIAL_SURE and
# PARTIAL_LIMIT counts only next to another low one: another person's turn lowers several
# windows in a row, while the speaker's own rare low windows stand alone. Calibrated on 29 min
# of ../shared speech in 7 recordings (each real speaker with ~14% turns of the other and of the
# bundled voice after 0.2-0.4 s pauses, twice each way; the test's mixture, where every cut holds
# another voice; 5 min of each speaker alone), windows scored against the recentred voice (see
# split_at_speaker_changes): the speaker's own 0.76-0.81 at the 1st percentile, min 0.69, of
# 2,568 windows 4 taken for another voice; windows mostly of another voice 0.71-0.76 at the 99th
# percentile, 2 of 235 missed. At 0.70 alone, 3% of the kept speech was still another voice's;
# at 0.80 a tenth of the speaker's own was lost. Similarity between neighbouring windows (a
# change detector without a reference) separated them far worse: same speaker down to 0.52,
# across a change up to 0.64.
PARTIAL_LIMIT = 0.75
PARTIAL_SURE = 0.70

REASONS = {  # rejection reason -> how the report words it
    "unreadable": "unreadable file",
    "no speech": "no speech found (silence, noise or music)",
    "too short": f"too short (< {MIN_UTTERANCE:.0f} s)",
    "clipping": "clipping",
    "low snr": f"low SNR (< {SNR_LIMIT:.0f} dB: noise or music behind the voice)",
    "non-speech": "music or non-speech",
    "speaker": "another speaker (outlier from the voice's median)",
    "no transcript": "no transcript",
    "no words": "no words recognised",
}
