#!/usr/bin/env python3
"""Runs a job program and appends when it started and ended to a file:
`job_timer.py TIMES_FILE COMMAND...`. Its stdout, stderr and exit code are
the program's. bench/run's job section reads the gaps between one batch's
end and the next one's start, which the job's own running time leaves
out."""

import subprocess
import sys
import time

times, command = sys.argv[1], sys.argv[2:]
start = time.time()
code = subprocess.run(command).returncode
end = time.time()
kind = "dry" if "--dry-run" in command else "batch"
with open(times, "a") as f:
    f.write(f"{start:.6f} {end:.6f} {kind}\n")
sys.exit(code)
