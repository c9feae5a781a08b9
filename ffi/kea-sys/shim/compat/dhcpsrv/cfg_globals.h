// Debian bookworm's kea-dev 2.2.0 does not ship dhcpsrv/cfg_globals.h, which
// dhcpsrv/network.h (and so lease_mgr.h) includes. This is NOT Kea's header:
// it declares only the names that inline code in network.h mentions, so that
// the shim can include lease_mgr_factory.h. The shim never calls any
// Network/Subnet accessor that reaches these declarations (their values and
// layout here are not Kea's); it only uses LeaseMgrFactory and Lease4.
#ifndef LEASEDNS_COMPAT_CFG_GLOBALS_H
#define LEASEDNS_COMPAT_CFG_GLOBALS_H

#include <cc/data.h>
#include <boost/shared_ptr.hpp>

namespace isc {
namespace dhcp {

class CfgGlobals {
public:
    enum Index {
        AUTHORITATIVE, BOOT_FILE_NAME, CACHE_MAX_AGE, CACHE_THRESHOLD, CALCULATE_TEE_TIMES,
        DDNS_GENERATED_PREFIX, DDNS_OVERRIDE_CLIENT_UPDATE, DDNS_OVERRIDE_NO_UPDATE,
        DDNS_QUALIFYING_SUFFIX, DDNS_REPLACE_CLIENT_NAME, DDNS_SEND_UPDATES,
        DDNS_UPDATE_ON_RENEW, DDNS_USE_CONFLICT_RESOLUTION, HOSTNAME_CHAR_REPLACEMENT,
        HOSTNAME_CHAR_SET, MATCH_CLIENT_ID, MAX_PREFERRED_LIFETIME, MAX_VALID_LIFETIME,
        MIN_PREFERRED_LIFETIME, MIN_VALID_LIFETIME, NEXT_SERVER, PREFERRED_LIFETIME,
        REBIND_TIMER, RENEW_TIMER, RESERVATIONS_GLOBAL, RESERVATIONS_IN_SUBNET,
        RESERVATIONS_OUT_OF_POOL, SERVER_HOSTNAME, STORE_EXTENDED_INFO, T1_PERCENT,
        T2_PERCENT, VALID_LIFETIME
    };
    // Declared, never defined: only mentioned by inline code the shim does not use.
    isc::data::ConstElementPtr get(int index) const;
};

typedef boost::shared_ptr<CfgGlobals> CfgGlobalsPtr;
typedef boost::shared_ptr<const CfgGlobals> ConstCfgGlobalsPtr;

}  // namespace dhcp
}  // namespace isc

#endif
