"""Ground floor: how many CPU threads torch work uses.

Imports nothing from vlogger_cli.
"""

from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def small_op_threads():
    """torch CPU threads for stages made of many small ops (anny forward/backward in the fit, the body
    model per window). Measured on the 2-core machine: the astronaut fit takes 1.7 s with 1 thread and
    10-20 s with 2 (the threads spin against each other on (V, 3) sized ops). Override with
    VLOGGER_TORCH_THREADS."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("VLOGGER_TORCH_THREADS", "1")))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
