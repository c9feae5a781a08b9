//! One module instance: per-thread counter shards, the zone table, the
//! heavy-hitter tables and the UPDATE statistics, plus the read side that
//! sums them for `/metrics`.
//!
//! Query path: the worker with `thread_id` t touches only `shards[t]`.
//! Counters are `AtomicU64` written with a relaxed load and store (one
//! writer per shard, so no read-modify-write instruction is needed). A
//! shard is one cache-line-aligned block holding every fixed-size counter
//! inline (one pointer chase from the instance), sized in whole cache
//! lines; only the proto x zone x type x rcode table is a separate, padded
//! allocation. Two workers never write the same cache line. Readers sum
//! the shards with relaxed loads; a scrape may see a query counted in one
//! family and not yet in another, never a torn or lost count.
//!
//! The table is allocated zeroed (calloc: fresh pages from the kernel) and
//! ordered transport first, so that its memory becomes resident only where
//! queries are counted: a transport the server does not listen on (QUIC,
//! TLS on most servers) and zone rows not yet seen cost address space, not
//! RAM.

use crate::config::Settings;
use crate::stats::clock::Clock;
use crate::stats::dims::{
    self, OP_COUNT, PROTO_COUNT, RCODE_COUNT, SIZE_BOUNDS, TYPE_COUNT, Transport,
};
use crate::stats::heavy::{self, Hitter, SpaceSaving};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Instant;
use zerocopy::FromZeros as _;

/// Counters per zone row of one transport: type x rcode (2.3 KiB).
const ROW_LEN: usize = TYPE_COUNT * RCODE_COUNT;
/// The size histograms are indexed with a mask, not a bounds check.
const _: () = assert!(PROTO_COUNT.is_power_of_two());
/// Zone-cache slots per worker (direct-mapped by zone pointer).
const ZONE_CACHE_SLOTS: usize = 16;
/// A wire-format name is at most 255 bytes: 32 words.
const NAME_WORDS: usize = 32;
/// UPDATE label sets kept before new ones are folded into "(other)".
const MAX_UPDATE_SERIES: usize = 4096;
/// Space-Saving slots per requested top-N entry: more slots, tighter
/// error bounds.
const SLOTS_PER_TOP_ENTRY: usize = 8;
/// Zone label for queries outside every served zone (knotd answers REFUSED).
pub(crate) const ZONE_NONE: &str = "(none)";
/// Zone label once `max-zones` distinct zones have been seen.
pub(crate) const ZONE_OTHER: &str = "(other)";
/// TSIG key label for unsigned updates.
pub(crate) const KEY_NONE: &str = "(none)";

fn bump(counter: &AtomicU64, by: u64) {
    // Single writer per shard: a plain load+store is exact and avoids a
    // locked instruction on the query path.
    counter.store(counter.load(Relaxed).wrapping_add(by), Relaxed);
}

/// A counter array in its own allocation, padded on both sides so that
/// neighbouring allocations of other workers never share its cache lines.
#[derive(Debug)]
struct Padded {
    cells: Box<[AtomicU64]>,
}

const PAD: usize = 16;

/// The counter table could not be allocated.
#[derive(Debug, thiserror::Error)]
#[error("cannot allocate {0} bytes of query counters (lower max-zones)")]
pub(crate) struct TableTooLarge(usize);

impl Padded {
    /// Zeroed by the allocator: the pages of a large table come fresh from
    /// the kernel and become resident only when a counter on them is
    /// written (the per-cell initialisation it replaced touched them all).
    fn new(len: usize) -> Result<Self, TableTooLarge> {
        let cells = len + 2 * PAD;
        <[AtomicU64]>::new_box_zeroed_with_elems(cells)
            .map(|cells| Self { cells })
            .map_err(|_| TableTooLarge(cells.saturating_mul(8)))
    }

    fn get(&self, index: usize) -> Option<&AtomicU64> {
        self.cells.get(PAD + index)
    }

    fn bump(&self, index: usize, by: u64) {
        if let Some(cell) = self.get(index) {
            bump(cell, by);
        }
    }

    fn load(&self, index: usize) -> u64 {
        self.get(index).map_or(0, |c| c.load(Relaxed))
    }
}

#[derive(Debug)]
struct ZoneCacheSlot {
    ptr: AtomicUsize,
    row: AtomicUsize,
    len: AtomicUsize,
    words: [AtomicU64; NAME_WORDS],
}

impl ZoneCacheSlot {
    fn new() -> Self {
        Self {
            ptr: AtomicUsize::new(0),
            row: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            words: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    #[inline]
    fn matches(&self, ptr: usize, name: &[u8]) -> bool {
        if self.ptr.load(Relaxed) != ptr || self.len.load(Relaxed) != name.len() {
            return false;
        }
        let mut equal = true;
        for_each_word(name, |i, packed| {
            equal &= self.words[i].load(Relaxed) == packed;
        });
        equal
    }

    fn store(&self, ptr: usize, name: &[u8], row: usize) {
        for_each_word(name, |i, packed| self.words[i].store(packed, Relaxed));
        self.len.store(name.len(), Relaxed);
        self.row.store(row, Relaxed);
        self.ptr.store(ptr, Relaxed);
    }
}

/// Calls `f(i, word)` for the name as 8-byte little-endian words, the
/// last one overlapping its predecessor (bytes `len - 8 .. len`) so that
/// every word is one unaligned load, never a byte loop. This runs per
/// query to verify the cached zone; with the length compared first, equal
/// words mean equal names. Names under 8 bytes are one zero-padded word.
#[inline]
fn for_each_word(name: &[u8], mut f: impl FnMut(usize, u64)) {
    let len = name.len().min(NAME_WORDS * 8);
    if len < 8 {
        let mut word = [0u8; 8];
        word[..len].copy_from_slice(&name[..len]);
        f(0, u64::from_le_bytes(word));
        return;
    }
    let word_at = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&name[at..at + 8]);
        u64::from_le_bytes(word)
    };
    let full = len / 8;
    for i in 0..full {
        f(i, word_at(i * 8));
    }
    if !len.is_multiple_of(8) {
        f(full, word_at(len - 8));
    }
}

/// A query name as it arrived (wire format, lower case), kept inline so a
/// heavy-hitter eviction never allocates.
#[derive(Clone, Debug)]
pub(crate) struct NameBuf {
    len: u8,
    bytes: [u8; 255],
}

impl NameBuf {
    fn new(wire: &[u8]) -> Self {
        let mut bytes = [0u8; 255];
        let len = wire.len().min(255);
        bytes[..len].copy_from_slice(&wire[..len]);
        Self {
            len: u8::try_from(len).unwrap_or(u8::MAX),
            bytes,
        }
    }

    pub(crate) fn wire(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

#[derive(Debug)]
struct HeavyTables {
    names: SpaceSaving<NameBuf>,
    nets: SpaceSaving<u64>,
}

/// Latency histogram slots: at most `MAX_LATENCY_BUCKETS` bounds plus
/// +Inf, padded to a power of two so that a masked index needs no bounds
/// check.
const LATENCY_SLOTS: usize = 64;
const _: () = assert!(crate::config::MAX_LATENCY_BUCKETS < LATENCY_SLOTS);
/// Response-size buckets: the bounds plus +Inf.
const SIZE_BUCKETS: usize = SIZE_BOUNDS.len() + 1;

/// Everything one worker thread writes. The fields every request touches
/// come first and share the first two cache lines.
#[derive(Debug)]
#[repr(C, align(128))]
struct Shard {
    /// [`Clock`] reading at BEGIN; 0 = no BEGIN for this query.
    begin: AtomicU64,
    /// Identity of the transfer whose first message was already counted.
    last_xfr: AtomicU64,
    /// Requests left until the next heavy-hitter sample.
    sample_in: AtomicU64,
    /// Clock ticks.
    latency_sum: AtomicU64,
    /// Indexed by `dims::op_index` (< `OP_COUNT`), padded to 8.
    ops: [AtomicU64; 8],
    /// Indexed by `dims::FLAG_*`, padded to 4.
    flags: [AtomicU64; 4],
    size_sum: [AtomicU64; PROTO_COUNT],
    rng: AtomicU64,
    hh_skipped: AtomicU64,
    sizes: [[AtomicU64; SIZE_BUCKETS]; PROTO_COUNT],
    latency: [AtomicU64; LATENCY_SLOTS],
    /// UPDATE requests' BEGIN-to-END time (knotd's checks before it queues
    /// the update), kept out of `latency` so that its `_count` stays the
    /// number of queries.
    update_latency: [AtomicU64; LATENCY_SLOTS],
    /// Clock ticks.
    update_latency_sum: AtomicU64,
    /// (proto x zone row x type x rcode), sized by `max-zones`.
    queries: Padded,
    zone_cache: [ZoneCacheSlot; ZONE_CACHE_SLOTS],
    heavy: Mutex<HeavyTables>,
}

fn zeroed<const N: usize>() -> [AtomicU64; N] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

/// Latency histogram bounds in clock units, arranged for a bucket lookup
/// that costs one table load and (almost always) at most one compare
/// instead of a binary search.
#[derive(Debug)]
struct LatencyBuckets {
    /// The bounds, then `u64::MAX` in every unused slot: the scan below
    /// always stops at or before the first padding slot.
    bounds: [u64; LATENCY_SLOTS],
    /// `first[k]`: how many bounds lie below 2^k. A value in
    /// [2^k, 2^(k+1)) is above all of them, so its search starts there.
    first: [u8; 64],
}

impl LatencyBuckets {
    fn new(bounds: &[u64]) -> Self {
        let mut table = [u64::MAX; LATENCY_SLOTS];
        let used = bounds.len().min(LATENCY_SLOTS - 1);
        table[..used].copy_from_slice(&bounds[..used]);
        let first = std::array::from_fn(|k| {
            let below = table[..used].partition_point(|&b| b < 1u64 << k);
            u8::try_from(below).unwrap_or(u8::MAX)
        });
        Self {
            bounds: table,
            first,
        }
    }

    /// Index of the first bound >= `value` (the +Inf bucket after the
    /// last bound): the same as `dims::bucket_index(bounds, value)`.
    #[inline(always)]
    fn index(&self, value: u64) -> usize {
        let class = (63 - (value | 1).leading_zeros()) as usize;
        let mut i = usize::from(self.first[class & 63]);
        // Configured bounds are strictly increasing and at least 1 us
        // apart, so a power-of-two class rarely holds more than one or
        // two of them.
        while self.bounds[i & (LATENCY_SLOTS - 1)] < value {
            i += 1;
        }
        i & (LATENCY_SLOTS - 1)
    }
}

/// The client address of a query, as far as the statistics care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Client {
    V4([u8; 4]),
    V6([u8; 16]),
    Unknown,
}

/// What the adapter read from knotd at END, copied out of host memory.
/// Only what every request needs: the heavy-hitter inputs (query name,
/// client address) are read separately, for sampled requests only.
#[derive(Debug)]
pub(crate) struct EndEvent<'a> {
    pub(crate) thread: usize,
    /// `knotd_query_type_t` value.
    pub(crate) query_type: u32,
    /// The zone's pointer (identity) and wire name; None outside zones.
    pub(crate) zone: Option<(usize, &'a [u8])>,
    pub(crate) qtype: u16,
    pub(crate) rcode: u16,
    pub(crate) transport: Transport,
    pub(crate) ipv6: bool,
    pub(crate) edns: bool,
    pub(crate) dnssec_ok: bool,
    /// False when knotd sends nothing (state NOOP).
    pub(crate) responded: bool,
    pub(crate) truncated: bool,
    pub(crate) response_size: u64,
    /// Distinguishes one transfer request from the next (read for AXFR
    /// and IXFR only; 0 otherwise).
    pub(crate) request_id: u64,
}

/// The indexes a counted query got, for mirroring into knotd's own
/// statistics (`knotc stats`), and whether it is a heavy-hitter sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Counted {
    pub(crate) op: usize,
    pub(crate) type_index: usize,
    pub(crate) rcode_index: usize,
    pub(crate) proto: usize,
    pub(crate) edns: bool,
    pub(crate) dnssec_ok: bool,
    pub(crate) truncated: bool,
    /// Pass the query name and client to [`Instance::observe_heavy`].
    pub(crate) sample: bool,
}

#[derive(Debug, Default)]
struct UpdateStats {
    /// (zone, key) -> arrivals.
    arrivals: HashMap<(String, String), u64>,
    /// (zone, rcode index) -> rejections.
    rejections: HashMap<(String, usize), u64>,
}

#[derive(Debug)]
struct ZoneTable {
    max_zones: usize,
    /// Wire name -> row.
    rows: Mutex<HashMap<Box<[u8]>, usize>>,
}

pub(crate) struct Instance {
    settings: Settings,
    shards: Box<[Shard]>,
    clock: Clock,
    /// Bounds in clock ticks.
    latency_buckets: LatencyBuckets,
    /// Sampling is on (`top-n` > 0).
    heavy_on: bool,
    zones: ZoneTable,
    /// Row used for every query of a zone-scoped instance.
    fixed_row: Option<usize>,
    updates: Mutex<UpdateStats>,
    last_decay: Mutex<Instant>,
    /// Counters per transport in `Shard::queries`: (max-zones + 2) rows.
    proto_stride: usize,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("threads", &self.shards.len())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Instance {
    /// `threads` is knotd's worker count (thread ids are below it);
    /// `zone` is the wire name for a zone-scoped instance; `clock` times
    /// requests (usually [`Clock::detect`]).
    pub(crate) fn new(
        settings: Settings,
        threads: usize,
        zone: Option<&[u8]>,
        clock: Clock,
    ) -> Result<Self, TableTooLarge> {
        let rows = settings.max_zones + 2;
        let hh_slots = (settings.top_n * SLOTS_PER_TOP_ENTRY).max(1);
        let shards = (0..threads.max(1))
            .map(|t| {
                Ok(Shard {
                    begin: AtomicU64::new(0),
                    last_xfr: AtomicU64::new(0),
                    sample_in: AtomicU64::new(1),
                    latency_sum: AtomicU64::new(0),
                    ops: zeroed(),
                    flags: zeroed(),
                    size_sum: zeroed(),
                    rng: AtomicU64::new(0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1)),
                    hh_skipped: AtomicU64::new(0),
                    sizes: std::array::from_fn(|_| zeroed()),
                    latency: zeroed(),
                    update_latency: zeroed(),
                    update_latency_sum: AtomicU64::new(0),
                    queries: Padded::new(PROTO_COUNT * rows * ROW_LEN)?,
                    zone_cache: std::array::from_fn(|_| ZoneCacheSlot::new()),
                    heavy: Mutex::new(HeavyTables {
                        names: SpaceSaving::new(hh_slots),
                        nets: SpaceSaving::new(hh_slots),
                    }),
                })
            })
            .collect::<Result<_, TableTooLarge>>()?;
        let zones = ZoneTable {
            max_zones: settings.max_zones,
            rows: Mutex::new(HashMap::new()),
        };
        let fixed_row = zone.map(|name| zones.row_of(name));
        Ok(Self {
            latency_buckets: LatencyBuckets::new(
                &settings
                    .latency_bounds_ns
                    .iter()
                    .map(|&ns| clock.ticks_from_ns(ns))
                    .collect::<Vec<_>>(),
            ),
            clock,
            heavy_on: settings.top_n > 0,
            settings,
            shards,
            zones,
            fixed_row,
            updates: Mutex::new(UpdateStats::default()),
            last_decay: Mutex::new(Instant::now()),
            proto_stride: rows * ROW_LEN,
        })
    }

    /// BEGIN: remember when this worker started on the query.
    #[inline(always)]
    pub(crate) fn on_begin(&self, thread: usize) {
        if let Some(shard) = self.shards.get(thread) {
            shard.begin.store(self.clock.now(), Relaxed);
        }
    }

    /// The clock reading END passes to [`Instance::on_end`]. The hook
    /// takes it before it reads the request: then no field read from knotd
    /// has to be kept across the (fallback) clock call.
    #[inline(always)]
    pub(crate) fn now(&self) -> u64 {
        self.clock.now()
    }

    /// END: counts the query once (continuation messages of a transfer are
    /// skipped); `now` is [`Instance::now`] at the start of the hook.
    /// Returns what was counted, None when nothing was.
    #[inline(always)]
    pub(crate) fn on_end(&self, ev: &EndEvent<'_>, now: u64) -> Option<Counted> {
        let shard = self.shards.get(ev.thread)?;
        // Single writer: load and store, no locked exchange.
        let begin = shard.begin.load(Relaxed);
        if begin != 0 {
            shard.begin.store(0, Relaxed);
        }
        let op = dims::op_index(ev.query_type);
        if op == dims::OP_AXFR || op == dims::OP_IXFR {
            // END runs once per message of a transfer; count the request.
            if shard.last_xfr.load(Relaxed) == ev.request_id {
                return None;
            }
            shard.last_xfr.store(ev.request_id, Relaxed);
        } else {
            shard.last_xfr.store(0, Relaxed);
        }
        if begin != 0 {
            let elapsed = now.saturating_sub(begin);
            let bucket = self.latency_buckets.index(elapsed);
            if op == dims::OP_UPDATE {
                bump(&shard.update_latency[bucket], 1);
                bump(&shard.update_latency_sum, elapsed);
            } else {
                bump(&shard.latency[bucket], 1);
                bump(&shard.latency_sum, elapsed);
            }
        }
        let proto = dims::proto_index(ev.transport, ev.ipv6);
        let type_index = dims::type_index(ev.qtype);
        let rcode_index = dims::rcode_index(ev.rcode);
        bump(&shard.ops[op & 7], 1);
        if op != dims::OP_UPDATE {
            // Updates are counted by zone and key (see on_update); an
            // accepted one has no rcode yet at this point.
            let row = self.zone_row(shard, ev.zone);
            let cell = proto * self.proto_stride
                + (row * TYPE_COUNT + type_index) * RCODE_COUNT
                + rcode_index;
            shard.queries.bump(cell, 1);
        }
        if ev.edns {
            bump(&shard.flags[dims::FLAG_EDNS], 1);
        }
        if ev.dnssec_ok {
            bump(&shard.flags[dims::FLAG_DO], 1);
        }
        let truncated = ev.responded && ev.truncated;
        if ev.responded {
            if truncated {
                bump(&shard.flags[dims::FLAG_TC], 1);
            }
            bump(
                &shard.sizes[proto & (PROTO_COUNT - 1)][dims::size_bucket(ev.response_size)],
                1,
            );
            bump(&shard.size_sum[proto & (PROTO_COUNT - 1)], ev.response_size);
        }
        Some(Counted {
            op,
            type_index,
            rcode_index,
            proto,
            edns: ev.edns,
            dnssec_ok: ev.dnssec_ok,
            truncated,
            sample: self.heavy_on && self.sampled(shard),
        })
    }

    /// One query in `top-sample` on average. The gap to the next sample
    /// is drawn uniformly from 1..=2N-1 by a per-thread xorshift, so that
    /// periodic query patterns cannot alias with the sampling; between
    /// samples a request costs one decrement, not a random draw.
    #[inline]
    fn sampled(&self, shard: &Shard) -> bool {
        let left = shard.sample_in.load(Relaxed);
        if left > 1 {
            shard.sample_in.store(left - 1, Relaxed);
            return false;
        }
        let rate = u64::from(self.settings.top_sample);
        if rate > 1 {
            let mut x = shard.rng.load(Relaxed);
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            shard.rng.store(x, Relaxed);
            shard.sample_in.store(1 + x % (2 * rate - 1), Relaxed);
        }
        true
    }

    /// Feeds one sampled request (see [`Counted::sample`]) to the worker's
    /// heavy-hitter tables. `qname` is the lower-cased wire name (empty
    /// when unparsed).
    pub(crate) fn observe_heavy(&self, thread: usize, qname: &[u8], client: Client) {
        let Some(shard) = self.shards.get(thread) else {
            return;
        };
        // The scraper holds the lock for a copy or a decay; never wait
        // for it on the query path.
        let Some(mut tables) = shard.heavy.try_lock() else {
            bump(&shard.hh_skipped, 1);
            return;
        };
        let weight = u64::from(self.settings.top_sample);
        if !qname.is_empty() {
            let key = heavy::hash_bytes(qname);
            tables.names.observe(key, weight, || NameBuf::new(qname));
        }
        if let Some(net) = network_key(client) {
            tables.nets.observe(mix(net), weight, || net);
        }
    }

    #[inline]
    fn zone_row(&self, shard: &Shard, zone: Option<(usize, &[u8])>) -> usize {
        if let Some(row) = self.fixed_row {
            return row;
        }
        let Some((ptr, name)) = zone else {
            return self.zones.max_zones;
        };
        let slot = &shard.zone_cache[(ptr >> 4).wrapping_mul(0x9e37_79b9) % ZONE_CACHE_SLOTS];
        if slot.matches(ptr, name) {
            return slot.row.load(Relaxed);
        }
        let row = self.zones.row_of(name);
        slot.store(ptr, name, row);
        row
    }

    /// UPDATE at END: one arrival per (zone, key); a non-zero rcode is a
    /// rejection knotd decided before queueing the update. Accepted updates
    /// are applied later, outside every module hook.
    pub(crate) fn on_update(&self, zone: Option<&[u8]>, key: Option<&[u8]>, rcode: u16) {
        let zone = zone.map_or_else(|| ZONE_NONE.to_owned(), dname_to_text);
        let key = key.map_or_else(|| KEY_NONE.to_owned(), dname_to_text);
        let mut updates = self.updates.lock();
        let series = updates.arrivals.len() + updates.rejections.len();
        let arrival = if series >= MAX_UPDATE_SERIES
            && !updates.arrivals.contains_key(&(zone.clone(), key.clone()))
        {
            (ZONE_OTHER.to_owned(), ZONE_OTHER.to_owned())
        } else {
            (zone.clone(), key)
        };
        *updates.arrivals.entry(arrival).or_insert(0) += 1;
        if rcode != 0 {
            let rejection = (zone, dims::rcode_index(rcode));
            let rejection =
                if series >= MAX_UPDATE_SERIES && !updates.rejections.contains_key(&rejection) {
                    (ZONE_OTHER.to_owned(), rejection.1)
                } else {
                    rejection
                };
            *updates.rejections.entry(rejection).or_insert(0) += 1;
        }
    }

    /// Halves the heavy-hitter counts when a half-life has passed. Called
    /// by the endpoint thread; a worker that finds a table locked skips one
    /// sample instead of waiting.
    pub(crate) fn decay_if_due(&self, now: Instant) {
        let mut last = self.last_decay.lock();
        let half_life = self.settings.top_half_life;
        while now.duration_since(*last) >= half_life {
            for shard in &self.shards {
                shard.heavy.lock().names.decay();
                shard.heavy.lock().nets.decay();
            }
            *last += half_life;
        }
    }

    /// Sums every shard.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let rows = self.zones.max_zones + 2;
        let mut snap = Snapshot {
            latency_bounds_ns: self.settings.latency_bounds_ns.clone(),
            latency: vec![0; self.settings.latency_bounds_ns.len() + 1],
            update_latency: vec![0; self.settings.latency_bounds_ns.len() + 1],
            ..Snapshot::default()
        };
        let row_names = self.zones.row_names();
        let mut queries = vec![0u64; PROTO_COUNT * rows * ROW_LEN];
        for shard in &self.shards {
            for (i, total) in queries.iter_mut().enumerate() {
                *total += shard.queries.load(i);
            }
            add_loads(&mut snap.ops, &shard.ops);
            add_loads(&mut snap.flags, &shard.flags);
            for (totals, counters) in snap.sizes.iter_mut().zip(&shard.sizes) {
                add_loads(totals, counters);
            }
            add_loads(&mut snap.size_sum, &shard.size_sum);
            add_loads(&mut snap.latency, &shard.latency);
            snap.latency_sum_ns += self.clock.ns_from_ticks(shard.latency_sum.load(Relaxed));
            add_loads(&mut snap.update_latency, &shard.update_latency);
            snap.update_latency_sum_ns += self
                .clock
                .ns_from_ticks(shard.update_latency_sum.load(Relaxed));
            snap.heavy_skipped += shard.hh_skipped.load(Relaxed);
        }
        for (cell, &count) in queries.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let proto = cell / self.proto_stride;
            let rcode = cell % RCODE_COUNT;
            let qtype = (cell / RCODE_COUNT) % TYPE_COUNT;
            let row = (cell % self.proto_stride) / ROW_LEN;
            let zone = row_names.get(&row).cloned().unwrap_or_else(|| {
                if row == self.zones.max_zones {
                    ZONE_NONE.to_owned()
                } else {
                    ZONE_OTHER.to_owned()
                }
            });
            *snap
                .queries
                .entry(QueryKey {
                    zone,
                    qtype: dims::type_name(qtype),
                    rcode: dims::rcode_name(rcode),
                    proto: dims::PROTOS[proto],
                })
                .or_insert(0) += count;
        }
        let updates = self.updates.lock();
        for ((zone, key), &count) in &updates.arrivals {
            *snap.updates.entry((zone.clone(), key.clone())).or_insert(0) += count;
        }
        for ((zone, rcode), &count) in &updates.rejections {
            *snap
                .update_rejections
                .entry((zone.clone(), dims::rcode_name(*rcode)))
                .or_insert(0) += count;
        }
        drop(updates);
        if self.settings.top_n > 0 {
            let mut names = Vec::new();
            let mut nets = Vec::new();
            for shard in &self.shards {
                let tables = shard.heavy.lock();
                names.push(tables.names.entries().collect::<Vec<_>>());
                nets.push(tables.nets.entries().collect::<Vec<_>>());
            }
            snap.top_names = heavy::merge_top(names, self.settings.top_n)
                .into_iter()
                .map(|h: Hitter<NameBuf>| (dname_to_text(h.payload.wire()), h.count))
                .collect();
            snap.top_networks = heavy::merge_top(nets, self.settings.top_n)
                .into_iter()
                .map(|h: Hitter<u64>| (network_text(h.payload), h.count))
                .collect();
        }
        snap
    }
}

/// Adds relaxed loads of `counters` into `totals`, as far as both go.
fn add_loads(totals: &mut [u64], counters: &[AtomicU64]) {
    for (total, counter) in totals.iter_mut().zip(counters) {
        *total += counter.load(Relaxed);
    }
}

impl ZoneTable {
    fn row_of(&self, name: &[u8]) -> usize {
        let mut rows = self.rows.lock();
        if let Some(&row) = rows.get(name) {
            return row;
        }
        if rows.len() >= self.max_zones {
            return self.max_zones + 1;
        }
        let row = rows.len();
        rows.insert(name.into(), row);
        row
    }

    fn row_names(&self) -> HashMap<usize, String> {
        self.rows
            .lock()
            .iter()
            .map(|(name, &row)| (row, dname_to_text(name)))
            .collect()
    }
}

/// Labels of one `queries_total` series.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct QueryKey {
    pub(crate) zone: String,
    pub(crate) qtype: &'static str,
    pub(crate) rcode: &'static str,
    pub(crate) proto: &'static str,
}

/// Summed counters of one instance; instances sharing an endpoint are
/// added up with [`Snapshot::add`].
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Snapshot {
    pub(crate) queries: HashMap<QueryKey, u64>,
    pub(crate) ops: [u64; OP_COUNT],
    pub(crate) flags: [u64; 3],
    pub(crate) sizes: [[u64; SIZE_BOUNDS.len() + 1]; PROTO_COUNT],
    pub(crate) size_sum: [u64; PROTO_COUNT],
    pub(crate) latency_bounds_ns: Vec<u64>,
    /// Per bucket, not cumulative; the last is +Inf.
    pub(crate) latency: Vec<u64>,
    pub(crate) latency_sum_ns: u64,
    /// UPDATE requests, with the same bounds as `latency`.
    pub(crate) update_latency: Vec<u64>,
    pub(crate) update_latency_sum_ns: u64,
    pub(crate) updates: HashMap<(String, String), u64>,
    pub(crate) update_rejections: HashMap<(String, &'static str), u64>,
    pub(crate) top_names: Vec<(String, u64)>,
    pub(crate) top_networks: Vec<(String, u64)>,
    pub(crate) heavy_skipped: u64,
}

impl Snapshot {
    /// Adds `other` into `self`. Latency histograms are added only when
    /// the bucket bounds agree (they may differ for a moment while a
    /// reload replaces an instance with new `latency-buckets`).
    pub(crate) fn add(&mut self, other: Snapshot) {
        for (key, count) in other.queries {
            *self.queries.entry(key).or_insert(0) += count;
        }
        for (a, b) in self.ops.iter_mut().zip(other.ops) {
            *a += b;
        }
        for (a, b) in self.flags.iter_mut().zip(other.flags) {
            *a += b;
        }
        for (a, b) in self.sizes.iter_mut().zip(other.sizes) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        for (a, b) in self.size_sum.iter_mut().zip(other.size_sum) {
            *a += b;
        }
        if self.latency_bounds_ns.is_empty() && self.latency.is_empty() {
            self.latency_bounds_ns = other.latency_bounds_ns;
            self.latency = other.latency;
            self.latency_sum_ns = other.latency_sum_ns;
            self.update_latency = other.update_latency;
            self.update_latency_sum_ns = other.update_latency_sum_ns;
        } else if self.latency_bounds_ns == other.latency_bounds_ns {
            for (a, b) in self.latency.iter_mut().zip(other.latency) {
                *a += b;
            }
            self.latency_sum_ns += other.latency_sum_ns;
            for (a, b) in self.update_latency.iter_mut().zip(other.update_latency) {
                *a += b;
            }
            self.update_latency_sum_ns += other.update_latency_sum_ns;
        }
        for (key, count) in other.updates {
            *self.updates.entry(key).or_insert(0) += count;
        }
        for (key, count) in other.update_rejections {
            *self.update_rejections.entry(key).or_insert(0) += count;
        }
        self.top_names = merge_ranked(std::mem::take(&mut self.top_names), other.top_names);
        self.top_networks =
            merge_ranked(std::mem::take(&mut self.top_networks), other.top_networks);
        self.heavy_skipped += other.heavy_skipped;
    }
}

fn merge_ranked(a: Vec<(String, u64)>, b: Vec<(String, u64)>) -> Vec<(String, u64)> {
    let keep = a.len().max(b.len());
    let mut sums: HashMap<String, u64> = HashMap::new();
    for (label, count) in a.into_iter().chain(b) {
        *sums.entry(label).or_insert(0) += count;
    }
    let mut all: Vec<(String, u64)> = sums.into_iter().collect();
    all.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    all.truncate(keep);
    all
}

/// /24 for IPv4, /56 for IPv6, tagged so the two families never collide.
pub(crate) fn network_key(client: Client) -> Option<u64> {
    match client {
        Client::V4(o) => Some((4 << 56) | u64::from(u32::from_be_bytes([o[0], o[1], o[2], 0]))),
        Client::V6(o) => {
            let mut prefix = [0u8; 8];
            prefix[1..8].copy_from_slice(&o[..7]);
            Some((6 << 56) | u64::from_be_bytes(prefix))
        }
        Client::Unknown => None,
    }
}

pub(crate) fn network_text(key: u64) -> String {
    let bytes = key.to_be_bytes();
    if bytes[0] == 4 {
        let addr = Ipv4Addr::new(bytes[4], bytes[5], bytes[6], 0);
        return format!("{addr}/24");
    }
    let mut octets = [0u8; 16];
    octets[..7].copy_from_slice(&bytes[1..8]);
    format!("{}/56", IpAddr::V6(Ipv6Addr::from(octets)))
}

fn mix(key: u64) -> u64 {
    let mut x = key ^ (key >> 33);
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 33)
}

/// Presentation form of a wire-format name: `www.example.com.`, with
/// dots and unprintable bytes inside labels escaped as in zone files.
pub(crate) fn dname_to_text(wire: &[u8]) -> String {
    let mut text = String::new();
    let mut rest = wire;
    while let Some((&len, tail)) = rest.split_first() {
        if len == 0 {
            break;
        }
        let len = usize::from(len).min(tail.len());
        for &b in &tail[..len] {
            match b {
                b'.' | b'\\' | b'"' => {
                    text.push('\\');
                    text.push(char::from(b));
                }
                0x21..=0x7e => text.push(char::from(b)),
                _ => text.push_str(&format!("\\{b:03}")),
            }
        }
        text.push('.');
        rest = &tail[len..];
    }
    if text.is_empty() {
        text.push('.');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawSettings;

    fn settings(top_n: i64) -> Settings {
        RawSettings {
            top_n,
            top_sample: 1,
            max_zones: 2,
            ..RawSettings::default()
        }
        .check()
        .unwrap()
    }

    const ZONE_A: &[u8] = b"\x01a\x04test\x00";
    const ZONE_B: &[u8] = b"\x01b\x04test\x00";
    const ZONE_C: &[u8] = b"\x01c\x04test\x00";

    fn event(thread: usize, zone: Option<(usize, &[u8])>) -> EndEvent<'_> {
        EndEvent {
            thread,
            query_type: 1,
            zone,
            qtype: 1,
            rcode: 0,
            transport: Transport::Udp,
            ipv6: false,
            edns: true,
            dnssec_ok: false,
            responded: true,
            truncated: false,
            response_size: 100,
            request_id: 0,
        }
    }

    /// What the END hook does: count, then feed a sample.
    fn end(inst: &Instance, ev: &EndEvent<'_>, qname: &[u8]) -> Option<Counted> {
        let counted = inst.on_end(ev, inst.now())?;
        if counted.sample {
            inst.observe_heavy(ev.thread, qname, Client::V4([192, 0, 2, 7]));
        }
        Some(counted)
    }

    #[test]
    fn counts_are_summed_over_threads_and_zones() {
        let inst = Instance::new(settings(3), 2, None, Clock::detect()).unwrap();
        for t in 0..2 {
            inst.on_begin(t);
            end(
                &inst,
                &event(t, Some((0x1000, ZONE_A))),
                b"\x03www\x01a\x04test\x00",
            );
        }
        end(
            &inst,
            &event(1, Some((0x2000, ZONE_B))),
            b"\x01b\x04test\x00",
        );
        // Pointer reused for another zone: the name check catches it.
        end(
            &inst,
            &event(1, Some((0x1000, ZONE_C))),
            b"\x01c\x04test\x00",
        );
        end(&inst, &event(0, None), b"\x01x\x00");
        let snap = inst.snapshot();
        let get = |zone: &str| {
            snap.queries
                .get(&QueryKey {
                    zone: zone.into(),
                    qtype: "A",
                    rcode: "NOERROR",
                    proto: "udp4",
                })
                .copied()
        };
        assert_eq!(get("a.test."), Some(2));
        assert_eq!(get("b.test."), Some(1));
        assert_eq!(get(ZONE_OTHER), Some(1), "max-zones is 2");
        assert_eq!(get(ZONE_NONE), Some(1));
        assert_eq!(snap.ops[1], 5);
        assert_eq!(snap.flags[dims::FLAG_EDNS], 5);
        assert_eq!(
            snap.latency.iter().sum::<u64>(),
            2,
            "only queries with BEGIN are timed"
        );
        assert_eq!(snap.sizes[0][1], 5, "100 bytes fall in the <=128 bucket");
        assert_eq!(snap.top_names[0], ("www.a.test.".to_owned(), 2));
        assert_eq!(snap.top_networks, vec![("192.0.2.0/24".to_owned(), 5)]);
    }

    /// An UPDATE's time goes into its own histogram: the query histogram's
    /// `_count` stays the number of queries.
    #[test]
    fn updates_are_timed_apart_from_queries() {
        let inst = Instance::new(settings(3), 1, None, Clock::detect()).unwrap();
        inst.on_begin(0);
        end(
            &inst,
            &event(0, Some((0x1000, ZONE_A))),
            b"\x01a\x04test\x00",
        );
        let mut update = event(0, Some((0x1000, ZONE_A)));
        update.query_type = dims::OP_UPDATE as u32;
        for _ in 0..2 {
            inst.on_begin(0);
            end(&inst, &update, b"\x01a\x04test\x00");
        }
        let snap = inst.snapshot();
        assert_eq!(snap.latency.iter().sum::<u64>(), 1, "the one query");
        assert_eq!(
            snap.update_latency.iter().sum::<u64>(),
            2,
            "the two UPDATEs"
        );
        assert_eq!(snap.ops[dims::OP_UPDATE], 2);
        assert_eq!(snap.queries.values().sum::<u64>(), 1);
    }

    /// Each transport and family lands in its own series and size
    /// histogram, also in the table's last transport and last zone row.
    #[test]
    fn every_transport_and_family_is_its_own_series() {
        use Transport::{Quic, Tcp, Tls, Udp};
        let inst = Instance::new(settings(0), 1, None, Clock::MONOTONIC).unwrap();
        for transport in [Udp, Tcp, Quic, Tls] {
            for ipv6 in [false, true] {
                let mut ev = event(0, Some((0x1000, ZONE_A)));
                ev.transport = transport;
                ev.ipv6 = ipv6;
                ev.qtype = 28;
                ev.rcode = 3;
                ev.response_size = 1000;
                // A different count per series: a swapped index shows.
                for _ in 0..=dims::proto_index(transport, ipv6) {
                    assert!(inst.on_end(&ev, inst.now()).is_some());
                }
            }
        }
        let mut outside = event(0, None);
        outside.transport = Tls;
        outside.ipv6 = true;
        outside.rcode = 5;
        inst.on_end(&outside, inst.now());

        let snap = inst.snapshot();
        for (index, &proto) in dims::PROTOS.iter().enumerate() {
            let key = QueryKey {
                zone: "a.test.".into(),
                qtype: "AAAA",
                rcode: "NXDOMAIN",
                proto,
            };
            let n = index as u64 + 1;
            assert_eq!(snap.queries.get(&key), Some(&n), "{proto}");
            let extra = u64::from(proto == "tls6");
            assert_eq!(snap.sizes[index][4], n, "{proto}: 1000 bytes, <= 1232");
            assert_eq!(snap.sizes[index][1], extra, "{proto}: 100 bytes");
            assert_eq!(snap.size_sum[index], 1000 * n + 100 * extra, "{proto}");
        }
        let key = QueryKey {
            zone: ZONE_NONE.into(),
            qtype: "A",
            rcode: "REFUSED",
            proto: "tls6",
        };
        assert_eq!(snap.queries.get(&key), Some(&1));
        assert_eq!(
            snap.queries.len(),
            dims::PROTO_COUNT + 1,
            "{:?}",
            snap.queries
        );
    }

    #[test]
    fn transfer_continuations_are_not_recounted() {
        let inst = Instance::new(settings(0), 1, Some(ZONE_A), Clock::MONOTONIC).unwrap();
        let mut ev = event(0, None);
        ev.query_type = 2;
        ev.qtype = 252;
        ev.request_id = 1;
        inst.on_begin(0);
        assert!(inst.on_end(&ev, inst.now()).is_some());
        assert!(inst.on_end(&ev, inst.now()).is_none());
        ev.request_id = 2;
        assert!(inst.on_end(&ev, inst.now()).is_some());
        let snap = inst.snapshot();
        assert_eq!(snap.ops[dims::OP_AXFR], 2);
        let key = QueryKey {
            zone: "a.test.".into(),
            qtype: "AXFR",
            rcode: "NOERROR",
            proto: "udp4",
        };
        assert_eq!(snap.queries.get(&key), Some(&2));
    }

    #[test]
    fn one_in_top_sample_requests_is_sampled() {
        let mut s = settings(1);
        s.top_sample = 16;
        let inst = Instance::new(s, 1, None, Clock::MONOTONIC).unwrap();
        let shard = &inst.shards[0];
        let sampled = (0..160_000).filter(|_| inst.sampled(shard)).count();
        assert!((9_000..11_000).contains(&sampled), "{sampled}");
    }

    #[test]
    fn zone_cache_compares_every_byte() {
        let slot = ZoneCacheSlot::new();
        for len in 1..=40usize {
            let name: Vec<u8> = (0..len).map(|i| i as u8 + 1).collect();
            slot.store(0x40, &name, 3);
            assert!(slot.matches(0x40, &name), "len {len}");
            assert!(!slot.matches(0x50, &name));
            assert!(!slot.matches(0x40, &name[..len - 1]));
            for pos in 0..len {
                let mut other = name.clone();
                other[pos] ^= 0x20;
                assert!(!slot.matches(0x40, &other), "len {len}, byte {pos}");
            }
        }
        let longest = [7u8; 255];
        slot.store(0x40, &longest, 1);
        assert!(slot.matches(0x40, &longest));
    }

    #[test]
    fn latency_buckets_match_the_binary_search() {
        let defaults = RawSettings::default().check().unwrap().latency_bounds_ns;
        let dense: Vec<u64> = (1..=32).map(|us| us * 1_000).collect();
        let wide: Vec<u64> = (0..32).map(|k| 1_000u64 << k).collect();
        for bounds in [defaults, dense, wide, vec![1], vec![60_000_000_000]] {
            let table = LatencyBuckets::new(&bounds);
            let mut values = vec![0, 1, 2, u64::MAX, u64::MAX - 1];
            for &b in &bounds {
                values.extend([b - 1, b, b + 1, b / 2, b * 3 / 2]);
            }
            values.extend((0..64).map(|k| 1u64 << k));
            values.extend((0..64).map(|k| (1u64 << k) - 1));
            for v in values {
                assert_eq!(
                    table.index(v),
                    dims::bucket_index(&bounds, v),
                    "{v} in {bounds:?}"
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn latency_buckets_match_for_any_bounds(
            mut bounds in proptest::collection::btree_set(1u64..=60_000_000_000, 1..=32),
            values in proptest::collection::vec(proptest::num::u64::ANY, 64),
        ) {
            let bounds: Vec<u64> = std::mem::take(&mut bounds).into_iter().collect();
            let table = LatencyBuckets::new(&bounds);
            for v in values.into_iter().chain(bounds.iter().copied()) {
                proptest::prop_assert_eq!(table.index(v), dims::bucket_index(&bounds, v));
                proptest::prop_assert_eq!(table.index(v % 100_000_000), dims::bucket_index(&bounds, v % 100_000_000));
            }
        }
    }

    #[test]
    fn out_of_range_thread_is_ignored() {
        let inst = Instance::new(settings(0), 1, None, Clock::MONOTONIC).unwrap();
        assert!(inst.on_end(&event(5, None), inst.now()).is_none());
        inst.observe_heavy(5, b"\x01x\x00", Client::Unknown);
    }

    #[test]
    fn updates_by_zone_key_and_rejection() {
        let inst = Instance::new(settings(0), 1, None, Clock::MONOTONIC).unwrap();
        inst.on_update(Some(ZONE_A), Some(b"\x03key\x00"), 0);
        inst.on_update(Some(ZONE_A), Some(b"\x03key\x00"), 9);
        inst.on_update(Some(ZONE_A), None, 5);
        let snap = inst.snapshot();
        assert_eq!(
            snap.updates.get(&("a.test.".into(), "key.".into())),
            Some(&2)
        );
        assert_eq!(
            snap.updates.get(&("a.test.".into(), KEY_NONE.into())),
            Some(&1)
        );
        assert_eq!(
            snap.update_rejections.get(&("a.test.".into(), "NOTAUTH")),
            Some(&1)
        );
        assert_eq!(
            snap.update_rejections.get(&("a.test.".into(), "REFUSED")),
            Some(&1)
        );
    }

    #[test]
    fn networks_are_truncated() {
        assert_eq!(
            network_text(network_key(Client::V4([10, 1, 2, 3])).unwrap()),
            "10.1.2.0/24"
        );
        let v6: Ipv6Addr = "2001:db8:aa:bbcc:1::1".parse().unwrap();
        assert_eq!(
            network_text(network_key(Client::V6(v6.octets())).unwrap()),
            "2001:db8:aa:bb00::/56"
        );
        assert_eq!(network_key(Client::Unknown), None);
    }

    #[test]
    fn names_print_escaped() {
        assert_eq!(dname_to_text(b"\x00"), ".");
        assert_eq!(dname_to_text(b"\x03a.b\x01\x07\x00"), "a\\.b.\\007.");
    }

    #[test]
    fn decay_halves_heavy_hitters() {
        let mut s = settings(2);
        s.top_half_life = std::time::Duration::from_secs(1);
        let inst = Instance::new(s, 1, None, Clock::MONOTONIC).unwrap();
        for _ in 0..8 {
            end(&inst, &event(0, None), b"\x01x\x00");
        }
        inst.decay_if_due(Instant::now() + std::time::Duration::from_millis(2100));
        assert_eq!(inst.snapshot().top_names[0].1, 2);
    }
}
