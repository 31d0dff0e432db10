#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Test verifier speaking the Keylime push-mode verifier wire protocol (API 3.0, HTTPS).

It verifies for real: PoP sessions (TPM2_Certify of the enrolled AK over the challenge),
bearer tokens, capabilities (like TPMEngine.process_capabilities), quotes (signature with
the enrolled AK, nonce, PCR blob digest, clock), the PCR policy, an IMA replay of PCR 10
(ima-ng template hashes, Keylime's incremental offset state) and a UEFI event-log replay
of the boot PCRs.

Control API on the same server (no authentication, tests only):
  POST /_test/enroll   {agent_id, ak_tpm?, tpm_policy?, ima?, ima_allowlist?, mb?}
  POST /_test/policy   {agent_id, tpm_policy?, ima?, ima_allowlist?, mb?}   (keeps state)
  GET  /_test/agents/{id}   counters, verdicts, failure reasons
  DELETE /_test/agents/{id} unenroll
  POST /_test/faults   {"phase1"|"phase2"|"session": [401, {"status":429,"retry_after":2},
                        500, "malformed", "hang", {"hang": secs}, "close"]}  (consumed per request)
                       phase1 also takes "extra_type": a normal 201 that also requests an
                       evidence type no agent plugin provides (kl_unknown_log)
  POST /_test/expire_token {agent_id}
  POST /_test/settings {"phase1_delay": secs, "echo_mb": n, "max_upload_mb": n}   (persistent
                       until changed)
                       phase1_delay: every phase 1 is answered this late (a verifier evaluating a
                       large policy); echo_mb: the 202 to the evidence echoes it padded to n MiB
                       (Keylime echoes the evidence, `meta` last); max_upload_mb: larger request
                       bodies get a bare 400 and the connection is closed, like Keylime's
                       max_upload_size (default 100 MiB)

Sessions follow Keylime 7.14: a token lives --session-lifetime seconds from its creation
(attestations do not extend it), and session creation is rate limited per agent
(--session-rate-limit, 15 / 60 s) and per client address (--session-rate-limit-ip, 50 / 60 s); beyond a limit the
client is blocked for 60 s, doubling at each further block (at most 1 h), with 429 and
Retry-After. /_test/agents/{id} counts the refusals in sessions_rate_limited.

usage: kl_test_verifier.py --state-file F [--port N] [--quote-interval S] [--registrar-url U]
"""

import argparse
import base64
import hmac
import json
import math
import os
import re
import secrets
import ssl
import sys
import threading
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

import kl_peer  # noqa: E402
import kl_tpm  # noqa: E402

PROG = "kl-test-verifier"
LOCK = threading.RLock()
AGENTS = {}
SESSIONS = {}  # session id -> pending PoP session
TOKENS = {}  # session id -> {agent_id, secret, expires}
FAULTS = kl_peer.FaultQueues(["phase1", "phase2", "session"])
CONTACTS = []  # [time, agent_id, "session" | "phase1"]: every agent request, for the fleet bench
ARGS = None

ACCEPT_HASHES = ["sha512", "sha384", "sha256"]  # tenant default accept_tpm_hash_algs, in priority order
ACCEPT_SIGNING = ["ecschnorr", "rsassa"]
MB_PCRS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15]
IMA_PCR = 10
JSONAPI_TOP = {"data", "errors", "meta", "links", "jsonapi"}
JSONAPI_DATA = {"type", "id", "attributes", "links", "meta"}


class ApiError(Exception):
    def __init__(self, status, code, detail, pointer=None, headers=None, empty=False):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.pointer = pointer
        self.headers = headers or {}
        self.empty = empty


def unprocessable(detail, pointer):
    return ApiError(422, "invalid_resource_data", detail, pointer)


def new_agent(agent_id, ak_tpm, ak):
    return {
        "agent_id": agent_id, "ak_tpm": ak_tpm, "ak": ak, "tpm_policy": {}, "ima": False,
        "ima_allowlist": None, "ima_log_hash_alg": "sha1", "mb": False,
        "passes": 0, "fails": 0, "last_failure_reason": None, "failure_reasons": [],
        "last_evaluation": None,
        "attestations": [], "sessions_created": 0, "pop_pass": 0, "pop_fail": 0,
        "phase1_requests": 0, "phase1_created": 0, "phase2_requests": 0, "phase2_accepted": 0,
        "rate_limited": 0, "unauthorized": 0, "faults_served": 0, "errors": [],
        "sessions_rate_limited": 0, "evidence_bytes_max": 0,
        "last_evidence_received_at": None, "last_clock": None,
        "ima_state": None,  # {"boot_time", "next_offset", "pcr": {bank: bytes}} of the last pass
        "ima_offsets": [], "warnings": [], "fault_times": [],
        # the tenant's accept_tpm_hash_algs / accept_tpm_signing_algs, in priority order
        "accept_hashes": list(ACCEPT_HASHES), "accept_signing": list(ACCEPT_SIGNING),
    }


def public_view(a):
    out = {k: v for k, v in a.items() if k not in ("ak",)}
    out["tpm_policy"] = {str(k): v for k, v in a["tpm_policy"].items()}
    out["attestations"] = [{k: v for k, v in at.items() if k not in ("challenge",)} for at in a["attestations"]]
    st = a["ima_state"]
    out["ima_state"] = None if st is None else {"boot_time": st["boot_time"], "next_offset": st["next_offset"],
                                                "pcr": {b: v.hex() for b, v in st["pcr"].items()}}
    tok = [t for t in TOKENS.values() if t["agent_id"] == a["agent_id"]]
    out["token_valid"] = bool(tok) and tok[0]["expires"] > time.time()
    out["token_expires_in"] = round(tok[0]["expires"] - time.time(), 3) if tok else None
    out["pending_sessions"] = sum(1 for s in SESSIONS.values() if s["agent_id"] == a["agent_id"])
    return out


def parse_policy(pol):
    if pol is None:
        return {}
    if not isinstance(pol, dict):
        raise ValueError("tpm_policy must be an object {\"pcr\": [hex, ...]}")
    out = {}
    for k, v in pol.items():
        if k == "mask":
            continue
        pcr = int(k)
        if not 0 <= pcr <= 23:
            raise ValueError(f"bad PCR {k}")
        vals = v if isinstance(v, list) else [v]
        out[pcr] = [str(x).lower().removeprefix("0x") for x in vals]
    return out


def apply_policy(a, body):
    if "tpm_policy" in body:
        a["tpm_policy"] = parse_policy(body["tpm_policy"])
    if "ima" in body:
        a["ima"] = bool(body["ima"])
    if "ima_allowlist" in body:
        al = body["ima_allowlist"]
        if al is not None and not isinstance(al, dict):
            raise ValueError("ima_allowlist must be {path: [hex digests]}")
        a["ima_allowlist"] = al
        if al is not None:
            a["ima"] = True
    if "ima_log_hash_alg" in body:
        a["ima_log_hash_alg"] = str(body["ima_log_hash_alg"])
    if "mb" in body:
        a["mb"] = bool(body["mb"])
    for key, field, known in (("accept_tpm_hash_algs", "accept_hashes", kl_tpm.ALG_BY_HASH),
                              ("accept_tpm_signing_algs", "accept_signing", kl_tpm.SCHEME_BY_NAME)):
        if key in body:
            v = body[key]
            if not isinstance(v, list) or not v or any(x not in known for x in v):
                raise ValueError(f"{key} must be a non-empty list of {sorted(known)}")
            a[field] = list(v)


def fetch_ak_from_registrar(agent_id):
    if not ARGS.registrar_url:
        raise ValueError("no ak_tpm given and the verifier was started without --registrar-url")
    url = f"{ARGS.registrar_url.rstrip('/')}/v2.6/agents/{agent_id}"
    ctx = None
    if url.startswith("https"):
        ctx = ssl.create_default_context(cafile=ARGS.registrar_ca)
    try:
        with urllib.request.urlopen(url, timeout=10, context=ctx) as r:
            data = json.loads(r.read().decode())
    except Exception as e:  # noqa: BLE001 (report any failure to the test)
        raise ValueError(f"registrar lookup of {agent_id} failed: {e}") from e
    return data["results"]["aik_tpm"]


def required_pcrs(a):
    req = set(a["tpm_policy"].keys())
    if a["ima"]:
        req.add(IMA_PCR)
    if a["mb"]:
        req.update(MB_PCRS)
    return sorted(req)


# --------------------------------------------------------------------------- auth


def check_token(handler, agent_id):
    hdr = handler.headers.get("Authorization")
    if not hdr:
        raise ApiError(403, "forbidden", "Action submit_attestation requires agent authentication (PoP token)")
    if not hdr.startswith("Bearer ") or "." not in hdr[7:]:
        raise ApiError(401, "unauthorized", "Invalid Authorization header format")
    sid, secret = hdr[7:].split(".", 1)
    with LOCK:
        tok = TOKENS.get(sid)
        if tok is None or not hmac.compare_digest(tok["secret"], secret):
            raise ApiError(401, "unauthorized", "Invalid authentication token")
        if tok["expires"] <= time.time():
            raise ApiError(401, "unauthorized", "Authentication token expired")
        if tok["agent_id"] != agent_id:
            raise ApiError(403, "forbidden", "Action submit_attestation requires agent authentication "
                                             "(ownership required)")


def count_unauthorized(agent_id):
    with LOCK:
        if agent_id in AGENTS:
            AGENTS[agent_id]["unauthorized"] += 1


# --------------------------------------------------------------------------- phase 1


def select_evidence(a, attrs):
    ev = attrs.get("evidence_supported")
    if ev is None:
        raise unprocessable("Attribute 'evidence_supported' is required", "/data/attributes/evidence_supported")
    if not isinstance(ev, list) or not ev:
        raise unprocessable("Attribute 'evidence_supported' must be a non-empty array",
                            "/data/attributes/evidence_supported")
    quote_items, ima_items, uefi_items = [], [], []
    for i, item in enumerate(ev):
        ptr = f"/data/attributes/evidence_supported/{i}"
        if not isinstance(item, dict):
            raise unprocessable("evidence item must be an object", ptr)
        if item.get("evidence_class") not in ("certification", "log"):
            raise unprocessable("'evidence_class' must be 'certification' or 'log'", ptr + "/evidence_class")
        if not isinstance(item.get("evidence_type"), str):
            raise unprocessable("'evidence_type' is required", ptr + "/evidence_type")
        caps = item.get("capabilities")
        if caps is not None and not isinstance(caps, dict):
            raise unprocessable("'capabilities' must be an object", ptr + "/capabilities")
        caps = caps or {}
        t = item["evidence_type"]
        if t == "tpm_quote":
            validate_quote_caps(a, caps, ptr + "/capabilities")
            quote_items.append(caps)
        elif t == "ima_log":
            validate_log_caps(caps, ptr + "/capabilities", "text/plain", ima=True)
            ima_items.append(caps)
        elif t == "uefi_log":
            validate_log_caps(caps, ptr + "/capabilities", "application/octet-stream", ima=False)
            uefi_items.append(caps)

    req = required_pcrs(a)
    requested = []
    if req:
        if not quote_items:
            raise unprocessable("a tpm_quote evidence item is required by the policy",
                                "/data/attributes/evidence_supported")
        caps = quote_items[0]
        key = caps["certification_keys"][0]
        for k in caps["certification_keys"]:
            pub = k.get("public")
            if pub and pub == a["ak_tpm"]:
                key = k
                break
            if k.get("server_identifier") == "ak":
                key = k
        key_alg = key.get("key_algorithm")
        if key_alg not in ("rsa", "ecc"):
            raise unprocessable("check 'signature_schemes': no scheme usable with the certification key",
                                "/data/attributes/evidence_supported/0/capabilities/signature_schemes")
        # as Keylime: the agent's accepted schemes, in their order, that fit the key's algorithm
        schemes = [s for s in a["accept_signing"] if s in caps["signature_schemes"]
                   and ("rsa" if s.startswith("rsa") else "ecc") == key_alg]
        if key.get("allowable_signature_schemes"):
            schemes = [s for s in schemes if s in key["allowable_signature_schemes"]]
        if not schemes:
            raise unprocessable("no acceptable signature scheme", "/data/attributes/evidence_supported/0")
        allow_h = key.get("allowable_hash_algorithms")
        hashes_ok = [h for h in a["accept_hashes"]
                     if h in caps["hash_algorithms"] and h in caps["available_subjects"]]
        warnings = []
        if allow_h:
            hashes_ok = [h for h in hashes_ok if h in allow_h]
        else:
            warnings.append("no allowable_hash_algorithms on the certification key: the real verifier selects "
                            "PCRs on every acceptable bank and the quote cannot verify")
        if not hashes_ok:
            raise unprocessable("no acceptable hash algorithm", "/data/attributes/evidence_supported/0")
        halg = hashes_ok[0]
        avail = caps["available_subjects"][halg]
        missing = [p for p in req if p not in avail]
        if missing:
            raise unprocessable(f"PCRs {missing} required by policy are not available in bank {halg}",
                                "/data/attributes/evidence_supported/0/capabilities/available_subjects")
        subjects = {h: (req if (h == halg or not allow_h) else None) for h in caps["available_subjects"]}
        requested.append({"evidence_class": "certification", "evidence_type": "tpm_quote",
                          "chosen_parameters": {
                              "challenge": kl_tpm.b64e(secrets.token_bytes(16)),
                              "signature_scheme": schemes[0], "hash_algorithm": halg,
                              "selected_subjects": subjects,
                              "certification_key": key}, "_warnings": warnings})
    if a["mb"]:
        if not uefi_items:
            raise unprocessable("a uefi_log evidence item is required by the measured boot policy",
                                "/data/attributes/evidence_supported")
        requested.append({"evidence_class": "log", "evidence_type": "uefi_log",
                          "chosen_parameters": {"format": "application/octet-stream"}})
    start = None
    boot_time = None
    if a["ima"]:
        if not ima_items:
            raise unprocessable("an ima_log evidence item is required by the runtime policy",
                                "/data/attributes/evidence_supported")
        si = attrs.get("system_info")
        if not isinstance(si, dict) or "boot_time" not in si:
            raise unprocessable("Attribute 'system_info' must contain 'boot_time'", "/data/attributes/system_info")
        try:
            boot_time = kl_peer.parse_time(si["boot_time"])
        except ValueError as e:
            raise unprocessable(f"'boot_time' is not a valid timestamp: {e}",
                                "/data/attributes/system_info/boot_time") from e
        st = a["ima_state"]
        if st is not None and boot_time < st["boot_time"] - 0.5:
            raise unprocessable("'boot_time' is earlier than the boot time of the last attestation",
                                "/data/attributes/system_info/boot_time")
        start = st["next_offset"] if st is not None and abs(boot_time - st["boot_time"]) <= 0.5 else 0
        if ima_items[0]["entry_count"] < start:
            raise unprocessable(f"'entry_count' {ima_items[0]['entry_count']} is lower than the next offset "
                                f"{start}", "/data/attributes/evidence_supported")
        requested.append({"evidence_class": "log", "evidence_type": "ima_log",
                          "chosen_parameters": {"starting_offset": start, "format": "text/plain"}})
    if not requested:
        raise unprocessable("the agent is enrolled without any policy: nothing to request", "/data/attributes")
    return requested, boot_time, (ima_items[0]["entry_count"] if ima_items else None)


def validate_quote_caps(a, caps, ptr):
    if caps.get("component_version") != "2.0":
        raise unprocessable("check 'component_version'", ptr + "/component_version")
    for f in ("signature_schemes", "hash_algorithms"):
        v = caps.get(f)
        if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
            raise unprocessable(f"'{f}' is required and must be a list of strings", f"{ptr}/{f}")
    if not set(caps["signature_schemes"]) & set(a["accept_signing"]):
        raise unprocessable("no acceptable signature scheme", ptr + "/signature_schemes")
    if not set(caps["hash_algorithms"]) & set(a["accept_hashes"]):
        raise unprocessable("no acceptable hash algorithm", ptr + "/hash_algorithms")
    av = caps.get("available_subjects")
    if not isinstance(av, dict):
        raise unprocessable("'available_subjects' must be an object keyed by PCR bank", ptr + "/available_subjects")
    for bank, pcrs in av.items():
        if bank not in caps["hash_algorithms"]:
            raise unprocessable(f"bank {bank} is not in 'hash_algorithms'", ptr + "/available_subjects")
        if not isinstance(pcrs, list) or not all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= 23
                                                 for p in pcrs):
            raise unprocessable("PCR lists must contain integers 0-23", ptr + "/available_subjects")
    if not set(av) & set(a["accept_hashes"]):
        raise unprocessable("no acceptable PCR bank", ptr + "/available_subjects")
    keys = caps.get("certification_keys")
    if not isinstance(keys, list) or not keys:
        raise unprocessable("'certification_keys' is required", ptr + "/certification_keys")
    for i, k in enumerate(keys):
        kp = f"{ptr}/certification_keys/{i}"
        if not isinstance(k, dict):
            raise unprocessable("certification key must be an object", kp)
        if k.get("key_class") not in ("asymmetric", "symmetric"):
            raise unprocessable("'key_class' is required", kp + "/key_class")
        if not isinstance(k.get("key_size"), int) or isinstance(k.get("key_size"), bool):
            raise unprocessable("'key_size' is required and must be an integer", kp + "/key_size")
        if k["key_class"] == "asymmetric" and not isinstance(k.get("key_algorithm"), str):
            raise unprocessable("'key_algorithm' is required", kp + "/key_algorithm")
        if not any(k.get(f) for f in ("server_identifier", "local_identifier", "public")):
            raise unprocessable("one of 'server_identifier', 'local_identifier', 'public' is required", kp)
        if k.get("public"):
            try:
                kl_tpm.b64d(k["public"], "public")
            except ValueError as e:
                raise unprocessable(str(e), kp + "/public") from e
        for f in ("allowable_hash_algorithms", "allowable_signature_schemes"):
            if f in k and not isinstance(k[f], list):
                raise unprocessable(f"'{f}' must be a list", f"{kp}/{f}")


def validate_log_caps(caps, ptr, fmt, ima):
    for f in ("supports_partial_access", "appendable"):
        if f in caps and not isinstance(caps[f], bool):
            raise unprocessable(f"'{f}' must be a boolean", f"{ptr}/{f}")
    if "entry_count" in caps and (not isinstance(caps["entry_count"], int) or isinstance(caps["entry_count"], bool)
                                  or caps["entry_count"] < 0):
        raise unprocessable("'entry_count' must be a non-negative integer", ptr + "/entry_count")
    formats = caps.get("formats")
    if not isinstance(formats, list) or fmt not in formats:
        raise unprocessable(f"'formats' must include {fmt}", ptr + "/formats")
    if ima:
        if caps.get("supports_partial_access") is not True:
            raise unprocessable("ima_log must support partial access", ptr + "/supports_partial_access")
        if "entry_count" not in caps:
            raise unprocessable("'entry_count' is required with partial access", ptr + "/entry_count")


# --------------------------------------------------------------------------- phase 2


def check_evidence_shape(at, evidence):
    req = at["evidence_requested"]
    if not isinstance(evidence, list):
        raise unprocessable("Attribute 'evidence_collected' must be an array", "/data/attributes/evidence_collected")
    if len(evidence) != len(req):
        raise unprocessable(f"Attribute 'evidence_collected' must contain {len(req)} items, got {len(evidence)}",
                            "/data/attributes/evidence_collected")
    for i, (got, want) in enumerate(zip(evidence, req)):
        ptr = f"/data/attributes/evidence_collected/{i}"
        if not isinstance(got, dict) or got.get("evidence_class") != want["evidence_class"] or \
                got.get("evidence_type") != want["evidence_type"]:
            raise unprocessable(f"item {i} must be {want['evidence_class']}/{want['evidence_type']} "
                                "(same order as evidence_requested)", ptr)
        data = got.get("data")
        if not isinstance(data, dict):
            raise unprocessable("'data' is required", ptr + "/data")
        t = want["evidence_type"]
        if t == "tpm_quote":
            for f in ("message", "signature", "subject_data"):
                if not isinstance(data.get(f), str) or not data.get(f):
                    raise unprocessable(f"'{f}' is required", f"{ptr}/data/{f}")
                try:
                    kl_tpm.b64d(data[f], f)
                except ValueError as e:
                    raise ApiError(500, "server_error", f"{f}: {e}", empty=True) from e
            halg = want["chosen_parameters"]["hash_algorithm"]
            try:
                pcrs, _ = kl_tpm.pcrs_from_blob(kl_tpm.b64d(data["subject_data"]), halg)
            except (ValueError, KeyError, IndexError) as e:
                # the real verifier crashes on an unparseable PCR blob
                raise ApiError(500, "server_error", f"subject_data: {e}", empty=True) from e
            need = want["chosen_parameters"]["selected_subjects"].get(halg) or []
            if any(p not in pcrs for p in need):
                raise unprocessable("'subject_data' must contain at least the PCRs requested", ptr + "/data")
        elif t == "ima_log":
            ent = data.get("entries")
            if ent is None:
                ent = ""
            if not isinstance(ent, str):
                raise ApiError(500, "server_error", "ima entries must be text", empty=True)
            if ent and not ent.endswith("\n"):
                raise unprocessable("IMA entries must end with a newline", ptr + "/data/entries")
            n = ent.count("\n")
            start = want["chosen_parameters"]["starting_offset"]
            if at["ima_entry_count"] is not None and n < at["ima_entry_count"] - start:
                raise unprocessable(f"Attribute 'entries' has {n} entries, fewer than the {at['ima_entry_count']} - "
                                    f"{start} announced", ptr + "/data/entries")
        elif t == "uefi_log":
            ent = data.get("entries")
            if not isinstance(ent, str) or not ent:
                raise unprocessable("'entries' is required", ptr + "/data/entries")
            try:
                kl_tpm.b64d(ent, "entries")
            except ValueError as e:
                raise ApiError(500, "server_error", f"uefi entries: {e}", empty=True) from e


def verify_evidence(a, at, evidence):
    """Returns (passed: bool, reason: str|None, ima_update: dict|None)."""
    req = at["evidence_requested"]
    by_type = {w["evidence_type"]: (w, g["data"]) for w, g in zip(req, evidence)}
    pcrs = {}
    halg = None
    if "tpm_quote" in by_type:
        want, data = by_type["tpm_quote"]
        cp = want["chosen_parameters"]
        halg = cp["hash_algorithm"]
        if want.get("_warnings"):
            return False, "quote cannot be verified: " + want["_warnings"][0], None
        try:
            sig = kl_tpm.Signature(kl_tpm.b64d(data["signature"]))
            attest = kl_tpm.Attest(kl_tpm.b64d(data["message"]))
        except ValueError as e:
            return False, f"quote structures are malformed: {e}", None
        if sig.sig_alg != kl_tpm.SCHEME_BY_NAME.get(cp["signature_scheme"]):
            return False, (f"quote signature algorithm 0x{sig.sig_alg:04x} is not the chosen "
                           f"{cp['signature_scheme']}"), None
        if kl_tpm.HASH_BY_ALG.get(sig.hash_alg) != halg:
            return False, f"quote was expected to use {halg} but used 0x{sig.hash_alg:04x}", None
        try:
            sig.verify(a["ak"].key, attest.raw)
        except (InvalidSignature, ValueError):
            return False, "quote signature does not verify with the enrolled AK", None
        if attest.type != kl_tpm.TPM_ST_ATTEST_QUOTE:
            return False, "quote TPMS_ATTEST type is not TPM_ST_ATTEST_QUOTE", None
        challenge = base64.b64decode(cp["challenge"])
        if attest.extra_data not in (challenge, cp["challenge"].encode()):
            return False, "the nonce in the quote differs from the challenge", None
        try:
            pcrs, pdig = kl_tpm.pcrs_from_blob(kl_tpm.b64d(data["subject_data"]), halg)
        except ValueError as e:
            return False, f"subject_data: {e}", None
        if pdig != attest.pcr_digest:
            return False, "the digest of the PCR values in subject_data differs from the quoted pcrDigest", None
        quoted = attest.pcr_select.get(halg, [])
        if sorted(pcrs) != quoted:
            return False, f"subject_data PCRs {sorted(pcrs)} differ from the quoted selection {quoted}", None
        lc = a["last_clock"]
        if not attest.safe:
            return False, "quote clockInfo.safe is 0", None
        if lc is not None:
            reset, restart, clock = lc
            if attest.reset_count < reset or (attest.reset_count == reset and attest.restart_count < restart):
                return False, "TPM reset/restart counter went backwards", None
            if attest.reset_count == reset and attest.restart_count == restart and attest.clock <= clock:
                return False, "TPM clock did not advance since the last quote", None
        a["last_clock"] = (attest.reset_count, attest.restart_count, attest.clock)
        at["quoted_pcrs"] = {str(p): v.hex() for p, v in sorted(pcrs.items())}

    # UEFI measured boot replay
    if "uefi_log" in by_type:
        _, data = by_type["uefi_log"]
        try:
            replay = kl_tpm.replay_uefi_log(kl_tpm.b64d(data["entries"]), halg)
        except (ValueError, KeyError) as e:
            return False, f"UEFI event log cannot be parsed: {e}", None
        for p, v in sorted(replay.items()):
            if p in pcrs and pcrs[p] != v:
                return False, (f"UEFI event log replay of PCR {p} ({v.hex()}) does not match the quoted value "
                               f"({pcrs[p].hex()})"), None
        at["uefi_replayed_pcrs"] = sorted(replay)

    # IMA replay
    ima_update = None
    if "ima_log" in by_type:
        want, data = by_type["ima_log"]
        start = want["chosen_parameters"]["starting_offset"]
        lines = (data.get("entries") or "").split("\n")[:-1] if data.get("entries") else []
        st = a["ima_state"]
        size = len(kl_tpm.digest(halg, b""))
        running = st["pcr"][halg] if (start > 0 and st is not None and halg in st["pcr"]) else b"\0" * size
        target = pcrs.get(IMA_PCR)
        if target is None:
            return False, "PCR 10 was not quoted although an IMA policy is set", None
        match = 0 if running == target else None
        match_hash = running if match == 0 else None
        al = a["ima_allowlist"]
        for i, line in enumerate(lines):
            try:
                e = kl_tpm.ImaEntry(line)
            except ValueError as ex:
                return False, f"IMA line {start + i} cannot be parsed: {ex}", None
            if e.pcr != str(IMA_PCR):
                return False, f"IMA line {start + i} is for PCR {e.pcr}, not 10", None
            msg = e.check_template_hash(a["ima_log_hash_alg"])
            if msg:
                return False, f"IMA line {start + i}: {msg}", None
            if al is not None and e.path != "boot_aggregate":
                allowed = al.get(e.path)
                if allowed is None:
                    return False, f"IMA: file not found in allowlist: {e.path}", None
                if e.file_hash[1].hex() not in allowed:
                    return False, f"IMA: hash of {e.path} not in the allowlist", None
            running = kl_tpm.digest(halg, running + e.pcr_extend_value(halg))
            if match is None and running == target:
                match = i + 1
                match_hash = running
        if match is None:
            return False, f"IMA measurement list does not match TPM PCR 10 ({target.hex()})", None
        ima_update = {"boot_time": at["boot_time"], "next_offset": start + match, "pcr": {halg: match_hash}}
        at["ima_certified_entries"] = match

    for p, allowed in sorted(a["tpm_policy"].items()):
        if p not in pcrs:
            return False, f"PCR {p} of the policy was not quoted", None
        if pcrs[p].hex() not in allowed:
            return False, f"PCR {p} value {pcrs[p].hex()} is not allowed by the policy", None
    return True, None, ima_update


# --------------------------------------------------------------------------- HTTP


class VerifierHandler(kl_peer.Handler):
    prog = PROG

    def max_body(self):
        return int(SETTINGS["max_upload_mb"] * 1024 * 1024)

    def api_reply(self, status, doc, headers=None):
        body = json.dumps(doc, separators=(",", ":")).encode()
        self.send(status, body, "application/json; charset=UTF-8", headers)

    def api_error(self, e):
        if e.empty:
            self.send(e.status, b"", headers=e.headers)
            return
        err = {"status": str(e.status), "code": e.code, "detail": e.detail}
        if e.pointer:
            err["source"] = {"pointer": e.pointer}
        self.api_reply(e.status, {"errors": [err]}, e.headers)

    def parts(self):
        return [p for p in self.path.split("?")[0].split("/") if p]

    def jsonapi_body(self, kind):
        raw = self.body()
        ctype = (self.headers.get("Content-Type") or "").lower()
        if kind == "attestation":
            if not ctype.startswith("application/vnd.api+json"):
                raise ApiError(415, "unsupported_media_type", "Content-Type must be application/vnd.api+json",
                               empty=True)
        elif not re.match(r"^application/([a-z.+-]+\+)?json", ctype):
            return None
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, "malformed", "Malformed Request Parameter", empty=True) from e
        if kind == "attestation":
            if not isinstance(doc, dict) or not set(doc) <= JSONAPI_TOP or not isinstance(doc.get("data"), dict):
                raise ApiError(400, "malformed", "Malformed Request Parameter", empty=True)
            data = doc["data"]
            if "type" not in data or not set(data) <= JSONAPI_DATA:
                raise ApiError(400, "malformed", "Malformed Request Parameter", empty=True)
            if data["type"] != "attestation" or not isinstance(data.get("attributes"), dict):
                raise ApiError(400, "invalid_request", "data.type must be 'attestation' with attributes")
        return doc

    # -- dispatch
    def do_GET(self):  # noqa: N802
        p = self.parts()
        if p == ["version"]:
            self.send(410, {"code": 410, "status": "Gone", "results": {}})
        elif len(p) == 3 and p[:2] == ["_test", "agents"]:
            with LOCK:
                a = AGENTS.get(p[2])
                doc = public_view(a) if a else None
            self.send(200 if doc else 404, doc or {"error": "not enrolled"})
        elif p == ["_test", "faults"]:
            self.send(200, FAULTS.pending())
        elif p == ["_test", "contacts"]:
            with LOCK:
                doc = {"contacts": list(CONTACTS)}
            self.send(200, doc)
        elif p and p[0] in ("v3", "v3.0") and len(p) == 1:
            self.send(500)
        else:
            self.send(404)

    def do_DELETE(self):  # noqa: N802
        p = self.parts()
        if len(p) == 3 and p[:2] == ["_test", "agents"]:
            with LOCK:
                found = AGENTS.pop(p[2], None)
            self.send(200 if found else 404, {})
        else:
            self.send(404)

    def do_POST(self):  # noqa: N802
        p = self.parts()
        if p and p[0] == "_test":
            self.control(p)
            return
        if len(p) == 2 and p[0] in ("v3", "v3.0") and p[1] == "sessions":
            self.session_create()
        elif len(p) == 4 and p[0] in ("v3", "v3.0") and p[1] == "agents" and p[3] == "attestations":
            self.phase1(p[0], p[2])
        else:
            self.body()
            self.send(404)

    def do_PATCH(self):  # noqa: N802
        p = self.parts()
        if len(p) == 3 and p[0] in ("v3", "v3.0") and p[1] == "sessions":
            self.session_update(p[2])
        elif len(p) == 5 and p[0] in ("v3", "v3.0") and p[1] == "agents" and p[3] == "attestations":
            self.phase2(p[2], p[4])
        else:
            self.body()
            self.send(404)

    # -- control API
    def control(self, p):
        try:
            body = json.loads(self.body().decode() or "{}")
            if p == ["_test", "faults"]:
                FAULTS.add(body)
                self.send(200, FAULTS.pending())
            elif p == ["_test", "faults", "clear"]:
                FAULTS.clear()
                self.send(200, {})
            elif p == ["_test", "enroll"]:
                body["ak_tpm"] = body.get("ak_tpm") or fetch_ak_from_registrar(body["agent_id"])
                doc = enroll(body)
                if ARGS.persist:
                    with LOCK, open(ARGS.persist, "a") as f:
                        f.write(json.dumps(body) + "\n")
                self.send(200, doc)
            elif p == ["_test", "policy"]:
                with LOCK:
                    a = AGENTS[body["agent_id"]]
                    apply_policy(a, body)
                    doc = public_view(a)
                self.send(200, doc)
            elif p == ["_test", "settings"]:
                with LOCK:
                    for k in ("phase1_delay", "echo_mb", "max_upload_mb"):
                        if k in body:
                            SETTINGS[k] = float(body[k])
                    doc = dict(SETTINGS)
                self.send(200, doc)
            elif p == ["_test", "expire_token"]:
                with LOCK:
                    for t in TOKENS.values():
                        if t["agent_id"] == body["agent_id"]:
                            t["expires"] = time.time() - 1
                self.send(200, {})
            else:
                self.send(404, {"error": "unknown control route"})
        except (KeyError, ValueError, TypeError) as e:
            self.send(400, {"error": f"{type(e).__name__}: {e}"})

    # -- sessions
    def session_create(self):
        try:
            doc = self.jsonapi_body("session")
        except ApiError as e:
            self.api_error(e)
            return
        if self.serve_fault(FAULTS.pop("session")):
            return
        attrs = ((doc or {}).get("data") or {}).get("attributes") if isinstance(doc, dict) else None
        agent_id = attrs.get("agent_id") if isinstance(attrs, dict) else None
        with LOCK:
            CONTACTS.append([time.time(), agent_id, "session"])
        if not agent_id:
            self.send(400, {"errors": [{"status": "400", "detail": "agent_id is required"}]})
            return
        sup = attrs.get("authentication_supported")
        if not isinstance(sup, list) or not any(isinstance(s, dict) and s.get("authentication_type") == "tpm_pop"
                                                for s in sup):
            self.send(400, {"errors": [{"status": "400", "detail": "authentication_supported must include "
                                                                   "tpm_pop authentication type"}]})
            return
        now = time.time()
        with LOCK:
            a = AGENTS.get(agent_id)
            for key, limit, what in ((f"ip:{self.client_address[0]}", ARGS.session_rate_limit_ip, ""),
                                     (f"agent:{agent_id}", ARGS.session_rate_limit, " for this agent")):
                allowed, retry_after = rate_limit(key, limit, 60, now)
                if not allowed:
                    if a:
                        a["sessions_rate_limited"] += 1
                    kl_peer.log(PROG, f"session for {agent_id}: 429, rate limit{what} (Retry-After {retry_after})")
                    self.send(429, {"errors": [{"status": "429", "title": "Too Many Requests",
                                                "detail": f"Rate limit exceeded{what}. Please try again later."}]},
                              headers={"Retry-After": retry_after})
                    return
            sid = str(uuid.uuid4())
            challenge = kl_tpm.b64e(secrets.token_bytes(16))
            SESSIONS[sid] = {"agent_id": agent_id, "challenge": challenge, "created": now,
                             "expires": now + ARGS.nonce_lifetime}
            if a:
                a["sessions_created"] += 1
        self.send(200, {"data": {"type": "session", "id": sid, "attributes": {
            "agent_id": agent_id,
            "authentication_requested": [{"authentication_class": "pop", "authentication_type": "tpm_pop",
                                          "chosen_parameters": {"challenge": challenge}}],
            "created_at": kl_peer.now_iso(now), "challenges_expire_at": kl_peer.now_iso(now + ARGS.nonce_lifetime)}}})

    def session_update(self, sid):
        try:
            doc = self.jsonapi_body("session")
        except ApiError as e:
            self.api_error(e)
            return
        if self.serve_fault(FAULTS.pop("session")):
            return
        attrs = ((doc or {}).get("data") or {}).get("attributes") if isinstance(doc, dict) else None
        agent_id = attrs.get("agent_id") if isinstance(attrs, dict) else None
        if not agent_id:
            self.send(400, {"errors": [{"status": "400", "detail": "agent_id is required"}]})
            return
        now = time.time()
        with LOCK:
            s = SESSIONS.get(sid)
            if s is None:
                self.send(404, {"errors": [{"status": "404", "detail": "Session not found"}]})
                return
            if s["agent_id"] != agent_id:
                self.send(400, {"errors": [{"status": "400", "detail": "Agent ID mismatch"}]})
                return
            del SESSIONS[sid]
            a = AGENTS.get(agent_id)
            base = {"agent_id": agent_id, "created_at": kl_peer.now_iso(s["created"]),
                    "challenges_expire_at": kl_peer.now_iso(s["expires"]),
                    "response_received_at": kl_peer.now_iso(now)}
            if s["expires"] < now:
                self.send(200, {"data": {"type": "session", "id": sid, "attributes": dict(
                    base, evaluation="fail", token_expires_at=None)}})
                return
            if a is None:
                kl_peer.log(PROG, f"PoP from {agent_id}: not enrolled -> fail")
                self.send(200, {"data": {"type": "session", "id": sid, "attributes": dict(base, evaluation="fail")}})
                return
            reason = self.check_pop(a, s, attrs)
            if reason:
                a["pop_fail"] += 1
                a["errors"].append(f"PoP: {reason}")
                kl_peer.log(PROG, f"PoP from {agent_id} rejected: {reason}")
                self.send(401, {"data": {"type": "session", "id": sid, "attributes": dict(base, evaluation="fail")}})
                return
            for k in [k for k, t in TOKENS.items() if t["agent_id"] == agent_id]:
                del TOKENS[k]
            for k in [k for k, t in SESSIONS.items() if t["agent_id"] == agent_id]:
                del SESSIONS[k]
            secret = secrets.token_urlsafe(32)
            TOKENS[sid] = {"agent_id": agent_id, "secret": secret, "expires": now + ARGS.session_lifetime}
            a["pop_pass"] += 1
        kl_peer.log(PROG, f"PoP from {agent_id} verified: session {sid}")
        self.send(200, {"data": {"type": "session", "id": sid, "attributes": dict(
            base, evaluation="pass", token=f"{sid}.{secret}",
            authentication=[{"authentication_class": "pop", "authentication_type": "tpm_pop",
                             "chosen_parameters": {"challenge": s["challenge"]}}],
            token_expires_at=kl_peer.now_iso(now + ARGS.session_lifetime))}})

    @staticmethod
    def check_pop(a, s, attrs):
        prov = attrs.get("authentication_provided")
        if not isinstance(prov, list) or not prov or not isinstance(prov[0], dict):
            return "authentication_provided missing"
        if prov[0].get("authentication_type") != "tpm_pop":
            return "authentication_type is not tpm_pop"
        data = prov[0].get("data")
        if not isinstance(data, dict) or not data.get("message") or not data.get("signature"):
            return "message/signature missing"
        try:
            attest = kl_tpm.Attest(kl_tpm.b64d(data["message"], "message"))
            sig = kl_tpm.Signature(kl_tpm.b64d(data["signature"], "signature"))
        except ValueError as e:
            return f"malformed: {e}"
        if attest.type != kl_tpm.TPM_ST_ATTEST_CERTIFY:
            return "TPMS_ATTEST is not a certify attestation"
        if attest.extra_data != base64.b64decode(s["challenge"]):
            return "extraData is not the challenge"
        if attest.certified_name != a["ak"].name:
            return "certified name is not the name of the enrolled AK"
        # the AK signs with its own scheme and hash (Keylime 7.14 insists on RSASSA/SHA-256 here,
        # which refuses every other AK: see README)
        if sig.sig_alg != a["ak"].scheme or sig.hash_alg != a["ak"].scheme_hash:
            return (f"signature must use the AK's scheme {a['ak'].scheme_name} with "
                    f"{kl_tpm.HASH_BY_ALG.get(a['ak'].scheme_hash)}")
        try:
            sig.verify(a["ak"].key, attest.raw)
        except (InvalidSignature, ValueError):
            return "signature does not verify with the enrolled AK"
        return None

    def record_fault(self, agent_id, where, fault, count_request):
        """Counts a queued fault as served; a 401 fault also revokes the agent's tokens."""
        with LOCK:
            a = AGENTS.get(agent_id)
            if a:
                a["faults_served"] += 1
                if count_request:
                    a[where + "_requests"] += 1
                a["fault_times"].append({"t": time.time(), "where": where, "fault": fault})
            if fault == 401 or (isinstance(fault, dict) and fault.get("status") == 401):
                for k in [k for k, t in TOKENS.items() if t["agent_id"] == agent_id]:
                    del TOKENS[k]

    # -- attestation
    def phase1(self, ver, agent_id):
        with LOCK:
            CONTACTS.append([time.time(), agent_id, "phase1"])
            delay = SETTINGS["phase1_delay"]
        try:
            if delay > 0:
                # evaluating a large policy: the answer comes late (the request was taken)
                time.sleep(delay)
            doc = self.jsonapi_body("attestation")
            fault = FAULTS.pop("phase1")
            extra = None
            if fault == "extra_type":
                extra = {"evidence_class": "log", "evidence_type": "kl_unknown_log",
                         "chosen_parameters": {"format": "text/plain"}}
                self.record_fault(agent_id, "phase1", fault, count_request=False)
                fault = None
            if fault is not None:
                self.record_fault(agent_id, "phase1", fault, count_request=True)
                self.serve_fault(fault, malformed_status=201)
                return
            try:
                check_token(self, agent_id)
            except ApiError as e:
                if e.status == 401:
                    count_unauthorized(agent_id)
                raise
            now = time.time()
            with LOCK:
                a = AGENTS.get(agent_id)
                if a is None:
                    raise ApiError(404, "not_found", f"No enrolled agent with ID '{agent_id}'")
                a["phase1_requests"] += 1
                last = a["last_evidence_received_at"]
                if last is not None and now < last + ARGS.quote_interval:
                    wait = max(1, math.ceil(last + ARGS.quote_interval - now))
                    a["rate_limited"] += 1
                    raise ApiError(429, "premature_attestation",
                                   f"Next attestation may not be submitted before {wait} seconds",
                                   headers={"Retry-After": wait})
                requested, boot_time, ima_count = select_evidence(a, doc["data"]["attributes"])
                if extra is not None:
                    requested = requested + [extra]
                index = len(a["attestations"])
                at = {"index": index, "stage": "awaiting_evidence", "evaluation": None, "failure_reason": None,
                      "evidence_requested": requested, "boot_time": boot_time, "ima_entry_count": ima_count,
                      "capabilities_received_at": now, "challenges_expire_at": now + ARGS.challenge_lifetime,
                      "evidence_types": [r["evidence_type"] for r in requested]}
                a["attestations"].append(at)
                a["phase1_created"] += 1
                if boot_time is not None:
                    start = [r for r in requested if r["evidence_type"] == "ima_log"][0]
                    a["ima_offsets"].append(start["chosen_parameters"]["starting_offset"])
            loc = f"/{ver}/agents/{agent_id}/attestations/{index}"
            attrs = {"stage": "awaiting_evidence",
                     "evidence_requested": [{k: v for k, v in r.items() if not k.startswith("_")}
                                            for r in requested],
                     "capabilities_received_at": kl_peer.now_iso(now),
                     "challenges_expire_at": kl_peer.now_iso(now + ARGS.challenge_lifetime)}
            if boot_time is not None:
                attrs["system_info"] = {"boot_time": kl_peer.now_iso(boot_time)}
            kl_peer.log(PROG, f"{agent_id}: attestation {index} created, requesting "
                              f"{[r['evidence_type'] for r in requested]}")
            self.api_reply(201, {"data": {"type": "attestation", "attributes": attrs, "links": {"self": loc}},
                                 "links": {"self": f"/{ver}/agents/{agent_id}/attestations"},
                                 "jsonapi": {"version": "1.1"}}, {"Location": loc})
        except ApiError as e:
            if e.status == 422:
                with LOCK:
                    if agent_id in AGENTS:
                        AGENTS[agent_id]["errors"].append(f"phase1 422: {e.detail}")
            kl_peer.log(PROG, f"{agent_id}: phase 1 -> {e.status} {e.detail}")
            self.api_error(e)

    def phase2(self, agent_id, index):
        try:
            doc = self.jsonapi_body("attestation")
            fault = FAULTS.pop("phase2")
            if fault is not None:
                self.record_fault(agent_id, "phase2", fault, count_request=True)
                self.serve_fault(fault, malformed_status=202)
                return
            try:
                check_token(self, agent_id)
            except ApiError as e:
                if e.status == 401:
                    count_unauthorized(agent_id)
                raise
            now = time.time()
            with LOCK:
                a = AGENTS.get(agent_id)
                if a is None:
                    raise ApiError(404, "not_found", f"No enrolled agent with ID '{agent_id}'")
                a["phase2_requests"] += 1
                a["evidence_bytes_max"] = max(a["evidence_bytes_max"],
                                              int(self.headers.get("Content-Length") or 0))
                if not a["attestations"]:
                    raise ApiError(404, "not_found", "No attestation found")
                latest = a["attestations"][-1]
                if index != "latest":
                    if not index.isdigit() or int(index) >= len(a["attestations"]):
                        raise ApiError(404, "not_found", f"No attestation {index}")
                    if int(index) != latest["index"]:
                        raise ApiError(403, "old_attestation", "Only the latest attestation may be updated")
                at = latest
                if at["stage"] != "awaiting_evidence":
                    raise ApiError(403, "evidence_immutable", "Evidence was already submitted")
                if now > at["challenges_expire_at"]:
                    raise ApiError(403, "challenges_expired", "The challenges have expired")
                evidence = doc["data"]["attributes"].get("evidence_collected")
                check_evidence_shape(at, evidence)
                at["stage"] = "evaluating_evidence"
                at["evidence_received_at"] = now
                a["last_evidence_received_at"] = now
                a["phase2_accepted"] += 1
                ok, reason, ima_update = verify_evidence(a, at, evidence)
                at["stage"] = "verification_complete"
                at["evaluation"] = "pass" if ok else "fail"
                at["failure_reason"] = reason
                a["last_evaluation"] = at["evaluation"]
                if ok:
                    a["passes"] += 1
                    if ima_update is not None:
                        a["ima_state"] = ima_update
                else:
                    a["fails"] += 1
                    a["last_failure_reason"] = reason
                    a["failure_reasons"] = (a["failure_reasons"] + [reason])[-20:]
            kl_peer.log(PROG, f"{agent_id}: attestation {at['index']} evaluation={at['evaluation']}"
                              + (f" reason: {reason}" if reason else ""))
            loc = f"/v3/agents/{agent_id}/attestations/{at['index']}"
            with LOCK:
                echo_mb = SETTINGS["echo_mb"]
            echo = {}
            if echo_mb > 0:
                # Keylime echoes the evidence in its 202 (14.5 MB for 100k IMA entries)
                echo = {"evidence": "QUJD" * int(echo_mb * 1024 * 1024 / 4)}
            self.api_reply(202, {
                "data": {"type": "attestation", "attributes": {
                    **echo,
                    "stage": "evaluating_evidence",
                    "capabilities_received_at": kl_peer.now_iso(at["capabilities_received_at"]),
                    "challenges_expire_at": kl_peer.now_iso(at["challenges_expire_at"]),
                    "evidence_received_at": kl_peer.now_iso(now)},
                    "links": {"self": loc.replace("/v3/", "/3/")}},
                "meta": {"seconds_to_next_attestation": ARGS.quote_interval},
                "links": {"self": f"/v3/agents/{agent_id}/attestations/latest"},
                "jsonapi": {"version": "1.1"}}, {"Location": loc.replace("/v3/", "/3/")})
        except ApiError as e:
            if e.status in (422, 500):
                with LOCK:
                    if agent_id in AGENTS:
                        AGENTS[agent_id]["errors"].append(f"phase2 {e.status}: {e.detail}")
            kl_peer.log(PROG, f"{agent_id}: phase 2 -> {e.status} {e.detail}")
            self.api_error(e)


def enroll(body):
    agent_id = body["agent_id"]
    ak = kl_tpm.TpmPublic(kl_tpm.b64d(body["ak_tpm"], "ak_tpm"))
    a = new_agent(agent_id, body["ak_tpm"], ak)
    apply_policy(a, body)
    with LOCK:
        AGENTS[agent_id] = a
        doc = public_view(a)
    kl_peer.log(PROG, f"enrolled {agent_id}: policy PCRs {sorted(a['tpm_policy'])} ima={a['ima']} mb={a['mb']}")
    return doc


RATE = {}  # rate limit key -> {"requests": [times], "block_count": n, "blocked_until": t}
SETTINGS = {"phase1_delay": 0.0, "echo_mb": 0.0, "max_upload_mb": 100.0}


def rate_limit(key, max_requests, window, now):
    """Keylime's RateLimiter.check_rate_limit: (allowed, retry_after_seconds)."""
    d = RATE.get(key, {"requests": [], "block_count": 0, "blocked_until": None})
    if d.get("blocked_until") and d["blocked_until"] > now:
        return False, int(d["blocked_until"] - now)
    requests = [t for t in d["requests"] if t > now - window]
    if len(requests) >= max_requests:
        count = d.get("block_count", 0) + 1
        duration = min(60 * (2 ** (count - 1)), 3600)
        RATE[key] = {"requests": requests, "block_count": count, "blocked_until": now + duration}
        return False, duration
    requests.append(now)
    RATE[key] = {"requests": requests, "block_count": d.get("block_count", 0), "blocked_until": None}
    return True, None


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--state-file", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cert-dir", help="where the test CA is written (default: next to the state file)")
    p.add_argument("--quote-interval", type=float, default=1.0)
    p.add_argument("--session-lifetime", type=float, default=180.0)
    p.add_argument("--nonce-lifetime", type=float, default=60.0)
    p.add_argument("--challenge-lifetime", type=float, default=1800.0)
    p.add_argument("--session-rate-limit", type=int, default=15, help="sessions per agent per 60 s")
    p.add_argument("--session-rate-limit-ip", type=int, default=50, help="sessions per client address per 60 s")
    p.add_argument("--registrar-url", help="fetch aik_tpm for /_test/enroll from this registrar")
    p.add_argument("--registrar-ca", help="CA file for an https registrar URL")
    p.add_argument("--persist", help="keep the enrollments in this file (JSON lines) and the TLS "
                                     "certificate across restarts, like a verifier with a database")
    ARGS = p.parse_args()
    if ARGS.quote_interval == int(ARGS.quote_interval):
        ARGS.quote_interval = int(ARGS.quote_interval)
    d = ARGS.cert_dir or os.path.dirname(os.path.abspath(ARGS.state_file))
    kept = [os.path.join(d, "verifier-" + n) for n in ("ca.crt", "server.crt", "server.key")]
    if ARGS.persist and all(os.path.exists(n) for n in kept):
        ca, crt, key = kept
    else:
        ca, crt, key = kl_peer.make_test_ca(d, "verifier", "kl-test-verifier")[:3]
    if ARGS.persist and os.path.exists(ARGS.persist):
        with open(ARGS.persist) as f:
            for line in f:
                if line.strip():
                    enroll(json.loads(line))
    s = kl_peer.Server(ARGS.port, VerifierHandler, tls=(crt, key))
    state = {"pid": os.getpid(), "port": s.port, "url": f"https://127.0.0.1:{s.port}", "ca_cert": ca}
    kl_peer.serve_forever([s], ARGS.state_file, state, PROG)


if __name__ == "__main__":
    main()
