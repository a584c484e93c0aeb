"""Export: frames (+ speech) to MP4, video inspection, and PNG previews / contact sheets."""

from vlogger_cli.export.mp4 import VideoInfo, extract_audio, probe_video, read_frames, write_mp4
from vlogger_cli.export.preview import contact_sheet, render_contact_sheet, write_preview

__all__ = [
    "VideoInfo",
    "contact_sheet",
    "extract_audio",
    "probe_video",
    "read_frames",
    "render_contact_sheet",
    "write_mp4",
    "write_preview",
]
