#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Test certificates for IAK/IDevID keys (tests only).

  kl_certtool.py ca DIR                    DIR/ca.crt + DIR/ca.key (EC P-384 root)
  kl_certtool.py issue DIR PUB.pem OUT CN  certificate for the public key in PUB.pem (PEM or DER by OUT's
                                           extension .der), signed by DIR's CA
"""

import datetime
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def ca(d):
    os.makedirs(d, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kl test device identity CA")])
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA384()))
    open(os.path.join(d, "ca.crt"), "wb").write(cert.public_bytes(serialization.Encoding.PEM))
    open(os.path.join(d, "ca.key"), "wb").write(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def issue(d, pub_path, out, cn):
    ca_cert = x509.load_pem_x509_certificate(open(os.path.join(d, "ca.crt"), "rb").read())
    ca_key = serialization.load_pem_private_key(open(os.path.join(d, "ca.key"), "rb").read(), None)
    pub = serialization.load_pem_public_key(open(pub_path, "rb").read())
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_cert.subject).public_key(pub).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=2))
            .sign(ca_key, hashes.SHA384()))
    enc = serialization.Encoding.DER if out.endswith(".der") else serialization.Encoding.PEM
    open(out, "wb").write(cert.public_bytes(enc))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "ca":
        ca(sys.argv[2])
    elif len(sys.argv) == 6 and sys.argv[1] == "issue":
        issue(*sys.argv[2:])
    else:
        sys.exit(__doc__)
