"""Cells run in a rootfs kernel through jupyter_client, as whoever runs this script
(test_boundary_runtime.py runs it as the victim user); prints the results as JSON.

argv[1]: a JSON list of {"code": CELL, "wait": PATH or null}: before a cell with "wait",
if the cell before it succeeded, wait up to 10 s for PATH to exist (an attacker's signal
that it did its part).
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kerneldriver import KernelDriver  # noqa: E402

cells = json.loads(sys.argv[1])
kernel = KernelDriver()
results: list[dict] = []
try:
    for cell in cells:
        if cell.get("wait") and results and results[-1]["ok"]:
            deadline = time.monotonic() + 10
            while not os.path.exists(cell["wait"]) and time.monotonic() < deadline:
                time.sleep(0.05)
        r = kernel.run(cell["code"], timeout=120)
        results.append({"ok": r.ok, "stdout": r.stdout, "stderr": r.stderr,
                        "errors": [e.get("evalue", "") for e in r.errors]})
finally:
    kernel.shutdown()
print(json.dumps(results))
