/* C API of the leasedns Kea shim. Every function is noexcept: it catches
 * every C++ exception and returns LDNS_ERR. Pointers passed in are borrowed
 * for the duration of the call; nothing returned points into Kea objects. */
#ifndef LEASEDNS_SHIM_H
#define LEASEDNS_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define LDNS_NOEXCEPT noexcept
extern "C" {
#else
#define LDNS_NOEXCEPT
#endif

#define LDNS_OK 0
#define LDNS_ABSENT 1 /* argument or option not present, or a null pointer */
#define LDNS_ERR (-1) /* an exception was caught, or a type mismatch */

#define LDNS_MAX_HWADDR 20
#define LDNS_MAX_CLIENT_ID 256
#define LDNS_MAX_NAME 512

typedef struct ldns_lease4 {
    uint32_t addr; /* host byte order */
    uint32_t valid_lft;
    int64_t cltt;
    uint32_t subnet_id;
    uint32_t state; /* 0 default, 1 declined, 2 expired-reclaimed */
    uint16_t htype;
    uint16_t hwaddr_len;
    uint8_t hwaddr[LDNS_MAX_HWADDR];
    uint16_t client_id_len;
    uint8_t client_id[LDNS_MAX_CLIENT_ID];
    uint16_t hostname_len; /* bytes stored in hostname (not NUL-terminated) */
    uint8_t hostname_truncated;
    uint8_t fqdn_fwd;
    uint8_t fqdn_rev;
    char hostname[LDNS_MAX_NAME];
} ldns_lease4_t;

typedef struct ldns_client_names {
    uint8_t has_fqdn;      /* option 81 present */
    uint8_t fqdn_flags;
    uint8_t fqdn_truncated;
    uint16_t fqdn_len;     /* domain-name field, wire format when E is set */
    uint8_t fqdn[LDNS_MAX_NAME];
    uint8_t has_hostname;  /* option 12 present */
    uint8_t hostname_truncated;
    uint16_t hostname_len;
    uint8_t hostname[LDNS_MAX_NAME];
    uint8_t msg_type;      /* DHCP message type, 0 if absent */
} ldns_client_names_t;

/* Receives a byte string; called zero or one time, before the function returns. */
typedef void (*ldns_sink_fn)(void *ctx, const char *data, size_t len);
typedef void (*ldns_timer_fn)(void);

/* Callout arguments. `handle` is an isc::hooks::CalloutHandle*. */
int ldns_arg_lease4(void *handle, const char *name, ldns_lease4_t *out) LDNS_NOEXCEPT;
int ldns_arg_leases4_count(void *handle, const char *name, size_t *out) LDNS_NOEXCEPT;
int ldns_arg_leases4_at(void *handle, const char *name, size_t idx, ldns_lease4_t *out) LDNS_NOEXCEPT;
int ldns_arg_bool(void *handle, const char *name, int *out) LDNS_NOEXCEPT;
int ldns_set_lease4_hostname(void *handle, const char *name, const char *hostname, int fwd, int rev) LDNS_NOEXCEPT;
int ldns_arg_pkt4_names(void *handle, const char *name, ldns_client_names_t *out) LDNS_NOEXCEPT;
/* Message type and yiaddr (host byte order) of the packet argument: cheaper than the names
   when only these are needed. */
int ldns_arg_pkt4_header(void *handle, const char *name, uint8_t *msg_type, uint32_t *yiaddr) LDNS_NOEXCEPT;
/* Replaces option 81 in the packet argument `name` (normally response4). */
int ldns_pkt4_set_fqdn(void *handle, const char *name, uint8_t flags, const char *fqdn) LDNS_NOEXCEPT;

/* Called once per lease by ldns_leases4_all. */
typedef void (*ldns_lease_fn)(void *ctx, const ldns_lease4_t *lease);
/* A control-socket command handler: int handler(CalloutHandle&). */
typedef int (*ldns_callout_fn)(void *handle);

/* Control-socket commands. `handle` is the command's CalloutHandle*. */
int ldns_command_respond(void *handle, int result, const char *text, const char *args_json) LDNS_NOEXCEPT;

/* Every IPv4 lease of Kea's current lease manager (any backend). Main thread. */
int ldns_leases4_all(ldns_lease_fn fn, void *ctx) LDNS_NOEXCEPT;

/* Library handle (isc::hooks::LibraryHandle*). */
int ldns_register_command(void *library, const char *name, ldns_callout_fn fn) LDNS_NOEXCEPT;
int ldns_library_params_json(void *library, ldns_sink_fn sink, void *ctx) LDNS_NOEXCEPT;

/* Statistics (isc::stats::StatsMgr, thread safe). */
int ldns_stat_set(const char *name, int64_t value) LDNS_NOEXCEPT;

/* Logging through isc::log, logger kea-dhcp4.leasedns.
 * severity: 0 debug, 1 info, 2 warn, 3 error; debuglevel 0..99 for debug. */
int ldns_log(int severity, int debuglevel, const char *text) LDNS_NOEXCEPT;
int ldns_log_enabled(int severity, int debuglevel) LDNS_NOEXCEPT;

/* A repeating timer on Kea's main IOService, taken from the io_context
 * argument of dhcp4_srv_configured. Its callback runs on Kea's main thread. */
int ldns_timer_start(void *handle, long interval_ms, ldns_timer_fn fn) LDNS_NOEXCEPT;
int ldns_timer_stop(void) LDNS_NOEXCEPT;

#ifdef __cplusplus
}
#endif
#endif
