"""The README's example blocks are the files the tests run: every block marked
<!-- example: PATH --> must be exactly that file's content."""

import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
readme = (root / "README.md").read_text()
blocks = re.findall(r"<!-- example: (\S+) -->\n```[a-z]*\n(.*?)```\n", readme, re.S)
bad = [path for path, text in blocks if (root / path).read_text() != text]
for path in bad:
    print(f"README.md: the block for {path} differs from the file", file=sys.stderr)
if not blocks or bad:
    sys.exit(1)
print(f"README examples: {len(blocks)} blocks match their files")
