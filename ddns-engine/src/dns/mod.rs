//! One RFC 2136 exchange with one server: TSIG signing and verification
//! (RFC 8945) and a spoof-resistant request/response over std sockets.
//!
//! hickory-proto 0.26 builds and parses the messages and the TSIG record, but
//! its `TSigner` only knows hmac-sha256/384/512 while Kea's D2 (and so our
//! operators' key files) also use hmac-md5, sha1 and sha224. So the MAC is
//! computed here over RustCrypto for all six algorithms, and hickory's
//! `message_tbs` / `signed_bitmessage_to_buf` produce the bytes it covers.

/// RFC 4703 update messages over this transport.
pub mod update;

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::tsig::{
    TSIG, TsigAlgorithm as WireAlgorithm, make_tsig_record, message_tbs, signed_bitmessage_to_buf,
};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use hmac::{Hmac, Mac};
use tracing::debug;

use crate::config::{Transport, TsigAlgorithm, TsigKey};

/// Allowed clock difference with the server, in seconds (RFC 8945 recommends 300).
pub const DEFAULT_FUDGE: u16 = 300;

/// Largest DNS message over UDP or TCP.
const MAX_MESSAGE: usize = 65_535;

/// TSIG error codes (RFC 8945 section 3).
const TSIG_BADSIG: u16 = 16;
const TSIG_BADKEY: u16 = 17;

/// How the server answered, as far as the sender needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rcode {
    Success,
    /// A "name not in use" prerequisite failed.
    Yxdomain,
    Yxrrset,
    /// A "name in use" prerequisite failed.
    Nxdomain,
    /// An "RRset exists" prerequisite failed (e.g. the DHCID is not ours).
    Nxrrset,
    NotZone,
    Refused,
    /// Authentication failed; `tsig_error` is the TSIG error field (16 BADSIG,
    /// 17 BADKEY, 18 BADTIME) when the reply carried one.
    NotAuth {
        tsig_error: Option<u16>,
    },
    ServFail,
    FormErr,
    NotImp,
    Other(u16),
}

impl Rcode {
    pub fn from_code(code: u16, tsig_error: Option<u16>) -> Self {
        match code {
            0 => Self::Success,
            1 => Self::FormErr,
            2 => Self::ServFail,
            3 => Self::Nxdomain,
            4 => Self::NotImp,
            5 => Self::Refused,
            6 => Self::Yxdomain,
            7 => Self::Yxrrset,
            8 => Self::Nxrrset,
            9 => Self::NotAuth { tsig_error },
            10 => Self::NotZone,
            other => Self::Other(other),
        }
    }

    /// Whether sending the same change again later (or to the next server)
    /// may succeed. Prerequisite failures are answers, not faults.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::ServFail)
    }

    /// A prerequisite of the update did not hold (RFC 2136 section 3.2).
    pub fn is_prerequisite_failure(&self) -> bool {
        matches!(
            self,
            Self::Yxdomain | Self::Yxrrset | Self::Nxdomain | Self::Nxrrset
        )
    }

    /// The server refuses us: policy or credentials, not the data.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Refused | Self::NotAuth { .. })
    }
}

impl std::fmt::Display for Rcode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Success => f.write_str("NOERROR"),
            Self::Yxdomain => f.write_str("YXDOMAIN"),
            Self::Yxrrset => f.write_str("YXRRSET"),
            Self::Nxdomain => f.write_str("NXDOMAIN"),
            Self::Nxrrset => f.write_str("NXRRSET"),
            Self::NotZone => f.write_str("NOTZONE"),
            Self::Refused => f.write_str("REFUSED"),
            Self::NotAuth { tsig_error: None } => f.write_str("NOTAUTH"),
            Self::NotAuth {
                tsig_error: Some(TSIG_BADSIG),
            } => f.write_str("NOTAUTH/BADSIG"),
            Self::NotAuth {
                tsig_error: Some(TSIG_BADKEY),
            } => f.write_str("NOTAUTH/BADKEY"),
            Self::NotAuth {
                tsig_error: Some(18),
            } => f.write_str("NOTAUTH/BADTIME"),
            Self::NotAuth {
                tsig_error: Some(e),
            } => write!(f, "NOTAUTH/TSIG-{e}"),
            Self::ServFail => f.write_str("SERVFAIL"),
            Self::FormErr => f.write_str("FORMERR"),
            Self::NotImp => f.write_str("NOTIMP"),
            Self::Other(code) => write!(f, "RCODE{code}"),
        }
    }
}

/// A failed exchange: no usable answer came back.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("no answer within the timeout ({ignored} foreign replies ignored)")]
    Timeout { ignored: u32 },
    #[error("connection refused")]
    ConnectionRefused,
    #[error("server unreachable: {0}")]
    Unreachable(io::Error),
    #[error("I/O error: {0}")]
    Io(io::Error),
    /// Unparseable, unverifiable, or unsigned when a signature was expected.
    #[error("bad response: {0}")]
    BadResponse(String),
    /// The request itself could not be encoded or signed: sending it again
    /// cannot help.
    #[error("cannot build request: {0}")]
    Request(String),
}

impl ExchangeError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Request(_))
    }

    fn from_io(err: io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Self::Timeout { ignored: 0 },
            io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => {
                Self::ConnectionRefused
            }
            io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::AddrNotAvailable => Self::Unreachable(err),
            _ => Self::Io(err),
        }
    }
}

/// The server's answer to one request.
#[derive(Debug)]
pub struct Response {
    pub rcode: Rcode,
    pub message: Message,
    /// Datagrams that were not an answer to this request (wrong id or
    /// question, malformed, unsigned or badly signed) and were dropped.
    pub ignored: u32,
    /// The answer came over TCP (asked for, or after a truncated UDP reply).
    pub tcp: bool,
}

/// Why a reply's TSIG was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TsigFailure {
    #[error("reply is not signed")]
    Unsigned,
    #[error("reply signed with another key or algorithm")]
    WrongKey,
    #[error("MAC length {0} does not match the algorithm")]
    MacLength(usize),
    #[error("MAC does not verify")]
    BadMac,
    #[error("signature time {signed} outside {fudge}s of local time {now}")]
    Time { signed: u64, now: u64, fudge: u16 },
    #[error("malformed TSIG: {0}")]
    Malformed(String),
    #[error("secret rejected by the HMAC implementation")]
    Key,
}

/// Signs requests and verifies replies with one TSIG key (RFC 8945).
#[derive(Clone)]
pub struct TsigSigner {
    name: Name,
    algorithm: TsigAlgorithm,
    secret: Vec<u8>,
    fudge: u16,
}

impl std::fmt::Debug for TsigSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigSigner")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("fudge", &self.fudge)
            .finish_non_exhaustive()
    }
}

/// What a reply must be checked against: the request's MAC and time.
#[derive(Clone, Debug)]
pub struct SignedRequest {
    pub mac: Vec<u8>,
    pub time: u64,
}

impl TsigSigner {
    pub fn new(key: &TsigKey) -> Self {
        let mut name = key.name.clone();
        // The server compares the key name as sent; a relative name would
        // be a different key.
        name.set_fqdn(true);
        Self {
            name,
            algorithm: key.algorithm,
            secret: key.secret.clone(),
            fudge: DEFAULT_FUDGE,
        }
    }

    pub fn with_fudge(mut self, fudge: u16) -> Self {
        self.fudge = fudge;
        self
    }

    pub fn key_name(&self) -> &Name {
        &self.name
    }

    pub fn algorithm(&self) -> TsigAlgorithm {
        self.algorithm
    }

    /// Appends a TSIG record to `message`, replacing any earlier one (a
    /// signature over a signature is BADSIG). The message id must be final.
    pub fn sign(&self, message: &mut Message, now: u64) -> Result<SignedRequest, ExchangeError> {
        drop(message.take_signature());
        let stub = TSIG::new(
            wire_algorithm(self.algorithm),
            now,
            self.fudge,
            Vec::new(),
            message.metadata.id,
            None,
            Vec::new(),
        );
        let tbs = message_tbs(&*message, &stub, &self.name)
            .map_err(|e| ExchangeError::Request(e.to_string()))?;
        let mac = AnyHmac::new(self.algorithm, &self.secret)
            .map_err(|e| ExchangeError::Request(e.to_string()))?
            .chain(&tbs)
            .finish();
        let record = make_tsig_record(self.name.clone(), stub.set_mac(mac.clone()));
        message.set_signature(Box::new(record));
        Ok(SignedRequest { mac, time: now })
    }

    /// Verifies the TSIG of a reply to `request` (RFC 8945 section 5.3).
    /// `now` is the local time in seconds since the epoch.
    pub fn verify(
        &self,
        reply: &[u8],
        request: &SignedRequest,
        now: u64,
    ) -> Result<(), TsigFailure> {
        let (tbv, record) = signed_bitmessage_to_buf(reply, Some(&request.mac), true)
            .map_err(|e| TsigFailure::Malformed(e.to_string()))?;
        let tsig = &record.data;
        // Compared as names: hickory maps a lower-case hmac-md5 name from the
        // wire to `Unknown`, and name comparison is case-insensitive.
        if record.name != self.name
            || tsig.algorithm.to_name() != wire_algorithm(self.algorithm).to_name()
        {
            return Err(TsigFailure::WrongKey);
        }
        // Truncated MACs (RFC 8945 section 5.2.2.1) are refused: they only
        // exist for old peers, and Knot always sends the full MAC.
        if tsig.mac.len() != output_len(self.algorithm) {
            return Err(TsigFailure::MacLength(tsig.mac.len()));
        }
        let ok = AnyHmac::new(self.algorithm, &self.secret)
            .map_err(|_| TsigFailure::Key)?
            .chain(&tbv)
            .verify(&tsig.mac);
        if !ok {
            return Err(TsigFailure::BadMac);
        }
        if now.abs_diff(tsig.time) > u64::from(tsig.fudge) {
            return Err(TsigFailure::Time {
                signed: tsig.time,
                now,
                fudge: tsig.fudge,
            });
        }
        Ok(())
    }
}

fn wire_algorithm(algorithm: TsigAlgorithm) -> WireAlgorithm {
    match algorithm {
        TsigAlgorithm::HmacMd5 => WireAlgorithm::HmacMd5,
        TsigAlgorithm::HmacSha1 => WireAlgorithm::HmacSha1,
        TsigAlgorithm::HmacSha224 => WireAlgorithm::HmacSha224,
        TsigAlgorithm::HmacSha256 => WireAlgorithm::HmacSha256,
        TsigAlgorithm::HmacSha384 => WireAlgorithm::HmacSha384,
        TsigAlgorithm::HmacSha512 => WireAlgorithm::HmacSha512,
    }
}

fn output_len(algorithm: TsigAlgorithm) -> usize {
    match algorithm {
        TsigAlgorithm::HmacMd5 => 16,
        TsigAlgorithm::HmacSha1 => 20,
        TsigAlgorithm::HmacSha224 => 28,
        TsigAlgorithm::HmacSha256 => 32,
        TsigAlgorithm::HmacSha384 => 48,
        TsigAlgorithm::HmacSha512 => 64,
    }
}

enum AnyHmac {
    Md5(Hmac<md5::Md5>),
    Sha1(Hmac<sha1::Sha1>),
    Sha224(Hmac<sha2::Sha224>),
    Sha256(Hmac<sha2::Sha256>),
    Sha384(Hmac<sha2::Sha384>),
    Sha512(Hmac<sha2::Sha512>),
}

impl AnyHmac {
    fn new(algorithm: TsigAlgorithm, key: &[u8]) -> Result<Self, hmac::digest::InvalidLength> {
        Ok(match algorithm {
            TsigAlgorithm::HmacMd5 => Self::Md5(Mac::new_from_slice(key)?),
            TsigAlgorithm::HmacSha1 => Self::Sha1(Mac::new_from_slice(key)?),
            TsigAlgorithm::HmacSha224 => Self::Sha224(Mac::new_from_slice(key)?),
            TsigAlgorithm::HmacSha256 => Self::Sha256(Mac::new_from_slice(key)?),
            TsigAlgorithm::HmacSha384 => Self::Sha384(Mac::new_from_slice(key)?),
            TsigAlgorithm::HmacSha512 => Self::Sha512(Mac::new_from_slice(key)?),
        })
    }

    fn chain(mut self, data: &[u8]) -> Self {
        match &mut self {
            Self::Md5(m) => m.update(data),
            Self::Sha1(m) => m.update(data),
            Self::Sha224(m) => m.update(data),
            Self::Sha256(m) => m.update(data),
            Self::Sha384(m) => m.update(data),
            Self::Sha512(m) => m.update(data),
        }
        self
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Self::Md5(m) => m.finalize().into_bytes().to_vec(),
            Self::Sha1(m) => m.finalize().into_bytes().to_vec(),
            Self::Sha224(m) => m.finalize().into_bytes().to_vec(),
            Self::Sha256(m) => m.finalize().into_bytes().to_vec(),
            Self::Sha384(m) => m.finalize().into_bytes().to_vec(),
            Self::Sha512(m) => m.finalize().into_bytes().to_vec(),
        }
    }

    /// Constant-time comparison.
    fn verify(self, tag: &[u8]) -> bool {
        match self {
            Self::Md5(m) => m.verify_slice(tag).is_ok(),
            Self::Sha1(m) => m.verify_slice(tag).is_ok(),
            Self::Sha224(m) => m.verify_slice(tag).is_ok(),
            Self::Sha256(m) => m.verify_slice(tag).is_ok(),
            Self::Sha384(m) => m.verify_slice(tag).is_ok(),
            Self::Sha512(m) => m.verify_slice(tag).is_ok(),
        }
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A request on the wire, with what its reply must match.
#[derive(Debug)]
pub struct Pending {
    pub id: u16,
    /// UPDATE for changes, QUERY for zone transfers: a reply must match.
    pub op_code: OpCode,
    pub zone: Option<Query>,
    pub signed: Option<(TsigSigner, SignedRequest)>,
    pub bytes: Vec<u8>,
}

impl Pending {
    /// Gives `request` a fresh random id (each attempt gets its own, so a late
    /// reply to an earlier attempt cannot be taken for this one) and signs it.
    pub fn new(request: &Message, signer: Option<&TsigSigner>) -> Result<Self, ExchangeError> {
        let mut message = request.clone();
        message.metadata.id = rand::random();
        drop(message.take_signature());
        let signed = match signer {
            Some(signer) => Some((signer.clone(), signer.sign(&mut message, unix_now())?)),
            None => None,
        };
        let bytes = message
            .to_vec()
            .map_err(|e| ExchangeError::Request(e.to_string()))?;
        Ok(Self {
            id: message.metadata.id,
            op_code: message.metadata.op_code,
            zone: message.queries.first().cloned(),
            signed,
            bytes,
        })
    }
}

/// What one received datagram or TCP message turned out to be.
#[derive(Debug)]
pub enum Judged {
    /// Not a reply to this request (other id, other question, not a response).
    Foreign,
    /// Has our id but cannot be trusted or read.
    Bad(String),
    /// Our id and question with the TC bit: ask again over TCP.
    Truncated,
    Answer {
        rcode: Rcode,
        message: Box<Message>,
    },
}

/// Classifies reply bytes against the pending request. Never panics, whatever
/// the bytes (see the property test).
pub fn judge(reply: &[u8], pending: &Pending, now: u64) -> Judged {
    let Some(id) = reply.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
        return Judged::Foreign;
    };
    if id != pending.id {
        return Judged::Foreign;
    }
    let message = match Message::from_vec(reply) {
        Ok(m) => m,
        Err(e) => return Judged::Bad(format!("unparseable: {e}")),
    };
    if message.metadata.message_type != MessageType::Response
        || message.metadata.op_code != pending.op_code
    {
        return Judged::Foreign;
    }
    // Servers may leave the zone section out of error replies; when present
    // it must be ours.
    if let (Some(ours), Some(theirs)) = (&pending.zone, message.queries.first())
        && (message.queries.len() != 1
            || ours.name() != theirs.name()
            || ours.query_type() != theirs.query_type()
            || ours.query_class() != theirs.query_class())
    {
        return Judged::Foreign;
    }
    if message.metadata.truncation {
        return Judged::Truncated;
    }
    let code = u16::from(message.metadata.response_code);
    let Some((signer, request)) = &pending.signed else {
        return Judged::Answer {
            rcode: Rcode::from_code(code, None),
            message: Box::new(message),
        };
    };
    let Some(signature) = message.signature() else {
        // Knot 3.4+ answers a key it does not know with a bare NOTAUTH, no
        // TSIG record (3.2 sent one with BADKEY, as RFC 8945 section 5.3.2
        // asks). Like the unsigned BADSIG/BADKEY replies below, it is taken
        // as the server's refusal of the key.
        if code == 9 {
            return Judged::Answer {
                rcode: Rcode::NotAuth { tsig_error: None },
                message: Box::new(message),
            };
        }
        return Judged::Bad(TsigFailure::Unsigned.to_string());
    };
    let tsig_error = signature.data.error.map(u16::from);
    // RFC 8945 section 5.3.2: BADSIG and BADKEY replies are unsigned, since
    // the server could not or would not use the key.
    if code == 9
        && signature.data.mac.is_empty()
        && matches!(tsig_error, Some(TSIG_BADSIG | TSIG_BADKEY))
    {
        return Judged::Answer {
            rcode: Rcode::NotAuth { tsig_error },
            message: Box::new(message),
        };
    }
    if let Err(failure) = signer.verify(reply, request, now) {
        return Judged::Bad(failure.to_string());
    }
    // A verified BADTIME reply is NOTAUTH with the TSIG error set.
    let tsig_error = tsig_error.filter(|e| *e != 0);
    Judged::Answer {
        rcode: Rcode::from_code(code, tsig_error),
        message: Box::new(message),
    }
}

/// Sends `request` (unsigned; it gets a random id and is signed here when
/// `signer` is set) to `server` and waits up to `timeout` for its answer.
/// Over UDP a truncated reply is followed by the same request over TCP, with
/// its own `timeout`; a request longer than `MAX_UDP_REQUEST` (a batch of
/// many changes) goes over TCP directly.
pub fn exchange(
    request: &Message,
    signer: Option<&TsigSigner>,
    server: SocketAddr,
    transport: Transport,
    timeout: Duration,
) -> Result<Response, ExchangeError> {
    if transport == Transport::Udp {
        match exchange_udp(request, signer, server, timeout)? {
            UdpOutcome::Answer(response) => return Ok(response),
            UdpOutcome::Truncated { ignored } => {
                debug!(%server, "truncated UDP reply, retrying over TCP");
                let mut response = exchange_tcp(request, signer, server, timeout)?;
                response.ignored += ignored;
                return Ok(response);
            }
            UdpOutcome::TooLong => {}
        }
    }
    exchange_tcp(request, signer, server, timeout)
}

/// Whether `server` answers a plain SOA query for the root within
/// `timeout`, whatever the rcode (an authoritative-only server says
/// REFUSED): a cheap sign of life for updates waiting out their backoff.
pub fn responds(server: SocketAddr, timeout: Duration) -> bool {
    let mut query = Message::new(0, MessageType::Query, OpCode::Query);
    query.add_query(Query::query(Name::root(), RecordType::SOA));
    matches!(
        exchange_udp(&query, None, server, timeout),
        Ok(UdpOutcome::Answer(_) | UdpOutcome::Truncated { .. })
    )
}

enum UdpOutcome {
    Answer(Response),
    Truncated { ignored: u32 },
    TooLong,
}

/// Longest request sent over UDP: the datagram size that avoids IP
/// fragmentation on common paths (the DNS Flag Day 2020 figure). Servers
/// without EDNS may even refuse more than 512 bytes (RFC 2136 section 3.8
/// lets them), which our single-change messages stay under.
const MAX_UDP_REQUEST: usize = 1232;

fn exchange_udp(
    request: &Message,
    signer: Option<&TsigSigner>,
    server: SocketAddr,
    timeout: Duration,
) -> Result<UdpOutcome, ExchangeError> {
    let pending = Pending::new(request, signer)?;
    if pending.bytes.len() > MAX_UDP_REQUEST {
        return Ok(UdpOutcome::TooLong);
    }
    let deadline = Instant::now() + timeout;
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    // Port 0: the kernel picks a random ephemeral port. Connecting makes it
    // drop datagrams from other sources and report ICMP port unreachable as
    // ECONNREFUSED.
    let socket = UdpSocket::bind(local).map_err(ExchangeError::from_io)?;
    socket.connect(server).map_err(ExchangeError::from_io)?;
    socket
        .send(&pending.bytes)
        .map_err(ExchangeError::from_io)?;

    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut ignored = 0u32;
    let mut last_bad: Option<String> = None;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        socket
            .set_read_timeout(Some(remaining))
            .map_err(ExchangeError::from_io)?;
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e) => match ExchangeError::from_io(e) {
                ExchangeError::Timeout { .. } => break,
                other => return Err(other),
            },
        };
        let reply = buf.get(..n).unwrap_or_default();
        match judge(reply, &pending, unix_now()) {
            Judged::Answer { rcode, message } => {
                return Ok(UdpOutcome::Answer(Response {
                    rcode,
                    message: *message,
                    ignored,
                    tcp: false,
                }));
            }
            Judged::Truncated => return Ok(UdpOutcome::Truncated { ignored }),
            Judged::Foreign => ignored += 1,
            // Keep listening: a forged datagram must not hide the real reply.
            Judged::Bad(why) => {
                debug!(%server, %why, "dropping reply");
                ignored += 1;
                last_bad = Some(why);
            }
        }
    }
    Err(match last_bad {
        Some(why) => ExchangeError::BadResponse(why),
        None => ExchangeError::Timeout { ignored },
    })
}

fn exchange_tcp(
    request: &Message,
    signer: Option<&TsigSigner>,
    server: SocketAddr,
    timeout: Duration,
) -> Result<Response, ExchangeError> {
    let pending = Pending::new(request, signer)?;
    let deadline = Instant::now() + timeout;
    let mut stream = connect_and_send(server, &pending, timeout, deadline)?;
    let reply = read_frame(&mut stream, deadline)?;
    match judge(&reply, &pending, unix_now()) {
        Judged::Answer { rcode, message } => Ok(Response {
            rcode,
            message: *message,
            ignored: 0,
            tcp: true,
        }),
        Judged::Truncated => Err(ExchangeError::BadResponse(
            "truncated reply over TCP".into(),
        )),
        Judged::Foreign => Err(ExchangeError::BadResponse(
            "TCP reply does not match the request".into(),
        )),
        Judged::Bad(why) => Err(ExchangeError::BadResponse(why)),
    }
}

/// Connects to `server` and writes `pending` as one length-prefixed frame
/// (RFC 1035 section 4.2.2).
fn connect_and_send(
    server: SocketAddr,
    pending: &Pending,
    timeout: Duration,
    deadline: Instant,
) -> Result<TcpStream, ExchangeError> {
    let len = u16::try_from(pending.bytes.len())
        .map_err(|_| ExchangeError::Request("message longer than 65535 bytes".into()))?;
    let mut stream =
        TcpStream::connect_timeout(&server, timeout).map_err(ExchangeError::from_io)?;
    drop(stream.set_nodelay(true));
    let mut framed = Vec::with_capacity(pending.bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&pending.bytes);
    set_deadline(&stream, deadline)?;
    stream.write_all(&framed).map_err(ExchangeError::from_io)?;
    Ok(stream)
}

/// Reads one length-prefixed DNS message from `stream` before `deadline`.
fn read_frame(stream: &mut TcpStream, deadline: Instant) -> Result<Vec<u8>, ExchangeError> {
    let mut prefix = [0u8; 2];
    set_deadline(stream, deadline)?;
    stream
        .read_exact(&mut prefix)
        .map_err(ExchangeError::from_io)?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
    set_deadline(stream, deadline)?;
    stream
        .read_exact(&mut message)
        .map_err(ExchangeError::from_io)?;
    Ok(message)
}

/// Upper bound on one zone transfer's size: far beyond any DHCP zone.
const MAX_TRANSFER_BYTES: usize = 512 * 1024 * 1024;

/// A zone transfer (AXFR) of `zone` from `server` over TCP, every record of
/// every message in order (the SOA first and last). The request is signed
/// when `signer` is set and the first message's TSIG verified; later
/// messages are checked for the id and parsed (their chained MACs are not
/// verified: transfers here only read). The whole transfer must end before
/// `deadline`.
pub fn transfer(
    zone: &Name,
    server: SocketAddr,
    signer: Option<&TsigSigner>,
    timeout: Duration,
    deadline: Instant,
) -> Result<Vec<Record>, ExchangeError> {
    let mut msg = Message::new(0, MessageType::Query, OpCode::Query);
    msg.add_query(
        Query::query(zone.clone(), RecordType::AXFR)
            .set_query_class(DNSClass::IN)
            .clone(),
    );
    let pending = Pending::new(&msg, signer)?;
    let mut stream = connect_and_send(server, &pending, timeout, deadline)?;
    let mut records = Vec::new();
    let mut soas = 0;
    let mut total = 0usize;
    let mut first = true;
    while soas < 2 {
        let frame = read_frame(&mut stream, deadline)?;
        total += frame.len();
        if total > MAX_TRANSFER_BYTES {
            return Err(ExchangeError::BadResponse(
                "transfer larger than the limit".into(),
            ));
        }
        let message = if first {
            first = false;
            match judge(&frame, &pending, unix_now()) {
                Judged::Answer {
                    rcode: Rcode::Success,
                    message,
                } => *message,
                Judged::Answer { rcode, .. } => {
                    return Err(ExchangeError::BadResponse(format!(
                        "refused: {rcode} (is AXFR allowed for the key?)"
                    )));
                }
                Judged::Foreign => {
                    return Err(ExchangeError::BadResponse("reply with a foreign id".into()));
                }
                Judged::Truncated => {
                    return Err(ExchangeError::BadResponse("truncated over TCP".into()));
                }
                Judged::Bad(reason) => return Err(ExchangeError::BadResponse(reason)),
            }
        } else {
            let m = Message::from_vec(&frame)
                .map_err(|e| ExchangeError::BadResponse(format!("unparseable: {e}")))?;
            if m.metadata.id != pending.id {
                return Err(ExchangeError::BadResponse(
                    "message with a foreign id".into(),
                ));
            }
            m
        };
        if message.answers.is_empty() {
            return Err(ExchangeError::BadResponse(
                "a transfer message without records".into(),
            ));
        }
        for record in message.answers {
            if record.record_type() == RecordType::SOA {
                soas += 1;
            }
            records.push(record);
        }
    }
    Ok(records)
}

fn set_deadline(stream: &TcpStream, deadline: Instant) -> Result<(), ExchangeError> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(ExchangeError::Timeout { ignored: 0 });
    }
    stream
        .set_read_timeout(Some(remaining))
        .and_then(|()| stream.set_write_timeout(Some(remaining)))
        .map_err(ExchangeError::from_io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{ResponseCode, UpdateMessage};
    use hickory_proto::rr::rdata::tsig::TsigError;
    use hickory_proto::rr::{DNSClass, RecordType};
    use std::str::FromStr;

    const ALL: [TsigAlgorithm; 6] = [
        TsigAlgorithm::HmacMd5,
        TsigAlgorithm::HmacSha1,
        TsigAlgorithm::HmacSha224,
        TsigAlgorithm::HmacSha256,
        TsigAlgorithm::HmacSha384,
        TsigAlgorithm::HmacSha512,
    ];

    fn key(algorithm: TsigAlgorithm, secret: &[u8]) -> TsigKey {
        TsigKey {
            name: Name::from_str("k.example").unwrap(),
            algorithm,
            secret: secret.to_vec(),
        }
    }

    fn update() -> Message {
        let mut m = Message::new(0, MessageType::Query, OpCode::Update);
        let mut zone = Query::query(Name::from_str("lan.example.").unwrap(), RecordType::SOA);
        zone.set_query_class(DNSClass::IN);
        m.add_zone(zone);
        m
    }

    /// Builds the server side: a signed reply to `pending` as RFC 8945 says
    /// a server computes it (request MAC, reply, TSIG variables).
    fn signed_reply(pending: &Pending, secret: &[u8], rcode: ResponseCode) -> Vec<u8> {
        let (signer, request) = pending.signed.as_ref().unwrap();
        let mut reply = Message::from_vec(&pending.bytes).unwrap();
        drop(reply.take_signature());
        reply.metadata.message_type = MessageType::Response;
        reply.metadata.response_code = rcode;
        let stub = TSIG::new(
            wire_algorithm(signer.algorithm),
            unix_now(),
            300,
            Vec::new(),
            pending.id,
            None,
            Vec::new(),
        );
        let mut tbs = Vec::new();
        tbs.extend_from_slice(&(request.mac.len() as u16).to_be_bytes());
        tbs.extend_from_slice(&request.mac);
        tbs.extend_from_slice(&message_tbs(&reply, &stub, signer.key_name()).unwrap());
        let mac = AnyHmac::new(signer.algorithm, secret)
            .unwrap()
            .chain(&tbs)
            .finish();
        reply.set_signature(Box::new(make_tsig_record(
            signer.key_name().clone(),
            stub.set_mac(mac),
        )));
        reply.to_vec().unwrap()
    }

    #[test]
    fn request_mac_verifies_for_every_algorithm() {
        for algorithm in ALL {
            let signer = TsigSigner::new(&key(algorithm, b"0123456789abcdef"));
            let pending = Pending::new(&update(), Some(&signer)).unwrap();
            let (_, request) = pending.signed.as_ref().unwrap();
            assert_eq!(request.mac.len(), output_len(algorithm));
            // The request itself verifies as a first message without a prior MAC.
            let (tbv, record) = signed_bitmessage_to_buf(&pending.bytes, None, true).unwrap();
            assert_eq!(record.data.oid, pending.id);
            assert!(
                AnyHmac::new(algorithm, b"0123456789abcdef")
                    .unwrap()
                    .chain(&tbv)
                    .verify(&request.mac),
                "{algorithm:?}"
            );
        }
    }

    #[test]
    fn known_hmac_vectors() {
        // RFC 2202 / RFC 4231 test case 2 ("Jefe").
        let data = b"what do ya want for nothing?";
        let hex = |v: Vec<u8>| v.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let mac = |a| hex(AnyHmac::new(a, b"Jefe").unwrap().chain(data).finish());
        assert_eq!(
            mac(TsigAlgorithm::HmacMd5),
            "750c783e6ab0b503eaa86e310a5db738"
        );
        assert_eq!(
            mac(TsigAlgorithm::HmacSha1),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(
            mac(TsigAlgorithm::HmacSha224),
            "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44"
        );
        assert_eq!(
            mac(TsigAlgorithm::HmacSha256),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signed_reply_is_accepted_and_tampering_is_not() {
        for algorithm in ALL {
            let signer = TsigSigner::new(&key(algorithm, b"secret"));
            let pending = Pending::new(&update(), Some(&signer)).unwrap();
            let reply = signed_reply(&pending, b"secret", ResponseCode::YXDomain);
            match judge(&reply, &pending, unix_now()) {
                Judged::Answer { rcode, .. } => assert_eq!(rcode, Rcode::Yxdomain),
                other => panic!("{algorithm:?}: {other:?}"),
            }
            // Wrong secret on the server side.
            let forged = signed_reply(&pending, b"other", ResponseCode::NoError);
            assert!(matches!(
                judge(&forged, &pending, unix_now()),
                Judged::Bad(_)
            ));
            // Flip the rcode after signing.
            let mut tampered = reply.clone();
            tampered[3] ^= 0x01;
            assert!(matches!(
                judge(&tampered, &pending, unix_now()),
                Judged::Bad(_)
            ));
            // Outside the fudge window.
            assert!(matches!(
                judge(&reply, &pending, unix_now() + 1000),
                Judged::Bad(_)
            ));
        }
    }

    #[test]
    fn wrong_id_or_question_is_foreign_and_unsigned_is_bad() {
        let signer = TsigSigner::new(&key(TsigAlgorithm::HmacSha256, b"s"));
        let pending = Pending::new(&update(), Some(&signer)).unwrap();
        let mut reply = Message::from_vec(&pending.bytes).unwrap();
        drop(reply.take_signature());
        reply.metadata.message_type = MessageType::Response;
        let unsigned = reply.to_vec().unwrap();
        assert!(matches!(
            judge(&unsigned, &pending, unix_now()),
            Judged::Bad(_)
        ));

        let mut other_id = reply.clone();
        other_id.metadata.id = pending.id.wrapping_add(1);
        assert!(matches!(
            judge(&other_id.to_vec().unwrap(), &pending, unix_now()),
            Judged::Foreign
        ));

        let mut other_zone = reply.clone();
        other_zone.queries[0].set_name(Name::from_str("evil.example.").unwrap());
        assert!(matches!(
            judge(&other_zone.to_vec().unwrap(), &pending, unix_now()),
            Judged::Foreign
        ));

        let mut truncated = reply;
        truncated.metadata.truncation = true;
        assert!(matches!(
            judge(&truncated.to_vec().unwrap(), &pending, unix_now()),
            Judged::Truncated
        ));
    }

    #[test]
    fn unsigned_badsig_notauth_is_reported_as_notauth() {
        let signer = TsigSigner::new(&key(TsigAlgorithm::HmacSha256, b"s"));
        let pending = Pending::new(&update(), Some(&signer)).unwrap();
        let mut reply = Message::from_vec(&pending.bytes).unwrap();
        let mut sig = reply.take_signature().unwrap();
        reply.metadata.message_type = MessageType::Response;
        reply.metadata.response_code = ResponseCode::NotAuth;
        sig.data = TSIG::new(
            WireAlgorithm::HmacSha256,
            unix_now(),
            300,
            Vec::new(),
            pending.id,
            Some(TsigError::BadSig),
            Vec::new(),
        );
        reply.set_signature(sig);
        match judge(&reply.to_vec().unwrap(), &pending, unix_now()) {
            Judged::Answer { rcode, .. } => {
                assert_eq!(
                    rcode,
                    Rcode::NotAuth {
                        tsig_error: Some(16)
                    }
                );
                assert!(!rcode.is_retryable());
            }
            other => panic!("{other:?}"),
        }
    }

    /// Knot 3.4+ answers an unknown key with NOTAUTH and no TSIG at all; any
    /// other unsigned reply to a signed request stays a bad response.
    #[test]
    fn bare_notauth_to_a_signed_request_is_notauth() {
        let signer = TsigSigner::new(&key(TsigAlgorithm::HmacSha256, b"s"));
        let pending = Pending::new(&update(), Some(&signer)).unwrap();
        let mut reply = Message::from_vec(&pending.bytes).unwrap();
        let _ = reply.take_signature().unwrap();
        reply.metadata.message_type = MessageType::Response;
        reply.metadata.response_code = ResponseCode::NotAuth;
        match judge(&reply.to_vec().unwrap(), &pending, unix_now()) {
            Judged::Answer { rcode, .. } => {
                assert_eq!(rcode, Rcode::NotAuth { tsig_error: None });
                assert!(!rcode.is_retryable());
            }
            other => panic!("{other:?}"),
        }
        reply.metadata.response_code = ResponseCode::NoError;
        assert!(matches!(
            judge(&reply.to_vec().unwrap(), &pending, unix_now()),
            Judged::Bad(_)
        ));
    }

    #[test]
    fn retry_policy() {
        assert!(Rcode::ServFail.is_retryable());
        for r in [
            Rcode::Refused,
            Rcode::NotAuth { tsig_error: None },
            Rcode::NotZone,
            Rcode::FormErr,
            Rcode::NotImp,
            Rcode::Yxdomain,
            Rcode::Nxrrset,
        ] {
            assert!(!r.is_retryable(), "{r}");
        }
        assert!(ExchangeError::Timeout { ignored: 0 }.is_retryable());
        assert!(ExchangeError::ConnectionRefused.is_retryable());
        assert!(ExchangeError::BadResponse(String::new()).is_retryable());
        assert!(!ExchangeError::Request(String::new()).is_retryable());
    }

    #[test]
    fn udp_times_out_and_ignores_foreign_replies() {
        // A "server" that answers with the wrong id, then goes silent.
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let (n, from) = server.recv_from(&mut buf).unwrap();
            let mut reply = buf[..n].to_vec();
            reply[0] ^= 0xff;
            reply[2] |= 0x80;
            server.send_to(&reply, from).unwrap();
        });
        let start = Instant::now();
        let err = exchange(
            &update(),
            None,
            addr,
            Transport::Udp,
            Duration::from_millis(300),
        )
        .unwrap_err();
        handle.join().unwrap();
        assert!(start.elapsed() >= Duration::from_millis(290));
        assert!(
            matches!(err, ExchangeError::Timeout { ignored: 1 }),
            "{err:?}"
        );
        assert!(err.is_retryable());
    }

    #[test]
    fn udp_truncation_falls_back_to_tcp() {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        let tcp = std::net::TcpListener::bind(addr).unwrap();
        let handle = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let (n, from) = udp.recv_from(&mut buf).unwrap();
            let mut m = Message::from_vec(&buf[..n]).unwrap();
            m.metadata.message_type = MessageType::Response;
            m.metadata.truncation = true;
            udp.send_to(&m.to_vec().unwrap(), from).unwrap();

            let (mut conn, _) = tcp.accept().unwrap();
            let mut len = [0u8; 2];
            conn.read_exact(&mut len).unwrap();
            let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
            conn.read_exact(&mut q).unwrap();
            let mut m = Message::from_vec(&q).unwrap();
            m.metadata.message_type = MessageType::Response;
            m.metadata.response_code = ResponseCode::NXRRSet;
            let r = m.to_vec().unwrap();
            conn.write_all(&(r.len() as u16).to_be_bytes()).unwrap();
            conn.write_all(&r).unwrap();
        });
        let response = exchange(
            &update(),
            None,
            addr,
            Transport::Udp,
            Duration::from_secs(2),
        )
        .unwrap();
        handle.join().unwrap();
        assert!(response.tcp);
        assert_eq!(response.rcode, Rcode::Nxrrset);
    }

    #[test]
    fn udp_to_closed_port_is_connection_refused() {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let err = exchange(
            &update(),
            None,
            addr,
            Transport::Udp,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(err, ExchangeError::ConnectionRefused), "{err:?}");
        let err = exchange(
            &update(),
            None,
            addr,
            Transport::Tcp,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(err, ExchangeError::ConnectionRefused), "{err:?}");
    }

    proptest::proptest! {
        #[test]
        fn judge_never_panics_on_random_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let signer = TsigSigner::new(&key(TsigAlgorithm::HmacSha256, b"s"));
            let pending = Pending::new(&update(), Some(&signer)).unwrap();
            let mut bytes = bytes;
            // Half the cases carry our id so the parser and verifier are reached.
            if bytes.len() >= 2 && bytes[0] & 1 == 0 {
                bytes[..2].copy_from_slice(&pending.id.to_be_bytes());
            }
            let _ = judge(&bytes, &pending, unix_now());
        }

        #[test]
        fn judge_never_panics_on_mutated_signed_replies(
            flips in proptest::collection::vec((proptest::num::usize::ANY, proptest::num::u8::ANY), 1..8),
            cut in proptest::option::of(proptest::num::usize::ANY),
        ) {
            let signer = TsigSigner::new(&key(TsigAlgorithm::HmacSha1, b"s"));
            let pending = Pending::new(&update(), Some(&signer)).unwrap();
            let mut reply = signed_reply(&pending, b"s", ResponseCode::NoError);
            for (at, x) in flips {
                let i = at % reply.len();
                if i >= 2 { reply[i] ^= x; }
            }
            if let Some(c) = cut { reply.truncate(c % (reply.len() + 1)); }
            match judge(&reply, &pending, unix_now()) {
                // A mutated reply may still be our id; it must never verify
                // unless the mutation left the signed bytes intact.
                Judged::Answer { .. } | Judged::Bad(_) | Judged::Foreign | Judged::Truncated => {}
            }
        }
    }
}
