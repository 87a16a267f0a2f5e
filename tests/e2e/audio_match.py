"""Is a piece of audio present, undamaged, in a recording? (normalised cross-correlation)"""

from __future__ import annotations

import numpy as np


def _samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def loudest_window(pcm: bytes, rate: int, ms: int = 400) -> bytes:
    """The ``ms`` stretch of ``pcm`` with the most energy: a template that is speech, not
    the silence a clip may start with."""
    samples = _samples(pcm)
    width = rate * ms // 1000
    if len(samples) <= width:
        return pcm
    energy = np.convolve(samples * samples, np.ones(width), mode="valid")
    start = int(np.argmax(energy))
    return pcm[start * 2 : (start + width) * 2]


def best_match(template_pcm: bytes, recording_pcm: bytes) -> float:
    """Peak normalised cross-correlation (1.0: the template appears exactly)."""
    template = _samples(template_pcm)
    recording = _samples(recording_pcm)
    if len(template) == 0 or len(recording) < len(template):
        return 0.0
    template = template - template.mean()
    norm_t = np.sqrt(np.sum(template * template))
    if norm_t == 0:
        return 0.0
    size = 1 << int(np.ceil(np.log2(len(recording) + len(template))))
    corr = np.fft.irfft(np.fft.rfft(recording, size) * np.conj(np.fft.rfft(template, size)), size)
    corr = corr[: len(recording) - len(template) + 1]
    window = np.ones(len(template))
    sums = np.convolve(recording, window, mode="valid")
    squares = np.convolve(recording * recording, window, mode="valid")
    variance = np.maximum(squares - sums * sums / len(template), 1e-9)
    return float(np.max(corr / (np.sqrt(variance) * norm_t)))


def without_silence_frames(played: bytes, frame: int = 640) -> bytes:
    """What the phone played with the all-zero frames taken out.

    On a loaded machine an agent chunk can reach the bridge late; the bridge then sends a
    frame of silence rather than let Infobip's stream run dry, and the phone pads a tick it has
    nothing for. Those frames are timing, not content: comparing what was heard with what was
    sent leaves them out (the latency figures are measured elsewhere)."""
    frames = (played[i : i + frame] for i in range(0, len(played), frame))
    return b"".join(f for f in frames if f.strip(b"\x00"))
