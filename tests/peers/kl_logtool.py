#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Synthetic IMA / UEFI measurement logs for tests, and the PCR extends that make a
(software) TPM agree with them.

  kl_logtool.py gen-ima FILE [--count N]         write an ima-ng log (boot_aggregate + N files)
  kl_logtool.py append-ima FILE PATH CONTENT     append one ima-ng line, print its extend spec
  kl_logtool.py gen-uefi FILE                    write a TCG2 crypto-agile log for PCRs 0-7
  kl_logtool.py extends [--ima F [--from N]] [--uefi F] [--bank sha256]
                                                 print tpm2_pcrextend specs ("10:sha256=..."), one a line
  kl_logtool.py replay [--ima F] [--uefi F] [--bank sha256]   print the expected PCR values (JSON)
  kl_logtool.py allowlist --ima F                 print {path: [file hash]} of the log (verifier ima_allowlist)
"""

import argparse
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import kl_tpm  # noqa: E402

EV_POST_CODE = 0x1
EV_NO_ACTION = 0x3
EV_SEPARATOR = 0x4
EV_S_CRTM_VERSION = 0x8
EV_EFI_VARIABLE_DRIVER_CONFIG = 0x80000001
EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003
EV_EFI_ACTION = 0x80000007


def ima_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line for line in f.read().split("\n") if line]


def gen_ima(out, count):
    lines = []
    ba_line, _ = kl_tpm.ima_line_for("boot_aggregate", b"boot aggregate of the test TPM")
    lines.append(ba_line)
    for i in range(count):
        line, _ = kl_tpm.ima_line_for(f"/usr/bin/kl-test-{i}", f"content of test file {i}\n".encode())
        lines.append(line)
    with open(out, "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))


def uefi_event(pcr, etype, data, algs):
    out = struct.pack("<III", pcr, etype, len(algs))
    for name in algs:
        out += struct.pack("<H", kl_tpm.ALG_BY_HASH[name]) + kl_tpm.digest(name, data)
    return out + struct.pack("<I", len(data)) + data


def gen_uefi(out):
    algs = ["sha1", "sha256"]
    spec = b"Spec ID Event03\0" + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, len(algs))
    for name in algs:
        spec += struct.pack("<HH", kl_tpm.ALG_BY_HASH[name], len(kl_tpm.digest(name, b"")))
    spec += b"\0"
    blob = struct.pack("<II", 0, EV_NO_ACTION) + b"\0" * 20 + struct.pack("<I", len(spec)) + spec
    blob += uefi_event(0, EV_S_CRTM_VERSION, "1.0 test firmware".encode("utf-16-le") + b"\0\0", algs)
    blob += uefi_event(0, EV_POST_CODE, b"test POST code", algs)
    blob += uefi_event(1, EV_EFI_VARIABLE_DRIVER_CONFIG, b"BootOrder=0001", algs)
    blob += uefi_event(2, EV_POST_CODE, b"option ROM", algs)
    blob += uefi_event(4, EV_EFI_BOOT_SERVICES_APPLICATION, b"\\EFI\\BOOT\\BOOTX64.EFI", algs)
    blob += uefi_event(5, EV_EFI_ACTION, b"Exit Boot Services Invocation", algs)
    blob += uefi_event(7, EV_EFI_VARIABLE_DRIVER_CONFIG, b"SecureBoot=1", algs)
    for pcr in range(8):
        blob += uefi_event(pcr, EV_SEPARATOR, b"\0\0\0\0", algs)
    with open(out, "wb") as f:
        f.write(blob)


def extends(args):
    specs = []
    if args.uefi:
        events, _ = kl_tpm.parse_uefi_log(open(args.uefi, "rb").read())
        for pcr, etype, digs, _ in events:
            if etype != EV_NO_ACTION:
                specs.append(f"{pcr}:{args.bank}={digs[args.bank].hex()}")
    if args.ima:
        for line in ima_lines(args.ima)[args.start:]:
            e = kl_tpm.ImaEntry(line)
            specs.append(f"{e.pcr}:{args.bank}={e.pcr_extend_value(args.bank).hex()}")
    print("\n".join(specs))


def replay(args):
    pcrs = {}
    if args.uefi:
        pcrs.update({str(p): v.hex() for p, v in kl_tpm.replay_uefi_log(open(args.uefi, "rb").read(),
                                                                        args.bank).items()})
    if args.ima:
        run = b"\0" * len(kl_tpm.digest(args.bank, b""))
        for line in ima_lines(args.ima):
            run = kl_tpm.digest(args.bank, run + kl_tpm.ImaEntry(line).pcr_extend_value(args.bank))
        pcrs["10"] = run.hex()
    print(json.dumps(pcrs, indent=1))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen-ima")
    g.add_argument("file")
    g.add_argument("--count", type=int, default=5)
    a = sub.add_parser("append-ima")
    a.add_argument("file")
    a.add_argument("path")
    a.add_argument("content")
    a.add_argument("--bank", default="sha256")
    u = sub.add_parser("gen-uefi")
    u.add_argument("file")
    al = sub.add_parser("allowlist")
    al.add_argument("--ima", required=True)
    for name in ("extends", "replay"):
        e = sub.add_parser(name)
        e.add_argument("--ima")
        e.add_argument("--from", dest="start", type=int, default=0)
        e.add_argument("--uefi")
        e.add_argument("--bank", default="sha256")
    args = p.parse_args()
    if args.cmd == "gen-ima":
        gen_ima(args.file, args.count)
    elif args.cmd == "append-ima":
        line, e = kl_tpm.ima_line_for(args.path, args.content.encode())
        with open(args.file, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        print(f"10:{args.bank}={e.pcr_extend_value(args.bank).hex()}")
    elif args.cmd == "gen-uefi":
        gen_uefi(args.file)
    elif args.cmd == "extends":
        extends(args)
    elif args.cmd == "allowlist":
        out = {}
        for line in ima_lines(args.ima):
            e = kl_tpm.ImaEntry(line)
            out.setdefault(e.path, []).append(e.file_hash[1].hex())
        print(json.dumps(out))
    else:
        replay(args)


if __name__ == "__main__":
    main()
