// The only file of leasedns that touches isc:: types. The boundary is the
// #[cxx::bridge] module in src/lib.rs: a function here may throw, and cxx's
// generated wrapper turns the exception into Err on the Rust side, so no C++
// exception ever reaches Rust (and through Rust, Kea's CalloutManager).
// Functions Kea calls directly (the command trampoline, the timer handler)
// are noexcept and catch everything themselves.
//
// It builds against Kea 2.2, 2.6 and 3.0: build.rs defines LEASEDNS_KEA_API
// (202, 206, 300) from the installed headers' KEA_HOOKS_VERSION, and the few
// API differences are the #if blocks below.
#if LEASEDNS_KEA_API >= 206
// Kea's build configuration first, as Kea's own hook libraries do: Kea 3.0's
// srv_config.h reaches crypto_tls.h, which refuses to compile without it.
#include <config.h>
#endif
#include "kea-sys/shim/leasedns_shim.h"
#include "kea-sys/src/lib.rs.h"

#include <asiolink/interval_timer.h>
#include <asiolink/io_service.h>
#include <cc/command_interpreter.h>
#include <cc/data.h>
#include <dhcp/dhcp4.h>
#include <dhcp/option4_client_fqdn.h>
#include <dhcp/pkt4.h>
#include <dhcpsrv/lease.h>
#include <dhcpsrv/lease_mgr_factory.h>
#include <hooks/hooks.h>
#include <log/logger.h>
#include <log/macros.h>
#include <log/message_initializer.h>
#include <stats/stats_mgr.h>
#if LEASEDNS_KEA_API >= 206
#include <dhcpsrv/cfg_subnets4.h>
#include <dhcpsrv/srv_config.h>
#endif

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using isc::dhcp::Lease4CollectionPtr;
using isc::dhcp::Lease4Ptr;
using isc::dhcp::Option4ClientFqdn;
using isc::dhcp::OptionPtr;
using isc::dhcp::Pkt4Ptr;

namespace leasedns {
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

// Control-command handlers by command name. Written in load, read by the
// trampoline; both run on Kea's main thread.
std::map<std::string, rust::Fn<int32_t(CalloutHandle&)>> commands;

// A null pointer where Kea's argument should point to an object.
struct Absent : std::runtime_error {
    explicit Absent(const std::string& name) : std::runtime_error("argument " + name + " is null") {}
};

rust::Vec<uint8_t> bytes(const uint8_t* data, size_t n) {
    return copy_bytes(rust::Slice<const uint8_t>(data, n));
}

Lease4 copy_lease(const isc::dhcp::Lease4& l) {
    Lease4 out;
    out.addr = l.addr_.toUint32();
    out.valid_lft = l.valid_lft_;
    out.cltt = static_cast<int64_t>(l.cltt_);
    out.subnet_id = l.subnet_id_;
    out.state = l.state_;
    out.htype = 0;
    out.fqdn_fwd = l.fqdn_fwd_;
    out.fqdn_rev = l.fqdn_rev_;
    if (l.hwaddr_) {
        out.htype = l.hwaddr_->htype_;
        const auto& hw = l.hwaddr_->hwaddr_;
        out.hwaddr = bytes(hw.data(), hw.size());
    }
    if (l.client_id_) {
        const auto& cid = l.client_id_->getClientId();
        out.client_id = bytes(cid.data(), cid.size());
    }
    const std::string& hn = l.hostname_;
    out.hostname = bytes(reinterpret_cast<const uint8_t*>(hn.data()), hn.size());
    return out;
}

template <typename Ptr>
Ptr get_ptr(const CalloutHandle& handle, rust::Str name) {
    Ptr ptr;
    std::string arg(name);
    handle.getArgument(arg, ptr);
    if (!ptr) throw Absent(arg);
    return ptr;
}

// Kea calls this with the exact type of a command callout,
// int (*)(isc::hooks::CalloutHandle&).
int command_trampoline(CalloutHandle& handle) noexcept {
    try {
        isc::data::ConstElementPtr command;
        handle.getArgument("command", command);
        isc::data::ConstElementPtr args;
        std::string name = isc::config::parseCommand(args, command);
        auto found = commands.find(name);
        if (found == commands.end()) return 1;
        return found->second(handle);
    } catch (...) {
        return 1;
    }
}

}  // namespace

Lease4 arg_lease4(const CalloutHandle& handle, rust::Str name) {
    return copy_lease(*get_ptr<Lease4Ptr>(handle, name));
}

rust::Vec<Lease4> arg_leases4(const CalloutHandle& handle, rust::Str name) {
    Lease4CollectionPtr leases;
    handle.getArgument(std::string(name), leases);
    rust::Vec<Lease4> out;
    if (!leases) return out;
    out.reserve(leases->size());
    for (const Lease4Ptr& lease : *leases) {
        if (lease) out.push_back(copy_lease(*lease));
    }
    return out;
}

bool arg_bool(const CalloutHandle& handle, rust::Str name) {
    bool value = false;
    handle.getArgument(std::string(name), value);
    return value;
}

ClientNames arg_pkt4_names(const CalloutHandle& handle, rust::Str name) {
    Pkt4Ptr pkt = get_ptr<Pkt4Ptr>(handle, name);
    ClientNames out;
    out.msg_type = pkt->getType();
    out.has_fqdn = false;
    out.fqdn_flags = 0;
    out.has_hostname = false;
#if LEASEDNS_KEA_API >= 300
    out.skip_ddns = pkt->inClass("SKIP_DDNS");
#else
    out.skip_ddns = false;
#endif
    OptionPtr fqdn = pkt->getOption(isc::dhcp::DHO_FQDN);
    if (fqdn) {
        // Option payload: flags, rcode1, rcode2, domain-name.
        std::vector<uint8_t> data = fqdn->toBinary(false);
        if (data.size() >= 3) {
            out.has_fqdn = true;
            out.fqdn_flags = data[0];
            out.fqdn = bytes(data.data() + 3, data.size() - 3);
        }
    }
    OptionPtr hostname = pkt->getOption(isc::dhcp::DHO_HOST_NAME);
    if (hostname) {
        std::vector<uint8_t> data = hostname->toBinary(false);
        out.has_hostname = true;
        out.hostname = bytes(data.data(), data.size());
    }
    return out;
}

PacketHeader arg_pkt4_header(const CalloutHandle& handle, rust::Str name) {
    Pkt4Ptr pkt = get_ptr<Pkt4Ptr>(handle, name);
    PacketHeader out;
    out.msg_type = pkt->getType();
    out.yiaddr = pkt->getYiaddr().toUint32();
    return out;
}

void set_lease4_hostname(const CalloutHandle& handle, rust::Str name, rust::Str hostname,
                         bool fwd, bool rev) {
    Lease4Ptr lease = get_ptr<Lease4Ptr>(handle, name);
    lease->hostname_ = std::string(hostname);
    lease->fqdn_fwd_ = fwd;
    lease->fqdn_rev_ = rev;
}

void set_pkt4_fqdn(const CalloutHandle& handle, rust::Str name, uint8_t flags, rust::Str fqdn) {
    Pkt4Ptr pkt = get_ptr<Pkt4Ptr>(handle, name);
    OptionPtr opt(new Option4ClientFqdn(flags, Option4ClientFqdn::RCODE_SERVER(),
                                        std::string(fqdn), Option4ClientFqdn::FULL));
    while (pkt->delOption(isc::dhcp::DHO_FQDN)) {
    }
    pkt->addOption(opt);
}

void command_respond(CalloutHandle& handle, int32_t result, rust::Str text,
                     rust::Str args_json) {
    isc::data::ConstElementPtr args;
    if (args_json.size() > 0) args = isc::data::Element::fromJSON(std::string(args_json));
    isc::data::ConstElementPtr answer =
        args ? isc::config::createAnswer(result, std::string(text), args)
             : isc::config::createAnswer(result, std::string(text));
    handle.setArgument("response", answer);
}

void register_command(LibraryHandle& library, rust::Str name,
                      rust::Fn<int32_t(CalloutHandle&)> handler) {
    std::string command(name);
    commands.erase(command);
    commands.emplace(command, handler);
    library.registerCommandCallout(command, command_trampoline);
}

rust::String library_params_json(LibraryHandle& library) {
    isc::data::ConstElementPtr params = library.getParameters();
    if (!params) throw Absent("parameters");
    // Throws std::invalid_argument on invalid UTF-8.
    return rust::String(params->str());
}

#if LEASEDNS_KEA_API >= 206
namespace {
SubnetDdns subnet_ddns(const isc::dhcp::DdnsParams& params, uint32_t subnet_id) {
    SubnetDdns out;
    out.subnet_id = subnet_id;
    out.conflict_mode = rust::String(params.getConflictResolutionMode());
    auto percent = params.getTtlPercent();
    out.ttl_percent = percent.unspecified() ? 0.0 : percent.get();
    out.ttl = 0;
    out.ttl_min = 0;
    out.ttl_max = 0;
#if LEASEDNS_KEA_API >= 300
    auto ttl = params.getTtl();
    auto ttl_min = params.getTtlMin();
    auto ttl_max = params.getTtlMax();
    out.ttl = ttl.unspecified() ? 0 : ttl.get();
    out.ttl_min = ttl_min.unspecified() ? 0 : ttl_min.get();
    out.ttl_max = ttl_max.unspecified() ? 0 : ttl_max.get();
#endif
    return out;
}
}  // namespace
#endif

rust::Vec<SubnetDdns> server_subnets_ddns4(const CalloutHandle& handle) {
#if LEASEDNS_KEA_API >= 206
    isc::dhcp::SrvConfigPtr cfg = get_ptr<isc::dhcp::SrvConfigPtr>(handle, "server_config");
    rust::Vec<SubnetDdns> out;
    out.push_back(subnet_ddns(*cfg->getDdnsParams(isc::dhcp::Subnet4Ptr()), 0));
    const isc::dhcp::Subnet4Collection* subnets = cfg->getCfgSubnets4()->getAll();
    if (subnets) {
        for (const auto& subnet : *subnets) {
            if (subnet) out.push_back(subnet_ddns(*cfg->getDdnsParams(subnet), subnet->getID()));
        }
    }
    return out;
#else
    (void)handle;
    throw std::runtime_error("Kea 2.2 has no conflict-resolution or TTL settings of its own");
#endif
}

void refuse_configuration(CalloutHandle& handle, rust::Str error) {
    handle.setArgument("error", std::string(error));
    handle.setStatus(CalloutHandle::NEXT_STEP_DROP);
}

rust::Vec<Lease4> leases4_all() {
    if (!isc::dhcp::LeaseMgrFactory::haveInstance()) {
        throw std::runtime_error("no lease manager");
    }
    isc::dhcp::Lease4Collection leases = isc::dhcp::LeaseMgrFactory::instance().getLeases4();
    rust::Vec<Lease4> out;
    out.reserve(leases.size());
    for (const Lease4Ptr& lease : leases) {
        if (lease) out.push_back(copy_lease(*lease));
    }
    return out;
}

void stat_set(rust::Str name, int64_t value) {
    std::string stat(name);
    auto& mgr = isc::stats::StatsMgr::instance();
    mgr.setValue(stat, value);
    mgr.setMaxSampleCount(stat, 1);
}

bool log_enabled(int32_t severity, int32_t debuglevel) {
    isc::log::Logger& l = logger();
    switch (severity) {
    case 0: return l.isDebugEnabled(debuglevel);
    case 1: return l.isInfoEnabled();
    case 2: return l.isWarnEnabled();
    default: return l.isErrorEnabled();
    }
}

void log(int32_t severity, int32_t debuglevel, rust::Str text) {
    isc::log::Logger& l = logger();
    std::string msg(text);
    switch (severity) {
    case 0: LOG_DEBUG(l, debuglevel, LEASEDNS_DEBUG).arg(msg); break;
    case 1: LOG_INFO(l, LEASEDNS_INFO).arg(msg); break;
    case 2: LOG_WARN(l, LEASEDNS_WARN).arg(msg); break;
    default: LOG_ERROR(l, LEASEDNS_ERROR).arg(msg); break;
    }
}

void timer_start(const CalloutHandle& handle, int64_t interval_ms, rust::Fn<void()> on_tick) {
    if (interval_ms <= 0) throw std::invalid_argument("timer interval must be positive");
    isc::asiolink::IOServicePtr io = get_ptr<isc::asiolink::IOServicePtr>(handle, "io_context");
    try {
        timer_stop();
    } catch (...) {
        // The old timer is cancelled or leaked either way; start the new one.
    }
#if LEASEDNS_KEA_API >= 206
    // Kea 2.6 took the IOService by shared pointer.
    timer.reset(new isc::asiolink::IntervalTimer(io));
#else
    timer.reset(new isc::asiolink::IntervalTimer(*io));
#endif
    // on_tick is a Rust function that catches its own panics; the lambda is
    // noexcept so nothing can unwind into asio's run loop.
    timer->setup([on_tick]() noexcept { on_tick(); }, static_cast<long>(interval_ms),
                 isc::asiolink::IntervalTimer::REPEATING);
}

void timer_stop() {
    if (!timer) return;
    try {
        timer->cancel();
    } catch (...) {
        (void)timer.release();
        throw;
    }
    // Leaked on purpose: a cancelled asio handler may still hold the timer's
    // implementation, whose std::function was instantiated in this library.
    // Destroying it after dlclose would run unmapped code.
    (void)timer.release();
}

}  // namespace leasedns
