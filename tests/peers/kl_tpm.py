# SPDX-License-Identifier: Apache-2.0
"""TPM 2.0 structures and crypto shared by the test registrar and verifier.

Only the Python standard library and python3-cryptography are used. Everything
here checks its input strictly: a parser raises ValueError on any malformed or
trailing data, so the peers reject what the real Keylime would reject.
"""

import base64
import hashlib
import hmac
import os
import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

TPM_GENERATED_VALUE = 0xFF544347
TPM_ST_ATTEST_CERTIFY = 0x8017
TPM_ST_ATTEST_QUOTE = 0x8018

TPM_ALG_RSA = 0x0001
TPM_ALG_SHA1 = 0x0004
TPM_ALG_HMAC = 0x0005
TPM_ALG_AES = 0x0006
TPM_ALG_KEYEDHASH = 0x0008
TPM_ALG_XOR = 0x000A
TPM_ALG_SHA256 = 0x000B
TPM_ALG_SHA384 = 0x000C
TPM_ALG_SHA512 = 0x000D
TPM_ALG_NULL = 0x0010
TPM_ALG_SM3_256 = 0x0012
TPM_ALG_RSASSA = 0x0014
TPM_ALG_RSAPSS = 0x0016
TPM_ALG_ECDSA = 0x0018
TPM_ALG_ECC = 0x0023
TPM_ALG_SYMCIPHER = 0x0025
TPM_ALG_CFB = 0x0043

TPMA_OBJECT_FIXEDTPM = 0x00000002
TPMA_OBJECT_FIXEDPARENT = 0x00000010
TPMA_OBJECT_SENSITIVEDATAORIGIN = 0x00000020
TPMA_OBJECT_RESTRICTED = 0x00010000
TPMA_OBJECT_DECRYPT = 0x00020000
TPMA_OBJECT_SIGN_ENCRYPT = 0x00040000

HASH_BY_ALG = {
    TPM_ALG_SHA1: "sha1",
    TPM_ALG_SHA256: "sha256",
    TPM_ALG_SHA384: "sha384",
    TPM_ALG_SHA512: "sha512",
}
ALG_BY_HASH = {v: k for k, v in HASH_BY_ALG.items()}
CRYPTO_HASH = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
CURVES = {
    0x0001: ec.SECP192R1,
    0x0002: ec.SECP224R1,
    0x0003: ec.SECP256R1,
    0x0004: ec.SECP384R1,
    0x0005: ec.SECP521R1,
}
CURVE_IDS = {v.name: k for k, v in CURVES.items()}
TPM_ALG_ECSCHNORR = 0x001C
SCHEME_NAMES = {TPM_ALG_RSASSA: "rsassa", TPM_ALG_RSAPSS: "rsapss", TPM_ALG_ECDSA: "ecdsa",
                TPM_ALG_ECSCHNORR: "ecschnorr"}
SCHEME_BY_NAME = {v: k for k, v in SCHEME_NAMES.items()}


def hash_name(alg):
    name = HASH_BY_ALG.get(alg)
    if name is None:
        raise ValueError(f"unsupported hash algorithm 0x{alg:04x}")
    return name


def digest(name, data):
    return hashlib.new(name, data).digest()


class Reader:
    """Big-endian TPM unmarshalling with bounds checks."""

    def __init__(self, data, what="structure"):
        self.data = bytes(data)
        self.off = 0
        self.what = what

    def take(self, n):
        if n < 0 or self.off + n > len(self.data):
            raise ValueError(f"{self.what} truncated at offset {self.off} (need {n} bytes)")
        b = self.data[self.off:self.off + n]
        self.off += n
        return b

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def u64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def tpm2b(self):
        return self.take(self.u16())

    def done(self):
        if self.off != len(self.data):
            raise ValueError(f"{self.what}: {len(self.data) - self.off} trailing bytes")


def b64d(text, what="value"):
    """Strict standard base64 (with padding), like Keylime's Binary type first tries."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"{what} must be a non-empty base64 string")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as e:
        raise ValueError(f"{what} is not valid base64: {e}") from e


def b64e(data):
    return base64.b64encode(data).decode("ascii")


# --------------------------------------------------------------------------- TPMT_PUBLIC


class TpmPublic:
    """A parsed TPM2B_PUBLIC (RSA or ECC key)."""

    def __init__(self, tpm2b):
        r = Reader(tpm2b, "TPM2B_PUBLIC")
        size = r.u16()
        if size == 0 or size != len(tpm2b) - 2:
            raise ValueError("TPM2B_PUBLIC size field does not match the data length")
        self.tpm2b = bytes(tpm2b)
        self.tpmt = self.tpm2b[2:]
        r = Reader(self.tpmt, "TPMT_PUBLIC")
        self.type = r.u16()
        self.name_alg = r.u16()
        self.attributes = r.u32()
        self.auth_policy = r.tpm2b()
        self.sym_alg = TPM_ALG_NULL
        self.sym_bits = 0
        self.sym_mode = TPM_ALG_NULL
        self.scheme = TPM_ALG_NULL
        self.scheme_hash = TPM_ALG_NULL
        if self.type == TPM_ALG_RSA:
            self._sym(r)
            self._scheme(r)
            self.key_bits = r.u16()
            exponent = r.u32() or 65537
            n = r.tpm2b()
            if len(n) * 8 != self.key_bits:
                raise ValueError("RSA modulus size does not match keyBits")
            self.key = rsa.RSAPublicNumbers(exponent, int.from_bytes(n, "big")).public_key()
        elif self.type == TPM_ALG_ECC:
            self._sym(r)
            self._scheme(r)
            self.curve_id = r.u16()
            kdf = r.u16()
            if kdf != TPM_ALG_NULL:
                r.u16()
            x = r.tpm2b()
            y = r.tpm2b()
            curve = CURVES.get(self.curve_id)
            if curve is None:
                raise ValueError(f"unsupported ECC curve 0x{self.curve_id:04x}")
            self.key_bits = curve.key_size
            self.key = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve()
            ).public_key()
        else:
            raise ValueError(f"unsupported public key type 0x{self.type:04x}")
        r.done()
        hash_name(self.name_alg)

    def _sym(self, r):
        self.sym_alg = r.u16()
        if self.sym_alg != TPM_ALG_NULL:
            self.sym_bits = r.u16()
            self.sym_mode = r.u16()

    def _scheme(self, r):
        self.scheme = r.u16()
        if self.scheme != TPM_ALG_NULL:
            self.scheme_hash = r.u16()

    @property
    def key_name(self):
        """Keylime's name of the key type: rsa2048, rsa3072, ecc256, ecc384, ..."""
        if self.type == TPM_ALG_RSA:
            return f"rsa{self.key_bits}"
        return f"ecc{self.key_bits}"

    @property
    def scheme_name(self):
        """the signing scheme of a signing key: rsassa, rsapss, ecdsa (None when NULL)"""
        return SCHEME_NAMES.get(self.scheme)

    @property
    def name(self):
        """nameAlg || H_nameAlg(TPMT_PUBLIC)"""
        return struct.pack(">H", self.name_alg) + digest(hash_name(self.name_alg), self.tpmt)

    def is_restricted_signing(self):
        a = self.attributes
        return bool(a & TPMA_OBJECT_RESTRICTED and a & TPMA_OBJECT_SIGN_ENCRYPT and not a & TPMA_OBJECT_DECRYPT)

    def is_restricted_decrypt(self):
        a = self.attributes
        return bool(a & TPMA_OBJECT_RESTRICTED and a & TPMA_OBJECT_DECRYPT and not a & TPMA_OBJECT_SIGN_ENCRYPT)

    def spki_der(self):
        return self.key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def pem(self):
        return self.key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def same_public_key(a, b):
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return a.public_bytes(*fmt) == b.public_bytes(*fmt)


# --------------------------------------------------------------------------- TPMS_ATTEST


class Attest:
    """A parsed TPMS_ATTEST (certify or quote)."""

    def __init__(self, data):
        r = Reader(data, "TPMS_ATTEST")
        self.raw = bytes(data)
        self.magic = r.u32()
        self.type = r.u16()
        self.qualified_signer = r.tpm2b()
        self.extra_data = r.tpm2b()
        self.clock = r.u64()
        self.reset_count = r.u32()
        self.restart_count = r.u32()
        self.safe = r.u8()
        self.firmware_version = r.u64()
        if self.type == TPM_ST_ATTEST_CERTIFY:
            self.certified_name = r.tpm2b()
            self.certified_qualified_name = r.tpm2b()
        elif self.type == TPM_ST_ATTEST_QUOTE:
            self.pcr_select = parse_pcr_selection(r)
            self.pcr_digest = r.tpm2b()
        else:
            raise ValueError(f"unsupported TPMS_ATTEST type 0x{self.type:04x}")
        r.done()
        if self.magic != TPM_GENERATED_VALUE:
            raise ValueError(f"TPMS_ATTEST magic is 0x{self.magic:08x}, not TPM_GENERATED_VALUE")


def parse_pcr_selection(r):
    """TPML_PCR_SELECTION (marshalled, big-endian) -> {hash name: sorted [pcr]}"""
    out = {}
    for _ in range(r.u32()):
        alg = r.u16()
        sel = r.take(r.u8())
        pcrs = [i for i in range(len(sel) * 8) if sel[i // 8] & (1 << (i % 8))]
        out[HASH_BY_ALG.get(alg, f"0x{alg:04x}")] = pcrs
    return out


class Signature:
    """A parsed TPMT_SIGNATURE."""

    def __init__(self, data):
        r = Reader(data, "TPMT_SIGNATURE")
        self.sig_alg = r.u16()
        if self.sig_alg in (TPM_ALG_RSASSA, TPM_ALG_RSAPSS):
            self.hash_alg = r.u16()
            self.sig = r.tpm2b()
        elif self.sig_alg == TPM_ALG_ECDSA:
            self.hash_alg = r.u16()
            self.r = int.from_bytes(r.tpm2b(), "big")
            self.s = int.from_bytes(r.tpm2b(), "big")
        else:
            raise ValueError(f"unsupported signature algorithm 0x{self.sig_alg:04x}")
        r.done()

    @property
    def hash_name(self):
        return hash_name(self.hash_alg)

    def verify(self, key, message):
        """Raises cryptography's InvalidSignature or ValueError when it does not verify."""
        h = CRYPTO_HASH[self.hash_name]()
        dig = digest(self.hash_name, message)
        if isinstance(key, rsa.RSAPublicKey):
            if self.sig_alg == TPM_ALG_RSASSA:
                key.verify(self.sig, dig, padding.PKCS1v15(), utils.Prehashed(h))
            elif self.sig_alg == TPM_ALG_RSAPSS:
                try:
                    key.verify(self.sig, dig, padding.PSS(padding.MGF1(h), h.digest_size), utils.Prehashed(h))
                except InvalidSignature:
                    # TPMs may use the maximum salt length instead of the digest size
                    key.verify(self.sig, dig, padding.PSS(padding.MGF1(h), padding.PSS.AUTO), utils.Prehashed(h))
            else:
                raise ValueError("RSA key with a non-RSA signature")
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if self.sig_alg != TPM_ALG_ECDSA:
                raise ValueError("ECC key with a non-ECDSA signature")
            key.verify(utils.encode_dss_signature(self.r, self.s), dig, ec.ECDSA(utils.Prehashed(h)))
        else:
            raise ValueError("unsupported key type")


# --------------------------------------------------------------------------- MakeCredential


def kdfa(hname, key, label, context_u, context_v, bits):
    out = b""
    counter = 1
    lab = label.encode() + b"\0"
    while len(out) * 8 < bits:
        out += hmac.new(key, struct.pack(">I", counter) + lab + context_u + context_v + struct.pack(">I", bits),
                        hname).digest()
        counter += 1
    return out[:(bits + 7) // 8]


def kdfe(hname, z, label, party_u, party_v, bits):
    out = b""
    counter = 1
    lab = label.encode() + b"\0"
    while len(out) * 8 < bits:
        out += digest(hname, struct.pack(">I", counter) + z + lab + party_u + party_v)
        counter += 1
    return out[:(bits + 7) // 8]


def make_credential(ek, object_name, credential):
    """TPM2_MakeCredential in software; returns the tpm2-tools credential blob.

    ek: TpmPublic of the EK (RSA or ECC), object_name: the AK name,
    credential: the secret bytes (<= digest size of the EK name alg).
    """
    hname = hash_name(ek.name_alg)
    dsize = hashlib.new(hname).digest_size
    if ek.sym_alg != TPM_ALG_AES or ek.sym_mode != TPM_ALG_CFB:
        raise ValueError("EK symmetric algorithm must be AES-CFB")
    if not ek.is_restricted_decrypt():
        raise ValueError("EK must be a restricted decryption key")
    if isinstance(ek.key, rsa.RSAPublicKey):
        seed = os.urandom(dsize)
        h = CRYPTO_HASH[hname]()
        secret = ek.key.encrypt(seed, padding.OAEP(mgf=padding.MGF1(CRYPTO_HASH[hname]()), algorithm=h,
                                                    label=b"IDENTITY\0"))
    else:
        eph = ec.generate_private_key(ek.key.curve)
        z = eph.exchange(ec.ECDH(), ek.key)
        csize = (ek.key.curve.key_size + 7) // 8
        ex = eph.public_key().public_numbers().x.to_bytes(csize, "big")
        ey = eph.public_key().public_numbers().y.to_bytes(csize, "big")
        kx = ek.key.public_numbers().x.to_bytes(csize, "big")
        seed = kdfe(hname, z, "IDENTITY", ex, kx, dsize * 8)
        secret = struct.pack(">H", csize) + ex + struct.pack(">H", csize) + ey
    symkey = kdfa(hname, seed, "STORAGE", object_name, b"", ek.sym_bits)
    enc = Cipher(algorithms.AES(symkey), modes.CFB(b"\0" * 16)).encryptor()
    enc_identity = enc.update(struct.pack(">H", len(credential)) + credential) + enc.finalize()
    hmac_key = kdfa(hname, seed, "INTEGRITY", b"", b"", dsize * 8)
    integrity = hmac.new(hmac_key, enc_identity + object_name, hname).digest()
    id_object = struct.pack(">H", len(integrity)) + integrity + enc_identity
    return (struct.pack(">II", 0xBADCC0DE, 1) + struct.pack(">H", len(id_object)) + id_object
            + struct.pack(">H", len(secret)) + secret)


def auth_tag(credential, agent_id):
    """Keylime activation: hex(HMAC-SHA384(base64(credential), agent_id))"""
    return hmac.new(base64.b64encode(credential), agent_id.encode(), "sha384").hexdigest()


# --------------------------------------------------------------------------- PCR blob


def parse_pcr_blob(blob):
    """tpm2-tools PCR output (little-endian TPML_PCR_SELECTION + TPML_DIGEST[]), parsed like
    Keylime's __get_pcrs_from_blob + __hash_pcr_banks. Returns (selection {alg: mask}, [values],
    count)."""
    if len(blob) < 4 + 16 * 8 + 4:
        raise ValueError("PCR blob too short")
    (count,) = struct.unpack_from("<I", blob, 0)
    o = 4
    sel = {}
    for _ in range(16):
        alg, size = struct.unpack_from("<HB", blob, o)
        if size not in (0, 3):
            raise ValueError(f"sizeofSelect must be 0 or 3, not {size}")
        o += 3
        mask = 0
        if size == 3:
            mask = blob[o] | blob[o + 1] << 8 | blob[o + 2] << 16
        sel[alg] = mask
        o += 5
    (n,) = struct.unpack_from("<I", blob, o)
    o += 4
    if o + n * 532 != len(blob):
        raise ValueError("PCR blob length does not match its digest count")
    values = []
    for _ in range(n):
        o += 4
        for _ in range(8):
            (sz,) = struct.unpack_from("<H", blob, o)
            o += 2
            if sz > 64:
                raise ValueError("PCR digest size > 64")
            if sz:
                values.append(blob[o:o + sz])
            o += 64
    return sel, values, count


def pcrs_from_blob(blob, alg_name):
    """Returns ({pcr: value}, digest of the selected values) for bank alg_name, as Keylime does."""
    sel, values, count = parse_pcr_blob(blob)
    alg = ALG_BY_HASH[alg_name]
    if alg not in sel:
        raise ValueError(f"PCR blob has no {alg_name} selection")
    h = hashlib.new(alg_name)
    idx = 0
    out = {}
    for _ in range(count):
        for pcr in range(24):
            if not sel[alg] & (1 << pcr):
                continue
            if idx >= len(values):
                raise ValueError("PCR blob has fewer values than selected PCRs")
            h.update(values[idx])
            out[pcr] = values[idx]
            idx += 1
    if idx != len(values):
        raise ValueError("PCR blob has more values than selected PCRs")
    return out, h.digest()


def make_pcr_blob(alg_name, pcrs):
    """Builds the tpm2-tools PCR blob for {pcr: value} in one bank (used by self tests)."""
    mask = 0
    for p in pcrs:
        mask |= 1 << p
    out = struct.pack("<I", 1)
    out += struct.pack("<HB3sB", ALG_BY_HASH[alg_name], 3, mask.to_bytes(3, "little"), 0)
    out += b"\0" * 8 * 15
    vals = [pcrs[p] for p in sorted(pcrs)]
    chunks = [vals[i:i + 8] for i in range(0, len(vals), 8)]
    out += struct.pack("<I", len(chunks))
    for c in chunks:
        out += struct.pack("<I", len(c))
        for i in range(8):
            v = c[i] if i < len(c) else b""
            out += struct.pack("<H", len(v)) + v + b"\0" * (64 - len(v))
    return out


# --------------------------------------------------------------------------- IMA


def _ima_digest_field(text):
    parts = text.split(":")
    if len(parts) == 1:
        h = bytes.fromhex(parts[0])
        if len(h) not in (16, 20):
            raise ValueError("IMA digest without algorithm must be md5 or sha1")
        return None, h
    if len(parts) != 2:
        raise ValueError(f"bad IMA digest field {text!r}")
    return parts[0], bytes.fromhex(parts[1])


def _ima_name_ng(name):
    b = name.encode()
    return struct.pack("<I", len(b) + 1) + b + b"\0"


def _ima_dng(algo, h):
    if algo is None:
        return struct.pack("<I", len(h)) + h
    a = algo.encode()
    return struct.pack("<I", len(a) + 2 + len(h)) + a + b":\0" + h


class ImaEntry:
    """One line of ascii_runtime_measurements, parsed like keylime/ima/ast.py Entry."""

    def __init__(self, line):
        tokens = line.split(" ", 3)
        if len(tokens) != 4:
            raise ValueError(f"IMA line has {len(tokens)} fields, expected 4")
        self.pcr = tokens[0]
        self.template_hash = bytes.fromhex(tokens[1])
        self.template = tokens[2]
        rest = tokens[3]
        if self.template == "ima-ng":
            d, name = rest.split(" ", 1) if " " in rest else (None, None)
            if d is None:
                raise ValueError("ima-ng entry needs digest and name")
            algo, h = _ima_digest_field(d)
            self.path = name
            self.file_hash = (algo, h)
            self.data = _ima_dng(algo, h) + _ima_name_ng(name)
        elif self.template in ("ima-sig", "ima-buf"):
            t = rest.split(" ", 2)
            if len(t) != 3:
                raise ValueError(f"{self.template} entry needs 3 fields")
            algo, h = _ima_digest_field(t[0])
            self.path = t[1]
            self.file_hash = (algo, h)
            extra = bytes.fromhex(t[2]) if t[2] else b""
            self.data = _ima_dng(algo, h) + _ima_name_ng(t[1]) + struct.pack("<I", len(extra)) + extra
        elif self.template == "ima":
            t = rest.split(" ", 1)
            if len(t) != 2:
                raise ValueError("ima entry needs digest and name")
            h = bytes.fromhex(t[0])
            nb = t[1].encode()
            if len(nb) > 255:
                raise ValueError("ima entry name too long")
            self.path = t[1]
            self.file_hash = ("sha1", h)
            self.data = h + nb + b"\0" + b"\0" * (255 - len(nb))
        else:
            raise ValueError(f"no parser for IMA template {self.template!r}")

    def check_template_hash(self, log_hash_alg):
        """None if fine, else a message. All-zero template hash = ToMToU (skipped)."""
        if self.template_hash == b"\0" * len(self.template_hash):
            return None
        if self.template_hash != digest(log_hash_alg, self.data):
            return "IMA template hash does not match the calculated hash"
        return None

    def pcr_extend_value(self, bank):
        if self.template_hash == b"\0" * len(self.template_hash):
            return b"\xff" * hashlib.new(bank).digest_size
        return digest(bank, self.data)


def ima_line_for(path, file_data, template="ima-ng", file_alg="sha256", log_hash_alg="sha1", pcr=10):
    """Builds a valid ima-ng log line for a file with content file_data (test helper).
    Returns (line without newline, ImaEntry)."""
    fh = digest(file_alg, file_data)
    data = _ima_dng(file_alg, fh) + _ima_name_ng(path)
    th = digest(log_hash_alg, data)
    line = f"{pcr} {th.hex()} {template} {file_alg}:{fh.hex()} {path}"
    return line, ImaEntry(line)


# --------------------------------------------------------------------------- UEFI event log

EV_NO_ACTION = 0x00000003


def parse_uefi_log(blob):
    """TCG2 crypto-agile event log -> list of (pcr, event_type, {alg name: digest}, event data)."""
    o = 0

    def unpack(fmt):
        nonlocal o
        size = struct.calcsize(fmt)
        if o + size > len(blob):
            raise ValueError(f"UEFI log truncated at offset {o}")
        v = struct.unpack_from(fmt, blob, o)
        o += size
        return v

    def take(n):
        nonlocal o
        if n < 0 or o + n > len(blob):
            raise ValueError(f"UEFI log truncated at offset {o}")
        b = blob[o:o + n]
        o += n
        return b

    pcr, etype = unpack("<II")
    take(20)
    (esize,) = unpack("<I")
    spec = take(esize)
    if etype != EV_NO_ACTION or not spec.startswith(b"Spec ID Event03\0"):
        raise ValueError("UEFI log does not start with a TCG2 Spec ID event (not crypto-agile)")
    (nalg,) = struct.unpack_from("<I", spec, 24)
    sizes = {}
    for i in range(nalg):
        alg, dsz = struct.unpack_from("<HH", spec, 28 + 4 * i)
        sizes[alg] = dsz
    events = []
    locality = 0
    while o < len(blob):
        pcr, etype, count = unpack("<III")
        digs = {}
        for _ in range(count):
            (alg,) = unpack("<H")
            if alg not in sizes:
                raise ValueError(f"UEFI event uses unknown digest algorithm 0x{alg:04x}")
            d = take(sizes[alg])
            if alg in HASH_BY_ALG:
                digs[HASH_BY_ALG[alg]] = d
        (esize,) = unpack("<I")
        data = take(esize)
        if etype == EV_NO_ACTION and data.startswith(b"StartupLocality\0") and len(data) >= 17:
            locality = data[16]
        events.append((pcr, etype, digs, data))
    return events, locality


def replay_uefi_log(blob, bank):
    """Replays the log into {pcr: value} for the given bank (EV_NO_ACTION events are skipped)."""
    events, locality = parse_uefi_log(blob)
    size = hashlib.new(bank).digest_size
    pcrs = {}
    for pcr, etype, digs, _ in events:
        if etype == EV_NO_ACTION:
            continue
        if bank not in digs:
            raise ValueError(f"UEFI event for PCR {pcr} has no {bank} digest")
        if pcr not in pcrs:
            init = b"\0" * size
            if pcr == 0 and locality:
                init = b"\0" * (size - 1) + bytes([locality])
            pcrs[pcr] = init
        pcrs[pcr] = digest(bank, pcrs[pcr] + digs[bank])
    return pcrs
