//! A scripted DHCPv6 client for the one exchange no stock client offers:
//! Decline (`dhclient -6` declines only when its own DAD fails, perfdhcp
//! -6 never). It sends Solicit, Request and Decline with one DUID and
//! IAID, an IA_NA and optionally option 39, to ff02::1:2 on the client
//! veth, as a client on the link does.

use crate::dhclient6::Fqdn6;
use crate::dhcp4_client::bind_in_namespace;
use crate::error::{HarnessError, Result};
use crate::netns::Netns;
use dhcproto::v6::{self, DhcpOption, DhcpOptions, IAAddr, IANA, MessageType, OptionCode};
use dhcproto::{Decodable as _, Decoder, Encodable as _};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::time::{Duration, Instant};

const CLIENT_PORT: u16 = 546;
const SERVER_PORT: u16 = 547;
/// All_DHCP_Relay_Agents_and_Servers.
const ALL_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(20);
const RETRANSMIT_AFTER: Duration = Duration::from_secs(1);

/// An address the server bound to the client, and who bound it.
#[derive(Clone, Debug)]
pub struct Dhcp6Lease {
    pub address: Ipv6Addr,
    /// The server's DUID (option 2), which a Decline must carry.
    server_id: Vec<u8>,
}

/// One DHCPv6 client identity (DUID + IAID) on a namespace pair's client
/// veth. Binds UDP port 546 in the client namespace: do not run
/// `dhclient -6` there at the same time.
#[derive(Debug)]
pub struct Dhcp6Client {
    socket: UdpSocket,
    servers: SocketAddrV6,
    duid: Vec<u8>,
    iaid: u32,
}

impl Dhcp6Client {
    pub fn new(net: &Netns, duid: Vec<u8>, iaid: u32) -> Result<Self> {
        let socket = bind_in_namespace(
            net.client_ns(),
            SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, CLIENT_PORT, 0, 0).into(),
        )?;
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| HarnessError::io("setting the DHCPv6 socket's timeout", e))?;
        let scope = interface_index(net)?;
        Ok(Self {
            socket,
            servers: SocketAddrV6::new(ALL_SERVERS, SERVER_PORT, 0, scope),
            duid,
            iaid,
        })
    }

    pub fn duid(&self) -> &[u8] {
        &self.duid
    }

    /// Solicit -> Advertise -> Request -> Reply, sending `fqdn` as option
    /// 39 in both; the address the Reply binds.
    pub fn obtain(&self, fqdn: Option<&Fqdn6>) -> Result<Dhcp6Lease> {
        let mut solicit = self.message(MessageType::Solicit, fqdn, None);
        solicit
            .opts_mut()
            .insert(DhcpOption::IANA(self.ia_na(None)));
        let advertise = self.exchange(&solicit, MessageType::Advertise)?;
        let offered = bound_address(&advertise)?;
        let server_id = server_id(&advertise)?;
        let mut request = self.message(MessageType::Request, fqdn, Some(&server_id));
        request
            .opts_mut()
            .insert(DhcpOption::IANA(self.ia_na(Some(offered))));
        let reply = self.exchange(&request, MessageType::Reply)?;
        Ok(Dhcp6Lease {
            address: bound_address(&reply)?,
            server_id,
        })
    }

    /// Decline of `lease` (RFC 8415 18.2.8): the server marks the address
    /// unusable and answers a Reply, whose top-level status is returned
    /// (0, Success, when there is none).
    pub fn decline(&self, lease: &Dhcp6Lease) -> Result<u16> {
        let mut decline = self.message(MessageType::Decline, None, Some(&lease.server_id));
        decline
            .opts_mut()
            .insert(DhcpOption::IANA(self.ia_na(Some(lease.address))));
        let reply = self.exchange(&decline, MessageType::Reply)?;
        Ok(match reply.opts().get(OptionCode::StatusCode) {
            Some(DhcpOption::StatusCode(status)) => status.status.into(),
            _ => 0,
        })
    }

    fn message(
        &self,
        kind: MessageType,
        fqdn: Option<&Fqdn6>,
        server_id: Option<&[u8]>,
    ) -> v6::Message {
        let mut message = v6::Message::new(kind);
        let opts = message.opts_mut();
        opts.insert(DhcpOption::ClientId(self.duid.clone()));
        opts.insert(DhcpOption::ElapsedTime(0));
        if let Some(id) = server_id {
            opts.insert(DhcpOption::ServerId(id.to_vec()));
        }
        if let Some(fqdn) = fqdn {
            opts.insert(DhcpOption::Unknown(v6::UnknownOption::new(
                OptionCode::ClientFqdn,
                fqdn.payload(),
            )));
        }
        message
    }

    fn ia_na(&self, address: Option<Ipv6Addr>) -> IANA {
        let opts = address
            .map(|addr| {
                DhcpOptions::from_iter([DhcpOption::IAAddr(IAAddr {
                    addr,
                    preferred_life: 0,
                    valid_life: 0,
                    opts: DhcpOptions::new(),
                })])
            })
            .unwrap_or_default();
        IANA {
            id: self.iaid,
            t1: 0,
            t2: 0,
            opts,
        }
    }

    fn exchange(&self, message: &v6::Message, expected: MessageType) -> Result<v6::Message> {
        let bytes = message
            .to_vec()
            .map_err(|e| HarnessError::parse("encoding a DHCPv6 message", e.to_string()))?;
        let what = format!("{:?}", message.msg_type());
        let deadline = Instant::now() + EXCHANGE_TIMEOUT;
        let mut buf = [0u8; 1500];
        while Instant::now() < deadline {
            self.socket
                .send_to(&bytes, SocketAddr::V6(self.servers))
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
                let Ok(answer) = v6::Message::decode(&mut Decoder::new(&buf[..n])) else {
                    continue;
                };
                if answer.xid() == message.xid() && answer.msg_type() == expected {
                    return Ok(answer);
                }
            }
        }
        Err(HarnessError::Timeout {
            what: format!("an answer to {what}"),
            after: EXCHANGE_TIMEOUT,
        })
    }
}

/// The address in the answer's IA_NA, or the server's reason for none.
fn bound_address(answer: &v6::Message) -> Result<Ipv6Addr> {
    let Some(DhcpOption::IANA(ia)) = answer.opts().get(OptionCode::IANA) else {
        return Err(HarnessError::parse(
            "DHCPv6 answer",
            format!("no IA_NA in {answer:?}"),
        ));
    };
    match ia.opts.get(OptionCode::IAAddr) {
        Some(DhcpOption::IAAddr(addr)) if addr.valid_life > 0 => Ok(addr.addr),
        _ => Err(HarnessError::parse(
            "DHCPv6 answer",
            format!("no usable address in {ia:?}"),
        )),
    }
}

fn server_id(answer: &v6::Message) -> Result<Vec<u8>> {
    match answer.opts().get(OptionCode::ServerId) {
        Some(DhcpOption::ServerId(id)) => Ok(id.clone()),
        _ => Err(HarnessError::parse(
            "DHCPv6 answer",
            format!("no server id in {answer:?}"),
        )),
    }
}

/// The client veth's index, as the namespace numbers it.
fn interface_index(net: &Netns) -> Result<u32> {
    let out = net.ip_client(&["-o", "link", "show", "dev", net.client_iface()])?;
    out.split(':')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| HarnessError::parse("ip -o link show", out))
}
