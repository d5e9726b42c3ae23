"""Run inside a container or as another user: start the rootfs kernel with jupyter_client,
run each cell given on the command line, print one JSON line per cell.

    python incontainer.py CELL [CELL ...]     ->  {"status", "ename", "evalue", "stdout"}
"""

from __future__ import annotations

import json
import sys

from jupyter_client.manager import start_new_kernel


def main(cells: list[str]) -> None:
    km, kc = start_new_kernel(kernel_name="rootfs", startup_timeout=60)
    try:
        for code in cells:
            out: list[str] = []

            def hook(msg: dict, out: list[str] = out) -> None:
                if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
                    out.append(msg["content"]["text"])

            reply = kc.execute_interactive(code, timeout=60, output_hook=hook)["content"]
            print(json.dumps({"status": reply["status"], "ename": reply.get("ename", ""),
                              "evalue": reply.get("evalue", ""), "stdout": "".join(out)}),
                  flush=True)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


if __name__ == "__main__":
    main(sys.argv[1:])
