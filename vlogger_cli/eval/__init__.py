"""`vlogger eval`: measure any talking video (a render, a peer's output, a real recording).

One module per metric group: identity (dlib face descriptor), sharpness (CPBD), lip_sync (mouth opening
against the speech, with controls), motion (jitter, head rotation, blinks), reference (against a
ground-truth video), file_facts; measure.py runs them over one pass of the frames, report.py prints the
tables and draws the plot, job_folders.py finds the finished jobs of a render's output folder.
Imports nothing heavy at package import.
"""
