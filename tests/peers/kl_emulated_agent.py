#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A push-model agent made of tpm2-tools, for proving the integration harness.

It reads the same KEYLIME_AGENT_CONFIG file as the real agent (the options the
integration tests set) and follows the protocol the tests expect from it:
register + activate (retrying while the registrar is down), PoP session,
attestation cycles, recovery from 401/403/404/429/5xx/malformed/timeouts,
--once (exit 0 when the evidence was accepted, 7 otherwise), SIGTERM -> exit 0.

Run the integration tests against it with
  KL_TEST_AGENT=tests/peers/kl_emulated_agent.py meson test -C build --suite integration
"""

import base64
import hashlib
import json
import os
import signal
import ssl
import struct
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import uuid as uuidlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import kl_tpm  # noqa: E402

STOP = False
JSONAPI = "application/vnd.api+json"


def log(msg):
    sys.stdout.write(time.strftime("%H:%M:%S ") + "kl-emulated-agent: " + msg + "\n")
    sys.stdout.flush()


def on_term(*_):
    global STOP
    STOP = True


def sleep(secs):
    end = time.time() + secs
    while not STOP and time.time() < end:
        time.sleep(min(0.1, end - time.time()))


class Tpm:
    def __init__(self, tcti, work):
        self.env = dict(os.environ, TPM2TOOLS_TCTI=tcti)
        self.work = work

    def run(self, *args, data=None):
        r = subprocess.run(list(args), env=self.env, cwd=self.work, input=data, capture_output=True)
        if r.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {r.stderr.decode(errors='replace')}")
        return r.stdout

    def flush(self):
        for f in ("-t", "-l", "-s"):
            subprocess.run(["tpm2_flushcontext", f], env=self.env, cwd=self.work, capture_output=True)

    def persistent(self):
        return self.run("tpm2_getcap", "handles-persistent").decode().lower()

    def path(self, name):
        return os.path.join(self.work, name)


def setup_keys(tpm, conf):
    """EK (persistent 0x81010001, created when missing) and a persisted AK kept in keylime_dir."""
    tpm.flush()
    if "0x81010001" not in tpm.persistent():
        tpm.run("tpm2_createek", "-G", "rsa", "-c", tpm.path("ek.ctx"))
        tpm.run("tpm2_evictcontrol", "-C", "o", "-c", tpm.path("ek.ctx"), "0x81010001")
        tpm.flush()
    tpm.run("tpm2_readpublic", "-c", "0x81010001", "-o", tpm.path("ek.pub"), "-f", "tss")
    ekcert = None
    try:
        tpm.run("tpm2_nvread", "0x1c00002", "-C", "o", "-o", tpm.path("ekcert.der"))
        ekcert = open(tpm.path("ekcert.der"), "rb").read()
    except RuntimeError:
        pass
    tpm.flush()
    state = os.path.join(conf["keylime_dir"], "emulated_ak.json")
    if os.path.exists(state):
        st = json.load(open(state))
        if st["handle"] in tpm.persistent():
            log(f"reusing the AK at {st['handle']}")
            return open(tpm.path("ek.pub"), "rb").read(), ekcert, st["handle"], base64.b64decode(st["pub"])
    existing = tpm.persistent()
    handle = next(h for h in (f"0x{0x81000000 + i:08x}" for i in range(256, 512)) if h not in existing)
    tpm.run("tpm2_createak", "-C", "0x81010001", "-c", tpm.path("ak.ctx"), "-G", "rsa", "-g", "sha256",
            "-s", "rsassa", "-u", tpm.path("ak.pub"), "-n", tpm.path("ak.name"), "-f", "tss")
    tpm.run("tpm2_evictcontrol", "-C", "o", "-c", tpm.path("ak.ctx"), handle)
    tpm.flush()
    akpub = open(tpm.path("ak.pub"), "rb").read()
    with open(state, "w") as f:
        json.dump({"handle": handle, "pub": base64.b64encode(akpub).decode()}, f)
    log(f"new AK persisted at {handle}")
    return open(tpm.path("ek.pub"), "rb").read(), ekcert, handle, akpub


def agent_id(conf, ekpub):
    u = conf.get("uuid", "")
    if u == "hash_ek":
        return hashlib.sha256(kl_tpm.TpmPublic(ekpub).pem()).hexdigest()
    if u == "generate":
        p = os.path.join(conf["keylime_dir"], "emulated_uuid")
        if not os.path.exists(p):
            with open(p, "w") as f:
                f.write(str(uuidlib.uuid4()))
        return open(p).read().strip()
    return u


def http(method, url, body=None, ctype="application/json", ca=None, token=None, timeout=5.0):
    """-> (status, headers, parsed JSON or None, raw); status 0 on transport errors."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", ctype)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    ctx = ssl.create_default_context(cafile=ca) if url.startswith("https") else None
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            raw, status, hdrs = r.read(), r.status, r.headers
    except urllib.error.HTTPError as e:
        raw, status, hdrs = e.read(), e.code, e.headers
    except (OSError, urllib.error.URLError) as e:
        return 0, {}, None, str(e).encode()
    try:
        doc = json.loads(raw.decode()) if raw else None
    except ValueError:
        doc = None
    return status, hdrs, doc, raw


def register(tpm, conf, aid, ekpub, ekcert, akh, akpub, timeout):
    if conf.get("registrar_tls_enabled"):
        base = f"https://{conf.get('registrar_ip', '127.0.0.1')}:{conf.get('registrar_tls_port', 8891)}"
        ca = conf.get("registrar_tls_ca_cert")
    else:
        base = f"http://{conf.get('registrar_ip', '127.0.0.1')}:{conf.get('registrar_port', 8890)}"
        ca = None
    body = {"ek_tpm": kl_tpm.b64e(ekpub), "aik_tpm": kl_tpm.b64e(akpub)}
    if ekcert:
        body["ekcert"] = kl_tpm.b64e(ekcert)
    if conf.get("enable_iak_idevid"):
        for k in ("iak", "idevid"):
            tpm.run("tpm2_readpublic", "-c", conf[f"{k}_handle"], "-o", tpm.path(f"{k}.pub"), "-f", "tss")
            body[f"{k}_tpm"] = kl_tpm.b64e(open(tpm.path(f"{k}.pub"), "rb").read())
            data = open(conf[f"{k}_cert"], "rb").read()
            body[f"{k}_cert"] = data.decode() if data.startswith(b"-----") else kl_tpm.b64e(data)
        attest, sig = certify(tpm, akh, hashlib.sha256(aid.encode()).digest(), conf["iak_handle"])
        body["iak_attest"] = kl_tpm.b64e(attest)
        body["iak_sign"] = kl_tpm.b64e(sig)
    st, _, doc, raw = http("POST", f"{base}/v2.6/agents/{aid}", body, ca=ca, timeout=timeout)
    if st == 403:
        raise SystemExit("registrar refused: identity changed (403)")
    if st != 200:
        raise RuntimeError(f"registration: HTTP {st} {raw[:200]!r}")
    with open(tpm.path("cred.blob"), "wb") as f:
        f.write(base64.b64decode(doc["results"]["blob"]))
    tpm.flush()
    tpm.run("tpm2_startauthsession", "--policy-session", "-S", tpm.path("s.ctx"))
    tpm.run("tpm2_policysecret", "-S", tpm.path("s.ctx"), "-c", "e")
    tpm.run("tpm2_activatecredential", "-c", akh, "-C", "0x81010001", "-i", tpm.path("cred.blob"),
            "-o", tpm.path("secret.bin"), "-P", f"session:{tpm.path('s.ctx')}")
    tpm.flush()
    cred = open(tpm.path("secret.bin"), "rb").read()
    st, _, _, raw = http("PUT", f"{base}/v2.6/agents/{aid}", {"auth_tag": kl_tpm.auth_tag(cred, aid)}, ca=ca,
                         timeout=timeout)
    if st != 200:
        raise RuntimeError(f"activation: HTTP {st} {raw[:200]!r}")
    log(f"registered and activated {aid}")


def certify(tpm, akh, nonce, signer=None):
    h = int(akh, 16)
    sh = int(signer, 16) if signer else h
    auth = bytes.fromhex("400000090000000000")
    body = struct.pack(">II", h, sh) + struct.pack(">I", 18) + auth + auth + struct.pack(">H", len(nonce)) + nonce \
        + struct.pack(">H", 0x10)
    cmd = struct.pack(">HII", 0x8002, 10 + len(body), 0x148) + body
    rsp = tpm.run("tpm2_send", data=cmd)
    tpm.flush()
    _, _, rc = struct.unpack_from(">HII", rsp, 0)
    if rc:
        raise RuntimeError(f"TPM2_Certify rc=0x{rc:x}")
    (n,) = struct.unpack_from(">H", rsp, 14)
    attest = rsp[16:16 + n]
    o = 16 + n
    _, _, slen = struct.unpack_from(">HHH", rsp, o)
    return attest, rsp[o:o + 6 + slen]


class Agent:
    def __init__(self, conf, once):
        self.conf = conf
        self.once = once
        self.base = conf["verifier_url"].rstrip("/") + "/v3.0"
        self.ca = conf.get("verifier_tls_ca_cert")
        self.timeout = conf.get("request_timeout", 5000) / 1000.0
        self.backoff0 = conf.get("exponential_backoff_initial_delay", 10000) / 1000.0
        self.backoff_max = conf.get("exponential_backoff_max_delay", 300000) / 1000.0
        self.token = None
        work = os.path.join(conf["keylime_dir"], "emulated")
        os.makedirs(work, exist_ok=True)
        self.tpm = Tpm(conf.get("tcti") or os.environ.get("TCTI", ""), work)

    def call(self, method, url, body):
        return http(method, url, body, JSONAPI, self.ca, self.token, self.timeout)

    def session(self):
        st, _, doc, raw = self.call("POST", f"{self.base}/sessions", {"data": {"type": "session", "attributes": {
            "agent_id": self.id, "authentication_supported": [
                {"authentication_class": "pop", "authentication_type": "tpm_pop"}]}}})
        if st != 200 or not doc:
            raise RuntimeError(f"POST sessions: HTTP {st}")
        sid = doc["data"]["id"]
        ch = base64.b64decode(doc["data"]["attributes"]["authentication_requested"][0]["chosen_parameters"]
                              ["challenge"])
        attest, sig = certify(self.tpm, self.akh, ch)
        st, _, doc, raw = self.call("PATCH", f"{self.base}/sessions/{sid}", {"data": {
            "type": "session", "id": sid, "attributes": {"agent_id": self.id, "authentication_provided": [
                {"authentication_class": "pop", "authentication_type": "tpm_pop",
                 "data": {"message": kl_tpm.b64e(attest), "signature": kl_tpm.b64e(sig)}}]}}})
        if st != 200 or not doc or doc["data"]["attributes"].get("evaluation") != "pass":
            raise RuntimeError(f"PoP session: HTTP {st} {raw[:200]!r}")
        self.token = doc["data"]["attributes"]["token"]
        log("PoP session authenticated")

    def capabilities(self):
        ev = [{"evidence_class": "certification", "evidence_type": "tpm_quote", "capabilities": {
            "component_version": "2.0", "hash_algorithms": ["sha256"], "signature_schemes": ["rsassa"],
            "available_subjects": {"sha256": list(range(24))},
            "certification_keys": [{"key_class": "asymmetric", "key_algorithm": "rsa", "key_size": 2048,
                                    "server_identifier": "ak", "public": kl_tpm.b64e(self.akpub),
                                    "allowable_hash_algorithms": ["sha256"],
                                    "allowable_signature_schemes": ["rsassa"]}]}}]
        uefi = self.conf.get("measuredboot_ml_path")
        if uefi and os.path.exists(uefi):
            ev.append({"evidence_class": "log", "evidence_type": "uefi_log", "capabilities": {
                "evidence_version": "2.1", "entry_count": 1, "supports_partial_access": False,
                "appendable": False, "formats": ["application/octet-stream"]}})
        ima = self.conf.get("ima_ml_path")
        if ima and os.path.exists(ima):
            ev.append({"evidence_class": "log", "evidence_type": "ima_log", "capabilities": {
                "entry_count": open(ima).read().count("\n"), "supports_partial_access": True,
                "appendable": True, "formats": ["text/plain"]}})
        return {"data": {"type": "attestation", "attributes": {
            "evidence_supported": ev, "system_info": {"boot_time": "2026-01-01T00:00:00Z"}}}}

    def evidence(self, requested):
        out = []
        for r in requested:
            t = r["evidence_type"]
            cp = r.get("chosen_parameters", {})
            if t == "tpm_quote":
                halg = cp["hash_algorithm"]
                pcrs = ",".join(str(p) for p in cp["selected_subjects"][halg])
                self.tpm.flush()
                self.tpm.run("tpm2_quote", "-c", self.akh, "-l", f"{halg}:{pcrs}", "-q",
                             base64.b64decode(cp["challenge"]).hex(), "-g", halg, "-m", self.tpm.path("q.msg"),
                             "-s", self.tpm.path("q.sig"), "-o", self.tpm.path("q.pcrs"))
                self.tpm.flush()
                out.append({"evidence_class": "certification", "evidence_type": t, "data": {
                    "message": kl_tpm.b64e(open(self.tpm.path("q.msg"), "rb").read()),
                    "signature": kl_tpm.b64e(open(self.tpm.path("q.sig"), "rb").read()),
                    "subject_data": kl_tpm.b64e(open(self.tpm.path("q.pcrs"), "rb").read())}})
            elif t == "uefi_log":
                out.append({"evidence_class": "log", "evidence_type": t, "data": {
                    "entries": kl_tpm.b64e(open(self.conf["measuredboot_ml_path"], "rb").read())}})
            elif t == "ima_log":
                lines = open(self.conf["ima_ml_path"]).read().split("\n")[:-1]
                part = lines[cp.get("starting_offset", 0):]
                out.append({"evidence_class": "log", "evidence_type": t, "data": {
                    "entries": "".join(x + "\n" for x in part), "entry_count": len(part)}})
        return {"data": {"type": "attestation", "attributes": {"evidence_collected": out}}}

    def cycle(self):
        """One attestation: -> seconds to sleep, and True when the evidence was accepted."""
        if self.token is None:
            self.session()
        st, hdrs, doc, raw = self.call("POST", f"{self.base}/agents/{self.id}/attestations", self.capabilities())
        if st == 429:
            wait = float(hdrs.get("Retry-After") or 1)
            log(f"phase 1: 429, Retry-After {wait}")
            return wait, False
        if st == 401:
            log("phase 1: 401, re-authenticating")
            self.token = None
            return 0, False
        if st != 201 or not doc or "data" not in doc:
            raise RuntimeError(f"phase 1: HTTP {st} {raw[:120]!r}")
        loc = hdrs.get("Location")
        requested = doc["data"]["attributes"]["evidence_requested"]
        url = self.conf["verifier_url"].rstrip("/") + loc
        st, hdrs, doc, raw = self.call("PATCH", url, self.evidence(requested))
        if st == 401:
            log("phase 2: 401, re-authenticating")
            self.token = None
            return 0, False
        if st != 202 or not doc or "meta" not in doc:
            raise RuntimeError(f"phase 2: HTTP {st} {raw[:120]!r}")
        log("evidence accepted (202)")
        return float(doc["meta"].get("seconds_to_next_attestation", 2)), True

    def run(self):
        backoff = self.backoff0
        ekpub, ekcert, self.akh, self.akpub = setup_keys(self.tpm, self.conf)
        self.id = agent_id(self.conf, ekpub)
        while not STOP:
            try:
                register(self.tpm, self.conf, self.id, ekpub, ekcert, self.akh, self.akpub, self.timeout)
                break
            except RuntimeError as e:
                log(f"registration failed ({e}); retrying in {backoff:.1f}s")
                sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max)
        backoff = self.backoff0
        tries = 0
        while not STOP:
            try:
                wait, accepted = self.cycle()
                backoff = self.backoff0
                if self.once and accepted:
                    return 0
                sleep(wait)
            except RuntimeError as e:
                tries += 1
                if self.once and tries > 3:
                    log(f"giving up: {e}")
                    return 7
                log(f"attestation failed ({e}); retrying in {backoff:.1f}s")
                sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max)
        return 0


def main():
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    with open(os.environ["KEYLIME_AGENT_CONFIG"], "rb") as f:
        conf = tomllib.load(f)["agent"]
    if os.environ.get("KEYLIME_DIR"):
        conf["keylime_dir"] = os.environ["KEYLIME_DIR"]
    sys.exit(Agent(conf, "--once" in sys.argv[1:]).run())


if __name__ == "__main__":
    main()
