"""vlogger: one portrait + speech -> a talking, gesturing upper-body video (VLOGGER, CVPR 2025).

This module must stay import-light: `vlogger --help` and `--version` import it without torch.
"""

__version__ = "0.1.0"
