"""Training loops (motion, video, SR) and what they share: checkpoints with resume, EMA."""
