//! RFC 4703 conflict resolution for one `Change`, message for message as
//! Kea 2.6's D2 does it for each `ddns-conflict-resolution-mode`, so zones
//! shared with a stock D2 (or migrated from one) keep working. The mode is
//! the change's own (`LeaseRecords::mode`, its subnet's), not the server's.
//!
//! Synchronous: one `apply` runs the whole exchange sequence on the calling
//! (sender) thread. Every sequence is safe to repeat: a change that failed
//! half-way is retried whole.

use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::{Message, MessageType, OpCode, Query, UpdateMessage};
use hickory_proto::rr::rdata::{A, AAAA, NULL, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tracing::debug;

use crate::change::{Change, ChangeKind};
use crate::config::{Config, ConflictMode, DdnsDomain, Family};
use crate::dns::{self, ExchangeError, Rcode, TsigSigner};

/// RFC 4701 DHCID; hickory has no typed rdata for it.
const DHCID: RecordType = RecordType::Unknown(49);

/// D2 goes back from "replace" to "add" when the name vanished in between;
/// a name that keeps appearing and vanishing is retried later instead.
const MAX_ADD_ROUNDS: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Reverse,
}

/// The messages of the D2 state machines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepKind {
    /// Add A or AAAA (+ DHCID) if the name is not in use.
    AddForward,
    /// The name is in use: replace the change's address RRset (A or AAAA)
    /// if the name is ours.
    ReplaceForward,
    /// Unconditional forward replace (no-check modes).
    SetForward,
    /// Replace PTR (+ DHCID) at the reverse name.
    ReplaceReverse,
    /// Delete our A or AAAA RR if the name is ours.
    RemoveForwardAddress,
    /// Delete what is left of the name once no address remains.
    RemoveForwardRest,
    /// Unconditional forward removal (no-check modes).
    ClearForward,
    RemoveReverse,
}

/// The result of one message sent to one server.
#[derive(Debug)]
pub enum StepResult {
    Answer(Rcode),
    Failed(ExchangeError),
}

impl StepResult {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Answer(rcode) => rcode.is_retryable(),
            Self::Failed(err) => err.is_retryable(),
        }
    }
}

#[derive(Debug)]
pub struct StepRecord {
    pub direction: Direction,
    pub kind: StepKind,
    pub server: SocketAddr,
    pub result: StepResult,
}

/// Counters for the statistics of one `apply`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpdateStats {
    /// Messages sent (one per exchange attempt).
    pub sent: u32,
    /// NOERROR answers.
    pub succeeded: u32,
    /// YXDOMAIN / YXRRSET / NXDOMAIN / NXRRSET: the normal flow of RFC 4703.
    pub prerequisite_failed: u32,
    /// REFUSED and NOTAUTH.
    pub refused: u32,
    pub timeouts: u32,
    /// Everything else: other rcodes, I/O errors, bad responses.
    pub failed: u32,
    /// Datagrams dropped as not answering our request (spoof resistance).
    pub ignored_replies: u32,
}

/// Why a change must be tried again later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryCause {
    ServFail,
    Timeout,
    ConnectionRefused,
    Unreachable,
    Io,
    BadResponse,
    /// The name kept appearing and vanishing between our messages.
    Unstable,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DoneKind {
    /// All requested records are in place.
    Published,
    /// The removal ran to its end; records not proven ours were left alone
    /// (the steps show NXRRSET then).
    Removed,
    /// The name belongs to another client or is a static record: nothing of
    /// ours was written and the reverse zone was not touched.
    Conflict { reason: String },
    /// The server answered with a refusal or error that repeating will not
    /// fix (REFUSED, NOTAUTH, NOTZONE, FORMERR, ...).
    Rejected {
        direction: Direction,
        server: SocketAddr,
        rcode: Rcode,
    },
    /// No configured zone contains `name` (D2 drops such a request whole).
    NoZone { name: String },
    /// The change or the zone's configuration cannot be turned into a message.
    Invalid { reason: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    Done(DoneKind),
    /// Every server of the zone failed in a way that may pass; `server` is
    /// the last one tried.
    Retry {
        direction: Direction,
        server: SocketAddr,
        cause: RetryCause,
        detail: String,
    },
}

impl ApplyOutcome {
    pub fn is_retry(&self) -> bool {
        matches!(self, Self::Retry { .. })
    }
}

/// What one `apply` did.
#[derive(Debug)]
pub struct Applied {
    pub outcome: ApplyOutcome,
    pub steps: Vec<StepRecord>,
    pub stats: UpdateStats,
}

/// What one `apply_batch` did.
#[derive(Debug)]
pub struct BatchApplied {
    /// One outcome per change, in the order given.
    pub outcomes: Vec<ApplyOutcome>,
    pub steps: Vec<StepRecord>,
    pub stats: UpdateStats,
}

/// Runs changes against the zones of one configuration.
pub struct UpdateExecutor<'a> {
    cfg: &'a Config,
    signers: Vec<TsigSigner>,
}

/// The outcome of one direction on one server.
#[derive(Clone, Debug)]
enum DirOutcome {
    Ok,
    Conflict(String),
    Rejected {
        server: SocketAddr,
        rcode: Rcode,
    },
    Retry {
        server: SocketAddr,
        cause: RetryCause,
        detail: String,
    },
    Invalid(String),
}

/// Everything the messages of one change need.
struct Target<'c> {
    change: &'c Change,
    fqdn: Name,
    reverse: Name,
}

/// A change turned into names, with the zone of each wanted direction.
struct Plan<'c, 'z> {
    target: Target<'c>,
    forward: Option<&'z DdnsDomain>,
    reverse: Option<&'z DdnsDomain>,
}

impl<'z> Plan<'_, 'z> {
    fn zone(&self, direction: Direction) -> Option<&'z DdnsDomain> {
        match direction {
            Direction::Forward => self.forward,
            Direction::Reverse => self.reverse,
        }
    }
}

/// Changes of one direction, zone, kind and mode that travel in shared
/// messages, with their index in the caller's list.
type Members<'p, 'c> = [(usize, &'p Target<'c>)];

/// What the changes sharing messages have in common (besides the direction):
/// one zone, one kind, one conflict-resolution mode and one address family,
/// so that one UPDATE never mixes two modes' prerequisites, nor an A change
/// with an AAAA change whose message deletes the other's RRset.
#[derive(Clone, Copy)]
struct GroupKey<'z> {
    zone: &'z DdnsDomain,
    kind: ChangeKind,
    mode: ConflictMode,
    family: Family,
}

impl GroupKey<'_> {
    fn same(&self, other: &GroupKey<'_>) -> bool {
        std::ptr::eq(self.zone, other.zone)
            && self.kind == other.kind
            && self.mode == other.mode
            && self.family == other.family
    }
}

/// The members of one direction and key.
type Group<'z, 'p, 'c> = (GroupKey<'z>, Vec<(usize, &'p Target<'c>)>);

impl<'a> UpdateExecutor<'a> {
    pub fn new(cfg: &'a Config) -> Self {
        let signers = cfg.tsig_keys.iter().map(TsigSigner::new).collect();
        Self { cfg, signers }
    }

    pub fn apply(&self, change: &Change) -> Applied {
        let mut run = Run::default();
        let outcome = self.apply_inner(change, &mut run);
        // The engine logs what it decides from the outcome (retry, conflict,
        // refusal) at the right level; here only the trace for debugging.
        debug!(fqdn = %change.records.fqdn, addr = %change.records.addr, ?outcome, "change applied");
        Applied {
            outcome,
            steps: run.steps,
            stats: run.stats,
        }
    }

    /// Applies many changes with as few messages as their conflict-resolution
    /// modes allow: per direction, zone, kind and mode, the first message of
    /// every change's sequence goes in one UPDATE (RFC 2136 applies it whole or
    /// not at all). When such a message fails, the group is split in halves
    /// and each half tried again, down to single changes that run their own
    /// RFC 4703 sequence, so one name owned by someone else costs a few
    /// messages, never the other changes' progress. The forward direction
    /// of every change is settled before any reverse message, as in
    /// `apply`. The changes must touch distinct names and addresses (the
    /// engine builds batches so): messages of different kinds are not
    /// ordered against each other.
    pub fn apply_batch(&self, changes: &[&Change]) -> BatchApplied {
        let mut run = Run::default();
        let mut outcomes: Vec<Option<ApplyOutcome>> = vec![None; changes.len()];
        let mut plans = Vec::with_capacity(changes.len());
        for (i, change) in changes.iter().enumerate() {
            match self.plan(change) {
                Ok(plan) => plans.push(Some(plan)),
                Err(done) => {
                    outcomes[i] = Some(ApplyOutcome::Done(done));
                    plans.push(None);
                }
            }
        }
        for direction in [Direction::Forward, Direction::Reverse] {
            let mut groups: Vec<Group<'_, '_, '_>> = Vec::new();
            for (i, plan) in plans.iter().enumerate() {
                let Some(plan) = plan else { continue };
                let Some(zone) = plan.zone(direction) else {
                    continue;
                };
                if outcomes[i].is_some() {
                    continue;
                }
                let key = GroupKey {
                    zone,
                    kind: plan.target.change.kind,
                    mode: plan.target.change.records.mode,
                    family: Family::of(plan.target.change.records.addr),
                };
                match groups.iter_mut().find(|(k, _)| k.same(&key)) {
                    Some(group) => group.1.push((i, &plan.target)),
                    None => groups.push((key, vec![(i, &plan.target)])),
                }
            }
            let mut results: Vec<Option<DirOutcome>> = vec![None; changes.len()];
            for (key, members) in &groups {
                self.run_group(&mut run, direction, key, 0, members, &mut results);
            }
            for (i, result) in results.into_iter().enumerate() {
                if let Some(outcome) = result.and_then(|r| conclude(direction, r)) {
                    outcomes[i] = Some(outcome);
                }
            }
        }
        let outcomes = outcomes
            .into_iter()
            .zip(changes)
            .map(|(o, c)| o.unwrap_or_else(|| ApplyOutcome::Done(finished(c.kind))))
            .collect();
        BatchApplied {
            outcomes,
            steps: run.steps,
            stats: run.stats,
        }
    }

    /// Names and zones of a change, or why it needs no message at all.
    fn plan<'c>(&self, change: &'c Change) -> Result<Plan<'c, 'a>, DoneKind> {
        let target = Target::new(change).map_err(|reason| DoneKind::Invalid { reason })?;
        if change.records.mode != ConflictMode::NoCheckWithoutDhcid
            && change.records.dhcid.is_empty()
        {
            return Err(DoneKind::Invalid {
                reason: "empty DHCID in a mode that publishes DHCID records".into(),
            });
        }
        // Like D2: an empty zone list turns the direction off; a list that
        // does not cover the name drops the whole change before any message.
        let forward = pick(change.records.forward, &self.cfg.forward, &target.fqdn)
            .map_err(|name| DoneKind::NoZone { name })?;
        let reverse = pick(change.records.reverse, &self.cfg.reverse, &target.reverse)
            .map_err(|name| DoneKind::NoZone { name })?;
        if forward.is_none() && reverse.is_none() {
            return Err(DoneKind::NoZone {
                name: change.records.fqdn.clone(),
            });
        }
        Ok(Plan {
            target,
            forward,
            reverse,
        })
    }

    fn apply_inner(&self, change: &Change, run: &mut Run) -> ApplyOutcome {
        let plan = match self.plan(change) {
            Ok(plan) => plan,
            Err(done) => return ApplyOutcome::Done(done),
        };
        for direction in [Direction::Forward, Direction::Reverse] {
            let Some(zone) = plan.zone(direction) else {
                continue;
            };
            let result = self.run_direction(run, direction, zone, &plan.target);
            if let Some(outcome) = conclude(direction, result) {
                return outcome;
            }
        }
        ApplyOutcome::Done(finished(change.kind))
    }

    /// The signer of the zone's `i`-th server: its own key, else the zone's.
    fn signer(&self, zone: &DdnsDomain, i: usize) -> Result<Option<&TsigSigner>, DirOutcome> {
        match zone.key_of(i) {
            None => Ok(None),
            Some(index) => self.signers.get(index).map(Some).ok_or_else(|| {
                DirOutcome::Invalid(format!("zone {} names no TSIG key", zone.name))
            }),
        }
    }

    /// One pass over the zone's servers; the whole sequence of the direction
    /// restarts on the next server after a retryable failure, which is safe
    /// because every sequence is idempotent.
    fn run_direction(
        &self,
        run: &mut Run,
        direction: Direction,
        zone: &DdnsDomain,
        target: &Target<'_>,
    ) -> DirOutcome {
        let mode = target.change.records.mode;
        // The reverse sequence is one message in every mode: that message,
        // with the zone's servers in order.
        if direction == Direction::Reverse
            && let &[step] = batch_steps(direction, target.change.kind, mode)
        {
            return self.send_one(run, direction, zone, step, target);
        }
        let mut last = DirOutcome::Invalid(format!("zone {} has no servers", zone.name));
        for (i, &server) in zone.servers.iter().enumerate() {
            let signer = match self.signer(zone, i) {
                Ok(signer) => signer,
                Err(invalid) => return invalid,
            };
            let mut link = Link {
                run: &mut *run,
                direction,
                server,
                signer,
                cfg: self.cfg,
            };
            let outcome = match target.change.kind {
                ChangeKind::Add => forward_add(&mut link, mode, &zone.name, target),
                ChangeKind::Remove => forward_remove(&mut link, mode, &zone.name, target),
            };
            match outcome {
                DirOutcome::Retry { .. } => last = outcome,
                done => return done,
            }
        }
        last
    }

    /// Step `step` of the batched sequence for `members` (see `apply_batch`),
    /// writing each member's outcome into `out`.
    fn run_group(
        &self,
        run: &mut Run,
        direction: Direction,
        key: &GroupKey<'_>,
        step: usize,
        members: &Members<'_, '_>,
        out: &mut [Option<DirOutcome>],
    ) {
        let GroupKey {
            zone, kind, mode, ..
        } = *key;
        let Some(&step_kind) = batch_steps(direction, kind, mode).get(step) else {
            for &(i, _) in members {
                out[i] = Some(DirOutcome::Ok);
            }
            return;
        };
        if let [(i, target)] = members {
            // One change left: its own sequence, with every transition.
            out[*i] = Some(if step == 0 {
                self.run_direction(run, direction, zone, target)
            } else {
                self.send_one(run, direction, zone, step_kind, target)
            });
            return;
        }
        let mut tried = vec![step_kind];
        tried.extend(batch_alternative(step_kind, mode));
        for attempt in tried {
            let msg = group_message(attempt, mode, &zone.name, members);
            match self.send_to_zone(run, direction, zone, attempt, &msg) {
                Ok((_, Rcode::Success)) => {
                    return self.run_group(run, direction, key, step + 1, members, out);
                }
                // A reply we cannot use to a shared message (knotd answers
                // unsigned FORMERR to some messages near 64 KiB) may be the
                // message's own fault: halves are tried before retrying.
                Err(DirOutcome::Retry {
                    cause: RetryCause::BadResponse,
                    ..
                }) => {}
                Err(retry @ DirOutcome::Retry { .. }) => {
                    for &(i, _) in members {
                        out[i] = Some(retry.clone());
                    }
                    return;
                }
                // A failed prerequisite, a refusal, or a message that cannot
                // be built (too long): some member is the cause.
                Ok(_) | Err(_) => {}
            }
        }
        let (left, right) = members.split_at(members.len() / 2);
        self.run_group(run, direction, key, step, left, out);
        self.run_group(run, direction, key, step, right, out);
    }

    /// One message of one change (a reverse sequence, or a later step of
    /// a batched one), with the zone's servers in order.
    fn send_one(
        &self,
        run: &mut Run,
        direction: Direction,
        zone: &DdnsDomain,
        step: StepKind,
        target: &Target<'_>,
    ) -> DirOutcome {
        let msg = step_message(step, target.change.records.mode, &zone.name, target);
        match self.send_to_zone(run, direction, zone, step, &msg) {
            Ok((server, rcode)) => settle(server, Ok(rcode), also_ok(step)),
            Err(outcome) => outcome,
        }
    }

    /// Sends `msg` to the zone's servers in order until one gives an answer
    /// other than a retryable failure, and returns that server and answer;
    /// `Err` carries the last failure (a retry when every server failed
    /// that way).
    fn send_to_zone(
        &self,
        run: &mut Run,
        direction: Direction,
        zone: &DdnsDomain,
        kind: StepKind,
        msg: &Message,
    ) -> Result<(SocketAddr, Rcode), DirOutcome> {
        let mut last = DirOutcome::Invalid(format!("zone {} has no servers", zone.name));
        for (i, &server) in zone.servers.iter().enumerate() {
            let signer = self.signer(zone, i)?;
            let mut link = Link {
                run: &mut *run,
                direction,
                server,
                signer,
                cfg: self.cfg,
            };
            match link.send(kind, msg) {
                Ok(Rcode::ServFail) => last = fail(server, Ok(Rcode::ServFail)),
                Ok(rcode) => return Ok((server, rcode)),
                Err(failure) => match fail(server, Err(failure)) {
                    retry @ DirOutcome::Retry { .. } => last = retry,
                    other => return Err(other),
                },
            }
        }
        Err(last)
    }
}

fn finished(kind: ChangeKind) -> DoneKind {
    match kind {
        ChangeKind::Add => DoneKind::Published,
        ChangeKind::Remove => DoneKind::Removed,
    }
}

/// What a direction's outcome means for the change: `None` goes on.
fn conclude(direction: Direction, outcome: DirOutcome) -> Option<ApplyOutcome> {
    match outcome {
        DirOutcome::Ok => None,
        DirOutcome::Conflict(reason) => Some(ApplyOutcome::Done(DoneKind::Conflict { reason })),
        DirOutcome::Rejected { server, rcode } => Some(ApplyOutcome::Done(DoneKind::Rejected {
            direction,
            server,
            rcode,
        })),
        DirOutcome::Invalid(reason) => Some(ApplyOutcome::Done(DoneKind::Invalid { reason })),
        DirOutcome::Retry {
            server,
            cause,
            detail,
        } => Some(ApplyOutcome::Retry {
            direction,
            server,
            cause,
            detail,
        }),
    }
}

/// The messages of a direction's sequence that many changes can share, in
/// order. A group that passes all of them is done: the remaining
/// transitions of the sequences (replace after YXDOMAIN, ...) only happen
/// for changes isolated after a failure.
fn batch_steps(direction: Direction, kind: ChangeKind, mode: ConflictMode) -> &'static [StepKind] {
    match (direction, kind, mode.checks_ownership()) {
        (Direction::Forward, ChangeKind::Add, true) => &[StepKind::AddForward],
        (Direction::Forward, ChangeKind::Add, false) => &[StepKind::SetForward],
        (Direction::Forward, ChangeKind::Remove, true) => {
            &[StepKind::RemoveForwardAddress, StepKind::RemoveForwardRest]
        }
        (Direction::Forward, ChangeKind::Remove, false) => &[StepKind::ClearForward],
        (Direction::Reverse, ChangeKind::Add, _) => &[StepKind::ReplaceReverse],
        (Direction::Reverse, ChangeKind::Remove, _) => &[StepKind::RemoveReverse],
    }
}

/// A second message to try for a whole group before splitting it: names
/// that are all in use and all ours (renewals after a restart, a replayed
/// journal) are taken over in one message instead of one by one.
fn batch_alternative(step: StepKind, mode: ConflictMode) -> Option<StepKind> {
    (step == StepKind::AddForward && mode.checks_ownership()).then_some(StepKind::ReplaceForward)
}

/// Answers besides NOERROR that finish a step (the record was not there or
/// is not ours to remove).
fn also_ok(step: StepKind) -> &'static [Rcode] {
    match step {
        StepKind::RemoveForwardRest => &[Rcode::Nxrrset, Rcode::Yxrrset],
        StepKind::RemoveForwardAddress | StepKind::ClearForward | StepKind::RemoveReverse => {
            &[Rcode::Nxrrset]
        }
        StepKind::AddForward
        | StepKind::ReplaceForward
        | StepKind::SetForward
        | StepKind::ReplaceReverse => &[],
    }
}

/// One change's message for `step`.
fn step_message(step: StepKind, mode: ConflictMode, zone: &Name, t: &Target<'_>) -> Message {
    match step {
        StepKind::AddForward => forward_add_message(zone, t),
        StepKind::ReplaceForward => forward_replace_message(mode, zone, t),
        StepKind::SetForward => forward_set_message(mode, zone, t),
        StepKind::ReplaceReverse => reverse_add_message(mode, zone, t),
        StepKind::RemoveForwardAddress => forward_remove_address_message(mode, zone, t),
        StepKind::RemoveForwardRest => forward_remove_rest_message(mode, zone, t),
        StepKind::ClearForward => forward_clear_message(mode, zone, t),
        StepKind::RemoveReverse => reverse_remove_message(mode, zone, t),
    }
}

/// The members' messages for `step` as one UPDATE: every prerequisite must
/// hold for any update to apply (RFC 2136 section 3.2).
fn group_message(
    step: StepKind,
    mode: ConflictMode,
    zone: &Name,
    members: &Members<'_, '_>,
) -> Message {
    let mut msg = new_update(zone);
    for (_, target) in members {
        let one = step_message(step, mode, zone, target);
        msg.answers.extend(one.answers);
        msg.authorities.extend(one.authorities);
    }
    msg
}

/// Longest-suffix match; `Ok(None)` when the direction is not wanted or has
/// no zones at all, `Err(name)` when zones exist but none contains `name`.
pub(crate) fn pick<'z>(
    wanted: bool,
    zones: &'z [DdnsDomain],
    name: &Name,
) -> Result<Option<&'z DdnsDomain>, String> {
    if !wanted || zones.is_empty() {
        return Ok(None);
    }
    let labels: Vec<&[u8]> = name.iter().collect();
    DdnsDomain::longest_match(zones, &labels)
        .map(Some)
        .ok_or_else(|| name.to_string())
}

impl<'c> Target<'c> {
    fn new(change: &'c Change) -> Result<Self, String> {
        let mut fqdn = Name::from_ascii(&change.records.fqdn)
            .map_err(|e| format!("bad FQDN {:?}: {e}", change.records.fqdn))?;
        fqdn.set_fqdn(true);
        let reverse = reverse_name(change.records.addr)?;
        Ok(Self {
            change,
            fqdn,
            reverse,
        })
    }

    fn dhcid(&self) -> RData {
        RData::Unknown {
            code: DHCID,
            rdata: NULL::with(self.change.records.dhcid.clone()),
        }
    }

    /// The forward address record: A for a V4 address, AAAA for a V6 one.
    fn address(&self) -> RData {
        match self.change.records.addr {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        }
    }

    /// The type of [`Target::address`]: the only address RRset the
    /// change's messages replace or delete (the other family's is not ours).
    fn address_type(&self) -> RecordType {
        match self.change.records.addr {
            IpAddr::V4(_) => RecordType::A,
            IpAddr::V6(_) => RecordType::AAAA,
        }
    }

    fn ptr(&self) -> RData {
        RData::PTR(PTR(self.fqdn.clone()))
    }
}

/// The in-addr.arpa or ip6.arpa name of `addr` (see `change::reverse_name`).
pub fn reverse_name(addr: IpAddr) -> Result<Name, String> {
    Name::from_ascii(crate::change::reverse_name(addr))
        .map_err(|e| format!("reverse name of {addr}: {e}"))
}

/// One server of one direction, with the bookkeeping of the run.
struct Link<'r, 's> {
    run: &'r mut Run,
    direction: Direction,
    server: SocketAddr,
    signer: Option<&'s TsigSigner>,
    cfg: &'s Config,
}

impl Link<'_, '_> {
    fn send(&mut self, kind: StepKind, msg: &Message) -> StepAnswer {
        let result = dns::exchange(
            msg,
            self.signer,
            self.server,
            self.cfg.transport,
            self.cfg.dns_server_timeout,
        );
        let stats = &mut self.run.stats;
        // A request that could not be built (too long) never left.
        if !matches!(result, Err(ExchangeError::Request(_))) {
            stats.sent += 1;
        }
        let step = match result {
            Ok(response) => {
                stats.ignored_replies += response.ignored;
                let rcode = response.rcode;
                if rcode == Rcode::Success {
                    stats.succeeded += 1;
                } else if rcode.is_prerequisite_failure() {
                    stats.prerequisite_failed += 1;
                } else if rcode.is_refusal() {
                    stats.refused += 1;
                } else {
                    stats.failed += 1;
                }
                StepResult::Answer(rcode)
            }
            Err(err) => {
                if let ExchangeError::Timeout { ignored } = err {
                    stats.timeouts += 1;
                    stats.ignored_replies += ignored;
                } else {
                    stats.failed += 1;
                }
                StepResult::Failed(err)
            }
        };
        debug!(direction = ?self.direction, ?kind, server = %self.server, result = ?step, "DNS update step");
        let summary = match &step {
            StepResult::Answer(rcode) => Ok(*rcode),
            StepResult::Failed(err) => Err(Failure::of(err, step.is_retryable())),
        };
        self.run.steps.push(StepRecord {
            direction: self.direction,
            kind,
            server: self.server,
            result: step,
        });
        summary
    }
}

/// A step's result as the state machines consume it.
type StepAnswer = Result<Rcode, Failure>;

struct Failure {
    cause: Option<RetryCause>,
    detail: String,
}

impl Failure {
    fn of(err: &ExchangeError, retryable: bool) -> Self {
        let cause = match err {
            ExchangeError::Timeout { .. } => Some(RetryCause::Timeout),
            ExchangeError::ConnectionRefused => Some(RetryCause::ConnectionRefused),
            ExchangeError::Unreachable(_) => Some(RetryCause::Unreachable),
            ExchangeError::Io(_) => Some(RetryCause::Io),
            ExchangeError::BadResponse(_) => Some(RetryCause::BadResponse),
            ExchangeError::Request(_) => None,
        };
        Self {
            cause: cause.filter(|_| retryable),
            detail: err.to_string(),
        }
    }
}

/// Maps a final step: NOERROR and the `also_ok` rcodes finish the direction.
fn settle(server: SocketAddr, result: StepAnswer, also_ok: &[Rcode]) -> DirOutcome {
    match result {
        Ok(Rcode::Success) => DirOutcome::Ok,
        Ok(rcode) if also_ok.contains(&rcode) => DirOutcome::Ok,
        other => fail(server, other),
    }
}

/// Any answer the state machine has no transition for.
fn fail(server: SocketAddr, result: StepAnswer) -> DirOutcome {
    match result {
        Ok(Rcode::ServFail) => DirOutcome::Retry {
            server,
            cause: RetryCause::ServFail,
            detail: "SERVFAIL".into(),
        },
        Ok(rcode) => DirOutcome::Rejected { server, rcode },
        Err(Failure {
            cause: Some(cause),
            detail,
        }) => DirOutcome::Retry {
            server,
            cause,
            detail,
        },
        Err(Failure {
            cause: None,
            detail,
        }) => DirOutcome::Invalid(detail),
    }
}

fn forward_add(
    link: &mut Link<'_, '_>,
    mode: ConflictMode,
    zone: &Name,
    t: &Target<'_>,
) -> DirOutcome {
    let server = link.server;
    if !mode.checks_ownership() {
        let msg = forward_set_message(mode, zone, t);
        return settle(server, link.send(StepKind::SetForward, &msg), &[]);
    }
    for _ in 0..MAX_ADD_ROUNDS {
        match link.send(StepKind::AddForward, &forward_add_message(zone, t)) {
            Ok(Rcode::Success) => return DirOutcome::Ok,
            Ok(Rcode::Yxdomain) => {}
            other => return fail(server, other),
        }
        match link.send(
            StepKind::ReplaceForward,
            &forward_replace_message(mode, zone, t),
        ) {
            Ok(Rcode::Success) => return DirOutcome::Ok,
            // The name vanished since the add: add again (RFC 4703 / D2).
            Ok(Rcode::Nxdomain) => continue,
            Ok(Rcode::Nxrrset) => {
                return DirOutcome::Conflict(format!(
                    "{} is in use and its DHCID is {} (another client or a static record)",
                    t.fqdn,
                    if mode == ConflictMode::CheckExistsWithDhcid {
                        "missing"
                    } else {
                        "missing or not ours"
                    }
                ));
            }
            other => return fail(server, other),
        }
    }
    DirOutcome::Retry {
        server,
        cause: RetryCause::Unstable,
        detail: format!("{} kept appearing and vanishing", t.fqdn),
    }
}

fn forward_remove(
    link: &mut Link<'_, '_>,
    mode: ConflictMode,
    zone: &Name,
    t: &Target<'_>,
) -> DirOutcome {
    let server = link.server;
    if !mode.checks_ownership() {
        let msg = forward_clear_message(mode, zone, t);
        return settle(
            server,
            link.send(StepKind::ClearForward, &msg),
            &[Rcode::Nxrrset],
        );
    }
    // NXRRSET: not ours, or already gone. D2 goes on either way; the second
    // message carries the same ownership prerequisite.
    match link.send(
        StepKind::RemoveForwardAddress,
        &forward_remove_address_message(mode, zone, t),
    ) {
        Ok(Rcode::Success | Rcode::Nxrrset) => {}
        other => return fail(server, other),
    }
    // YXRRSET: an address RR is still there (another address of the name,
    // or the name is not ours), so the name stays (RFC 4703 section 5.5).
    // D2 fails the transaction here and skips the reverse removal; the PTR
    // of our address is stale either way, so we go on to remove it.
    let msg = forward_remove_rest_message(mode, zone, t);
    settle(
        server,
        link.send(StepKind::RemoveForwardRest, &msg),
        &[Rcode::Nxrrset, Rcode::Yxrrset],
    )
}

#[derive(Default)]
struct Run {
    steps: Vec<StepRecord>,
    stats: UpdateStats,
}

// ---- Message construction (RFC 2136 section 2.4/2.5 encodings) ----

fn new_update(zone: &Name) -> Message {
    let mut msg = Message::new(0, MessageType::Query, OpCode::Update);
    let mut query = Query::query(zone.clone(), RecordType::SOA);
    query.set_query_class(DNSClass::IN);
    msg.add_zone(query);
    msg
}

fn with_class(mut record: Record, class: DNSClass) -> Record {
    record.dns_class = class;
    record
}

/// Prerequisite "name is not in use" (2.4.5).
fn name_not_in_use(name: &Name) -> Record {
    with_class(
        Record::update0(name.clone(), 0, RecordType::ANY),
        DNSClass::NONE,
    )
}

/// Prerequisite "name is in use" (2.4.4).
fn name_in_use(name: &Name) -> Record {
    with_class(
        Record::update0(name.clone(), 0, RecordType::ANY),
        DNSClass::ANY,
    )
}

/// Prerequisite "RRset exists, value independent" (2.4.1).
fn rrset_exists(name: &Name, rtype: RecordType) -> Record {
    with_class(Record::update0(name.clone(), 0, rtype), DNSClass::ANY)
}

/// Prerequisite "RRset does not exist" (2.4.3).
fn rrset_absent(name: &Name, rtype: RecordType) -> Record {
    with_class(Record::update0(name.clone(), 0, rtype), DNSClass::NONE)
}

/// Prerequisite "RRset exists, value dependent" (2.4.2).
fn rr_present(name: &Name, rdata: RData) -> Record {
    Record::from_rdata(name.clone(), 0, rdata)
}

/// Update "add to an RRset" (2.5.1).
fn add(name: &Name, ttl: u32, rdata: RData) -> Record {
    Record::from_rdata(name.clone(), ttl, rdata)
}

/// Update "delete an RRset" (2.5.2).
fn delete_rrset(name: &Name, rtype: RecordType) -> Record {
    with_class(Record::update0(name.clone(), 0, rtype), DNSClass::ANY)
}

/// Update "delete all RRsets from a name" (2.5.3).
fn delete_name(name: &Name) -> Record {
    with_class(
        Record::update0(name.clone(), 0, RecordType::ANY),
        DNSClass::ANY,
    )
}

/// Update "delete an RR from an RRset" (2.5.4).
fn delete_rr(name: &Name, rdata: RData) -> Record {
    with_class(Record::from_rdata(name.clone(), 0, rdata), DNSClass::NONE)
}

/// RFC 4703 5.3.1 (all checking modes): add A or AAAA + DHCID if the name is free.
fn forward_add_message(zone: &Name, t: &Target<'_>) -> Message {
    let mut msg = new_update(zone);
    msg.add_pre_requisite(name_not_in_use(&t.fqdn));
    msg.add_update(add(&t.fqdn, t.change.records.ttl, t.address()));
    msg.add_update(add(&t.fqdn, t.change.records.ttl, t.dhcid()));
    msg
}

/// RFC 4703 5.3.2: the name is in use; take it over only if it is ours
/// (check-with-dhcid: our DHCID value; check-exists: any DHCID). Only the
/// change's own address RRset is replaced: a dual-stack name keeps the
/// other family's address.
fn forward_replace_message(mode: ConflictMode, zone: &Name, t: &Target<'_>) -> Message {
    let mut msg = new_update(zone);
    if mode == ConflictMode::CheckExistsWithDhcid {
        msg.add_pre_requisite(rrset_exists(&t.fqdn, DHCID));
        msg.add_update(delete_rrset(&t.fqdn, t.address_type()));
        msg.add_update(delete_rrset(&t.fqdn, DHCID));
        msg.add_update(add(&t.fqdn, t.change.records.ttl, t.address()));
        msg.add_update(add(&t.fqdn, t.change.records.ttl, t.dhcid()));
    } else {
        msg.add_pre_requisite(name_in_use(&t.fqdn));
        msg.add_pre_requisite(rr_present(&t.fqdn, t.dhcid()));
        msg.add_update(delete_rrset(&t.fqdn, t.address_type()));
        msg.add_update(add(&t.fqdn, t.change.records.ttl, t.address()));
    }
    msg
}

/// No-check modes: overwrite whatever is there.
fn forward_set_message(mode: ConflictMode, zone: &Name, t: &Target<'_>) -> Message {
    replace_message(mode, zone, &t.fqdn, t.address_type(), t.address(), t)
}

/// RFC 4703 5.4: the reverse name is replaced without prerequisites in
/// every mode (the forward step already established ownership).
fn reverse_add_message(mode: ConflictMode, zone: &Name, t: &Target<'_>) -> Message {
    replace_message(mode, zone, &t.reverse, RecordType::PTR, t.ptr(), t)
}

/// Replaces the `rtype` RRset at `name` by `rdata`, and the DHCID RRset by
/// ours unless the mode keeps no DHCID.
fn replace_message(
    mode: ConflictMode,
    zone: &Name,
    name: &Name,
    rtype: RecordType,
    rdata: RData,
    t: &Target<'_>,
) -> Message {
    let with_dhcid = mode != ConflictMode::NoCheckWithoutDhcid;
    let mut msg = new_update(zone);
    msg.add_update(delete_rrset(name, rtype));
    if with_dhcid {
        msg.add_update(delete_rrset(name, DHCID));
    }
    msg.add_update(add(name, t.change.records.ttl, rdata));
    if with_dhcid {
        msg.add_update(add(name, t.change.records.ttl, t.dhcid()));
    }
    msg
}

/// RFC 4703 5.5 paragraph 4: delete our address if the name is ours.
fn forward_remove_address_message(mode: ConflictMode, zone: &Name, t: &Target<'_>) -> Message {
    let mut msg = new_update(zone);
    if mode == ConflictMode::CheckExistsWithDhcid {
        msg.add_pre_requisite(rrset_exists(&t.fqdn, DHCID));
    } else {
        msg.add_pre_requisite(rr_present(&t.fqdn, t.dhcid()));
    }
    msg.add_update(delete_rr(&t.fqdn, t.address()));
    msg
}

/// RFC 4703 5.5 paragraph 5: once no address is left, remove the rest
/// (check-with-dhcid: the whole name, if ours; check-exists: the DHCID).
fn forward_remove_rest_message(mode: ConflictMode, zone: &Name, t: &Target<'_>) -> Message {
    let mut msg = new_update(zone);
    if mode == ConflictMode::CheckExistsWithDhcid {
        msg.add_pre_requisite(rrset_absent(&t.fqdn, RecordType::A));
        msg.add_pre_requisite(rrset_absent(&t.fqdn, RecordType::AAAA));
        msg.add_update(delete_rrset(&t.fqdn, DHCID));
    } else {
        msg.add_pre_requisite(rr_present(&t.fqdn, t.dhcid()));
        msg.add_pre_requisite(rrset_absent(&t.fqdn, RecordType::A));
        msg.add_pre_requisite(rrset_absent(&t.fqdn, RecordType::AAAA));
        msg.add_update(delete_name(&t.fqdn));
    }
    msg
}

/// No-check modes: delete the A or AAAA (and DHCID) RRsets outright.
fn forward_clear_message(mode: ConflictMode, zone: &Name, t: &Target<'_>) -> Message {
    let mut msg = new_update(zone);
    msg.add_update(delete_rrset(&t.fqdn, t.address_type()));
    if mode != ConflictMode::NoCheckWithoutDhcid {
        msg.add_update(delete_rrset(&t.fqdn, DHCID));
    }
    msg
}

/// Checking modes: delete everything at the reverse name if its PTR points
/// to our FQDN (RFC 4703 5.5 paragraph 2; no DHCID check for PTRs, 5.4).
/// No-check modes: delete the PTR (and DHCID) RRsets outright.
fn reverse_remove_message(mode: ConflictMode, zone: &Name, t: &Target<'_>) -> Message {
    let mut msg = new_update(zone);
    match mode {
        ConflictMode::CheckWithDhcid | ConflictMode::CheckExistsWithDhcid => {
            msg.add_pre_requisite(rr_present(&t.reverse, t.ptr()));
            msg.add_update(delete_name(&t.reverse));
        }
        ConflictMode::NoCheckWithDhcid => {
            msg.add_update(delete_rrset(&t.reverse, RecordType::PTR));
            msg.add_update(delete_rrset(&t.reverse, DHCID));
        }
        ConflictMode::NoCheckWithoutDhcid => {
            msg.add_update(delete_rrset(&t.reverse, RecordType::PTR));
        }
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use std::time::Duration;

    fn target(c: &Change) -> Target<'_> {
        Target::new(c).unwrap()
    }

    fn shape(records: &[Record]) -> Vec<(String, DNSClass, RecordType, u32)> {
        records
            .iter()
            .map(|r| (r.name.to_string(), r.dns_class, r.record_type(), r.ttl))
            .collect()
    }

    #[test]
    fn forward_add_has_name_not_in_use_and_adds_a_and_dhcid() {
        let c = change(ChangeKind::Add, FQDN, [10, 77, 0, 5], DHCID_A);
        let msg = forward_add_message(&name("lan.example."), &target(&c));
        assert_eq!(msg.metadata.op_code, OpCode::Update);
        let zone = &msg.zones()[0];
        assert_eq!(zone.name(), &name("lan.example."));
        assert_eq!(zone.query_type(), RecordType::SOA);
        assert_eq!(zone.query_class(), DNSClass::IN);
        assert_eq!(
            shape(msg.prerequisites()),
            vec![(FQDN.into(), DNSClass::NONE, RecordType::ANY, 0)]
        );
        assert_eq!(
            shape(msg.updates()),
            vec![
                (FQDN.into(), DNSClass::IN, RecordType::A, 1200),
                (FQDN.into(), DNSClass::IN, DHCID, 1200),
            ]
        );
        assert_eq!(msg.updates()[0].data, RData::A(A([10, 77, 0, 5].into())));
        match &msg.updates()[1].data {
            RData::Unknown { rdata, .. } => assert_eq!(rdata, &NULL::with(DHCID_A.to_vec())),
            other => panic!("{other:?}"),
        }
        // The encodings survive the wire (class NONE/ANY, empty rdata).
        let back = Message::from_vec(&msg.to_vec().unwrap()).unwrap();
        assert_eq!(shape(back.prerequisites()), shape(msg.prerequisites()));
        assert_eq!(shape(back.updates()), shape(msg.updates()));
    }

    #[test]
    fn forward_replace_depends_on_mode() {
        let c = change(ChangeKind::Add, FQDN, [10, 77, 0, 5], DHCID_A);
        let t = target(&c);
        let zone = name("lan.example.");
        let msg = forward_replace_message(ConflictMode::CheckWithDhcid, &zone, &t);
        assert_eq!(
            shape(msg.prerequisites()),
            vec![
                (FQDN.into(), DNSClass::ANY, RecordType::ANY, 0),
                (FQDN.into(), DNSClass::IN, DHCID, 0),
            ]
        );
        assert_eq!(msg.prerequisites()[1].data, t.dhcid());
        assert_eq!(
            shape(msg.updates()),
            vec![
                (FQDN.into(), DNSClass::ANY, RecordType::A, 0),
                (FQDN.into(), DNSClass::IN, RecordType::A, 1200),
            ]
        );

        let msg = forward_replace_message(ConflictMode::CheckExistsWithDhcid, &zone, &t);
        assert_eq!(
            shape(msg.prerequisites()),
            vec![(FQDN.into(), DNSClass::ANY, DHCID, 0)]
        );
        assert_eq!(msg.prerequisites()[0].data, RData::Update0(DHCID));
        assert_eq!(
            shape(msg.updates()),
            vec![
                (FQDN.into(), DNSClass::ANY, RecordType::A, 0),
                (FQDN.into(), DNSClass::ANY, DHCID, 0),
                (FQDN.into(), DNSClass::IN, RecordType::A, 1200),
                (FQDN.into(), DNSClass::IN, DHCID, 1200),
            ]
        );
    }

    #[test]
    fn no_check_modes_have_no_prerequisites() {
        let c = change(ChangeKind::Add, FQDN, [10, 77, 0, 5], DHCID_A);
        let t = target(&c);
        let zone = name("lan.example.");
        let rzone = name("77.10.in-addr.arpa.");
        let msg = forward_set_message(ConflictMode::NoCheckWithDhcid, &zone, &t);
        assert!(msg.prerequisites().is_empty());
        assert_eq!(
            shape(msg.updates()),
            vec![
                (FQDN.into(), DNSClass::ANY, RecordType::A, 0),
                (FQDN.into(), DNSClass::ANY, DHCID, 0),
                (FQDN.into(), DNSClass::IN, RecordType::A, 1200),
                (FQDN.into(), DNSClass::IN, DHCID, 1200),
            ]
        );
        let msg = forward_set_message(ConflictMode::NoCheckWithoutDhcid, &zone, &t);
        assert_eq!(
            shape(msg.updates()),
            vec![
                (FQDN.into(), DNSClass::ANY, RecordType::A, 0),
                (FQDN.into(), DNSClass::IN, RecordType::A, 1200),
            ]
        );
        let msg = forward_clear_message(ConflictMode::NoCheckWithDhcid, &zone, &t);
        assert!(msg.prerequisites().is_empty());
        assert_eq!(
            shape(msg.updates()),
            vec![
                (FQDN.into(), DNSClass::ANY, RecordType::A, 0),
                (FQDN.into(), DNSClass::ANY, DHCID, 0),
            ]
        );
        let msg = reverse_remove_message(ConflictMode::NoCheckWithoutDhcid, &rzone, &t);
        assert!(msg.prerequisites().is_empty());
        assert_eq!(
            shape(msg.updates()),
            vec![(REV.into(), DNSClass::ANY, RecordType::PTR, 0)]
        );
    }

    #[test]
    fn reverse_add_replaces_without_prerequisites() {
        let c = change(ChangeKind::Add, FQDN, [10, 77, 0, 5], DHCID_A);
        let t = target(&c);
        let msg = reverse_add_message(
            ConflictMode::CheckWithDhcid,
            &name("77.10.in-addr.arpa."),
            &t,
        );
        assert_eq!(msg.zones()[0].name(), &name("77.10.in-addr.arpa."));
        assert!(msg.prerequisites().is_empty());
        assert_eq!(
            shape(msg.updates()),
            vec![
                (REV.into(), DNSClass::ANY, RecordType::PTR, 0),
                (REV.into(), DNSClass::ANY, DHCID, 0),
                (REV.into(), DNSClass::IN, RecordType::PTR, 1200),
                (REV.into(), DNSClass::IN, DHCID, 1200),
            ]
        );
        assert_eq!(msg.updates()[2].data, RData::PTR(PTR(name(FQDN))));
        let msg = reverse_add_message(
            ConflictMode::NoCheckWithoutDhcid,
            &name("77.10.in-addr.arpa."),
            &t,
        );
        assert_eq!(msg.updates().len(), 2);
    }

    #[test]
    fn removal_messages_follow_d2() {
        let c = change(ChangeKind::Remove, FQDN, [10, 77, 0, 5], DHCID_A);
        let t = target(&c);
        let zone = name("lan.example.");
        let msg = forward_remove_address_message(ConflictMode::CheckWithDhcid, &zone, &t);
        assert_eq!(
            shape(msg.prerequisites()),
            vec![(FQDN.into(), DNSClass::IN, DHCID, 0)]
        );
        assert_eq!(
            shape(msg.updates()),
            vec![(FQDN.into(), DNSClass::NONE, RecordType::A, 0)]
        );
        assert_eq!(msg.updates()[0].data, t.address());

        let msg = forward_remove_rest_message(ConflictMode::CheckWithDhcid, &zone, &t);
        assert_eq!(
            shape(msg.prerequisites()),
            vec![
                (FQDN.into(), DNSClass::IN, DHCID, 0),
                (FQDN.into(), DNSClass::NONE, RecordType::A, 0),
                (FQDN.into(), DNSClass::NONE, RecordType::AAAA, 0),
            ]
        );
        assert_eq!(
            shape(msg.updates()),
            vec![(FQDN.into(), DNSClass::ANY, RecordType::ANY, 0)]
        );

        let msg = forward_remove_address_message(ConflictMode::CheckExistsWithDhcid, &zone, &t);
        assert_eq!(
            shape(msg.prerequisites()),
            vec![(FQDN.into(), DNSClass::ANY, DHCID, 0)]
        );
        let msg = forward_remove_rest_message(ConflictMode::CheckExistsWithDhcid, &zone, &t);
        assert_eq!(msg.prerequisites().len(), 2);
        assert_eq!(
            shape(msg.updates()),
            vec![(FQDN.into(), DNSClass::ANY, DHCID, 0)]
        );

        let msg = reverse_remove_message(
            ConflictMode::CheckWithDhcid,
            &name("77.10.in-addr.arpa."),
            &t,
        );
        assert_eq!(
            shape(msg.prerequisites()),
            vec![(REV.into(), DNSClass::IN, RecordType::PTR, 0)]
        );
        assert_eq!(msg.prerequisites()[0].data, t.ptr());
        assert_eq!(
            shape(msg.updates()),
            vec![(REV.into(), DNSClass::ANY, RecordType::ANY, 0)]
        );
    }

    #[test]
    fn zone_pick_is_longest_suffix() {
        let s: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let zones = vec![
            domain("example.", None, vec![s]),
            domain("lan.example.", None, vec![s]),
            domain("other.", None, vec![s]),
        ];
        let picked = pick(true, &zones, &name("a.lan.example."))
            .unwrap()
            .unwrap();
        assert_eq!(picked.name, name("lan.example."));
        let picked = pick(true, &zones, &name("a.wan.example."))
            .unwrap()
            .unwrap();
        assert_eq!(picked.name, name("example."));
        assert_eq!(
            pick(true, &zones, &name("a.nowhere.")).unwrap_err(),
            "a.nowhere."
        );
        assert!(
            pick(false, &zones, &name("a.lan.example."))
                .unwrap()
                .is_none()
        );
        assert!(pick(true, &[], &name("a.lan.example.")).unwrap().is_none());
        assert_eq!(
            reverse_name(IpAddr::from([10, 77, 0, 5])).unwrap(),
            name(REV)
        );
    }

    #[test]
    fn ip6_arpa_zones_of_any_nibble_boundary_are_picked() {
        let s: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let zones = vec![
            domain("77.10.in-addr.arpa.", None, vec![s]),
            domain("d.f.ip6.arpa.", None, vec![s]),
            domain(REV6_ZONE, None, vec![s]),
            domain("0.0.0.0.0.0.0.0.7.7.d.f.ip6.arpa.", None, vec![s]),
            domain("1.0.0.0.7.7.d.f.ip6.arpa.", None, vec![s]),
        ];
        let rev6 = reverse_name(IpAddr::from(ADDR6)).unwrap();
        assert_eq!(rev6, name(REV6));
        assert_eq!(rev6.num_labels(), 34);
        let zone_of = |addr: &str| {
            let addr: IpAddr = addr.parse().unwrap();
            let picked = pick(true, &zones, &reverse_name(addr).unwrap());
            picked.unwrap().unwrap().name.to_string()
        };
        assert_eq!(zone_of("fd77::5"), "0.0.0.0.0.0.0.0.7.7.d.f.ip6.arpa.");
        assert_eq!(zone_of("fd77:1::5"), "1.0.0.0.7.7.d.f.ip6.arpa.");
        assert_eq!(zone_of("fd77:2::5"), REV6_ZONE);
        assert_eq!(zone_of("fd78::5"), "d.f.ip6.arpa.");
        assert_eq!(zone_of("10.77.0.5"), "77.10.in-addr.arpa.");
        let elsewhere = reverse_name("2001:db8::1".parse().unwrap()).unwrap();
        assert!(pick(true, &zones, &elsewhere).is_err());
    }

    /// A V6 change's messages carry AAAA where a V4 change's carry A, and
    /// delete the AAAA RRset only, never the name's A; its PTR is in ip6.arpa.
    #[test]
    fn aaaa_messages_have_the_shapes_of_a_messages() {
        let add = change(ChangeKind::Add, FQDN, ADDR6, DHCID_A);
        let t = target(&add);
        let zone = name("lan.example.");
        let (any, none, inn) = (DNSClass::ANY, DNSClass::NONE, DNSClass::IN);
        let aaaa = RecordType::AAAA;
        let f = |class, rtype, ttl| (FQDN.to_string(), class, rtype, ttl);

        let msg = forward_add_message(&zone, &t);
        assert_eq!(
            shape(msg.prerequisites()),
            vec![f(none, RecordType::ANY, 0)]
        );
        assert_eq!(
            shape(msg.updates()),
            vec![f(inn, aaaa, 1200), f(inn, DHCID, 1200)]
        );
        assert_eq!(msg.updates()[0].data, RData::AAAA(AAAA(ADDR6.into())));

        let msg = forward_replace_message(ConflictMode::CheckWithDhcid, &zone, &t);
        assert_eq!(
            shape(msg.prerequisites()),
            vec![f(any, RecordType::ANY, 0), f(inn, DHCID, 0)]
        );
        assert_eq!(
            shape(msg.updates()),
            vec![f(any, aaaa, 0), f(inn, aaaa, 1200)]
        );
        let msg = forward_replace_message(ConflictMode::CheckExistsWithDhcid, &zone, &t);
        assert_eq!(
            shape(msg.updates()),
            vec![
                f(any, aaaa, 0),
                f(any, DHCID, 0),
                f(inn, aaaa, 1200),
                f(inn, DHCID, 1200)
            ]
        );
        let msg = forward_set_message(ConflictMode::NoCheckWithoutDhcid, &zone, &t);
        assert_eq!(
            shape(msg.updates()),
            vec![f(any, aaaa, 0), f(inn, aaaa, 1200)]
        );

        let msg = reverse_add_message(ConflictMode::CheckWithDhcid, &name(REV6_ZONE), &t);
        assert_eq!(msg.zones()[0].name(), &name(REV6_ZONE));
        let r = |class, rtype, ttl| (REV6.to_string(), class, rtype, ttl);
        assert_eq!(
            shape(msg.updates()),
            vec![
                r(any, RecordType::PTR, 0),
                r(any, DHCID, 0),
                r(inn, RecordType::PTR, 1200),
                r(inn, DHCID, 1200),
            ]
        );
        assert_eq!(msg.updates()[2].data, RData::PTR(PTR(name(FQDN))));

        let remove = change(ChangeKind::Remove, FQDN, ADDR6, DHCID_A);
        let t = target(&remove);
        let msg = forward_remove_address_message(ConflictMode::CheckWithDhcid, &zone, &t);
        assert_eq!(shape(msg.updates()), vec![f(none, aaaa, 0)]);
        assert_eq!(msg.updates()[0].data, RData::AAAA(AAAA(ADDR6.into())));
        // No address of either family may remain before the rest goes.
        let msg = forward_remove_rest_message(ConflictMode::CheckWithDhcid, &zone, &t);
        assert_eq!(
            shape(msg.prerequisites()),
            vec![
                f(inn, DHCID, 0),
                f(none, RecordType::A, 0),
                f(none, aaaa, 0)
            ]
        );
        let msg = forward_clear_message(ConflictMode::NoCheckWithDhcid, &zone, &t);
        assert_eq!(
            shape(msg.updates()),
            vec![f(any, aaaa, 0), f(any, DHCID, 0)]
        );
        let msg = reverse_remove_message(ConflictMode::CheckWithDhcid, &name(REV6_ZONE), &t);
        assert_eq!(shape(msg.prerequisites()), vec![r(inn, RecordType::PTR, 0)]);
        assert_eq!(shape(msg.updates()), vec![r(any, RecordType::ANY, 0)]);
        // The wire keeps AAAA and the 34-label name.
        let back = Message::from_vec(&msg.to_vec().unwrap()).unwrap();
        assert_eq!(shape(back.prerequisites()), shape(msg.prerequisites()));
    }

    #[test]
    fn no_zone_and_invalid_changes_send_nothing() {
        let s: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let cfg = config(
            vec![domain("lan.example.", None, vec![s])],
            vec![domain("77.10.in-addr.arpa.", None, vec![s])],
        );
        let exec = UpdateExecutor::new(&cfg);
        let applied = exec.apply(&change(
            ChangeKind::Add,
            "x.other.",
            [10, 77, 0, 5],
            DHCID_A,
        ));
        assert_eq!(
            applied.outcome,
            ApplyOutcome::Done(DoneKind::NoZone {
                name: "x.other.".into()
            })
        );
        // The forward zone matches but the reverse one does not: D2 drops it whole.
        let applied = exec.apply(&change(ChangeKind::Add, FQDN, [192, 0, 2, 1], DHCID_A));
        assert!(matches!(
            applied.outcome,
            ApplyOutcome::Done(DoneKind::NoZone { .. })
        ));
        assert_eq!(applied.stats.sent, 0);
        let applied = exec.apply(&change(ChangeKind::Add, FQDN, [10, 77, 0, 5], &[]));
        assert!(matches!(
            applied.outcome,
            ApplyOutcome::Done(DoneKind::Invalid { .. })
        ));
        assert_eq!(applied.stats.sent, 0);
    }

    // ---- Batches against fake servers (no knotd needed) ----

    /// A server that answers NOERROR to every UPDATE and hands back the
    /// requests it got once none came for a while.
    fn recording_server() -> (SocketAddr, std::thread::JoinHandle<Vec<Message>>) {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let mut buf = [0u8; 65535];
            server
                .set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let mut got = Vec::new();
            while let Ok((n, from)) = server.recv_from(&mut buf) {
                got.push(Message::from_vec(&buf[..n]).unwrap());
                let mut reply = buf[..12].to_vec();
                reply[2] |= 0x80; // QR, opcode kept
                reply[3] &= 0xf0; // NOERROR
                reply[4..12].fill(0); // no sections
                server.send_to(&reply, from).unwrap();
            }
            got
        });
        (addr, handle)
    }

    /// The messages' zones and prerequisite and update shapes, in order.
    type Shapes = Vec<(
        String,
        Vec<(String, DNSClass, RecordType, u32)>,
        Vec<(String, DNSClass, RecordType, u32)>,
    )>;

    fn shapes(messages: &[Message]) -> Shapes {
        messages
            .iter()
            .map(|m| {
                (
                    m.zones()[0].name().to_string(),
                    shape(m.prerequisites()),
                    shape(m.updates()),
                )
            })
            .collect()
    }

    /// Builds `b<i>.lan.example.` -> 10.77.9.(i + 1) in `mode` for each
    /// mode in order; the DHCID is empty in no-check-without-dhcid.
    fn mixed(kind: ChangeKind, modes: &[ConflictMode]) -> Vec<Change> {
        modes
            .iter()
            .enumerate()
            .map(|(i, &mode)| {
                let dhcid = if mode == ConflictMode::NoCheckWithoutDhcid {
                    &[][..]
                } else {
                    DHCID_A
                };
                let fqdn = format!("b{i}.lan.example.");
                in_mode(mode, change(kind, &fqdn, [10, 77, 9, i as u8 + 1], dhcid))
            })
            .collect()
    }

    fn fwd(
        i: usize,
        class: DNSClass,
        rtype: RecordType,
        ttl: u32,
    ) -> (String, DNSClass, RecordType, u32) {
        (format!("b{i}.lan.example."), class, rtype, ttl)
    }

    fn rev(
        i: usize,
        class: DNSClass,
        rtype: RecordType,
        ttl: u32,
    ) -> (String, DNSClass, RecordType, u32) {
        (
            format!("{}.9.77.10.in-addr.arpa.", i + 1),
            class,
            rtype,
            ttl,
        )
    }

    #[test]
    fn a_batch_of_two_modes_sends_one_message_per_mode() {
        use ConflictMode::{CheckWithDhcid as Check, NoCheckWithoutDhcid as NoDhcid};
        let (addr, server) = recording_server();
        // The configuration's mode is neither: each change's own counts.
        let cfg = config(
            vec![domain("lan.example.", None, vec![addr])],
            vec![domain("77.10.in-addr.arpa.", None, vec![addr])],
        );
        let changes = mixed(ChangeKind::Add, &[Check, NoDhcid, Check, NoDhcid]);
        let refs: Vec<&Change> = changes.iter().collect();
        let applied = UpdateExecutor::new(&cfg).apply_batch(&refs);
        assert!(
            applied
                .outcomes
                .iter()
                .all(|o| *o == ApplyOutcome::Done(DoneKind::Published)),
            "{:?}",
            applied.outcomes
        );
        assert_eq!(applied.stats.sent, 4);
        let (any, none, inn) = (DNSClass::ANY, DNSClass::NONE, DNSClass::IN);
        let (a, ptr) = (RecordType::A, RecordType::PTR);
        let lan = "lan.example.".to_string();
        let arpa = "77.10.in-addr.arpa.".to_string();
        assert_eq!(
            shapes(&server.join().unwrap()),
            vec![
                // check-with-dhcid: add where the name is not in use.
                (
                    lan.clone(),
                    vec![
                        fwd(0, none, RecordType::ANY, 0),
                        fwd(2, none, RecordType::ANY, 0)
                    ],
                    vec![
                        fwd(0, inn, a, 1200),
                        fwd(0, inn, DHCID, 1200),
                        fwd(2, inn, a, 1200),
                        fwd(2, inn, DHCID, 1200),
                    ],
                ),
                // no-check-without-dhcid: replace the A RRset, no DHCID.
                (
                    lan,
                    vec![],
                    vec![
                        fwd(1, any, a, 0),
                        fwd(1, inn, a, 1200),
                        fwd(3, any, a, 0),
                        fwd(3, inn, a, 1200),
                    ],
                ),
                (
                    arpa.clone(),
                    vec![],
                    vec![
                        rev(0, any, ptr, 0),
                        rev(0, any, DHCID, 0),
                        rev(0, inn, ptr, 1200),
                        rev(0, inn, DHCID, 1200),
                        rev(2, any, ptr, 0),
                        rev(2, any, DHCID, 0),
                        rev(2, inn, ptr, 1200),
                        rev(2, inn, DHCID, 1200),
                    ],
                ),
                (
                    arpa,
                    vec![],
                    vec![
                        rev(1, any, ptr, 0),
                        rev(1, inn, ptr, 1200),
                        rev(3, any, ptr, 0),
                        rev(3, inn, ptr, 1200),
                    ],
                ),
            ]
        );
    }

    /// A batch of both families (a dual-stack host's names, or a replayed
    /// journal) sends one message per family: the no-check replace of a V4
    /// name deletes A only and never shares a message with AAAA changes.
    #[test]
    fn a_batch_of_both_families_sends_one_message_per_family() {
        let (addr, server) = recording_server();
        let cfg = config(
            vec![domain("lan.example.", None, vec![addr])],
            vec![
                domain("77.10.in-addr.arpa.", None, vec![addr]),
                domain(REV6_ZONE, None, vec![addr]),
            ],
        );
        let v6 = |i: usize| IpAddr::from([0xfd77, 0, 0, 0, 0, 0, 9, i as u16 + 1]);
        let changes: Vec<Change> = (0..4)
            .map(|i| {
                let fqdn = format!("b{i}.lan.example.");
                let addr = if i % 2 == 0 {
                    IpAddr::from([10, 77, 9, i as u8 + 1])
                } else {
                    v6(i)
                };
                let c = change(ChangeKind::Add, &fqdn, addr, DHCID_A);
                in_mode(ConflictMode::NoCheckWithDhcid, c)
            })
            .collect();
        let refs: Vec<&Change> = changes.iter().collect();
        let applied = UpdateExecutor::new(&cfg).apply_batch(&refs);
        assert!(
            applied
                .outcomes
                .iter()
                .all(|o| *o == ApplyOutcome::Done(DoneKind::Published)),
            "{:?}",
            applied.outcomes
        );
        assert_eq!(applied.stats.sent, 4);
        let (any, inn) = (DNSClass::ANY, DNSClass::IN);
        let (a, aaaa, ptr) = (RecordType::A, RecordType::AAAA, RecordType::PTR);
        let set = |i: usize, rtype| {
            vec![
                fwd(i, any, rtype, 0),
                fwd(i, any, DHCID, 0),
                fwd(i, inn, rtype, 1200),
                fwd(i, inn, DHCID, 1200),
            ]
        };
        let rev6 =
            |i: usize, class, rtype, ttl| (crate::change::reverse_name(v6(i)), class, rtype, ttl);
        let lan = "lan.example.".to_string();
        assert_eq!(
            shapes(&server.join().unwrap()),
            vec![
                (lan.clone(), vec![], [set(0, a), set(2, a)].concat()),
                (lan, vec![], [set(1, aaaa), set(3, aaaa)].concat()),
                (
                    "77.10.in-addr.arpa.".to_string(),
                    vec![],
                    [0, 2]
                        .into_iter()
                        .flat_map(|i| {
                            [
                                rev(i, any, ptr, 0),
                                rev(i, any, DHCID, 0),
                                rev(i, inn, ptr, 1200),
                                rev(i, inn, DHCID, 1200),
                            ]
                        })
                        .collect(),
                ),
                (
                    REV6_ZONE.to_string(),
                    vec![],
                    [1, 3]
                        .into_iter()
                        .flat_map(|i| {
                            [
                                rev6(i, any, ptr, 0),
                                rev6(i, any, DHCID, 0),
                                rev6(i, inn, ptr, 1200),
                                rev6(i, inn, DHCID, 1200),
                            ]
                        })
                        .collect(),
                ),
            ]
        );
    }

    #[test]
    fn two_checking_modes_do_not_share_a_removal() {
        use ConflictMode::{CheckExistsWithDhcid as Exists, CheckWithDhcid as Check};
        let (addr, server) = recording_server();
        let cfg = config(vec![domain("lan.example.", None, vec![addr])], vec![]);
        // Same steps in both modes, but different prerequisites.
        let mut changes = mixed(ChangeKind::Remove, &[Exists, Check, Exists]);
        for c in &mut changes {
            c.records.reverse = false;
        }
        let refs: Vec<&Change> = changes.iter().collect();
        let applied = UpdateExecutor::new(&cfg).apply_batch(&refs);
        assert!(
            applied
                .outcomes
                .iter()
                .all(|o| *o == ApplyOutcome::Done(DoneKind::Removed)),
            "{:?}",
            applied.outcomes
        );
        let messages = server.join().unwrap();
        let prerequisites: Vec<_> = shapes(&messages).into_iter().map(|(_, p, _)| p).collect();
        let (any, none, inn) = (DNSClass::ANY, DNSClass::NONE, DNSClass::IN);
        let (a, aaaa) = (RecordType::A, RecordType::AAAA);
        assert_eq!(
            prerequisites,
            vec![
                // check-exists-with-dhcid: some DHCID, then no address left.
                vec![fwd(0, any, DHCID, 0), fwd(2, any, DHCID, 0)],
                vec![
                    fwd(0, none, a, 0),
                    fwd(0, none, aaaa, 0),
                    fwd(2, none, a, 0),
                    fwd(2, none, aaaa, 0),
                ],
                // check-with-dhcid, alone: its own DHCID.
                vec![fwd(1, inn, DHCID, 0)],
                vec![
                    fwd(1, inn, DHCID, 0),
                    fwd(1, none, a, 0),
                    fwd(1, none, aaaa, 0)
                ],
            ]
        );
        assert_eq!(
            messages[2].prerequisites()[0].data,
            target(&changes[1]).dhcid()
        );
    }

    #[test]
    fn the_empty_dhcid_check_follows_the_change_mode() {
        let s: SocketAddr = "127.0.0.1:1".parse().unwrap();
        // A configuration in no-check-without-dhcid no longer excuses an
        // empty DHCID in a change of another mode.
        let cfg = config(vec![domain("lan.example.", None, vec![s])], vec![]);
        let applied =
            UpdateExecutor::new(&cfg).apply(&change(ChangeKind::Add, FQDN, [10, 77, 0, 5], &[]));
        assert!(matches!(
            applied.outcome,
            ApplyOutcome::Done(DoneKind::Invalid { .. })
        ));
        assert_eq!(applied.stats.sent, 0);
    }

    #[test]
    fn batch_of_unreachable_server_retries_every_change() {
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let s = silent.local_addr().unwrap();
        let mut cfg = config(
            vec![domain("lan.example.", None, vec![s])],
            vec![domain("77.10.in-addr.arpa.", None, vec![s])],
        );
        cfg.dns_server_timeout = Duration::from_millis(200);
        let mut changes = numbered(ChangeKind::Add, 10, 2, DHCID_A);
        changes.push(change(
            ChangeKind::Add,
            "x.other.",
            [10, 77, 2, 99],
            DHCID_A,
        ));
        let refs: Vec<&Change> = changes.iter().collect();
        let applied = UpdateExecutor::new(&cfg).apply_batch(&refs);
        assert_eq!(applied.outcomes.len(), 11);
        for outcome in &applied.outcomes[..10] {
            assert!(
                matches!(
                    outcome,
                    ApplyOutcome::Retry {
                        cause: RetryCause::Timeout,
                        direction: Direction::Forward,
                        ..
                    }
                ),
                "{outcome:?}"
            );
        }
        assert!(matches!(
            applied.outcomes[10],
            ApplyOutcome::Done(DoneKind::NoZone { .. })
        ));
        // One shared message timed out: no message per change.
        assert_eq!(applied.stats.sent, 1);
        assert_eq!(applied.stats.timeouts, 1);
    }

    #[test]
    fn batch_with_unusable_replies_is_split_before_it_is_retried() {
        // A server that answers every UPDATE with an unsigned FORMERR.
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let answering = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            server
                .set_read_timeout(Some(Duration::from_secs(1)))
                .unwrap();
            let mut answered = 0;
            while let Ok((n, from)) = server.recv_from(&mut buf) {
                let mut reply = buf[..n.min(12)].to_vec();
                reply[2] |= 0x80; // QR
                reply[3] = (reply[3] & 0xf0) | 1; // FORMERR
                reply[4..12].fill(0); // no sections
                server.send_to(&reply, from).unwrap();
                answered += 1;
            }
            answered
        });
        let mut cfg = zones_on(SHA256, vec![addr]);
        cfg.dns_server_timeout = Duration::from_millis(200);
        let changes = numbered(ChangeKind::Add, 4, 2, DHCID_A);
        let refs: Vec<&Change> = changes.iter().collect();
        let applied = UpdateExecutor::new(&cfg).apply_batch(&refs);
        for outcome in &applied.outcomes {
            assert!(
                matches!(
                    outcome,
                    ApplyOutcome::Retry {
                        cause: RetryCause::BadResponse,
                        ..
                    }
                ),
                "{outcome:?}"
            );
        }
        // Add and replace for the four, for each half, then each change
        // alone (its add): the group is not retried whole.
        assert_eq!(applied.stats.sent, 2 + 2 * 2 + 4);
        assert_eq!(answering.join().unwrap(), 10);
    }
}
