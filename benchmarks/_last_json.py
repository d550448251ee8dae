"""The last JSON object a benchmark printed (its last line, or an indented object ending its output), compact.

    python benchmarks/_last_json.py <stdout file>      # used by benchmarks/gpu.sh; exit 1 if there is none
"""

from __future__ import annotations

import json
import sys


def last_json(text: str) -> dict:
    lines = text.rstrip().splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("{"):
            try:
                return json.loads("\n".join(lines[i:]))
            except ValueError:
                continue
    raise ValueError("no JSON object at the end of the output")


if __name__ == "__main__":
    try:
        with open(sys.argv[1]) as out:
            print(json.dumps(last_json(out.read())))
    except ValueError as err:
        sys.exit(f"{sys.argv[1]}: {err}")
