"""The job store: on-disk layout of a job, its state file, atomic writes and the runner."""
