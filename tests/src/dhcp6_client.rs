//! A scripted DHCPv6 client that is its own relay agent: every message goes
//! to kea-dhcp6 inside a Relay-forward whose link-address picks the subnet,
//! so one kea-dhcp6 serves several subnets on one veth. Unlike
//! `dhclient -6` and perfdhcp, it sends exactly the option 39 a test asks
//! for (any flags; full, partial or empty name, or none) and hands back
//! what the server answered in it.
//!
//! Client messages are encoded and decoded with `dhcproto`. The relay
//! layer is written here: `dhcproto` 0.15 cannot build a Relay-forward
//! and decodes option 9 always as a relay message. Option 39's payload is
//! also written and read here, so partial and empty names keep their form.

use crate::dhcp4_client::bind_in_namespace;
use crate::error::{HarnessError, Result};
use crate::netns::Netns;
use dhcproto::v6::{self, DhcpOption, IAAddr, IANA, MessageType, ORO, OptionCode, UnknownOption};
use dhcproto::{Decodable as _, Decoder, Encodable as _};
use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::time::{Duration, Instant};

/// Server and relay port: Kea answers a relay at its source address, 547.
const DHCP6_PORT: u16 = 547;
/// All_DHCP_Relay_Agents_and_Servers, where Kea listens on the link.
const ALL_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
const RELAY_FORW: u8 = 12;
const RELAY_REPL: u8 = 13;
const OPTION_RELAY_MSG: u16 = 9;
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(20);
const RETRANSMIT_AFTER: Duration = Duration::from_secs(1);

/// Option 39 (RFC 4704): flags and the domain name, as sent or answered.
/// `name` is text: labels joined by dots, with a final dot when the name
/// is full (ends in the root label), empty when the option has no name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientFqdn6 {
    pub flags: u8,
    pub name: String,
}

impl ClientFqdn6 {
    /// S: the server should do the AAAA update.
    pub const S: u8 = 0x01;
    /// O: the server overrode the client's S.
    pub const O: u8 = 0x02;
    /// N: the server should do no update.
    pub const N: u8 = 0x04;

    /// Option 39 with `flags` and `name` (a trailing dot makes it full).
    pub fn new(flags: u8, name: &str) -> Self {
        Self {
            flags,
            name: name.to_owned(),
        }
    }

    fn encode(&self) -> Result<Vec<u8>> {
        let mut out = vec![self.flags];
        let full = self.name.ends_with('.');
        let labels = self.name.trim_end_matches('.');
        if !labels.is_empty() {
            for label in labels.split('.') {
                let len = u8::try_from(label.len())
                    .ok()
                    .filter(|len| (1..=63).contains(len))
                    .ok_or_else(|| {
                        HarnessError::parse("option 39 name", format!("bad label in {}", self.name))
                    })?;
                out.push(len);
                out.extend_from_slice(label.as_bytes());
            }
        }
        if full {
            out.push(0);
        }
        Ok(out)
    }

    fn decode(data: &[u8]) -> Result<Self> {
        let [flags, name @ ..] = data else {
            return Err(HarnessError::parse("option 39", "empty option"));
        };
        let mut rest = name;
        let mut labels = Vec::new();
        let mut full = false;
        while let [len, tail @ ..] = rest {
            let len = usize::from(*len);
            if len == 0 {
                full = true;
                break;
            }
            let Some(label) = tail.get(..len) else {
                return Err(HarnessError::parse(
                    "option 39 name",
                    "label runs past the option",
                ));
            };
            labels.push(String::from_utf8_lossy(label).into_owned());
            rest = &tail[len..];
        }
        let mut name = labels.join(".");
        if full {
            name.push('.');
        }
        Ok(Self {
            flags: *flags,
            name,
        })
    }

    /// `S O N` letters of the set flags, for readable diffs.
    pub fn flag_letters(&self) -> String {
        [(Self::S, 'S'), (Self::O, 'O'), (Self::N, 'N')]
            .iter()
            .filter(|(bit, _)| self.flags & bit != 0)
            .map(|(_, letter)| *letter)
            .collect()
    }
}

impl std::fmt::Display for ClientFqdn6 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "flags={:#04x}[{}] name={:?}",
            self.flags,
            self.flag_letters(),
            self.name
        )
    }
}

/// One simulated DHCPv6 client.
#[derive(Clone, Debug, Default)]
pub struct Client6Spec {
    /// Option 1, the DUID as sent.
    pub duid: Vec<u8>,
    /// The IAID of its one IA_NA.
    pub iaid: u32,
    /// Option 39.
    pub fqdn: Option<ClientFqdn6>,
}

impl Client6Spec {
    /// A DUID-LL (type 3, hardware type 1) over `mac`.
    pub fn duid_ll(mac: [u8; 6]) -> Vec<u8> {
        [&[0, 3, 0, 1][..], &mac[..]].concat()
    }
}

/// What one server message said, apart from its server identifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply6 {
    /// `Advertise`, `Reply`, ...
    pub message_type: String,
    /// The first address of the IA_NA, with its valid lifetime.
    pub address: Option<(Ipv6Addr, u32)>,
    /// Status codes: the message's, then the IA_NA's (code, text).
    pub status: Vec<(u16, String)>,
    /// Option 39.
    pub fqdn: Option<ClientFqdn6>,
}

/// A lease obtained by [`RelayClient6::allocate`].
#[derive(Clone, Debug)]
pub struct Lease6 {
    pub address: Ipv6Addr,
    pub server_id: Vec<u8>,
    /// The link-address of the relay it came through.
    pub link: Ipv6Addr,
    pub advertise: Reply6,
    pub reply: Reply6,
}

/// A relay agent's UDP port 547 in the client namespace of a [`Netns`],
/// sending Relay-forward messages to kea-dhcp6 on the veth's link.
#[derive(Debug)]
pub struct RelayClient6 {
    socket: UdpSocket,
    server: SocketAddrV6,
    next_xid: std::cell::Cell<u32>,
}

impl RelayClient6 {
    /// Binds `[::]:547` in the client namespace; messages go to
    /// `ff02::1:2` on the client veth.
    pub fn new(net: &Netns) -> Result<Self> {
        let index = net.ip_client(&["-o", "link", "show", "dev", net.client_iface()])?;
        let index: u32 = index
            .split(':')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| HarnessError::parse("ip -o link", index.clone()))?;
        let socket = bind_in_namespace(
            net.client_ns(),
            SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, DHCP6_PORT, 0, 0).into(),
        )?;
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| HarnessError::io("setting the relay socket's timeout", e))?;
        Ok(Self {
            socket,
            server: SocketAddrV6::new(ALL_SERVERS, DHCP6_PORT, 0, index),
            next_xid: std::cell::Cell::new(0x10_0000),
        })
    }

    /// Solicit -> Advertise -> Request -> Reply through a relay on `link`.
    /// An answer without an address is an error.
    pub fn allocate(&self, client: &Client6Spec, link: Ipv6Addr) -> Result<Lease6> {
        let solicit = self.message(client, MessageType::Solicit, None, None);
        let (advertise, server_id) = self.exchange(&solicit, link, MessageType::Advertise)?;
        let Some((offered, _)) = advertise.address else {
            return Err(HarnessError::parse(
                "Advertise",
                format!("no address: {advertise:?}"),
            ));
        };
        let request = self.message(
            client,
            MessageType::Request,
            Some(&server_id),
            Some(offered),
        );
        let (reply, server_id) = self.exchange(&request, link, MessageType::Reply)?;
        let Some((address, _)) = reply.address else {
            return Err(HarnessError::parse(
                "Reply to Request",
                format!("no address: {reply:?}"),
            ));
        };
        Ok(Lease6 {
            address,
            server_id,
            link,
            advertise,
            reply,
        })
    }

    /// Solicit -> Advertise only: Kea commits nothing for it, so (without
    /// multi-threading) its answer shows Kea has finished earlier packets.
    pub fn solicit(&self, client: &Client6Spec, link: Ipv6Addr) -> Result<Reply6> {
        let solicit = self.message(client, MessageType::Solicit, None, None);
        Ok(self.exchange(&solicit, link, MessageType::Advertise)?.0)
    }

    /// Solicit -> Advertise, with the server identifier a Request needs:
    /// the first half of [`Self::allocate`], for exchanges that interleave.
    pub fn offer(&self, client: &Client6Spec, link: Ipv6Addr) -> Result<(Reply6, Vec<u8>)> {
        let solicit = self.message(client, MessageType::Solicit, None, None);
        self.exchange(&solicit, link, MessageType::Advertise)
    }

    /// Request of `address` from the server `server_id` (an [`Self::offer`]'s).
    pub fn request(
        &self,
        client: &Client6Spec,
        link: Ipv6Addr,
        server_id: &[u8],
        address: Ipv6Addr,
    ) -> Result<Reply6> {
        let request = self.message(client, MessageType::Request, Some(server_id), Some(address));
        Ok(self.exchange(&request, link, MessageType::Reply)?.0)
    }

    /// Renew of `lease` with `client`'s (possibly new) option 39.
    pub fn renew(&self, client: &Client6Spec, lease: &Lease6) -> Result<Reply6> {
        let renew = self.message(
            client,
            MessageType::Renew,
            Some(&lease.server_id),
            Some(lease.address),
        );
        Ok(self.exchange(&renew, lease.link, MessageType::Reply)?.0)
    }

    /// Release of `lease` (without option 39); returns Kea's Reply.
    pub fn release(&self, client: &Client6Spec, lease: &Lease6) -> Result<Reply6> {
        let mut release = self.message(
            client,
            MessageType::Release,
            Some(&lease.server_id),
            Some(lease.address),
        );
        release.opts_mut().remove(OptionCode::ClientFqdn);
        Ok(self.exchange(&release, lease.link, MessageType::Reply)?.0)
    }

    /// Decline of `lease` (RFC 8415 18.2.8): Kea marks the address
    /// unusable and answers a Reply.
    pub fn decline(&self, client: &Client6Spec, lease: &Lease6) -> Result<Reply6> {
        let mut decline = self.message(
            client,
            MessageType::Decline,
            Some(&lease.server_id),
            Some(lease.address),
        );
        decline.opts_mut().remove(OptionCode::ClientFqdn);
        Ok(self.exchange(&decline, lease.link, MessageType::Reply)?.0)
    }

    fn message(
        &self,
        client: &Client6Spec,
        message_type: MessageType,
        server_id: Option<&[u8]>,
        address: Option<Ipv6Addr>,
    ) -> v6::Message {
        let xid = self.next_xid.get();
        self.next_xid.set(xid.wrapping_add(1) & 0x00ff_ffff);
        let mut message = v6::Message::new(message_type);
        message.set_xid_num(xid);
        let opts = message.opts_mut();
        opts.insert(DhcpOption::ClientId(client.duid.clone()));
        if let Some(id) = server_id {
            opts.insert(DhcpOption::ServerId(id.to_vec()));
        }
        opts.insert(DhcpOption::ElapsedTime(0));
        let mut ia_opts = v6::DhcpOptions::new();
        if let Some(addr) = address {
            ia_opts.insert(DhcpOption::IAAddr(IAAddr {
                addr,
                preferred_life: 0,
                valid_life: 0,
                opts: v6::DhcpOptions::new(),
            }));
        }
        opts.insert(DhcpOption::IANA(IANA {
            id: client.iaid,
            t1: 0,
            t2: 0,
            opts: ia_opts,
        }));
        opts.insert(DhcpOption::ORO(ORO {
            opts: vec![OptionCode::DomainNameServers, OptionCode::ClientFqdn],
        }));
        if let Some(fqdn) = &client.fqdn {
            // Encoded at the start of each test, so a bad name fails early.
            if let Ok(data) = fqdn.encode() {
                opts.insert(DhcpOption::Unknown(UnknownOption::new(
                    OptionCode::ClientFqdn,
                    data,
                )));
            }
        }
        message
    }

    /// Sends `message` inside a Relay-forward from `link` and waits for the
    /// Relay-reply carrying an `expected` answer with its xid, sending again
    /// every second, for 20 s at most. Returns the answer and its server
    /// identifier.
    fn exchange(
        &self,
        message: &v6::Message,
        link: Ipv6Addr,
        expected: MessageType,
    ) -> Result<(Reply6, Vec<u8>)> {
        let inner = message
            .to_vec()
            .map_err(|e| HarnessError::parse("dhcproto encoder", e.to_string()))?;
        let bytes = relay_forward(&inner, link, message.xid_num())?;
        let what = format!("{:?} (xid {:#x})", message.msg_type(), message.xid_num());
        let deadline = Instant::now() + EXCHANGE_TIMEOUT;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            self.socket
                .send_to(&bytes, self.server)
                .map_err(|e| HarnessError::io(format!("sending {what}"), e))?;
            let resend_at = Instant::now() + RETRANSMIT_AFTER;
            while Instant::now() < resend_at {
                let n = match self.socket.recv_from(&mut buf) {
                    Ok((n, _)) => n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        continue;
                    }
                    Err(e) => return Err(HarnessError::io(format!("receiving for {what}"), e)),
                };
                let Some(inner) = relay_reply_inner(&buf[..n]) else {
                    continue;
                };
                let Ok(answer) = v6::Message::decode(&mut Decoder::new(inner)) else {
                    continue;
                };
                if answer.xid() != message.xid() || answer.msg_type() != expected {
                    continue;
                }
                return read_reply(&answer);
            }
        }
        Err(HarnessError::Timeout {
            what: format!("an answer to {what}"),
            after: EXCHANGE_TIMEOUT,
        })
    }
}

/// The compared fields of `answer`, and its server identifier.
fn read_reply(answer: &v6::Message) -> Result<(Reply6, Vec<u8>)> {
    let mut reply = Reply6 {
        message_type: format!("{:?}", answer.msg_type()),
        address: None,
        status: Vec::new(),
        fqdn: None,
    };
    let mut server_id = Vec::new();
    for option in answer.opts().iter() {
        match option {
            DhcpOption::ServerId(id) => server_id.clone_from(id),
            DhcpOption::StatusCode(s) => {
                reply.status.push((u16::from(s.status), s.msg.clone()));
            }
            DhcpOption::IANA(ia) => {
                for inner in ia.opts.iter() {
                    match inner {
                        DhcpOption::IAAddr(a) if reply.address.is_none() => {
                            reply.address = Some((a.addr, a.valid_life));
                        }
                        DhcpOption::StatusCode(s) => {
                            reply.status.push((u16::from(s.status), s.msg.clone()));
                        }
                        _ => {}
                    }
                }
            }
            DhcpOption::Unknown(u) if u.code() == OptionCode::ClientFqdn => {
                reply.fqdn = Some(ClientFqdn6::decode(u.data())?);
            }
            _ => {}
        }
    }
    Ok((reply, server_id))
}

/// A Relay-forward (hop count 0) from a relay on `link` for a client at a
/// link-local address made of `xid`, carrying `inner` in option 9.
fn relay_forward(inner: &[u8], link: Ipv6Addr, xid: u32) -> Result<Vec<u8>> {
    let len = u16::try_from(inner.len())
        .map_err(|_| HarnessError::parse("Relay-forward", "message too long"))?;
    let xid = xid.to_be_bytes();
    let peer = Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        0,
        0,
        u16::from_be_bytes([xid[0], xid[1]]),
        u16::from_be_bytes([xid[2], xid[3]]),
    );
    let mut out = vec![RELAY_FORW, 0];
    out.extend_from_slice(&link.octets());
    out.extend_from_slice(&peer.octets());
    out.extend_from_slice(&OPTION_RELAY_MSG.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(inner);
    Ok(out)
}

/// The client message inside a Relay-reply's option 9.
fn relay_reply_inner(bytes: &[u8]) -> Option<&[u8]> {
    let [RELAY_REPL, _hops, rest @ ..] = bytes else {
        return None;
    };
    let mut options = rest.get(32..)?;
    while let [c1, c2, l1, l2, tail @ ..] = options {
        let code = u16::from_be_bytes([*c1, *c2]);
        let len = usize::from(u16::from_be_bytes([*l1, *l2]));
        let data = tail.get(..len)?;
        if code == OPTION_RELAY_MSG {
            return Some(data);
        }
        options = &tail[len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_39_names_round_trip_full_partial_and_empty() {
        for name in ["host.a.lan.example.", "host", "a.b", ""] {
            let fqdn = ClientFqdn6::new(ClientFqdn6::S, name);
            let bytes = fqdn.encode().unwrap();
            assert_eq!(ClientFqdn6::decode(&bytes).unwrap(), fqdn, "{name:?}");
        }
        let partial = ClientFqdn6::new(ClientFqdn6::S, "ab").encode().unwrap();
        assert_eq!(partial, vec![1, 2, b'a', b'b']);
        let full = ClientFqdn6::new(ClientFqdn6::N, "ab.").encode().unwrap();
        assert_eq!(full, vec![4, 2, b'a', b'b', 0]);
        assert_eq!(ClientFqdn6::new(7, "").flag_letters(), "SON");
    }

    #[test]
    fn relay_reply_carries_the_relay_forwards_message() {
        let link: Ipv6Addr = "fd00:6d:0:3::1".parse().unwrap();
        let mut forward = relay_forward(&[1, 2, 3, 4], link, 0x12_3456).unwrap();
        assert_eq!(&forward[2..18], &link.octets());
        forward[0] = RELAY_REPL;
        assert_eq!(relay_reply_inner(&forward), Some(&[1u8, 2, 3, 4][..]));
        assert_eq!(relay_reply_inner(&forward[..40]), None);
    }
}
