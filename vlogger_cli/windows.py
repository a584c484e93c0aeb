"""Ground floor: the temporal-outpainting window schedule (VLOGGER §3.3) that both stages share.

A clip of any length is made window by window: N frames per window, each next window starting
`overlap_frames` before the previous one ended and taking those frames as known. Stage 1 chains motion
windows with it (motion/outpaint.py), stage 2 chains video windows, super-resolution windows and edit
windows (video/outpaint.py, video/sr.py). Pure; imports nothing from vlogger_cli.
"""

from __future__ import annotations


def window_starts(num_frames: int, window: int, overlap_frames: int) -> list[tuple[int, int, int]]:
    """[(start, end, known)] windows covering num_frames; `known` = frames taken from the previous window."""
    if not 0 <= overlap_frames < window:
        raise ValueError(f"overlap must be in [0, window): {overlap_frames} vs {window}")
    spans, start, known = [], 0, 0
    while True:
        end = min(start + window, num_frames)
        spans.append((start, end, known))
        if end >= num_frames:
            return spans
        start, known = end - overlap_frames, overlap_frames
