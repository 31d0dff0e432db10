/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Provisioning for the iak tests, done the way a manufacturer does it:
 * IAK/IDevID from the TCG templates given as raw TPMT_PUBLIC bytes
 * (independent of the plugin's template code) and certificates from a test CA.
 */
#pragma once

#include <gnutls/abstract.h>
#include <gnutls/x509.h>
#include <tss2/tss2_esys.h>

#include <glib.h>

G_BEGIN_DECLS

#define KL_IAK_TEST_POL_IAK_256 "5437182326e414fca797d5f174615a1641f61255797c3a2b22c21d120b2d1e07"
#define KL_IAK_TEST_POL_IDEVID_256                                                                 \
	"ad6b3a2284fd698a0710bf5cc1b9bdf15e2532e3f601fa4b93a6a8fa8de579ea"
#define KL_IAK_TEST_POL_IAK_384                                                                    \
	"129d94ebf84556652c6eef43bbb757512ac87e52be7b349ca6ce4d826f749fcf672f51716c5cbb605f313bf3" \
	"45aab312"
#define KL_IAK_TEST_POL_IDEVID_384                                                                 \
	"4db1aa836d0b5615df6ee53a40ef70c61c217f4303d44695925972bc927006cfa5cbdf6dc18c4dbe329b2f15" \
	"42c3dd33"

/*
 * TPMT_PUBLIC templates as the TCG tables give them (H-1 byte for byte what the
 * Keylime provisioning script's tpm2_createprimary sends)
 */
#define KL_IAK_TEST_TMPL_H1_IAK                                                                    \
	"0001000b000500f20020" KL_IAK_TEST_POL_IAK_256 "00100016000b080000000000000349414b"
#define KL_IAK_TEST_TMPL_H1_IDEVID                                                                 \
	"0001000b000400f20020" KL_IAK_TEST_POL_IDEVID_256 "001000100800000000000006494445564944"
#define KL_IAK_TEST_TMPL_H2_IAK                                                                    \
	"0023000b000500f20020" KL_IAK_TEST_POL_IAK_256 "00100018000b00030010000349414b000349414b"
#define KL_IAK_TEST_TMPL_H2_IDEVID                                                                 \
	"0023000b000400f20020" KL_IAK_TEST_POL_IDEVID_256                                          \
	"00100018000b0003001000064944455649440006494445564944"
#define KL_IAK_TEST_TMPL_H3_IAK                                                                    \
	"0023000c000500f20030" KL_IAK_TEST_POL_IAK_384 "00100018000c00040010000349414b000349414b"
#define KL_IAK_TEST_TMPL_H3_IDEVID                                                                 \
	"0023000c000400f20030" KL_IAK_TEST_POL_IDEVID_384                                          \
	"00100018000c0004001000064944455649440006494445564944"

/* a test CA (ECDSA P-384, self-signed) */
typedef struct {
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	guint serial;
} KlIakTestCa;

void
kl_iak_test_ca_init(KlIakTestCa *ca);
void
kl_iak_test_ca_clear(KlIakTestCa *ca);
/* writes the CA certificate as PEM; (transfer full) path */
gchar *
kl_iak_test_ca_write(KlIakTestCa *ca, const gchar *dir);
/* issues a certificate for @pk and writes it to @dir/<cn>.pem|.der; (transfer full) path */
gchar *
kl_iak_test_issue_cert(
    KlIakTestCa *ca, gnutls_pubkey_t pk, const gchar *dir, const gchar *cn, gboolean pem);
/* the same for a TPM key */
gchar *
kl_iak_test_issue_cert_for_tpm(
    KlIakTestCa *ca, const TPM2B_PUBLIC *pub, const gchar *dir, const gchar *cn, gboolean pem);
/* the same for a fresh software RSA-2048 key (a certificate for "another" key) */
gchar *
kl_iak_test_issue_cert_for_other_key(KlIakTestCa *ca, const gchar *dir, const gchar *cn);

/* the GnuTLS form of a TPM public key (RSA, ECC P-256/P-384) */
gnutls_pubkey_t
kl_iak_test_pubkey_from_tpm(const TPMT_PUBLIC *pub);

/* CreatePrimary(ENDORSEMENT) from raw template bytes; @auth (nullable) = userAuth */
ESYS_TR
kl_iak_test_provision_key(ESYS_CONTEXT *esys,
			  const gchar *template_hex,
			  const gchar *auth,
			  TPM2B_PUBLIC *out);

/* (transfer full) */
GBytes *
kl_iak_test_hex_decode(const gchar *hex);

G_END_DECLS
