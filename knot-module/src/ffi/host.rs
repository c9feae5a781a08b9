//! The host adapter: the only module besides `exports` that touches
//! knotd's raw pointers. It reads knotd's structures and converts them into
//! engine types (`RawSettings`, `EndEvent`, `Client`); everything leaves
//! here as owned Rust values or as borrows that the caller drops before its
//! callback returns. Nothing in the engine imports this module.

use crate::config::RawSettings;
use crate::stats::dims::Transport;
use crate::stats::instance::{Client, EndEvent};
use knot_sys as sys;
use std::ffi::{CStr, CString, c_char, c_void};
use std::ptr::NonNull;

/// The knotd module handle of the current callback.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Module(NonNull<sys::knotd_mod_t>);

/// Item names as knotd's schema wants them: one length byte, then the name.
pub(crate) mod names {
    pub(crate) const METRICS_LISTEN: &[u8] = b"\x0emetrics-listen\0";
    pub(crate) const TOP_N: &[u8] = b"\x05top-n\0";
    pub(crate) const TOP_SAMPLE: &[u8] = b"\x0atop-sample\0";
    pub(crate) const TOP_HALF_LIFE: &[u8] = b"\x0dtop-half-life\0";
    pub(crate) const LATENCY_BUCKETS: &[u8] = b"\x0flatency-buckets\0";
    pub(crate) const MAX_ZONES: &[u8] = b"\x09max-zones\0";
    pub(crate) const KNOTC_STATS: &[u8] = b"\x0bknotc-stats\0";
}

/// Reads one item, whether from a loaded module or a conf-check context.
trait ConfSource {
    /// # Safety
    /// `name` must be a NUL-terminated, length-prefixed item name.
    unsafe fn item(&mut self, name: &[u8]) -> sys::knotd_conf_t;
}

struct LoadedConf(NonNull<sys::knotd_mod_t>);
struct CheckConf(NonNull<sys::knotd_conf_check_args_t>);

impl ConfSource for LoadedConf {
    unsafe fn item(&mut self, name: &[u8]) -> sys::knotd_conf_t {
        // SAFETY: the module pointer is the live one of this load callback
        // and `name` is an item of our schema (caller contract).
        unsafe { sys::knotd_conf_mod(self.0.as_ptr(), name.as_ptr().cast()) }
    }
}

impl ConfSource for CheckConf {
    unsafe fn item(&mut self, name: &[u8]) -> sys::knotd_conf_t {
        // SAFETY: args is the live context of this config_check callback.
        unsafe { sys::knotd_conf_check_item(self.0.as_ptr(), name.as_ptr().cast()) }
    }
}

fn read_settings(source: &mut impl ConfSource) -> RawSettings {
    let mut raw = RawSettings::default();
    // SAFETY: for all reads below, each name is one of the schema's items with
    // the type the union member assumes: TSTR -> string, TINT -> integer,
    // TBOOL -> boolean; knotd fills defaults for unset single items.
    unsafe {
        let listen = source.item(names::METRICS_LISTEN);
        raw.metrics_listen = if listen.single.string.is_null() {
            None
        } else {
            Some(
                CStr::from_ptr(listen.single.string)
                    .to_string_lossy()
                    .into_owned(),
            )
        };
        raw.top_n = source.item(names::TOP_N).single.integer;
        raw.top_sample = source.item(names::TOP_SAMPLE).single.integer;
        raw.top_half_life = source.item(names::TOP_HALF_LIFE).single.integer;
        raw.max_zones = source.item(names::MAX_ZONES).single.integer;
        raw.knotc_stats = source.item(names::KNOTC_STATS).single.boolean;
        let mut buckets = source.item(names::LATENCY_BUCKETS);
        if !buckets.multi.is_null() {
            raw.latency_buckets_us = std::slice::from_raw_parts(buckets.multi, buckets.count)
                .iter()
                .map(|value| value.integer)
                .collect();
        }
        sys::knotd_conf_free(&mut buckets);
    }
    raw
}

/// The settings of a `config_check` section.
///
/// # Safety
/// `args` must be the live argument of a config_check callback.
pub(crate) unsafe fn check_settings(args: NonNull<sys::knotd_conf_check_args_t>) -> RawSettings {
    read_settings(&mut CheckConf(args))
}

/// Keeps error strings handed to knotd alive until it has printed them:
/// knotd reads `err_str` after the callback returns. The last few are kept.
static ERROR_STRINGS: parking_lot::Mutex<Vec<CString>> = parking_lot::Mutex::new(Vec::new());
const KEPT_ERRORS: usize = 16;

/// Sets `args->err_str` to `message`.
///
/// # Safety
/// `args` must be the live argument of a config_check callback.
pub(crate) unsafe fn set_check_error(args: NonNull<sys::knotd_conf_check_args_t>, message: &str) {
    let text = c_string(message);
    let mut kept = ERROR_STRINGS.lock();
    let ptr = text.as_ptr();
    kept.push(text);
    if kept.len() > KEPT_ERRORS {
        kept.remove(0);
    }
    // SAFETY: caller contract; the string stays alive in ERROR_STRINGS.
    unsafe { (*args.as_ptr()).err_str = ptr };
}

/// Strips NULs instead of failing: user text must never abort a callback.
pub(crate) fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', "")).unwrap_or_default()
}

impl Module {
    pub(crate) fn new(ptr: *mut sys::knotd_mod_t) -> Option<Self> {
        NonNull::new(ptr).map(Self)
    }

    pub(crate) fn settings(self) -> RawSettings {
        read_settings(&mut LoadedConf(self.0))
    }

    pub(crate) fn threads(self) -> usize {
        // SAFETY: live module handle of a load callback.
        let n = unsafe { sys::knotd_mod_threads(self.0.as_ptr()) };
        usize::try_from(n).unwrap_or(0)
    }

    /// The zone's wire name for a zone-scoped instance, None when global.
    pub(crate) fn zone(self) -> Option<Vec<u8>> {
        // SAFETY: live module handle; knotd returns NULL or its zone name.
        let name = unsafe { sys::knotd_mod_zone(self.0.as_ptr()) };
        // SAFETY: a non-NULL name is a valid dname owned by knotd.
        unsafe { dname(name) }.map(<[u8]>::to_vec)
    }

    pub(crate) fn set_ctx(self, ctx: *mut c_void) {
        // SAFETY: live module handle.
        unsafe { sys::knotd_mod_ctx_set(self.0.as_ptr(), ctx) }
    }

    pub(crate) fn ctx(self) -> *mut c_void {
        // SAFETY: live module handle.
        unsafe { sys::knotd_mod_ctx(self.0.as_ptr()) }
    }

    pub(crate) fn hook(self, stage: sys::knotd_stage_t, hook: sys::knotd_mod_hook_f) -> i32 {
        // SAFETY: live module handle in load; `hook` is an extern "C" fn
        // with knotd's hook signature.
        unsafe { sys::knotd_mod_hook(self.0.as_ptr(), stage, hook) }
    }

    /// Registers a knotc counter; `name` must live forever (knotd keeps it).
    pub(crate) fn stats_add(
        self,
        name: &'static CStr,
        count: usize,
        to_str: sys::knotd_mod_idx_to_str_f,
    ) -> i32 {
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        // SAFETY: live module handle in load; name is 'static.
        unsafe { sys::knotd_mod_stats_add(self.0.as_ptr(), name.as_ptr(), count, to_str) }
    }

    /// `thread` and `index` are below knotd's thread count and the
    /// counter's size (the dims indexes are small constants' bounds).
    pub(crate) fn stats_incr(self, thread: u32, counter: u32, index: u32) {
        // SAFETY: called from a knotd worker inside a hook of this module,
        // with a thread id knotd gave us and a counter registered in load.
        unsafe { sys::knotd_mod_stats_incr(self.0.as_ptr(), thread, counter, index, 1) }
    }

    /// Logs one line through knotd; `message` is data, never a format.
    pub(crate) fn log(self, priority: i32, message: &str) {
        let text = c_string(message);
        // SAFETY: live module handle on a knotd thread; "%s" consumes
        // exactly the one string argument given.
        unsafe {
            sys::knotd_mod_log(self.0.as_ptr(), priority, c"%s".as_ptr(), text.as_ptr());
        }
    }
}

/// The wire name at `ptr`, bounded by the 255-byte limit of a dname.
///
/// # Safety
/// `ptr` is NULL or points to a valid knot_dname_t.
#[inline(always)]
unsafe fn dname<'a>(ptr: *const u8) -> Option<&'a [u8]> {
    if ptr.is_null() {
        return None;
    }
    let mut len = 0usize;
    while len < 255 {
        // SAFETY: a valid dname continues until its zero label, within
        // 255 bytes; we stop there.
        let label = usize::from(unsafe { *ptr.add(len) });
        len += 1;
        if label == 0 {
            break;
        }
        len += label;
    }
    // SAFETY: the bytes up to the root label belong to the dname.
    Some(unsafe { std::slice::from_raw_parts(ptr, len.min(255)) })
}

/// BEGIN and END: the worker's thread id, or None if knotd gave no params.
///
/// # Safety
/// `qdata` is NULL or the live query data of the current hook.
pub(crate) unsafe fn thread_id(qdata: *mut sys::knotd_qdata_t) -> Option<usize> {
    // SAFETY: caller contract.
    let params = unsafe { qdata.as_ref()?.params.as_ref()? };
    usize::try_from(params.thread_id).ok()
}

/// Everything END needs for every request, read from the query, its
/// response and params. The heavy-hitter inputs are left to
/// [`sample_inputs`], which only sampled requests pay for.
///
/// # Safety
/// All pointers are NULL or the live arguments of the current END hook;
/// the returned borrows must not outlive the hook.
// Inlined into the hook so the event is never built in memory: it is
// read field by field where it is used (this runs for every request).
#[inline(always)]
pub(crate) unsafe fn end_event<'a>(
    state: u32,
    pkt: *mut sys::knot_pkt_t,
    qdata: *mut sys::knotd_qdata_t,
    zone_scoped: bool,
) -> Option<EndEvent<'a>> {
    // SAFETY: caller contract: live hook arguments or NULL.
    let qd = unsafe { qdata.as_ref()? };
    // SAFETY: params is knotd's per-request parameter block.
    let params = unsafe { qd.params.as_ref()? };
    // The one call into knotd comes first: nothing read before it has to
    // be kept across it.
    let zone = if zone_scoped {
        None
    } else {
        // SAFETY: qdata is live; knotd returns NULL or the zone's name,
        // which lives as long as the zone (longer than this hook).
        let ptr = unsafe { sys::knotd_qdata_zone_name(qdata) };
        // SAFETY: NULL or a valid dname.
        unsafe { dname(ptr) }.map(|name| (ptr as usize, name))
    };

    // SAFETY: the query packet of this request, or NULL.
    let query = unsafe { qd.query.as_ref() };
    let transfer = qd.type_ == sys::knotd_query_type_t_KNOTD_QUERY_TYPE_AXFR
        || qd.type_ == sys::knotd_query_type_t_KNOTD_QUERY_TYPE_IXFR;

    let (qtype, request_id, edns, dnssec_ok) = match query {
        Some(q) => {
            let qname_len = usize::from(q.qname_size);
            let qtype_at = 12 + qname_len;
            let qtype = if qname_len > 0 && !q.wire.is_null() && q.size >= qtype_at + 2 {
                // SAFETY: wire holds `size` bytes and qtype_at + 2 <= size.
                unsafe { u16::from_be_bytes([*q.wire.add(qtype_at), *q.wire.add(qtype_at + 1)]) }
            } else {
                0
            };
            let request_id = if transfer {
                let id = if !q.wire.is_null() && q.size >= 2 {
                    // SAFETY: at least two bytes of wire.
                    unsafe { u16::from_be_bytes([*q.wire, *q.wire.add(1)]) }
                } else {
                    0
                };
                (qdata as u64) ^ ((q as *const sys::knot_pkt_t as u64) << 16) ^ u64::from(id)
            } else {
                0
            };
            // SAFETY: opt_rr is NULL or the parsed OPT record of the query.
            let opt = unsafe { q.opt_rr.as_ref() };
            (
                qtype,
                request_id,
                opt.is_some(),
                // The DO bit is the top bit of the OPT TTL's flag half.
                opt.is_some_and(|o| o.ttl & 0x8000 != 0),
            )
        }
        None => (0, if transfer { qdata as u64 } else { 0 }, false, false),
    };

    // SAFETY: remote is NULL or knotd's sockaddr of the client.
    let ipv6 = unsafe { params.remote.as_ref() }
        .is_some_and(|ss| i32::from(ss.ss_family) == libc::AF_INET6);

    // SAFETY: pkt is NULL or the response being produced.
    let response = unsafe { pkt.as_ref() };
    let responded = state != sys::knotd_state_t_KNOTD_STATE_NOOP && response.is_some();
    let (response_size, truncated) = match response {
        Some(r) if !r.wire.is_null() && r.size >= 3 => {
            // SAFETY: at least three bytes; TC is bit 0x02 of byte 2.
            (r.size as u64, unsafe { *r.wire.add(2) } & 0x02 != 0)
        }
        Some(r) => (r.size as u64, false),
        None => (0, false),
    };

    Some(EndEvent {
        thread: params.thread_id as usize,
        query_type: qd.type_,
        zone,
        qtype,
        rcode: qd.rcode,
        transport: transport(params.proto),
        ipv6,
        edns,
        dnssec_ok,
        responded,
        truncated,
        response_size,
        request_id,
    })
}

/// knotd's transport of a request. knotd loads a module only into its own
/// ABI, whose enum is closed: any other value cannot come from it, and would
/// count as UDP (the zero value).
#[inline(always)]
fn transport(proto: sys::knotd_query_proto_t) -> Transport {
    match proto {
        sys::knotd_query_proto_t_KNOTD_QUERY_PROTO_TCP => Transport::Tcp,
        sys::knotd_query_proto_t_KNOTD_QUERY_PROTO_QUIC => Transport::Quic,
        // Only ABI 600 (Knot 3.4+) has DNS over TLS.
        p if sys::QUERY_PROTO_TLS == Some(p) => Transport::Tls,
        _ => Transport::Udp,
    }
}

/// A sampled request's heavy-hitter inputs: the lower-cased wire query
/// name (empty when unparsed) and the client address.
///
/// # Safety
/// `qdata` is NULL or the live query data of the current END hook; the
/// returned name must not outlive the hook.
pub(crate) unsafe fn sample_inputs<'a>(qdata: *mut sys::knotd_qdata_t) -> (&'a [u8], Client) {
    // SAFETY: caller contract.
    let Some(qd) = (unsafe { qdata.as_ref() }) else {
        return (&[], Client::Unknown);
    };
    // SAFETY: the query packet of this request, or NULL; knotd keeps it
    // (and its inline lower_qname buffer) alive for the whole hook.
    let qname: &'a [u8] = match unsafe { qd.query.as_ref() } {
        Some(q) => {
            let len = usize::from(q.qname_size).min(q.lower_qname.len());
            // SAFETY: the first `len` bytes of the packet's own buffer,
            // borrowed for the hook's duration (caller contract).
            unsafe { std::slice::from_raw_parts(q.lower_qname.as_ptr(), len) }
        }
        None => &[],
    };
    // SAFETY: params is NULL or knotd's per-request parameter block.
    let remote = unsafe { qd.params.as_ref() }.map_or(std::ptr::null(), |p| p.remote);
    // SAFETY: remote is NULL or knotd's sockaddr of the client.
    let client = match unsafe { remote.as_ref() } {
        Some(ss) if i32::from(ss.ss_family) == libc::AF_INET => {
            // SAFETY: family says this storage holds a sockaddr_in.
            let sin = unsafe { &*(remote.cast::<libc::sockaddr_in>()) };
            Client::V4(sin.sin_addr.s_addr.to_ne_bytes())
        }
        Some(ss) if i32::from(ss.ss_family) == libc::AF_INET6 => {
            // SAFETY: family says this storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(remote.cast::<libc::sockaddr_in6>()) };
            Client::V6(sin6.sin6_addr.s6_addr)
        }
        _ => Client::Unknown,
    };
    (qname, client)
}

/// UPDATE at END: zone name and TSIG key name, copied out.
///
/// # Safety
/// `qdata` is NULL or the live query data of the current END hook.
pub(crate) unsafe fn update_names(
    qdata: *mut sys::knotd_qdata_t,
    zone_scoped_name: Option<&[u8]>,
) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    // SAFETY: caller contract.
    let Some(qd) = (unsafe { qdata.as_ref() }) else {
        return (None, None);
    };
    let zone = match zone_scoped_name {
        Some(name) => Some(name.to_vec()),
        // SAFETY: live qdata; NULL or the zone's dname.
        None => unsafe { dname(sys::knotd_qdata_zone_name(qdata)) }.map(<[u8]>::to_vec),
    };
    // SAFETY: query and its tsig_rr are NULL or knotd's parsed packet.
    let key = unsafe {
        qd.query
            .as_ref()
            .and_then(|q| q.tsig_rr.as_ref())
            .and_then(|tsig| dname(tsig.owner))
            .map(<[u8]>::to_vec)
    };
    (zone, key)
}

/// Duplicates a name into malloc'ed memory, which knotd frees after use
/// (the contract of `knotd_mod_idx_to_str_f`).
pub(crate) fn malloc_str(text: &str) -> *mut c_char {
    let text = c_string(text);
    // SAFETY: strdup copies a valid NUL-terminated string into malloc'ed
    // memory (or returns NULL, which knotd handles).
    unsafe { libc::strdup(text.as_ptr()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    #[test]
    fn schema_names_are_length_prefixed() {
        for (raw, plain) in [
            (names::METRICS_LISTEN, config::METRICS_LISTEN),
            (names::TOP_N, config::TOP_N),
            (names::TOP_SAMPLE, config::TOP_SAMPLE),
            (names::TOP_HALF_LIFE, config::TOP_HALF_LIFE),
            (names::LATENCY_BUCKETS, config::LATENCY_BUCKETS),
            (names::MAX_ZONES, config::MAX_ZONES),
            (names::KNOTC_STATS, "knotc-stats"),
        ] {
            assert_eq!(usize::from(raw[0]), plain.len(), "{plain}");
            assert_eq!(&raw[1..raw.len() - 1], plain.as_bytes());
            assert_eq!(raw.last(), Some(&0));
        }
    }

    #[test]
    fn dname_stops_at_the_root_label() {
        let wire = b"\x03www\x07example\x00garbage";
        // SAFETY: a valid dname followed by other bytes.
        assert_eq!(unsafe { dname(wire.as_ptr()) }, Some(&wire[..13]));
        // SAFETY: NULL is allowed.
        assert_eq!(unsafe { dname(std::ptr::null()) }, None);
    }

    #[test]
    fn every_knotd_transport_has_its_own() {
        assert_eq!(
            transport(sys::knotd_query_proto_t_KNOTD_QUERY_PROTO_UDP),
            Transport::Udp
        );
        assert_eq!(
            transport(sys::knotd_query_proto_t_KNOTD_QUERY_PROTO_TCP),
            Transport::Tcp
        );
        assert_eq!(
            transport(sys::knotd_query_proto_t_KNOTD_QUERY_PROTO_QUIC),
            Transport::Quic
        );
        match sys::QUERY_PROTO_TLS {
            Some(tls) => {
                assert_eq!(sys::KNOTD_MOD_ABI_VERSION, 600);
                assert_eq!(transport(tls), Transport::Tls);
            }
            None => assert_eq!(sys::KNOTD_MOD_ABI_VERSION, 400),
        }
    }

    #[test]
    fn c_strings_lose_nuls_instead_of_failing() {
        assert_eq!(c_string("a\0b").as_bytes(), b"ab");
    }
}
