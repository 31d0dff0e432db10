/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * Error domain shared by the agent core and its plugins.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/**
 * KL_ERROR:
 *
 * The error domain of the agent and its plugins.
 *
 * Since: 1.0
 */
#define KL_ERROR (kl_error_quark())

/**
 * KlError:
 * @KL_ERROR_INTERNAL: a bug or an unexpected internal condition
 * @KL_ERROR_NOT_SUPPORTED: the feature or evidence is not available on this host
 * @KL_ERROR_INVALID_DATA: malformed input (log, response, file)
 * @KL_ERROR_INVALID_PARAMETERS: unacceptable `chosen_parameters` from the verifier
 * @KL_ERROR_NOT_FOUND: a file, key or resource does not exist
 * @KL_ERROR_IO: reading or writing a file failed
 * @KL_ERROR_TPM: a TPM command failed
 * @KL_ERROR_NETWORK: a transport failure (connect, TLS, timeout of a request)
 * @KL_ERROR_TIMED_OUT: an operation ran out of time
 * @KL_ERROR_AUTH: authentication or certificate verification failed
 * @KL_ERROR_CONFIG: a configuration value is invalid
 * @KL_ERROR_HTTP: the peer answered with an unexpected HTTP status
 *
 * Error codes of %KL_ERROR. Cancellation uses %G_IO_ERROR_CANCELLED.
 *
 * Since: 1.0
 */
typedef enum {
	KL_ERROR_INTERNAL,
	KL_ERROR_NOT_SUPPORTED,
	KL_ERROR_INVALID_DATA,
	KL_ERROR_INVALID_PARAMETERS,
	KL_ERROR_NOT_FOUND,
	KL_ERROR_IO,
	KL_ERROR_TPM,
	KL_ERROR_NETWORK,
	KL_ERROR_TIMED_OUT,
	KL_ERROR_AUTH,
	KL_ERROR_CONFIG,
	KL_ERROR_HTTP,
} KlError;

/**
 * kl_error_quark:
 *
 * The quark behind %KL_ERROR; use the macro.
 *
 * Returns: the error domain of the agent and its plugins
 *
 * Since: 1.0
 */
GQuark
kl_error_quark(void);

G_END_DECLS
