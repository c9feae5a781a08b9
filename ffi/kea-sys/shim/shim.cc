// The only file of leasedns that touches isc:: types. Each exported function
// is noexcept and turns every exception into LDNS_ERR, so no C++ exception
// ever reaches Rust (and through Rust, Kea's CalloutManager).
#include "leasedns_shim.h"

#include <asiolink/interval_timer.h>
#include <asiolink/io_service.h>
#include <cc/data.h>
#include <dhcp/dhcp4.h>
#include <dhcp/option4_client_fqdn.h>
#include <dhcp/pkt4.h>
#include <cc/command_interpreter.h>
#include <dhcpsrv/lease.h>
#include <dhcpsrv/lease_mgr_factory.h>
#include <hooks/hooks.h>
#include <log/logger.h>
#include <log/macros.h>
#include <log/message_initializer.h>
#include <stats/stats_mgr.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

using isc::dhcp::Lease4;
using isc::dhcp::Lease4Collection;
using isc::dhcp::Lease4CollectionPtr;
using isc::dhcp::Lease4Ptr;
using isc::dhcp::Option4ClientFqdn;
using isc::dhcp::OptionPtr;
using isc::dhcp::Pkt4Ptr;
using isc::hooks::CalloutHandle;
using isc::hooks::LibraryHandle;

namespace {

const char* values[] = {
    "LEASEDNS_DEBUG", "%1",
    "LEASEDNS_INFO", "%1",
    "LEASEDNS_WARN", "%1",
    "LEASEDNS_ERROR", "%1",
    NULL
};
const isc::log::MessageInitializer initializer(values);
const isc::log::MessageID LEASEDNS_DEBUG = "LEASEDNS_DEBUG";
const isc::log::MessageID LEASEDNS_INFO = "LEASEDNS_INFO";
const isc::log::MessageID LEASEDNS_WARN = "LEASEDNS_WARN";
const isc::log::MessageID LEASEDNS_ERROR = "LEASEDNS_ERROR";

isc::log::Logger& logger() {
    static isc::log::Logger l("leasedns");
    return l;
}

// Owned by Kea's main thread: created in dhcp4_srv_configured, destroyed in
// unload (both main thread), so no lock is needed.
std::unique_ptr<isc::asiolink::IntervalTimer> timer;

CalloutHandle* as_handle(void* h) { return static_cast<CalloutHandle*>(h); }

void copy_bytes(const uint8_t* src, size_t n, uint8_t* dst, size_t cap, uint16_t* len,
                uint8_t* truncated) {
    size_t k = std::min(n, cap);
    if (k > 0) std::memcpy(dst, src, k);
    *len = static_cast<uint16_t>(k);
    if (truncated) *truncated = n > cap ? 1 : 0;
}

void fill_lease(const Lease4& l, ldns_lease4_t* out) {
    std::memset(out, 0, sizeof(*out));
    out->addr = l.addr_.toUint32();
    out->valid_lft = l.valid_lft_;
    out->cltt = static_cast<int64_t>(l.cltt_);
    out->subnet_id = l.subnet_id_;
    out->state = l.state_;
    out->fqdn_fwd = l.fqdn_fwd_ ? 1 : 0;
    out->fqdn_rev = l.fqdn_rev_ ? 1 : 0;
    if (l.hwaddr_) {
        out->htype = l.hwaddr_->htype_;
        const auto& hw = l.hwaddr_->hwaddr_;
        copy_bytes(hw.data(), hw.size(), out->hwaddr, LDNS_MAX_HWADDR, &out->hwaddr_len, NULL);
    }
    if (l.client_id_) {
        const auto& cid = l.client_id_->getClientId();
        copy_bytes(cid.data(), cid.size(), out->client_id, LDNS_MAX_CLIENT_ID,
                   &out->client_id_len, NULL);
    }
    const std::string& hn = l.hostname_;
    copy_bytes(reinterpret_cast<const uint8_t*>(hn.data()), hn.size(),
               reinterpret_cast<uint8_t*>(out->hostname), LDNS_MAX_NAME, &out->hostname_len,
               &out->hostname_truncated);
}

Lease4CollectionPtr get_collection(void* handle, const char* name) {
    Lease4CollectionPtr leases;
    as_handle(handle)->getArgument(name, leases);
    return leases;
}

}  // namespace

extern "C" {

int ldns_arg_lease4(void* handle, const char* name, ldns_lease4_t* out) noexcept {
    if (!handle || !name || !out) return LDNS_ABSENT;
    try {
        Lease4Ptr lease;
        as_handle(handle)->getArgument(name, lease);
        if (!lease) return LDNS_ABSENT;
        fill_lease(*lease, out);
        return LDNS_OK;
    } catch (...) {
        return LDNS_ERR;
    }
}

int ldns_arg_leases4_count(void* handle, const char* name, size_t* out) noexcept {
    if (!handle || !name || !out) return LDNS_ABSENT;
    try {
        Lease4CollectionPtr leases = get_collection(handle, name);
        *out = leases ? leases->size() : 0;
        return leases ? LDNS_OK : LDNS_ABSENT;
    } catch (...) {
        return LDNS_ERR;
    }
}

int ldns_arg_leases4_at(void* handle, const char* name, size_t idx, ldns_lease4_t* out) noexcept {
    if (!handle || !name || !out) return LDNS_ABSENT;
    try {
        Lease4CollectionPtr leases = get_collection(handle, name);
        if (!leases || idx >= leases->size() || !(*leases)[idx]) return LDNS_ABSENT;
        fill_lease(*(*leases)[idx], out);
        return LDNS_OK;
    } catch (...) {
        return LDNS_ERR;
    }
}

int ldns_arg_bool(void* handle, const char* name, int* out) noexcept {
    if (!handle || !name || !out) return LDNS_ABSENT;
    try {
        bool value = false;
        as_handle(handle)->getArgument(name, value);
        *out = value ? 1 : 0;
        return LDNS_OK;
    } catch (...) {
        return LDNS_ERR;
    }
}

int ldns_set_lease4_hostname(void* handle, const char* name, const char* hostname, int fwd,
                             int rev) noexcept {
    if (!handle || !name || !hostname) return LDNS_ABSENT;
    try {
        Lease4Ptr lease;
        as_handle(handle)->getArgument(name, lease);
        if (!lease) return LDNS_ABSENT;
        lease->hostname_ = hostname;
        lease->fqdn_fwd_ = fwd != 0;
        lease->fqdn_rev_ = rev != 0;
        return LDNS_OK;
    } catch (...) {
        return LDNS_ERR;
    }
}

int ldns_arg_pkt4_names(void* handle, const char* name, ldns_client_names_t* out) noexcept {
    if (!handle || !name || !out) return LDNS_ABSENT;
    try {
        std::memset(out, 0, sizeof(*out));
        Pkt4Ptr pkt;
        as_handle(handle)->getArgument(name, pkt);
        if (!pkt) return LDNS_ABSENT;
        out->msg_type = pkt->getType();
        OptionPtr fqdn = pkt->getOption(isc::dhcp::DHO_FQDN);
        if (fqdn) {
            // Option payload: flags, rcode1, rcode2, domain-name.
            std::vector<uint8_t> data = fqdn->toBinary(false);
            if (data.size() >= 3) {
                out->has_fqdn = 1;
                out->fqdn_flags = data[0];
                copy_bytes(data.data() + 3, data.size() - 3, out->fqdn, LDNS_MAX_NAME,
                           &out->fqdn_len, &out->fqdn_truncated);
            }
        }
        OptionPtr hostname = pkt->getOption(isc::dhcp::DHO_HOST_NAME);
        if (hostname) {
            std::vector<uint8_t> data = hostname->toBinary(false);
            out->has_hostname = 1;
            copy_bytes(data.data(), data.size(), out->hostname, LDNS_MAX_NAME,
                       &out->hostname_len, &out->hostname_truncated);
        }
        return LDNS_OK;
    } catch (...) {
        return LDNS_ERR;
    }
}

int ldns_arg_pkt4_header(void* handle, const char* name, uint8_t* msg_type,
                         uint32_t* yiaddr) noexcept {
    if (!handle || !name || !msg_type || !yiaddr) return LDNS_ABSENT;
    try {
        Pkt4Ptr pkt;
        as_handle(handle)->getArgument(name, pkt);
        if (!pkt) return LDNS_ABSENT;
        *msg_type = pkt->getType();
        *yiaddr = pkt->getYiaddr().toUint32();
        return LDNS_OK;
    } catch (...) {
        return LDNS_ERR;
    }
}

int ldns_pkt4_set_fqdn(void* handle, const char* name, uint8_t flags, const char* fqdn) noexcept {
    if (!handle || !name || !fqdn) return LDNS_ABSENT;
    try {
        Pkt4Ptr pkt;
        as_handle(handle)->getArgument(name, pkt);
        if (!pkt) return LDNS_ABSENT;
        OptionPtr opt(new Option4ClientFqdn(flags, Option4ClientFqdn::RCODE_SERVER(),
                                            std::string(fqdn), Option4ClientFqdn::FULL));
        while (pkt->delOption(isc::dhcp::DHO_FQDN)) {
        }
        pkt->addOption(opt);
        return LDNS_OK;
    } catch (...) {
        return LDNS_ERR;
    }
}

int ldns_library_params_json(void* library, ldns_sink_fn sink, void* ctx) noexcept {
    if (!library || !sink) return LDNS_ABSENT;
    try {
        isc::data::ConstElementPtr params = static_cast<LibraryHandle*>(library)->getParameters();
        if (!params) return LDNS_ABSENT;
        std::string text = params->str();
        sink(ctx, text.data(), text.size());
        return LDNS_OK;
    } catch (...) {
        return LDNS_ERR;
    }
}

int ldns_register_command(void* library, const char* name, ldns_callout_fn fn) noexcept {
    if (!library || !name || !fn) return LDNS_ABSENT;
    try {
        // CalloutPtr is int (*)(CalloutHandle&); a reference is a pointer at the ABI level.
        auto callout = reinterpret_cast<isc::hooks::CalloutPtr>(fn);
        static_cast<LibraryHandle*>(library)->registerCommandCallout(std::string(name), callout);
        return LDNS_OK;
    } catch (...) {
        return LDNS_ERR;
    }
}

int ldns_command_respond(void* handle, int result, const char* text, const char* args_json) noexcept {
    if (!handle || !text) return LDNS_ABSENT;
    try {
        isc::data::ConstElementPtr args;
        if (args_json) args = isc::data::Element::fromJSON(std::string(args_json));
        isc::data::ConstElementPtr answer =
            args ? isc::config::createAnswer(result, std::string(text), args)
                 : isc::config::createAnswer(result, std::string(text));
        as_handle(handle)->setArgument("response", answer);
        return LDNS_OK;
    } catch (...) {
        return LDNS_ERR;
    }
}

int ldns_leases4_all(ldns_lease_fn fn, void* ctx) noexcept {
    if (!fn) return LDNS_ABSENT;
    try {
        if (!isc::dhcp::LeaseMgrFactory::haveInstance()) return LDNS_ABSENT;
        isc::dhcp::Lease4Collection leases = isc::dhcp::LeaseMgrFactory::instance().getLeases4();
        ldns_lease4_t out;
        for (const Lease4Ptr& lease : leases) {
            if (!lease) continue;
            fill_lease(*lease, &out);
            fn(ctx, &out);
        }
        return LDNS_OK;
    } catch (...) {
        return LDNS_ERR;
    }
}

int ldns_stat_set(const char* name, int64_t value) noexcept {
    if (!name) return LDNS_ABSENT;
    try {
        auto& mgr = isc::stats::StatsMgr::instance();
        mgr.setValue(std::string(name), value);
        mgr.setMaxSampleCount(std::string(name), 1);
        return LDNS_OK;
    } catch (...) {
        return LDNS_ERR;
    }
}

int ldns_log_enabled(int severity, int debuglevel) noexcept {
    try {
        isc::log::Logger& l = logger();
        switch (severity) {
        case 0: return l.isDebugEnabled(debuglevel) ? 1 : 0;
        case 1: return l.isInfoEnabled() ? 1 : 0;
        case 2: return l.isWarnEnabled() ? 1 : 0;
        default: return l.isErrorEnabled() ? 1 : 0;
        }
    } catch (...) {
        return 0;
    }
}

int ldns_log(int severity, int debuglevel, const char* text) noexcept {
    if (!text) return LDNS_ABSENT;
    try {
        isc::log::Logger& l = logger();
        std::string msg(text);
        switch (severity) {
        case 0: LOG_DEBUG(l, debuglevel, LEASEDNS_DEBUG).arg(msg); break;
        case 1: LOG_INFO(l, LEASEDNS_INFO).arg(msg); break;
        case 2: LOG_WARN(l, LEASEDNS_WARN).arg(msg); break;
        default: LOG_ERROR(l, LEASEDNS_ERROR).arg(msg); break;
        }
        return LDNS_OK;
    } catch (...) {
        return LDNS_ERR;
    }
}

int ldns_timer_start(void* handle, long interval_ms, ldns_timer_fn fn) noexcept {
    if (!handle || !fn || interval_ms <= 0) return LDNS_ABSENT;
    try {
        isc::asiolink::IOServicePtr io;
        as_handle(handle)->getArgument("io_context", io);
        if (!io) return LDNS_ABSENT;
        ldns_timer_stop();
        timer.reset(new isc::asiolink::IntervalTimer(*io));
        timer->setup(
            [fn]() {
                try {
                    fn();
                } catch (...) {
                }
            },
            interval_ms, isc::asiolink::IntervalTimer::REPEATING);
        return LDNS_OK;
    } catch (...) {
        return LDNS_ERR;
    }
}

int ldns_timer_stop(void) noexcept {
    try {
        if (timer) {
            timer->cancel();
            // Leaked on purpose: a cancelled asio handler may still hold the
            // timer's implementation, whose std::function was instantiated in
            // this library. Destroying it after dlclose would run unmapped code.
            (void)timer.release();
        }
        return LDNS_OK;
    } catch (...) {
        (void)timer.release();
        return LDNS_ERR;
    }
}

}  // extern "C"
