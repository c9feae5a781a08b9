// C++ side of the leasedns Kea bridge; the boundary itself is declared once,
// in the #[cxx::bridge] module of src/lib.rs, and cxx generates the glue and
// checks these declarations against it. Every function that can throw is a
// Result on the Rust side: cxx's wrapper catches the exception and hands it
// to Rust as Err. References passed in are borrowed for the call; nothing
// returned points into Kea's objects.
#pragma once

#include <hooks/hooks.h>

#include "rust/cxx.h"

#include <cstdint>

namespace leasedns {

// Shared structs, defined by the generated header (kea-sys/src/lib.rs.h).
struct Lease4;
struct Lease6;
struct ClientNames;
struct PacketHeader;
struct SubnetDdns;
struct Ddns4Update;

using isc::hooks::CalloutHandle;
using isc::hooks::LibraryHandle;

Lease4 arg_lease4(const CalloutHandle& handle, rust::Str name);
rust::Vec<Lease4> arg_leases4(const CalloutHandle& handle, rust::Str name);
ClientNames arg_pkt4_names(const CalloutHandle& handle, rust::Str name);
PacketHeader arg_pkt4_header(const CalloutHandle& handle, rust::Str name);
Ddns4Update arg_ddns4_update(const CalloutHandle& handle);
void set_ddns4_update_directions(CalloutHandle& handle, bool fwd, bool rev);
void set_lease4_directions(const CalloutHandle& handle, rust::Str name, bool fwd, bool rev);
void set_pkt4_fqdn_flags(const CalloutHandle& handle, rust::Str name, uint8_t flags);
Lease6 arg_lease6(const CalloutHandle& handle, rust::Str name);
rust::Vec<Lease6> arg_leases6(const CalloutHandle& handle, rust::Str name);
ClientNames arg_pkt6_names(const CalloutHandle& handle, rust::Str name);
uint8_t arg_pkt6_type(const CalloutHandle& handle, rust::Str name);
Ddns4Update arg_ddns6_update(const CalloutHandle& handle);
uint32_t arg_subnet6_id(const CalloutHandle& handle);
bool add_pkt6_empty_fqdn(const CalloutHandle& handle, rust::Str name, uint8_t flags);
void set_lease6_directions(const CalloutHandle& handle, rust::Str name, bool fwd, bool rev);
void set_pkt6_fqdn_flags(const CalloutHandle& handle, rust::Str name, uint8_t flags);
void context_set_u32(CalloutHandle& handle, rust::Str key, uint32_t value);
uint32_t context_get_u32(const CalloutHandle& handle, rust::Str key);

void command_respond(CalloutHandle& handle, int32_t result, rust::Str text, rust::Str args_json);
void register_command(LibraryHandle& library, rust::Str name,
                      rust::Fn<int32_t(CalloutHandle&)> handler);
rust::String library_params_json(LibraryHandle& library);

rust::Vec<SubnetDdns> server_subnets_ddns4(const CalloutHandle& handle);
rust::Vec<SubnetDdns> server_subnets_ddns6(const CalloutHandle& handle);
rust::String daemon_name();
bool server_d2_client_enabled(const CalloutHandle& handle);
void refuse_configuration(CalloutHandle& handle, rust::Str error);
rust::Vec<Lease4> leases4_all();
rust::Vec<Lease6> leases6_all();
bool lease6_store_directions(rust::Slice<const uint8_t> addr, bool fwd, bool rev);
bool callout_skipped(const CalloutHandle& handle);
bool ha_present();
rust::String ha_heartbeat();

void stat_set(rust::Str name, int64_t value);

void log(int32_t severity, int32_t debuglevel, rust::Str text);
bool log_enabled(int32_t severity, int32_t debuglevel);

void timer_start(const CalloutHandle& handle, int64_t interval_ms, rust::Fn<void()> on_tick);
void timer_stop();

}  // namespace leasedns
