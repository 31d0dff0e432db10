#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# check-sdk-docs.py MAP INCLUDE_DIR: the plugin SDK keeps its promises. Every
# symbol of a public version node KL_PLUGIN_1.N of the services library's
# version script is declared in include/ with a gtk-doc comment that says
# "Since: 1.N" (the minor that added it); every function declared in include/
# is exported by one of those nodes; every gtk-doc comment there has a Since:.
# TAP output.
import glob
import os
import re
import sys


def public_nodes(map_path):
    """{symbol: "1.N"} of the KL_PLUGIN_1.N nodes"""
    symbols = {}
    text = open(map_path, encoding="utf-8").read()
    for node, body in re.findall(r"KL_PLUGIN_(\d+\.\d+)\s*\{(.*?)\}", text, re.S):
        exported = body.split("local:")[0]
        for name in re.findall(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*;", exported, re.M):
            symbols[name] = node
    return symbols


def header_docs(include_dir):
    """{name: (header, since or None)} of the gtk-doc comments; {function: header}"""
    docs = {}
    functions = {}
    for path in sorted(glob.glob(os.path.join(include_dir, "**", "*.h"), recursive=True)):
        text = open(path, encoding="utf-8").read()
        header = os.path.relpath(path, include_dir)
        for name, body in re.findall(r"/\*\*\s*\n\s*\*\s*([A-Za-z_][A-Za-z0-9_]*):?(.*?)\*/", text, re.S):
            since = re.search(r"Since:\s*(\d+\.\d+)", body)
            docs[name] = (header, since.group(1) if since else None)
        # a declaration: the function name at the start of a line, after its type line
        for name in re.findall(r"^([a-z_][a-z0-9_]*)\s*\(", text, re.M):
            functions[name] = header
    return docs, functions


def main():
    map_path, include_dir = sys.argv[1], sys.argv[2]
    symbols = public_nodes(map_path)
    docs, functions = header_docs(include_dir)
    checks = []

    for name, node in sorted(symbols.items()):
        if name not in functions:
            checks.append((False, f"{name} (KL_PLUGIN_{node}) is declared in include/",
                           "exported but not declared in any public header"))
            continue
        header, since = docs.get(name, (None, None))
        if header is None:
            checks.append((False, f"{name} has a gtk-doc comment", f"none in {functions[name]}"))
        elif since != node:
            checks.append((False, f"{name}: Since: {node}",
                           f"{header} says Since: {since}; the version script puts it in KL_PLUGIN_{node}"))
        else:
            checks.append((True, f"{name}: documented, Since: {node}", None))
    for name, header in sorted(functions.items()):
        if name not in symbols:
            checks.append((False, f"{name} ({header}) is exported",
                           "declared in a public header but in no KL_PLUGIN_1.x node of the version script"))
    for name, (header, since) in sorted(docs.items()):
        if since is None:
            checks.append((False, f"{name} ({header}): gtk-doc comment has Since:", "no Since: line"))
    if not symbols:
        checks.append((False, "the version script has public symbols", f"none found in {map_path}"))

    print(f"1..{len(checks)}")
    for i, (ok, what, why) in enumerate(checks, 1):
        print(f"{'ok' if ok else 'not ok'} {i} {what}")
        if not ok:
            print(f"# {why}")
    return 0 if all(ok for ok, _, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
