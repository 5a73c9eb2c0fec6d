#!/usr/bin/env python3
"""Runs one contender and reports what it cost: wall time, CPU time and peak RSS of the whole
process tree it started, as JSON on stdout. The contender's own stdout goes to OUT_FILE.

usage: measure.py OUT_FILE COMMAND [ARG...]
"""
import json
import resource
import subprocess
import sys
import time

out_path, command = sys.argv[1], sys.argv[2:]
started = time.monotonic()
with open(out_path, "wb") as out:
    proc = subprocess.run(command, stdout=out, stderr=subprocess.PIPE, timeout=600)
wall = time.monotonic() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({
    "wallS": wall,
    "userS": usage.ru_utime,
    "sysS": usage.ru_stime,
    "maxRssKiB": usage.ru_maxrss,
    "code": proc.returncode,
    "stderr": proc.stderr.decode("utf-8", "replace")[-2000:],
}))
