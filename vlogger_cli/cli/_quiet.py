"""Keep third-party native libraries quiet on the terminal (mediapipe/TFLite, warp): their INFO and
WARNING lines ("Feedback manager requires...", "Could not find the CUDA driver") are noise for users;
real problems still reach the job's log as exceptions."""

import os


def quiet_native_logs() -> None:
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("WARP_QUIET", "1")
