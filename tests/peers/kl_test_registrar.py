#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Test registrar speaking the Keylime registrar wire protocol (API 2.6 routes).

It really verifies: ek_tpm/aik_tpm must be valid TPM2B_PUBLIC structures, ekcert must
hold the EK's public key, the challenge blob is a real TPM2_MakeCredential against the
submitted EK for the AK name, and activation checks HMAC-SHA384(base64(credential), id).
IAK/IDevID: certificates must chain to --tpm-cert-store and hold iak_tpm/idevid_tpm, and
iak_attest/iak_sign must be a TPM2_Certify of the AK by the IAK over SHA-256(agent id).

Control API (same server): GET /_test/agents/{id}, POST /_test/faults
{"version"|"register"|"activate": [status | {"status":N,"retry_after":s} | "malformed" | "hang"]}.

usage: kl_test_registrar.py --state-file F [--port N] [--tls] [--tls-port N] [--cert-dir D]
                            [--tpm-cert-store PEM|DIR]
"""

import argparse
import base64
import json
import os
import re
import secrets
import string
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cryptography import x509  # noqa: E402
from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: E402

import kl_peer  # noqa: E402
import kl_tpm  # noqa: E402

PROG = "kl-test-registrar"
SUPPORTED = ["1.0", "2.0", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6", "3.0"]
CURRENT = "2.6"

LOCK = threading.Lock()
AGENTS = {}
STATS = {}
FAULTS = kl_peer.FaultQueues(["version", "register", "activate"])
ARGS = None


class BadRequest(Exception):
    pass


class Forbidden(Exception):
    pass


def stats(agent_id):
    return STATS.setdefault(agent_id, {"registrations": 0, "activations": 0, "failed_activations": 0,
                                       "rejected_registrations": 0, "forbidden": 0, "last_error": None,
                                       "aik_restricted_signing": None, "iak_verified": False})


def load_cert(value, what):
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{what} must be a base64 DER or PEM certificate")
    try:
        if "-----BEGIN" in value:
            return x509.load_pem_x509_certificate(value.encode())
        return x509.load_der_x509_certificate(kl_tpm.b64d(value, what))
    except ValueError as e:
        raise BadRequest(f"{what} is not a certificate: {e}") from e


def load_store(path):
    certs = []
    if not path:
        return certs
    files = [path]
    if os.path.isdir(path):
        files = [os.path.join(path, f) for f in sorted(os.listdir(path))]
    for f in files:
        data = open(f, "rb").read()
        for m in re.finditer(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", data, re.S):
            certs.append(x509.load_pem_x509_certificate(m.group(0)))
        if b"-----BEGIN" not in data and data:
            try:
                certs.append(x509.load_der_x509_certificate(data))
            except ValueError:
                pass
    return certs


def signed_by(cert, issuer):
    if cert.issuer != issuer.subject:
        return False
    key = issuer.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def chains_to_store(cert, store):
    """Walks issuer links through the store up to a self-signed certificate of the store."""
    cur = cert
    for _ in range(8):
        issuers = [c for c in store if signed_by(cur, c)]
        if not issuers:
            return False
        if any(signed_by(c, c) for c in issuers):
            return True
        cur = issuers[0]
    return False


def check_key_against_cert(pub, cert, field):
    if not kl_tpm.same_public_key(pub.key, cert.public_key()):
        raise BadRequest(f"{field} must contain the same public key found in the certificate")


def parse_public(data, field):
    try:
        return kl_tpm.TpmPublic(kl_tpm.b64d(data, field))
    except ValueError as e:
        raise BadRequest(f"{field} must be a valid TPM2B_PUBLIC structure: {e}") from e


def verify_aik_with_iak(agent_id, aik, iak, attest_b64, sign_b64):
    try:
        attest = kl_tpm.Attest(kl_tpm.b64d(attest_b64, "iak_attest"))
        sig = kl_tpm.Signature(kl_tpm.b64d(sign_b64, "iak_sign"))
    except ValueError as e:
        raise BadRequest(f"iak_attest/iak_sign malformed: {e}") from e
    if attest.type != kl_tpm.TPM_ST_ATTEST_CERTIFY:
        raise BadRequest("iak_attest is not a TPM2_Certify attestation")
    if attest.extra_data not in (kl_tpm.digest("sha256", agent_id.encode()), agent_id.encode()):
        raise BadRequest("iak_attest qualifying data is not SHA-256(agent id)")
    if attest.certified_name != aik.name:
        raise BadRequest("iak_attest does not certify the registered AK")
    try:
        sig.verify(iak.key, attest.raw)
    except (InvalidSignature, ValueError) as e:
        raise BadRequest(f"iak_sign is not a valid IAK signature over iak_attest: {e!r}") from e


def register(agent_id, data):
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    if not agent_id or not isinstance(agent_id, str) or len(agent_id) > 80:
        raise BadRequest("agent_id is required (at most 80 characters)")
    st = stats(agent_id)
    if "aik_tpm" not in data or not data["aik_tpm"]:
        raise BadRequest("aik_tpm is required")
    aik = parse_public(data["aik_tpm"], "aik_tpm")
    if "ek_tpm" not in data or not data["ek_tpm"]:
        raise BadRequest("ek_tpm is required (no challenge can be produced without it)")
    ek = parse_public(data["ek_tpm"], "ek_tpm")
    ekcert_b64 = None
    if data.get("ekcert"):
        cert = load_cert(data["ekcert"], "ekcert")
        check_key_against_cert(ek, cert, "ek_tpm")
        ekcert_b64 = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()

    with LOCK:
        old = AGENTS.get(agent_id)
        if old:
            for field, new in (("ek_tpm", data["ek_tpm"]), ("aik_tpm", data["aik_tpm"]), ("ekcert", ekcert_b64)):
                if new is not None and old.get(field) is not None and \
                        kl_tpm.b64d(old[field]) != kl_tpm.b64d(new):
                    st["forbidden"] += 1
                    raise Forbidden(f"agent {agent_id} is already registered with a different {field}")

    iak_ok = False
    if data.get("iak_tpm") or data.get("idevid_tpm"):
        if not data.get("iak_tpm") or not data.get("idevid_tpm"):
            raise BadRequest("iak_tpm and idevid_tpm must be sent together")
        iak = parse_public(data["iak_tpm"], "iak_tpm")
        idevid = parse_public(data["idevid_tpm"], "idevid_tpm")
        if not data.get("iak_cert") or not data.get("idevid_cert"):
            raise BadRequest("iak_cert and idevid_cert are required with iak_tpm/idevid_tpm")
        iak_cert = load_cert(data["iak_cert"], "iak_cert")
        idevid_cert = load_cert(data["idevid_cert"], "idevid_cert")
        check_key_against_cert(iak, iak_cert, "iak_tpm")
        check_key_against_cert(idevid, idevid_cert, "idevid_tpm")
        store = load_store(ARGS.tpm_cert_store)
        for c, f in ((iak_cert, "iak_cert"), (idevid_cert, "idevid_cert")):
            if not chains_to_store(c, store):
                raise BadRequest(f"{f} must contain a certificate issued by a CA present in the trust store")
        if not data.get("iak_attest") or not data.get("iak_sign"):
            raise BadRequest("aik_tpm cannot be bound to the IAK because of a missing 'iak_attest' or 'iak_sign'")
        verify_aik_with_iak(agent_id, aik, iak, data["iak_attest"], data["iak_sign"])
        iak_ok = True

    alphabet = string.ascii_letters + string.digits
    credential = "".join(secrets.choice(alphabet) for _ in range(32)).encode()
    try:
        blob = kl_tpm.make_credential(ek, aik.name, credential)
    except ValueError as e:
        raise BadRequest(f"could not produce a challenge for this EK: {e}") from e

    with LOCK:
        rec = AGENTS.get(agent_id, {"agent_id": agent_id, "regcount": 0})
        rec.update({k: data.get(k) for k in ("ek_tpm", "aik_tpm", "ip", "port", "mtls_cert",
                                              "iak_tpm", "idevid_tpm", "iak_cert", "idevid_cert")})
        rec["ekcert"] = ekcert_b64
        rec["regcount"] += 1
        rec["active"] = False
        rec["key"] = base64.b64encode(credential).decode()
        AGENTS[agent_id] = rec
        st["registrations"] += 1
        st["aik_restricted_signing"] = aik.is_restricted_signing()
        st["iak_verified"] = iak_ok
        st["ek_type"] = "rsa" if ek.type == kl_tpm.TPM_ALG_RSA else "ecc"
        st["ek_key"] = ek.key_name
        st["ek_name_alg"] = kl_tpm.hash_name(ek.name_alg)
        st["aik_key"] = aik.key_name
        st["aik_scheme"] = aik.scheme_name
        st["aik_hash"] = kl_tpm.HASH_BY_ALG.get(aik.scheme_hash)
        st["had_ekcert"] = ekcert_b64 is not None
        st["hash_ek"] = kl_tpm.digest("sha256", ek.pem()).hex()
        st["aik_name"] = aik.name.hex()
        st["last_error"] = None
    kl_peer.log(PROG, f"registered {agent_id} (regcount {rec['regcount']}, ekcert {'yes' if ekcert_b64 else 'no'}, "
                      f"iak {'verified' if iak_ok else 'no'})")
    return kl_tpm.b64e(blob)


def activate(agent_id, data):
    with LOCK:
        rec = AGENTS.get(agent_id)
        st = stats(agent_id)
        if rec is None:
            return 404, {"code": 404, "status": f"Agent {agent_id} not found", "results": {}}
        tag = data.get("auth_tag") if isinstance(data, dict) else None
        expected = kl_tpm.auth_tag(base64.b64decode(rec["key"]), agent_id)
        if not isinstance(tag, str) or tag != expected:
            del AGENTS[agent_id]
            st["failed_activations"] += 1
            st["last_error"] = "wrong auth_tag: agent deleted"
            kl_peer.log(PROG, f"activation of {agent_id} failed: wrong auth_tag; record deleted")
            return 400, {"code": 400, "status": f"Auth tag {tag} for agent {agent_id} does not match expected value."
                                                 " The agent has been deleted from database, and a restart of it "
                                                 "will be required", "results": {}}
        rec["active"] = True
        st["activations"] += 1
    kl_peer.log(PROG, f"activated {agent_id}")
    return 200, {"code": 200, "status": "Success", "results": {}}


class RegistrarHandler(kl_peer.Handler):
    prog = PROG

    def reply(self, code, status, results=None):
        self.send(code, {"code": code, "status": status, "results": results or {}})

    def route(self):
        path = self.path.split("?")[0].rstrip("/")
        parts = [p for p in path.split("/") if p]
        return parts

    def do_GET(self):  # noqa: N802
        parts = self.route()
        if parts == ["version"]:
            if self.serve_fault(FAULTS.pop("version")):
                return
            self.reply(200, "Success", {"current_version": CURRENT, "supported_versions": SUPPORTED})
            return
        if len(parts) == 3 and parts[:2] == ["_test", "agents"]:
            with LOCK:
                rec = dict(AGENTS.get(parts[2]) or {})
                st = dict(STATS.get(parts[2]) or {})
            if not rec and not st:
                self.send(404, {"error": "unknown agent"})
                return
            rec.pop("key", None)
            rec.update(st)
            rec["registered"] = parts[2] in AGENTS
            self.send(200, rec)
            return
        if parts == ["_test", "faults"]:
            self.send(200, FAULTS.pending())
            return
        if parts == ["_test", "agents"]:
            with LOCK:
                self.send(200, {"agents": sorted(STATS), "registered": sorted(AGENTS)})
            return
        ver = self.api_version(parts)
        if ver is None:
            return
        if len(parts) == 3 and parts[1] == "agents":
            with LOCK:
                rec = AGENTS.get(parts[2])
                rec = dict(rec) if rec else None
            if rec is None or not rec.get("active"):
                self.reply(404, f"Agent {parts[2]} not found or has not been activated")
                return
            rec.pop("key", None)
            self.reply(200, "Success", rec)
            return
        if len(parts) == 2 and parts[1] == "agents":
            with LOCK:
                ids = [a for a, r in AGENTS.items() if r.get("active")]
            self.reply(200, "Success", {"uuids": ids})
            return
        self.send(404)

    def api_version(self, parts):
        if not parts or not re.fullmatch(r"v\d+(\.\d+)?", parts[0]):
            self.send(404)
            return None
        ver = parts[0][1:]
        if ver.split(".")[0] not in ("1", "2"):
            # the real registrar crashes on every v3 route (Controller.respond under API >= 3)
            self.send(500 if ver.split(".")[0] == "3" else 404)
            return None
        if ver not in SUPPORTED:
            self.send(404)
            return None
        return ver

    def do_POST(self):  # noqa: N802
        parts = self.route()
        if parts == ["_test", "faults"]:
            try:
                FAULTS.add(self.json_body())
            except ValueError as e:
                self.send(400, {"error": str(e)})
                return
            self.send(200, FAULTS.pending())
            return
        if parts == ["_test", "reset"]:
            FAULTS.clear()
            with LOCK:
                AGENTS.clear()
                STATS.clear()
            self.send(200, {})
            return
        ver = self.api_version(parts)
        if ver is None:
            return
        if len(parts) == 4 and parts[1] == "agents" and parts[3] == "activate":
            self.do_activate(parts[2])
            return
        if parts[1:2] == ["agents"] and len(parts) in (2, 3):
            data = self.json_body()
            agent_id = parts[2] if len(parts) == 3 else (data or {}).get("agent_id")
            if self.serve_fault(FAULTS.pop("register")):
                return
            try:
                blob = register(agent_id, data)
            except BadRequest as e:
                kl_peer.log(PROG, f"registration of {agent_id} rejected: {e}")
                if isinstance(agent_id, str):
                    with LOCK:
                        st = stats(agent_id)
                        st["rejected_registrations"] += 1
                        st["last_error"] = str(e)
                self.reply(400, "Could not register agent with invalid data")
                return
            except Forbidden as e:
                kl_peer.log(PROG, f"registration refused: {e}")
                with LOCK:
                    stats(agent_id)["last_error"] = str(e)
                self.reply(403, "Agent identity cannot be changed")
                return
            self.reply(200, "Success", {"blob": blob})
            return
        self.send(404)

    def do_activate(self, agent_id):
        data = self.json_body()
        fault = FAULTS.pop("activate")
        if fault == 400 or (isinstance(fault, dict) and fault.get("status") == 400):
            # like a wrong auth_tag: the record is deleted, the agent must register again
            with LOCK:
                AGENTS.pop(agent_id, None)
                stats(agent_id)["failed_activations"] += 1
        if self.serve_fault(fault):
            return
        code, body = activate(agent_id, data)
        self.send(code, body)

    def do_PUT(self):  # noqa: N802
        parts = self.route()
        ver = self.api_version(parts)
        if ver is None:
            return
        if len(parts) in (3, 4) and parts[1] == "agents" and (len(parts) == 3 or parts[3] == "activate"):
            self.do_activate(parts[2])
            return
        self.send(404)

    def do_DELETE(self):  # noqa: N802
        parts = self.route()
        ver = self.api_version(parts)
        if ver is None:
            return
        if len(parts) == 3 and parts[1] == "agents":
            with LOCK:
                found = AGENTS.pop(parts[2], None)
            if found is None:
                self.reply(404, "Agent not found")
            else:
                self.reply(200, "Success")
            return
        self.send(404)


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--state-file", required=True, help="JSON file with the bound ports, written when ready")
    p.add_argument("--port", type=int, default=0, help="plain HTTP port (0 = any free port)")
    p.add_argument("--tls", action="store_true", help="also serve HTTPS (test CA made at start)")
    p.add_argument("--tls-port", type=int, default=0)
    p.add_argument("--cert-dir", help="where the test CA is written (default: next to the state file)")
    p.add_argument("--tpm-cert-store", help="PEM file or directory with the CAs IAK/IDevID certs must chain to")
    ARGS = p.parse_args()

    servers = [kl_peer.Server(ARGS.port, RegistrarHandler)]
    state = {"pid": os.getpid(), "port": servers[0].port, "url": f"http://127.0.0.1:{servers[0].port}"}
    if ARGS.tls:
        d = ARGS.cert_dir or os.path.dirname(os.path.abspath(ARGS.state_file))
        ca, crt, key = kl_peer.make_test_ca(d, "registrar", "kl-test-registrar")[:3]
        s = kl_peer.Server(ARGS.tls_port, RegistrarHandler, tls=(crt, key))
        servers.append(s)
        state.update({"tls_port": s.port, "tls_url": f"https://127.0.0.1:{s.port}", "ca_cert": ca})
    kl_peer.serve_forever(servers, ARGS.state_file, state, PROG)


if __name__ == "__main__":
    main()
