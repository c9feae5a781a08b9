//! perfdhcp as a many-client load generator.

use crate::error::{HarnessError, Result};
use crate::process::{Place, run};
use std::time::Duration;

/// One perfdhcp run. perfdhcp in v4 mode acts as a relay: it needs an
/// address on its interface (the client veth has `10.N.0.2`), and Kea picks
/// the subnet from that giaddr. In v6 mode ([`Perfdhcp::v6`]) it sends
/// from the interface's link-local address to the servers' multicast
/// group, and kea-dhcp6 picks the subnet by the receiving interface.
#[derive(Clone, Debug)]
pub struct Perfdhcp {
    /// `-6` (Solicit/Advertise/Request/Reply) instead of `-4`.
    pub ipv6: bool,
    /// Exchanges initiated per second (`-r`).
    pub rate: u32,
    /// Distinct simulated clients, i.e. MAC addresses (`-R`).
    pub clients: u32,
    /// Exchanges to initiate before stopping (`-n`).
    pub exchanges: u32,
    /// Hard limit on the test period in seconds (`-p`).
    pub period_secs: u32,
    /// How long to keep listening after the last packet (`-W`), so the
    /// last answers are not counted as drops.
    pub exit_wait: Duration,
    /// Further arguments, e.g. `-o 12,<hex>` (see [`Perfdhcp::option`]).
    pub extra: Vec<String>,
}

/// Counters of one exchange type, e.g. `DISCOVER-OFFER`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exchange {
    pub name: String,
    pub sent: u64,
    pub received: u64,
    pub drops: u64,
    pub rejected_leases: u64,
}

/// perfdhcp's exit code (0 = all answered, 3 = some exchanges lost) and
/// its parsed statistics.
#[derive(Clone, Debug)]
pub struct PerfdhcpReport {
    pub exit_code: Option<i32>,
    pub exchanges: Vec<Exchange>,
    pub output: String,
}

impl PerfdhcpReport {
    pub fn exchange(&self, name: &str) -> Option<&Exchange> {
        self.exchanges.iter().find(|e| e.name == name)
    }

    pub fn total_drops(&self) -> u64 {
        self.exchanges.iter().map(|e| e.drops).sum()
    }

    /// ACKs received: completed 4-way exchanges.
    pub fn acks(&self) -> u64 {
        self.exchange("REQUEST-ACK").map_or(0, |e| e.received)
    }

    /// Replies to Requests received: completed DHCPv6 4-way exchanges.
    pub fn replies(&self) -> u64 {
        self.exchange("REQUEST-REPLY").map_or(0, |e| e.received)
    }
}

impl Perfdhcp {
    /// Full DORA for `clients` clients, `exchanges` exchanges at `rate`/s.
    pub fn new(rate: u32, clients: u32, exchanges: u32) -> Self {
        Self {
            ipv6: false,
            rate,
            clients,
            exchanges,
            period_secs: 60,
            exit_wait: Duration::from_secs(2),
            extra: Vec::new(),
        }
    }

    /// Full Solicit/Advertise/Request/Reply for `clients` clients (DUIDs),
    /// `exchanges` exchanges at `rate`/s.
    pub fn v6(rate: u32, clients: u32, exchanges: u32) -> Self {
        Self {
            ipv6: true,
            ..Self::new(rate, clients, exchanges)
        }
    }

    /// Adds DHCP option `code` with raw `value` to every packet (`-o`), e.g.
    /// 12 (host name) or 81 (client FQDN); v6: 39 (client FQDN).
    pub fn option(mut self, code: u8, value: &[u8]) -> Self {
        let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
        self.extra.push("-o".into());
        self.extra.push(format!("{code},{hex}"));
        self
    }

    /// Numbers the clients' MAC addresses from `mac` (`-b mac=...`), so
    /// runs in one test do not reuse each other's clients.
    pub fn mac_base(mut self, mac: &str) -> Self {
        self.extra.push("-b".into());
        self.extra.push(format!("mac={mac}"));
        self
    }

    /// Runs perfdhcp at `place` on `iface` and parses its report. A
    /// non-zero exit code is not an error: it is in the report.
    pub fn run(&self, place: &Place, iface: &str) -> Result<PerfdhcpReport> {
        let mut cmd = place.command("perfdhcp")?;
        let family = if self.ipv6 { "-6" } else { "-4" };
        cmd.args([family, "-l", iface])
            .arg("-r")
            .arg(self.rate.to_string())
            .arg("-R")
            .arg(self.clients.to_string())
            .arg("-n")
            .arg(self.exchanges.to_string())
            .arg("-p")
            .arg(self.period_secs.to_string())
            .arg("-W")
            .arg(self.exit_wait.as_micros().to_string())
            .args(&self.extra);
        let limit = Duration::from_secs(u64::from(self.period_secs) + 30) + self.exit_wait;
        let out = run(cmd, None, limit)?;
        let output = out.combined();
        let exchanges = parse_report(&out.stdout);
        if exchanges.is_empty() {
            return Err(HarnessError::parse(
                "perfdhcp",
                format!("no statistics ({}):\n{output}", out.status),
            ));
        }
        Ok(PerfdhcpReport {
            exit_code: out.code(),
            exchanges,
            output,
        })
    }
}

fn parse_report(text: &str) -> Vec<Exchange> {
    let mut exchanges: Vec<Exchange> = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line
            .strip_prefix("***Statistics for: ")
            .and_then(|r| r.strip_suffix("***"))
        {
            exchanges.push(Exchange {
                name: name.to_owned(),
                ..Exchange::default()
            });
            continue;
        }
        let Some(current) = exchanges.last_mut() else {
            continue;
        };
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<u64>() else {
            continue;
        };
        match key {
            "sent packets" => current.sent = value,
            "received packets" => current.received = value,
            "drops" => current.drops = value,
            "rejected leases" => current.rejected_leases = value,
            _ => {}
        }
    }
    exchanges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_exchanges() {
        let text = "***Rate statistics***\nRate: 49.45 4-way exchanges/second, expected rate: 50\n\n\
            ***Statistics for: DISCOVER-OFFER***\nsent packets: 100\nreceived packets: 99\ndrops: 1\n\
            drops ratio: 1 %\norphans: 0\nrejected leases: 0\n\nmin delay: 0.378 ms\n\n\
            ***Statistics for: REQUEST-ACK***\nsent packets: 99\nreceived packets: 98\ndrops: 1\n\
            drops ratio: 0.000 %\nrejected leases: 2\n";
        let exchanges = parse_report(text);
        assert_eq!(exchanges.len(), 2);
        assert_eq!(
            exchanges[0],
            Exchange {
                name: "DISCOVER-OFFER".into(),
                sent: 100,
                received: 99,
                drops: 1,
                rejected_leases: 0
            }
        );
        assert_eq!(exchanges[1].received, 98);
        assert_eq!(exchanges[1].rejected_leases, 2);
        let report = PerfdhcpReport {
            exit_code: Some(3),
            exchanges,
            output: String::new(),
        };
        assert_eq!(report.total_drops(), 2);
        assert_eq!(report.acks(), 98);
    }

    #[test]
    fn v6_replies_are_counted() {
        let text = "***Statistics for: SOLICIT-ADVERTISE***\nsent packets: 10\nreceived packets: 10\n\
            ***Statistics for: REQUEST-REPLY***\nsent packets: 10\nreceived packets: 9\ndrops: 1\n";
        let report = PerfdhcpReport {
            exit_code: Some(3),
            exchanges: parse_report(text),
            output: String::new(),
        };
        assert_eq!(report.replies(), 9);
        assert_eq!(report.acks(), 0);
        assert!(Perfdhcp::v6(1, 1, 1).ipv6);
    }

    #[test]
    fn option_is_hex_encoded() {
        let p = Perfdhcp::new(10, 10, 10).option(12, b"ab");
        assert_eq!(p.extra, vec!["-o".to_owned(), "12,6162".to_owned()]);
    }
}
