"""File facts of a video: stream durations, frame rate, resolution, codecs (from `media.probe_video`)."""

from __future__ import annotations

from vlogger_cli.eval.group import not_available


def file_facts(info) -> dict:
    """The `file` group from a `VideoInfo`: what a player will show, and whether sound and picture agree
    in length (`audio_minus_video_s` > 0: the sound runs on after the last frame)."""
    group = {
        "reasons": {},
        "video_duration_s": round(info.duration, 4),
        "frames": info.num_frames,
        "fps": round(info.fps, 4),
        "variable_rate": info.variable_rate,
        "width": info.width,
        "height": info.height,
        "video_codec": info.video_codec,
        "pix_fmt": info.pix_fmt,
    }
    if info.has_audio:
        group.update(audio_duration_s=round(info.audio_duration, 4),
                     audio_minus_video_s=round(info.audio_duration - info.duration, 4),
                     audio_codec=info.audio_codec, audio_sample_rate=info.audio_sample_rate)
    else:
        not_available(group, ["audio_duration_s", "audio_minus_video_s", "audio_codec", "audio_sample_rate"],
                      "the video has no audio stream")
    return group
