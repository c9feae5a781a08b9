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
#include <dhcp/dhcp6.h>
#include <dhcp/option4_client_fqdn.h>
#include <dhcp/option6_client_fqdn.h>
#include <dhcp/pkt4.h>
#include <dhcp/pkt6.h>
#include <dhcpsrv/lease.h>
#include <dhcpsrv/lease_mgr_factory.h>
#include <hooks/hooks.h>
#include <hooks/hooks_manager.h>
#include <log/logger.h>
#include <log/macros.h>
#include <log/message_initializer.h>
#include <stats/stats_mgr.h>
#include <dhcpsrv/cfg_subnets4.h>
#include <dhcpsrv/cfg_subnets6.h>
#include <process/daemon.h>
#include <dhcpsrv/d2_client_cfg.h>
#include <dhcpsrv/srv_config.h>

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using isc::dhcp::Lease4CollectionPtr;
using isc::dhcp::Lease4Ptr;
using isc::dhcp::Lease6CollectionPtr;
using isc::dhcp::Lease6Ptr;
using isc::dhcp::Option6ClientFqdn;
using isc::dhcp::Pkt6Ptr;
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

Lease6 copy_lease6(const isc::dhcp::Lease6& l) {
    Lease6 out;
    const std::vector<uint8_t> addr = l.addr_.toBytes();
    out.addr = bytes(addr.data(), addr.size());
    out.lease_type = static_cast<uint8_t>(l.type_);
    out.prefix_len = l.prefixlen_;
    out.iaid = l.iaid_;
    out.valid_lft = l.valid_lft_;
    out.cltt = static_cast<int64_t>(l.cltt_);
    out.subnet_id = l.subnet_id_;
    out.state = l.state_;
    out.fqdn_fwd = l.fqdn_fwd_;
    out.fqdn_rev = l.fqdn_rev_;
    if (l.duid_) {
        const auto& duid = l.duid_->getDuid();
        out.duid = bytes(duid.data(), duid.size());
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

ClientNames arg_pkt4_names(const CalloutHandle& handle, rust::Str name) {
    Pkt4Ptr pkt = get_ptr<Pkt4Ptr>(handle, name);
    ClientNames out;
    out.has_fqdn = false;
    out.fqdn_flags = 0;
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
        }
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

Ddns4Update arg_ddns4_update(const CalloutHandle& handle) {
#if LEASEDNS_KEA_API >= 300
    isc::dhcp::ConstSubnet4Ptr subnet;
#else
    isc::dhcp::Subnet4Ptr subnet;
#endif
    handle.getArgument("subnet4", subnet);
    std::string hostname;
    handle.getArgument("hostname", hostname);
    Ddns4Update out;
    out.subnet_id = subnet ? subnet->getID() : 0;
    out.has_subnet = static_cast<bool>(subnet);
    out.has_hostname = !hostname.empty();
    return out;
}

void set_ddns4_update_directions(CalloutHandle& handle, bool fwd, bool rev) {
    handle.setArgument("fwd-update", fwd);
    handle.setArgument("rev-update", rev);
}

void set_lease4_directions(const CalloutHandle& handle, rust::Str name, bool fwd, bool rev) {
    Lease4Ptr lease = get_ptr<Lease4Ptr>(handle, name);
    lease->fqdn_fwd_ = fwd;
    lease->fqdn_rev_ = rev;
}

void set_pkt4_fqdn_flags(const CalloutHandle& handle, rust::Str name, uint8_t flags) {
    Pkt4Ptr pkt = get_ptr<Pkt4Ptr>(handle, name);
    auto fqdn = boost::dynamic_pointer_cast<Option4ClientFqdn>(pkt->getOption(isc::dhcp::DHO_FQDN));
    if (!fqdn) return;
    // Cleared first: setFlag refuses S and N set at once on the way.
    fqdn->resetFlags();
    const uint8_t known[] = {Option4ClientFqdn::FLAG_S, Option4ClientFqdn::FLAG_O,
                             Option4ClientFqdn::FLAG_E, Option4ClientFqdn::FLAG_N};
    for (uint8_t flag : known) {
        if (flags & flag) fqdn->setFlag(flag, true);
    }
}

Lease6 arg_lease6(const CalloutHandle& handle, rust::Str name) {
    return copy_lease6(*get_ptr<Lease6Ptr>(handle, name));
}

rust::Vec<Lease6> arg_leases6(const CalloutHandle& handle, rust::Str name) {
    Lease6CollectionPtr leases;
    handle.getArgument(std::string(name), leases);
    rust::Vec<Lease6> out;
    if (!leases) return out;
    out.reserve(leases->size());
    for (const Lease6Ptr& lease : *leases) {
        if (lease) out.push_back(copy_lease6(*lease));
    }
    return out;
}

ClientNames arg_pkt6_names(const CalloutHandle& handle, rust::Str name) {
    Pkt6Ptr pkt = get_ptr<Pkt6Ptr>(handle, name);
    ClientNames out;
    out.has_fqdn = false;
    out.fqdn_flags = 0;
#if LEASEDNS_KEA_API >= 300
    out.skip_ddns = pkt->inClass("SKIP_DDNS");
#else
    out.skip_ddns = false;
#endif
    OptionPtr fqdn = pkt->getOption(D6O_CLIENT_FQDN);
    if (fqdn) {
        // Option payload: flags, domain-name.
        std::vector<uint8_t> data = fqdn->toBinary(false);
        if (!data.empty()) {
            out.has_fqdn = true;
            out.fqdn_flags = data[0];
        }
    }
    return out;
}

uint8_t arg_pkt6_type(const CalloutHandle& handle, rust::Str name) {
    return get_ptr<Pkt6Ptr>(handle, name)->getType();
}

namespace {
#if LEASEDNS_KEA_API >= 300
using Subnet6Arg = isc::dhcp::ConstSubnet6Ptr;
#else
using Subnet6Arg = isc::dhcp::Subnet6Ptr;
#endif
}  // namespace

Ddns4Update arg_ddns6_update(const CalloutHandle& handle) {
    Subnet6Arg subnet;
    handle.getArgument("subnet6", subnet);
    std::string hostname;
    handle.getArgument("hostname", hostname);
    Ddns4Update out;
    out.subnet_id = subnet ? subnet->getID() : 0;
    out.has_subnet = static_cast<bool>(subnet);
    out.has_hostname = !hostname.empty();
    return out;
}

uint32_t arg_subnet6_id(const CalloutHandle& handle) {
    Subnet6Arg subnet;
    handle.getArgument("subnet6", subnet);
    return subnet ? subnet->getID() : 0;
}

bool add_pkt6_empty_fqdn(const CalloutHandle& handle, rust::Str name, uint8_t flags) {
    Pkt6Ptr pkt = get_ptr<Pkt6Ptr>(handle, name);
    if (pkt->getOption(D6O_CLIENT_FQDN)) return false;
    pkt->addOption(OptionPtr(new Option6ClientFqdn(flags, "", Option6ClientFqdn::PARTIAL)));
    return true;
}

void set_lease6_directions(const CalloutHandle& handle, rust::Str name, bool fwd, bool rev) {
    Lease6Ptr lease = get_ptr<Lease6Ptr>(handle, name);
    lease->fqdn_fwd_ = fwd;
    lease->fqdn_rev_ = rev;
}

void set_pkt6_fqdn_flags(const CalloutHandle& handle, rust::Str name, uint8_t flags) {
    Pkt6Ptr pkt = get_ptr<Pkt6Ptr>(handle, name);
    auto fqdn = boost::dynamic_pointer_cast<Option6ClientFqdn>(pkt->getOption(D6O_CLIENT_FQDN));
    if (!fqdn) return;
    // Cleared first: setFlag refuses S and N set at once on the way.
    fqdn->resetFlags();
    const uint8_t known[] = {Option6ClientFqdn::FLAG_S, Option6ClientFqdn::FLAG_O,
                             Option6ClientFqdn::FLAG_N};
    for (uint8_t flag : known) {
        if (flags & flag) fqdn->setFlag(flag, true);
    }
}

void context_set_u32(CalloutHandle& handle, rust::Str key, uint32_t value) {
    handle.setContext(std::string(key), value);
}

uint32_t context_get_u32(const CalloutHandle& handle, rust::Str key) {
    uint32_t value = 0;
    // Throws NoSuchCalloutContext when absent: Err on the Rust side.
    handle.getContext(std::string(key), value);
    return value;
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

namespace {
using Inheritance = isc::dhcp::Network::Inheritance;

// One of Kea's settings of `subnet`, with Kea's inheritance: the subnet's
// own value, else its shared network's, else the global value in `cfg`,
// else `dflt` (Kea's default; the parser has normally put it among the
// globals already). The global level is read from `cfg` itself: during
// dhcp4_srv_configured `cfg` is still the staging configuration, while a
// subnet's own global lookup (Inheritance::ALL, and so DdnsParams) reads
// CfgMgr's current one, which is the previous configuration until Kea
// commits this one after the callout.
template <typename T, typename SubnetPtr, typename Get, typename FromGlobal>
T setting(const isc::dhcp::SrvConfig& cfg, const SubnetPtr& subnet, Get get, const char* global,
          FromGlobal from_global, T dflt) {
    auto own = get(*subnet, Inheritance::NONE);
    if (!own.unspecified()) return own.get();
    auto parent = get(*subnet, Inheritance::PARENT_NETWORK);
    if (!parent.unspecified()) return parent.get();
    isc::data::ConstElementPtr value = cfg.getConfiguredGlobal(std::string(global));
    if (value) return from_global(*value);
    return dflt;
}

// Readers of a global value; some are used only by newer releases.
bool as_bool(const isc::data::Element& e) { return e.boolValue(); }
[[maybe_unused]] std::string as_string(const isc::data::Element& e) { return e.stringValue(); }
[[maybe_unused]] double as_double(const isc::data::Element& e) { return e.doubleValue(); }
isc::dhcp::D2ClientConfig::ReplaceClientNameMode as_replace_mode(const isc::data::Element& e) {
    return isc::dhcp::D2ClientConfig::stringToReplaceClientNameMode(e.stringValue());
}
[[maybe_unused]] uint32_t as_u32(const isc::data::Element& e) { return static_cast<uint32_t>(e.intValue()); }

// Kea's DDNS settings of `subnet`; a null `subnet` gives what Kea's DDNS
// does for a lease without a subnet (nothing: send-updates off).
template <typename SubnetPtr>
SubnetDdns subnet_ddns(const isc::dhcp::SrvConfig& cfg, const SubnetPtr& subnet) {
    SubnetDdns out;
    out.subnet_id = 0;
    out.send_updates = false;
    out.override_client_update = false;
    out.override_no_update = false;
    out.update_on_renew = false;
    out.has_use_conflict_resolution = false;
    out.use_conflict_resolution = true;
    out.ttl_percent = 0.0;
    out.ttl = 0;
    out.ttl_min = 0;
    out.ttl_max = 0;
    out.replace_client_name = 0;
    if (!subnet) return out;
    out.replace_client_name = static_cast<uint8_t>(setting<isc::dhcp::D2ClientConfig::ReplaceClientNameMode>(
        cfg, subnet,
        [](const auto& s, Inheritance i) { return s.getDdnsReplaceClientNameMode(i); },
        "ddns-replace-client-name", as_replace_mode, isc::dhcp::D2ClientConfig::RCM_NEVER));
    out.subnet_id = subnet->getID();
    out.send_updates = setting<bool>(
        cfg, subnet, [](const auto& s, Inheritance i) { return s.getDdnsSendUpdates(i); },
        "ddns-send-updates", as_bool, true);
    out.override_client_update = setting<bool>(
        cfg, subnet, [](const auto& s, Inheritance i) { return s.getDdnsOverrideClientUpdate(i); },
        "ddns-override-client-update", as_bool, false);
    out.override_no_update = setting<bool>(
        cfg, subnet, [](const auto& s, Inheritance i) { return s.getDdnsOverrideNoUpdate(i); },
        "ddns-override-no-update", as_bool, false);
    out.update_on_renew = setting<bool>(
        cfg, subnet, [](const auto& s, Inheritance i) { return s.getDdnsUpdateOnRenew(i); },
        "ddns-update-on-renew", as_bool, false);
#if LEASEDNS_KEA_API >= 206
    out.conflict_mode = rust::String(setting<std::string>(
        cfg, subnet,
        [](const auto& s, Inheritance i) { return s.getDdnsConflictResolutionMode(i); },
        "ddns-conflict-resolution-mode", as_string, std::string()));
    out.ttl_percent = setting<double>(
        cfg, subnet, [](const auto& s, Inheritance i) { return s.getDdnsTtlPercent(i); },
        "ddns-ttl-percent", as_double, 0.0);
#else
    out.has_use_conflict_resolution = true;
    out.use_conflict_resolution = setting<bool>(
        cfg, subnet, [](const auto& s, Inheritance i) { return s.getDdnsUseConflictResolution(i); },
        "ddns-use-conflict-resolution", as_bool, true);
#endif
#if LEASEDNS_KEA_API >= 300
    out.ttl = setting<uint32_t>(
        cfg, subnet, [](const auto& s, Inheritance i) { return s.getDdnsTtl(i); }, "ddns-ttl",
        as_u32, 0);
    out.ttl_min = setting<uint32_t>(
        cfg, subnet, [](const auto& s, Inheritance i) { return s.getDdnsTtlMin(i); },
        "ddns-ttl-min", as_u32, 0);
    out.ttl_max = setting<uint32_t>(
        cfg, subnet, [](const auto& s, Inheritance i) { return s.getDdnsTtlMax(i); },
        "ddns-ttl-max", as_u32, 0);
#endif
    return out;
}
}  // namespace

rust::Vec<SubnetDdns> server_subnets_ddns4(const CalloutHandle& handle) {
    isc::dhcp::SrvConfigPtr cfg = get_ptr<isc::dhcp::SrvConfigPtr>(handle, "server_config");
    rust::Vec<SubnetDdns> out;
    out.push_back(subnet_ddns(*cfg, isc::dhcp::Subnet4Ptr()));
    const isc::dhcp::Subnet4Collection* subnets = cfg->getCfgSubnets4()->getAll();
    if (subnets) {
        for (const auto& subnet : *subnets) {
            if (subnet) out.push_back(subnet_ddns(*cfg, subnet));
        }
    }
    return out;
}

rust::Vec<SubnetDdns> server_subnets_ddns6(const CalloutHandle& handle) {
    isc::dhcp::SrvConfigPtr cfg = get_ptr<isc::dhcp::SrvConfigPtr>(handle, "server_config");
    rust::Vec<SubnetDdns> out;
    out.push_back(subnet_ddns(*cfg, isc::dhcp::Subnet6Ptr()));
    const isc::dhcp::Subnet6Collection* subnets = cfg->getCfgSubnets6()->getAll();
    if (subnets) {
        for (const auto& subnet : *subnets) {
            if (subnet) out.push_back(subnet_ddns(*cfg, subnet));
        }
    }
    return out;
}

rust::String daemon_name() {
    return rust::String(isc::process::Daemon::getProcName());
}

bool server_d2_client_enabled(const CalloutHandle& handle) {
    isc::dhcp::SrvConfigPtr cfg = get_ptr<isc::dhcp::SrvConfigPtr>(handle, "server_config");
    isc::dhcp::D2ClientConfigPtr d2 = cfg->getD2ClientConfig();
    return d2 && d2->getEnableUpdates();
}

void refuse_configuration(CalloutHandle& handle, rust::Str error) {
    handle.setArgument("error", std::string(error));
    handle.setStatus(CalloutHandle::NEXT_STEP_DROP);
}

bool callout_skipped(const CalloutHandle& handle) {
    return handle.getStatus() == CalloutHandle::NEXT_STEP_SKIP;
}

bool ha_present() {
    return isc::hooks::HooksManager::commandHandlersPresent("ha-heartbeat");
}

// Runs Kea HA's `ha-heartbeat` handler in process, as the control socket
// would: a fresh callout handle with the `command` argument, the handlers
// registered for the command, and their `response`. Main thread only (the
// timer), never from inside a callout.
rust::String ha_heartbeat() {
    const std::string name("ha-heartbeat");
    if (!isc::hooks::HooksManager::commandHandlersPresent(name)) throw std::runtime_error("Kea HA is not loaded");
    boost::shared_ptr<CalloutHandle> handle = isc::hooks::HooksManager::createCalloutHandle();
    handle->setArgument("command", isc::config::createCommand(name));
    isc::hooks::HooksManager::callCommandHandlers(name, *handle);
    isc::data::ConstElementPtr response;
    handle->getArgument("response", response);
    if (!response) throw std::runtime_error("ha-heartbeat gave no response");
    return rust::String(response->str());
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

rust::Vec<Lease6> leases6_all() {
    if (!isc::dhcp::LeaseMgrFactory::haveInstance()) {
        throw std::runtime_error("no lease manager");
    }
    isc::dhcp::Lease6Collection leases = isc::dhcp::LeaseMgrFactory::instance().getLeases6();
    rust::Vec<Lease6> out;
    out.reserve(leases.size());
    for (const Lease6Ptr& lease : leases) {
        if (lease) out.push_back(copy_lease6(*lease));
    }
    return out;
}

bool lease6_store_directions(rust::Slice<const uint8_t> addr, bool fwd, bool rev) {
    if (addr.size() != 16) throw std::invalid_argument("an IPv6 address has 16 octets");
    if (!isc::dhcp::LeaseMgrFactory::haveInstance()) {
        throw std::runtime_error("no lease manager");
    }
    isc::dhcp::LeaseMgr& mgr = isc::dhcp::LeaseMgrFactory::instance();
    Lease6Ptr lease = mgr.getLease6(isc::dhcp::Lease::TYPE_NA,
                                    isc::asiolink::IOAddress::fromBytes(AF_INET6, addr.data()));
    if (!lease || (lease->fqdn_fwd_ == fwd && lease->fqdn_rev_ == rev)) return false;
    lease->fqdn_fwd_ = fwd;
    lease->fqdn_rev_ = rev;
    mgr.updateLease6(lease);
    return true;
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
