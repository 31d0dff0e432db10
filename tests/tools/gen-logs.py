#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Synthetic IMA and UEFI measurement logs for the ima_log/uefi_log tests.

  gen-logs.py generate OUTDIR      write the fixture set (tests/data/{ima,uefi})
  gen-logs.py digests ima FILE     print "PCR SHA1 SHA256" per IMA line (what to extend)
  gen-logs.py digests uefi FILE    print "PCR SHA1 SHA256" per measured UEFI event
  gen-logs.py ima-lines N [FIRST]  print N synthetic ima-ng lines (for growth tests)

The IMA lines are ima-ng entries whose template hash (column 2) is the SHA-1 of
the ima-ng template data, exactly as the kernel and Keylime compute it:
  u32le(len("sha256") + 2 + 32) "sha256" ":" "\\0" digest   (d-ng)
  u32le(len(path) + 1) path "\\0"                             (n-ng)
PCR 10 is extended with H(template data) in every bank.

The UEFI logs follow the TCG PC Client Platform Firmware Profile: a first
TCG_PCR_EVENT (SHA-1 format) carrying the "Spec ID Event03" header, then
TCG_PCR_EVENT2 records with one digest per algorithm of the header.
Only the Python standard library is used.
"""

import hashlib
import json
import os
import struct
import sys

TPM_ALG_SHA1 = 0x0004
TPM_ALG_SHA256 = 0x000B
ALG_NAMES = {TPM_ALG_SHA1: "sha1", TPM_ALG_SHA256: "sha256"}
ALG_SIZES = {TPM_ALG_SHA1: 20, TPM_ALG_SHA256: 32}

EV_PREBOOT_CERT = 0x0
EV_NO_ACTION = 0x3
EV_SEPARATOR = 0x4
EV_S_CRTM_VERSION = 0x8
EV_EFI_VARIABLE_DRIVER_CONFIG = 0x80000001
EV_EFI_VARIABLE_BOOT = 0x80000002
EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003
EV_EFI_ACTION = 0x80000007
EV_EFI_PLATFORM_FIRMWARE_BLOB = 0x80000008

EFI_GLOBAL_VARIABLE = bytes.fromhex("61dfe48bca93d211aa0d00e098032b8c")  # 8be4df61-93ca-11d2-...
EFI_IMAGE_SECURITY_DATABASE = bytes.fromhex("cbb219d73a3d9645a3bcdad00e67656f")  # d719b2cb-3d3a-...


# ---------------------------------------------------------------- IMA

def ima_ng_template(filedata_hash: bytes, path: str, alg: str = "sha256") -> bytes:
    a = alg.encode()
    p = path.encode()
    return (struct.pack("<I", len(a) + 2 + len(filedata_hash)) + a + b":\0" + filedata_hash +
            struct.pack("<I", len(p) + 1) + p + b"\0")


def ima_ng_line(filedata_hash: bytes, path: str) -> str:
    tdata = ima_ng_template(filedata_hash, path)
    return "10 %s ima-ng sha256:%s %s\n" % (hashlib.sha1(tdata).hexdigest(),
                                            filedata_hash.hex(), path)


def ima_file_line(i: int) -> str:
    path = "/usr/bin/kl-test-%06d" % i
    digest = hashlib.sha256(("content of %s\n" % path).encode()).digest()
    return ima_ng_line(digest, path)


def ima_template_data_of_line(line: str) -> bytes:
    """template data of an ima-ng line (the only template the generator writes)"""
    f = line.rstrip("\n").split(" ", 4)
    if len(f) != 5 or f[2] != "ima-ng":
        raise ValueError("not an ima-ng line: %r" % line)
    alg, hexdigest = f[3].split(":", 1)
    return ima_ng_template(bytes.fromhex(hexdigest), f[4], alg)


def replay(events, algs):
    pcrs = {}
    for alg in algs:
        for pcr, digests in events:
            size = hashlib.new(alg).digest_size
            old = pcrs.setdefault(alg, {}).setdefault(pcr, bytes(size))
            pcrs[alg][pcr] = hashlib.new(alg, old + digests[alg]).digest()
    return {alg: {str(p): v.hex() for p, v in sorted(b.items())} for alg, b in pcrs.items()}


def ima_log(n_files: int, boot_aggregate: bytes):
    lines = [ima_ng_line(boot_aggregate, "boot_aggregate")]
    lines += [ima_file_line(i) for i in range(n_files)]
    events = []
    for line in lines:
        t = ima_template_data_of_line(line)
        events.append((10, {"sha1": hashlib.sha1(t).digest(), "sha256": hashlib.sha256(t).digest()}))
    return "".join(lines), replay(events, ["sha1", "sha256"])


# ---------------------------------------------------------------- UEFI

def utf16(s: str) -> bytes:
    return s.encode("utf-16-le")


def spec_id_event(algs, vendor=b"") -> bytes:
    body = b"Spec ID Event03\0"
    body += struct.pack("<IBBBB", 0, 0, 2, 0, 2)  # platformClass, minor, major, errata, uintnSize
    body += struct.pack("<I", len(algs))
    for alg in algs:
        body += struct.pack("<HH", alg, ALG_SIZES[alg])
    body += struct.pack("<B", len(vendor)) + vendor
    return body


def tcg_pcr_event(pcr: int, etype: int, digest: bytes, data: bytes) -> bytes:
    return struct.pack("<II", pcr, etype) + digest + struct.pack("<I", len(data)) + data


def tcg_pcr_event2(pcr: int, etype: int, digests, data: bytes) -> bytes:
    out = struct.pack("<III", pcr, etype, len(digests))
    for alg, d in digests:
        out += struct.pack("<H", alg) + d
    return out + struct.pack("<I", len(data)) + data


def efi_variable(guid: bytes, name: str, value: bytes) -> bytes:
    n = utf16(name)
    return guid + struct.pack("<QQ", len(n) // 2, len(value)) + n + value


def device_path_file(path: str) -> bytes:
    f = utf16(path + "\0")
    node = struct.pack("<BBH", 0x04, 0x04, 4 + len(f)) + f  # media / file path
    return node + struct.pack("<BBH", 0x7F, 0xFF, 4)        # end of device path


def image_load_event(path: str) -> bytes:
    dp = device_path_file(path)
    return struct.pack("<QQQQ", 0x7E5A0000, 0x1A000, 0, len(dp)) + dp


def uefi_events():
    """(pcr, type, data, measured bytes or None = hash of data) of a small boot"""
    ev = []
    ev.append((0, EV_S_CRTM_VERSION, utf16("1.00\0"), None))
    fw = b"synthetic firmware volume\n" * 64
    ev.append((0, EV_EFI_PLATFORM_FIRMWARE_BLOB, struct.pack("<QQ", 0xFFC00000, len(fw)), fw))
    ev.append((7, EV_EFI_VARIABLE_DRIVER_CONFIG, efi_variable(EFI_GLOBAL_VARIABLE, "SecureBoot", b"\x01"),
               None))
    for name in ("PK", "KEK"):
        ev.append((7, EV_EFI_VARIABLE_DRIVER_CONFIG, efi_variable(EFI_GLOBAL_VARIABLE, name, b""), None))
    for name in ("db", "dbx"):
        ev.append((7, EV_EFI_VARIABLE_DRIVER_CONFIG,
                   efi_variable(EFI_IMAGE_SECURITY_DATABASE, name, b""), None))
    ev.append((1, EV_EFI_VARIABLE_BOOT, efi_variable(EFI_GLOBAL_VARIABLE, "BootOrder", b"\x00\x00"),
               None))
    ev.append((4, EV_EFI_ACTION, b"Calling EFI Application from Boot Option", None))
    for pcr in range(8):
        ev.append((pcr, EV_SEPARATOR, b"\0\0\0\0", None))
    for path in ("\\EFI\\BOOT\\BOOTX64.EFI", "\\EFI\\debian\\grubx64.efi"):
        pe = ("synthetic PE image " + path).encode() * 32
        ev.append((4, EV_EFI_BOOT_SERVICES_APPLICATION, image_load_event(path), pe))
    ev.append((5, EV_EFI_ACTION, b"Exit Boot Services Invocation", None))
    ev.append((5, EV_EFI_ACTION, b"Exit Boot Services Returned with Success", None))
    return ev


def uefi_log_agile(algs):
    # no StartupLocality EV_NO_ACTION event: tpm2-tools 5.4 (what the verifier runs)
    # wrongly extends EV_NO_ACTION TCG_PCR_EVENT2 records, and its PCR 0 would differ
    out = tcg_pcr_event(0, EV_NO_ACTION, bytes(20), spec_id_event(algs))
    measured = []
    count = 1
    for pcr, etype, data, payload in uefi_events():
        m = data if payload is None else payload
        ds = {ALG_NAMES[a]: hashlib.new(ALG_NAMES[a], m).digest() for a in algs}
        out += tcg_pcr_event2(pcr, etype, [(a, ds[ALG_NAMES[a]]) for a in algs], data)
        measured.append((pcr, ds))
        count += 1
    return out, count, replay(measured, [ALG_NAMES[a] for a in algs])


def uefi_log_legacy_sha1():
    out = b""
    measured = []
    count = 0
    for pcr, etype, data, payload in uefi_events():
        m = data if payload is None else payload
        d = hashlib.sha1(m).digest()
        out += tcg_pcr_event(pcr, etype, d, data)
        measured.append((pcr, {"sha1": d}))
        count += 1
    return out, count, replay(measured, ["sha1"])


def uefi_digests(blob: bytes):
    """yields (pcr, {alg: digest}) of every extended event of a crypto-agile or SHA-1 log"""
    pcr, etype = struct.unpack_from("<II", blob, 0)
    size = struct.unpack_from("<I", blob, 28)[0]
    spec = blob[32:32 + size]
    if not (etype == EV_NO_ACTION and spec.startswith(b"Spec ID Event03\0")):
        off = 0
        while off < len(blob):
            pcr, etype = struct.unpack_from("<II", blob, off)
            digest = blob[off + 8:off + 28]
            size = struct.unpack_from("<I", blob, off + 28)[0]
            off += 32 + size
            if etype != EV_NO_ACTION:
                yield pcr, {"sha1": digest}
        return
    nalg = struct.unpack_from("<I", spec, 24)[0]
    sizes = {}
    for i in range(nalg):
        alg, sz = struct.unpack_from("<HH", spec, 28 + 4 * i)
        sizes[alg] = sz
    off = 32 + size
    while off < len(blob):
        pcr, etype, cnt = struct.unpack_from("<III", blob, off)
        off += 12
        ds = {}
        for _ in range(cnt):
            alg = struct.unpack_from("<H", blob, off)[0]
            ds[ALG_NAMES.get(alg, str(alg))] = blob[off + 2:off + 2 + sizes[alg]]
            off += 2 + sizes[alg]
        dsize = struct.unpack_from("<I", blob, off)[0]
        off += 4 + dsize
        if etype != EV_NO_ACTION:
            yield pcr, ds


# ---------------------------------------------------------------- main

def write(path, data, mode="w"):
    with open(path, mode) as f:
        f.write(data)


def generate(outdir):
    ima_dir = os.path.join(outdir, "ima")
    uefi_dir = os.path.join(outdir, "uefi")
    os.makedirs(ima_dir, exist_ok=True)
    os.makedirs(uefi_dir, exist_ok=True)

    blob, count, pcrs = uefi_log_agile([TPM_ALG_SHA1, TPM_ALG_SHA256])
    write(os.path.join(uefi_dir, "uefi-agile.bin"), blob, "wb")
    write(os.path.join(uefi_dir, "uefi-agile.json"),
          json.dumps({"format": "crypto-agile", "event_count": count, "size": len(blob),
                      "algorithms": ["sha1", "sha256"], "pcrs": pcrs}, indent=2) + "\n")
    # boot_aggregate of the IMA log = sha256 over PCRs 0-9 of that boot (8, 9 unused: zero)
    agg = hashlib.sha256(b"".join(bytes.fromhex(pcrs["sha256"][str(i)]) for i in range(8)) +
                         bytes(64)).digest()

    blob1, count1, pcrs1 = uefi_log_agile([TPM_ALG_SHA1])
    write(os.path.join(uefi_dir, "uefi-agile-sha1.bin"), blob1, "wb")
    write(os.path.join(uefi_dir, "uefi-agile-sha1.json"),
          json.dumps({"format": "crypto-agile", "event_count": count1, "size": len(blob1),
                      "algorithms": ["sha1"], "pcrs": pcrs1}, indent=2) + "\n")

    blob2, count2, pcrs2 = uefi_log_legacy_sha1()
    write(os.path.join(uefi_dir, "uefi-legacy-sha1.bin"), blob2, "wb")
    write(os.path.join(uefi_dir, "uefi-legacy-sha1.json"),
          json.dumps({"format": "legacy-sha1", "event_count": count2, "size": len(blob2),
                      "algorithms": ["sha1"], "pcrs": pcrs2}, indent=2) + "\n")

    for name, n in (("ima-ng-small", 20), ("ima-ng-1k", 1000)):
        text, ipcrs = ima_log(n, agg)
        write(os.path.join(ima_dir, name + ".txt"), text)
        write(os.path.join(ima_dir, name + ".json"),
              json.dumps({"entry_count": n + 1, "boot_aggregate": {"sha256": agg.hex()},
                          "pcr10": {"sha1": ipcrs["sha1"]["10"], "sha256": ipcrs["sha256"]["10"]}},
                         indent=2) + "\n")


def main(argv):
    if len(argv) == 3 and argv[1] == "generate":
        generate(argv[2])
    elif len(argv) == 4 and argv[1] == "digests" and argv[2] == "ima":
        with open(argv[3]) as f:
            for line in f:
                t = ima_template_data_of_line(line)
                print(line.split(" ", 1)[0], hashlib.sha1(t).hexdigest(), hashlib.sha256(t).hexdigest())
    elif len(argv) == 4 and argv[1] == "digests" and argv[2] == "uefi":
        with open(argv[3], "rb") as f:
            for pcr, ds in uefi_digests(f.read()):
                print(pcr, ds.get("sha1", b"").hex() or "-", ds.get("sha256", b"").hex() or "-")
    elif len(argv) in (3, 4) and argv[1] == "ima-lines":
        first = int(argv[3]) if len(argv) == 4 else 0
        sys.stdout.write("".join(ima_file_line(i) for i in range(first, first + int(argv[2]))))
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
