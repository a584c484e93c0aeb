"""Export: frames (+ speech) to MP4, and PNG previews / contact sheets. (Reading videos: vlogger_cli/media.py.)"""

from vlogger_cli.export.mp4 import write_mp4
from vlogger_cli.export.preview import contact_sheet, render_contact_sheet, write_preview

__all__ = ["contact_sheet", "render_contact_sheet", "write_mp4", "write_preview"]
