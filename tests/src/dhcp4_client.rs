//! A scripted DHCPv4 client that is its own relay agent: every message
//! carries a `giaddr`, so one kea-dhcp4 serves several subnets, each chosen
//! by the relay address the client pretends to sit behind. Unlike dhclient
//! and perfdhcp, it sends exactly the option 81, 12 and 61 a test asks for
//! and hands back what the server answered in them.
//!
//! Messages are encoded and decoded with `dhcproto`. The one exception is
//! option 81's payload: `dhcproto` reads its name always as wire format and
//! writes every name as an absolute one, while Kea answers in the encoding
//! the client used (E flag) and treats partial and empty names differently
//! from full ones; so the flags, rcodes and name bytes are written and read
//! here, inside a `dhcproto` option.

use crate::error::{HarnessError, Result};
use crate::netns::Netns;
use dhcproto::Encodable as _;
use dhcproto::v4::{self, DhcpOption, MessageType, OptionCode, UnknownOption};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// DHCP server and relay port: Kea answers a relay at `giaddr:67`.
const DHCP_PORT: u16 = 67;
/// How long one exchange (with retransmissions) may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(20);
/// Wait for an answer before sending the message again.
const RETRANSMIT_AFTER: Duration = Duration::from_secs(1);

/// Option 81 (RFC 4702): flags, the two rcode bytes and the name, as sent
/// or as answered. `name` is text: labels joined by dots, with a final dot
/// when the name is full (wire format: ends in the root label), empty when
/// the option carries no name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientFqdn {
    pub flags: u8,
    pub rcode1: u8,
    pub rcode2: u8,
    pub name: String,
}

impl ClientFqdn {
    /// S: the server should do the forward (A) update.
    pub const S: u8 = 0x01;
    /// O: the server overrode the client's S.
    pub const O: u8 = 0x02;
    /// E: the name is in canonical wire format (else deprecated ASCII).
    pub const E: u8 = 0x04;
    /// N: the server should do no update at all.
    pub const N: u8 = 0x08;

    /// A request with `flags` and `name` (a trailing dot makes it full);
    /// the rcodes are 0 as RFC 4702 asks of clients.
    pub fn request(flags: u8, name: &str) -> Self {
        Self {
            flags,
            rcode1: 0,
            rcode2: 0,
            name: name.to_owned(),
        }
    }

    fn encode(&self) -> Result<Vec<u8>> {
        let mut out = vec![self.flags, self.rcode1, self.rcode2];
        if self.flags & Self::E == 0 {
            out.extend_from_slice(self.name.as_bytes());
            return Ok(out);
        }
        let full = self.name.ends_with('.');
        let labels = self.name.trim_end_matches('.');
        if !labels.is_empty() {
            for label in labels.split('.') {
                let len = u8::try_from(label.len())
                    .ok()
                    .filter(|len| (1..=63).contains(len))
                    .ok_or_else(|| {
                        HarnessError::parse("option 81 name", format!("bad label in {}", self.name))
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
        let [flags, rcode1, rcode2, name @ ..] = data else {
            return Err(HarnessError::parse(
                "option 81",
                format!("{} bytes, fewer than 3", data.len()),
            ));
        };
        let name = if flags & Self::E == 0 {
            String::from_utf8_lossy(name).into_owned()
        } else {
            wire_name_text(name)?
        };
        Ok(Self {
            flags: *flags,
            rcode1: *rcode1,
            rcode2: *rcode2,
            name,
        })
    }

    /// `S O E N` letters of the set flags, for readable diffs.
    pub fn flag_letters(&self) -> String {
        [
            (Self::S, 'S'),
            (Self::O, 'O'),
            (Self::E, 'E'),
            (Self::N, 'N'),
        ]
        .iter()
        .filter(|(bit, _)| self.flags & bit != 0)
        .map(|(_, letter)| *letter)
        .collect()
    }
}

impl std::fmt::Display for ClientFqdn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "flags={:#04x}[{}] rcode1={} rcode2={} name={:?}",
            self.flags,
            self.flag_letters(),
            self.rcode1,
            self.rcode2,
            self.name
        )
    }
}

/// A wire-format name (possibly partial: no root label) as text.
fn wire_name_text(mut bytes: &[u8]) -> Result<String> {
    let mut labels = Vec::new();
    let mut full = false;
    while let [len, rest @ ..] = bytes {
        let len = usize::from(*len);
        if len == 0 {
            full = true;
            break;
        }
        let Some(label) = rest.get(..len) else {
            return Err(HarnessError::parse(
                "option 81 name",
                "label runs past the option",
            ));
        };
        labels.push(String::from_utf8_lossy(label).into_owned());
        bytes = &rest[len..];
    }
    let mut text = labels.join(".");
    if full {
        text.push('.');
    }
    Ok(text)
}

/// One simulated client: its identity and what it asks for.
#[derive(Clone, Debug, Default)]
pub struct ClientSpec {
    /// Hardware address (htype 1).
    pub mac: [u8; 6],
    /// Option 61, sent as is (type byte included).
    pub client_id: Option<Vec<u8>>,
    /// Option 81.
    pub fqdn: Option<ClientFqdn>,
    /// Option 12.
    pub hostname: Option<String>,
    /// Option 50 in the DISCOVER (the REQUEST always asks for the offer).
    pub requested: Option<Ipv4Addr>,
}

/// What one server message said: its type, the address and the name options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// `Offer`, `Ack`, `Nak`, ...
    pub message_type: String,
    pub yiaddr: Ipv4Addr,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 81.
    pub fqdn: Option<ClientFqdn>,
    /// Option 12.
    pub hostname: Option<String>,
}

impl Reply {
    pub fn is_ack(&self) -> bool {
        self.message_type == "Ack"
    }
}

/// A lease obtained by [`RelayClient::allocate`].
#[derive(Clone, Debug)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub server_id: Ipv4Addr,
    /// The relay address it was obtained through.
    pub giaddr: Ipv4Addr,
    pub offer: Reply,
    pub ack: Reply,
}

/// A relay agent's UDP port 67 in the client namespace of a [`Netns`],
/// talking to the server end of the veth.
#[derive(Debug)]
pub struct RelayClient {
    socket: UdpSocket,
    server: SocketAddrV4,
}

impl RelayClient {
    /// Adds each of `relay_addrs` as a /32 on the client veth (the server
    /// end's /16 makes them on-link for Kea's answers) and binds UDP port 67
    /// in the client namespace.
    pub fn new(net: &Netns, relay_addrs: &[Ipv4Addr]) -> Result<Self> {
        for addr in relay_addrs {
            net.ip_client(&[
                "addr",
                "add",
                &format!("{addr}/32"),
                "dev",
                net.client_iface(),
            ])?;
        }
        let socket = bind_in_namespace(
            net.client_ns(),
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, DHCP_PORT).into(),
        )?;
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| HarnessError::io("setting the relay socket's timeout", e))?;
        Ok(Self {
            socket,
            server: SocketAddrV4::new(net.server_addr(), DHCP_PORT),
        })
    }

    /// DISCOVER -> OFFER -> REQUEST (option 50 and the server id) -> ACK
    /// through relay `giaddr`. A NAK or a missing OFFER is an error.
    pub fn allocate(&self, client: &ClientSpec, giaddr: Ipv4Addr) -> Result<Lease> {
        let offer = self.discover(client, giaddr)?;
        let server_id = offer.server_id.ok_or_else(|| {
            HarnessError::parse("DHCPOFFER", format!("no server identifier: {offer:?}"))
        })?;
        let mut request = request_base(client, giaddr, MessageType::Request)?;
        request
            .opts_mut()
            .insert(DhcpOption::RequestedIpAddress(offer.yiaddr));
        request
            .opts_mut()
            .insert(DhcpOption::ServerIdentifier(server_id));
        let ack = self.exchange(&request, &[MessageType::Ack, MessageType::Nak])?;
        if !ack.is_ack() {
            return Err(HarnessError::parse(
                "DHCPREQUEST",
                format!("answered {ack:?} after {offer:?}"),
            ));
        }
        Ok(Lease {
            address: ack.yiaddr,
            server_id,
            giaddr,
            offer,
            ack,
        })
    }

    /// DISCOVER -> OFFER only (with option 50 when the client asks for an
    /// address). Kea commits nothing for it, so without multi-threading its
    /// answer also shows that Kea has finished every earlier packet.
    pub fn discover(&self, client: &ClientSpec, giaddr: Ipv4Addr) -> Result<Reply> {
        let mut discover = request_base(client, giaddr, MessageType::Discover)?;
        if let Some(addr) = client.requested {
            discover
                .opts_mut()
                .insert(DhcpOption::RequestedIpAddress(addr));
        }
        self.exchange(&discover, &[MessageType::Offer])
    }

    /// A renewal as the relay forwards it: REQUEST with `ciaddr`, without
    /// option 50 or a server id. `client` may ask for other names than at
    /// allocation. Returns the ACK (or NAK).
    pub fn renew(&self, client: &ClientSpec, lease: &Lease) -> Result<Reply> {
        let mut request = request_base(client, lease.giaddr, MessageType::Request)?;
        request.set_ciaddr(lease.address);
        self.exchange(&request, &[MessageType::Ack, MessageType::Nak])
    }

    /// DHCPRELEASE with `ciaddr` and the server id. Nothing answers a
    /// release: it is sent once, and the caller confirms it with Kea (its
    /// log or lease database) rather than by sending it again.
    pub fn release(&self, client: &ClientSpec, lease: &Lease) -> Result<()> {
        let mut release = request_base(client, lease.giaddr, MessageType::Release)?;
        release.set_ciaddr(lease.address);
        release
            .opts_mut()
            .insert(DhcpOption::ServerIdentifier(lease.server_id));
        // A release carries no name options (RFC 2131 table 5).
        release.opts_mut().remove(OptionCode::ClientFQDN);
        release.opts_mut().remove(OptionCode::Hostname);
        release.opts_mut().remove(OptionCode::ParameterRequestList);
        let bytes = encode(&release)?;
        self.socket
            .send_to(&bytes, self.server)
            .map_err(|e| HarnessError::io("sending DHCPRELEASE", e))?;
        Ok(())
    }

    /// Sends `message` and waits for an answer with its xid and one of
    /// `expected` types, sending it again every second, for 20 s at most.
    fn exchange(&self, message: &v4::Message, expected: &[MessageType]) -> Result<Reply> {
        let bytes = encode(message)?;
        let what = format!(
            "{:?} for {}",
            message.opts().msg_type(),
            mac_text(message.chaddr())
        );
        let deadline = Instant::now() + EXCHANGE_TIMEOUT;
        let mut buf = [0u8; 1500];
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
                let Ok(answer) = v4::borrowed::Message::new(&buf[..n]) else {
                    continue;
                };
                if answer.xid() != message.xid() || answer.opcode() != v4::Opcode::BootReply {
                    continue;
                }
                let reply = parse_reply(&buf[..n])?;
                if expected
                    .iter()
                    .any(|t| format!("{t:?}") == reply.message_type)
                {
                    return Ok(reply);
                }
            }
        }
        Err(HarnessError::Timeout {
            what: format!("an answer to {what}"),
            after: EXCHANGE_TIMEOUT,
        })
    }
}

/// A BOOTREQUEST from `client` through relay `giaddr` with its identity and
/// name options and a fresh xid.
fn request_base(
    client: &ClientSpec,
    giaddr: Ipv4Addr,
    message_type: MessageType,
) -> Result<v4::Message> {
    let mut message = v4::Message::new(
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        giaddr,
        &client.mac,
    );
    message.set_hops(1);
    let opts = message.opts_mut();
    opts.insert(DhcpOption::MessageType(message_type));
    if let Some(id) = &client.client_id {
        opts.insert(DhcpOption::ClientIdentifier(id.clone()));
    }
    if let Some(name) = &client.hostname {
        opts.insert(DhcpOption::Hostname(name.clone()));
    }
    if let Some(fqdn) = &client.fqdn {
        opts.insert(DhcpOption::Unknown(UnknownOption::new(
            OptionCode::ClientFQDN,
            fqdn.encode()?,
        )));
    }
    opts.insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::Hostname,
        OptionCode::ClientFQDN,
    ]));
    Ok(message)
}

fn encode(message: &v4::Message) -> Result<Vec<u8>> {
    message
        .to_vec()
        .map_err(|e| HarnessError::parse("dhcproto encoder", e.to_string()))
}

/// The fields a test compares, read with `dhcproto`'s raw view so that
/// option 81 keeps its bytes.
fn parse_reply(bytes: &[u8]) -> Result<Reply> {
    let message = v4::borrowed::Message::new(bytes)
        .map_err(|e| HarnessError::parse("DHCP reply", e.to_string()))?;
    let mut reply = Reply {
        message_type: String::new(),
        yiaddr: message.yiaddr(),
        server_id: None,
        fqdn: None,
        hostname: None,
    };
    for option in message.opts() {
        match option.code() {
            OptionCode::ClientFQDN => reply.fqdn = Some(ClientFqdn::decode(option.data())?),
            OptionCode::Hostname => {
                reply.hostname = Some(String::from_utf8_lossy(option.data()).into_owned());
            }
            OptionCode::MessageType | OptionCode::ServerIdentifier => {
                match option
                    .into_option()
                    .map_err(|e| HarnessError::parse("DHCP reply option", e.to_string()))?
                {
                    DhcpOption::MessageType(t) => reply.message_type = format!("{t:?}"),
                    DhcpOption::ServerIdentifier(id) => reply.server_id = Some(id),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    Ok(reply)
}

fn mac_text(chaddr: &[u8]) -> String {
    chaddr
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A UDP socket bound in network namespace `ns`: a short-lived thread
/// enters the namespace (setns changes only the calling thread) and binds;
/// the socket stays in that namespace wherever it is used from.
pub(crate) fn bind_in_namespace(ns: &str, addr: SocketAddr) -> Result<UdpSocket> {
    let path = Path::new("/run/netns").join(ns);
    let context = format!("binding {addr} in namespace {ns}");
    std::thread::scope(|scope| {
        scope
            .spawn(|| -> std::io::Result<UdpSocket> {
                let handle = std::fs::File::open(&path)?;
                // SAFETY: setns only reads the descriptor, which `handle`
                // keeps open for the call; it switches this thread alone,
                // which ends right after binding.
                if unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                UdpSocket::bind(addr)
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("binding thread panicked")))
    })
    .map_err(|e| HarnessError::io(context, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_full_partial_and_empty() {
        for name in ["host.a.lan.example.", "host", "a.b", ""] {
            let fqdn = ClientFqdn::request(ClientFqdn::S | ClientFqdn::E, name);
            let bytes = fqdn.encode().unwrap();
            assert_eq!(ClientFqdn::decode(&bytes).unwrap(), fqdn, "{name:?}");
        }
        let partial = ClientFqdn::request(ClientFqdn::E, "ab").encode().unwrap();
        assert_eq!(partial, vec![ClientFqdn::E, 0, 0, 2, b'a', b'b']);
        let full = ClientFqdn::request(ClientFqdn::E, "ab.").encode().unwrap();
        assert_eq!(full, vec![ClientFqdn::E, 0, 0, 2, b'a', b'b', 0]);
    }

    #[test]
    fn ascii_names_stay_as_written() {
        let fqdn = ClientFqdn::request(ClientFqdn::S, "My_Host.example.");
        let bytes = fqdn.encode().unwrap();
        assert_eq!(&bytes[3..], b"My_Host.example.");
        assert_eq!(ClientFqdn::decode(&bytes).unwrap(), fqdn);
        assert_eq!(fqdn.flag_letters(), "S");
    }

    #[test]
    fn replies_keep_option_81_bytes() {
        let mut message = v4::Message::new(
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::new(10, 9, 1, 10),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::new(10, 9, 1, 1),
            &[1, 2, 3, 4, 5, 6],
        );
        message.set_opcode(v4::Opcode::BootReply);
        let opts = message.opts_mut();
        opts.insert(DhcpOption::MessageType(MessageType::Ack));
        opts.insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 9, 0, 1)));
        opts.insert(DhcpOption::Hostname("h".into()));
        opts.insert(DhcpOption::Unknown(UnknownOption::new(
            OptionCode::ClientFQDN,
            vec![0x03, 255, 255, b'h', b'.', b'x', b'.'],
        )));
        let reply = parse_reply(&encode(&message).unwrap()).unwrap();
        assert!(reply.is_ack());
        assert_eq!(reply.yiaddr, Ipv4Addr::new(10, 9, 1, 10));
        assert_eq!(reply.server_id, Some(Ipv4Addr::new(10, 9, 0, 1)));
        assert_eq!(reply.hostname.as_deref(), Some("h"));
        let fqdn = reply.fqdn.unwrap();
        assert_eq!((fqdn.flags, fqdn.rcode1, fqdn.rcode2), (0x03, 255, 255));
        assert_eq!(fqdn.name, "h.x.");
    }
}
