/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Integration-test harness: starts the Python test registrar and verifier
 * (tests/peers), talks to their control API, and runs the agent binary
 * (KL_TEST_AGENT) with a private keylime_dir and agent.conf. Every process
 * is stopped by its pid with bounded waits.
 */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct _KlTestPeers KlTestPeers;
typedef struct _KlTestAgent KlTestAgent;

/* a private temporary directory for peers and agents; removed by _free */
KlTestPeers *
kl_test_peers_new(void);
void
kl_test_peers_free(KlTestPeers *peers);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlTestPeers, kl_test_peers_free)

const gchar *
kl_test_peers_get_dir(KlTestPeers *peers);

/*
 * Starts the test registrar. @port 0 = any free port. With @tls it also
 * serves HTTPS with its own test CA. Waits until it has written its state.
 * Extra command-line arguments may follow (NULL-terminated).
 */
gboolean
kl_test_peers_start_registrar(KlTestPeers *peers, guint16 port, gboolean tls, GError **error, ...)
    G_GNUC_NULL_TERMINATED;
void
kl_test_peers_stop_registrar(KlTestPeers *peers);
guint16
kl_test_peers_registrar_port(KlTestPeers *peers);
guint16
kl_test_peers_registrar_tls_port(KlTestPeers *peers);
const gchar *
kl_test_peers_registrar_ca(KlTestPeers *peers);

/*
 * Starts the test verifier (HTTPS, its own CA, --registrar-url pointing at
 * the registrar if that runs). Extra arguments, e.g. "--quote-interval", "2",
 * NULL-terminated.
 */
gboolean
kl_test_peers_start_verifier(KlTestPeers *peers, GError **error, ...) G_GNUC_NULL_TERMINATED;
void
kl_test_peers_stop_verifier(KlTestPeers *peers);
/* sends @signum to the verifier (SIGKILL: a crash; SIGSTOP/SIGCONT: a hang) */
void
kl_test_peers_signal_verifier(KlTestPeers *peers, gint signum);
const gchar *
kl_test_peers_verifier_url(KlTestPeers *peers);
const gchar *
kl_test_peers_verifier_ca(KlTestPeers *peers);

/* control API; @body is JSON text or NULL. Returns the parsed reply (or NULL + error) */
JsonNode *
kl_test_peers_verifier_call(KlTestPeers *peers,
			    const gchar *method,
			    const gchar *path,
			    const gchar *body,
			    glong *status,
			    GError **error);
JsonNode *
kl_test_peers_registrar_call(KlTestPeers *peers,
			     const gchar *method,
			     const gchar *path,
			     const gchar *body,
			     glong *status,
			     GError **error);

/* POST /_test/enroll with {"agent_id": id} merged with @policy_json (an object, may be NULL) */
gboolean
kl_test_peers_enroll(KlTestPeers *peers,
		     const gchar *agent_id,
		     const gchar *policy_json,
		     GError **error);
/* POST /_test/faults */
gboolean
kl_test_peers_add_faults(KlTestPeers *peers, const gchar *faults_json, GError **error);

/* GET /_test/agents/{id} on the verifier / registrar; NULL when unknown */
JsonObject *
kl_test_peers_verifier_agent(KlTestPeers *peers, const gchar *agent_id);
JsonObject *
kl_test_peers_registrar_agent(KlTestPeers *peers, const gchar *agent_id);
/* an integer member of the above, -1 when absent */
gint64
kl_test_peers_verifier_int(KlTestPeers *peers, const gchar *agent_id, const gchar *member);
gint64
kl_test_peers_registrar_int(KlTestPeers *peers, const gchar *agent_id, const gchar *member);
/* polls until the member is >= @min; FALSE after @timeout_s */
gboolean
kl_test_peers_wait_verifier_int(
    KlTestPeers *peers, const gchar *agent_id, const gchar *member, gint64 min, gdouble timeout_s);
gboolean
kl_test_peers_wait_registrar_int(
    KlTestPeers *peers, const gchar *agent_id, const gchar *member, gint64 min, gdouble timeout_s);

/* the agent ------------------------------------------------------------- */

/*
 * An agent with its own keylime_dir under the peers' directory and an
 * agent.conf preset for the running peers (uuid, registrar, verifier + CA,
 * tcti from KL_TEST_TCTI, plugin_dir from KL_TEST_PLUGINDIR, short backoff).
 * @keylime_dir NULL = a new directory; pass the same one to model a restart.
 */
KlTestAgent *
kl_test_agent_new(KlTestPeers *peers, const gchar *uuid, const gchar *keylime_dir);
void
kl_test_agent_free(KlTestAgent *agent);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(KlTestAgent, kl_test_agent_free)

const gchar *
kl_test_agent_get_keylime_dir(KlTestAgent *agent);
/* sets an [agent] option; @toml_value is TOML text ("\"x\"", "5", "true"); NULL removes it */
void
kl_test_agent_set(KlTestAgent *agent, const gchar *key, const gchar *toml_value);
void
kl_test_agent_set_string(KlTestAgent *agent, const gchar *key, const gchar *value);
void
kl_test_agent_set_int(KlTestAgent *agent, const gchar *key, gint64 value);

/* writes agent.conf and starts the agent with extra arguments (NULL-terminated) */
gboolean
kl_test_agent_start(KlTestAgent *agent, GError **error, ...) G_GNUC_NULL_TERMINATED;
/*
 * starts @agent without arguments, waits up to 40 s for the registrar's
 * activation of @agent_id, then enrolls it at the verifier with
 * @policy_json. When it does not activate: prints the agent's log and a TAP
 * "Bail out!" and returns FALSE (the test program frees and exits 1)
 */
gboolean
kl_test_agent_start_enrolled(KlTestAgent *agent, const gchar *agent_id, const gchar *policy_json);
gboolean
kl_test_agent_is_running(KlTestAgent *agent);
/* waits for exit; returns the exit status (128+signal when killed), -1 on timeout */
gint
kl_test_agent_wait(KlTestAgent *agent, gdouble timeout_s);
/* sends @signum, waits up to @timeout_s, then SIGKILL; returns the exit status as above */
gint
kl_test_agent_stop(KlTestAgent *agent, gint signum, gdouble timeout_s);
/* the agent's combined stdout/stderr so far */
gchar *
kl_test_agent_get_log(KlTestAgent *agent);
/* TRUE when the log contains @needle */
gboolean
kl_test_agent_log_contains(KlTestAgent *agent, const gchar *needle);
/*
 * waits until the verifier's counter @member of @agent's uuid is >= @min; on a
 * timeout prints the agent's log and fails the test
 */
void
kl_test_agent_assert_verifier_int(KlTestAgent *agent,
				  const gchar *member,
				  gint64 min,
				  gdouble timeout_s);
/* prints the log as TAP comments (for failing tests) */
void
kl_test_agent_dump_log(KlTestAgent *agent);

/* helpers ----------------------------------------------------------------- */

/* runs argv (tpm2-tools etc.) synchronously; FALSE with the output in the error */
gboolean
kl_test_run(GError **error, const gchar *first, ...) G_GNUC_NULL_TERMINATED;
/* reads one sha256 PCR of the test TPM as lowercase hex (tpm2_pcrread) */
gchar *
kl_test_pcr_read(guint pcr, GError **error);
/* the same in another bank ("sha1", "sha256", "sha384", "sha512") */
gchar *
kl_test_pcr_read_bank(const gchar *bank, guint pcr, GError **error);
/* a free TCP port on 127.0.0.1 (bound and released) */
guint16
kl_test_free_port(void);
/* path of a file below tests/peers */
gchar *
kl_test_peers_script(const gchar *name);
/* TRUE if a plugin module <name>.so was built */
gboolean
kl_test_have_plugin(const gchar *name);

G_END_DECLS
