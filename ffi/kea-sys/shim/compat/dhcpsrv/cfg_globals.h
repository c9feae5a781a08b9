// Debian bookworm's kea-dev 2.2.0 does not ship dhcpsrv/cfg_globals.h, which
// dhcpsrv/network.h (and so lease_mgr.h, srv_config.h) includes. This is NOT
// Kea's header: it declares the member functions that inline code in
// network.h and srv_config.h mentions, with Kea 2.2.0's signatures (so they
// link to libkea-dhcpsrv's definitions), and the Index enumerators in Kea
// 2.2.0's order (so an index passed to get(int) means what it means in
// Kea). The class layout is not Kea's: the shim never creates, copies or
// reads a CfgGlobals, and reads Kea's DDNS settings through DdnsParams,
// whose accessors are compiled into libkea-dhcpsrv.
#ifndef LEASEDNS_COMPAT_CFG_GLOBALS_H
#define LEASEDNS_COMPAT_CFG_GLOBALS_H

#include <cc/data.h>
#include <boost/shared_ptr.hpp>

#include <string>

namespace isc {
namespace dhcp {

class CfgGlobals {
public:
    enum Index : int {
        VALID_LIFETIME, MIN_VALID_LIFETIME, MAX_VALID_LIFETIME, RENEW_TIMER, REBIND_TIMER,
        DECLINE_PROBATION_PERIOD, DHCP4O6_PORT, COMMENT, SERVER_TAG, RESERVATION_MODE,
        RESERVATIONS_GLOBAL, RESERVATIONS_IN_SUBNET, RESERVATIONS_OUT_OF_POOL,
        CALCULATE_TEE_TIMES, T1_PERCENT, T2_PERCENT, HOSTNAME_CHAR_SET,
        HOSTNAME_CHAR_REPLACEMENT, DDNS_SEND_UPDATES, DDNS_OVERRIDE_NO_UPDATE,
        DDNS_OVERRIDE_CLIENT_UPDATE, DDNS_REPLACE_CLIENT_NAME, DDNS_GENERATED_PREFIX,
        DDNS_QUALIFYING_SUFFIX, STORE_EXTENDED_INFO, STATISTIC_DEFAULT_SAMPLE_COUNT,
        STATISTIC_DEFAULT_SAMPLE_AGE, CACHE_THRESHOLD, CACHE_MAX_AGE,
        EARLY_GLOBAL_RESERVATIONS_LOOKUP, IP_RESERVATIONS_UNIQUE, RESERVATIONS_LOOKUP_FIRST,
        DDNS_UPDATE_ON_RENEW, DDNS_USE_CONFLICT_RESOLUTION, PARKED_PACKET_LIMIT,
        ECHO_CLIENT_ID, MATCH_CLIENT_ID, AUTHORITATIVE, NEXT_SERVER, SERVER_HOSTNAME,
        BOOT_FILE_NAME, DATA_DIRECTORY, PREFERRED_LIFETIME, MIN_PREFERRED_LIFETIME,
        MAX_PREFERRED_LIFETIME, SIZE
    };
    // Declared only; defined in libkea-dhcpsrv.
    isc::data::ConstElementPtr get(const std::string& name) const;
    isc::data::ConstElementPtr get(int index) const;
    void set(const std::string& name, isc::data::ConstElementPtr value);
    void set(int index, isc::data::ConstElementPtr value);
    void clear();
};

typedef boost::shared_ptr<CfgGlobals> CfgGlobalsPtr;
typedef boost::shared_ptr<const CfgGlobals> ConstCfgGlobalsPtr;

}  // namespace dhcp
}  // namespace isc

#endif
