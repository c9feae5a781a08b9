//! Real DNS queries with `kdig`, run in the namespace the server lives in.

use crate::error::{HarnessError, Result};
use crate::process::{Place, run};
use std::net::IpAddr;
use std::time::Duration;

const KDIG_TIMEOUT: Duration = Duration::from_secs(15);

/// A DNS server to query: where to run kdig from, and the server's address.
#[derive(Clone, Debug)]
pub struct Dns {
    place: Place,
    server: IpAddr,
    port: u16,
}

/// One record of a zone transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneRecord {
    /// Owner name, absolute and lower-case (`host.lan.example.`).
    pub name: String,
    pub ttl: u32,
    /// Type mnemonic as kdig prints it (`A`, `PTR`, `DHCID`, ...).
    pub rtype: String,
    /// Presentation-format rdata.
    pub rdata: String,
}

/// The header status and answer records of one query.
#[derive(Clone, Debug)]
pub struct Answer {
    /// `NOERROR`, `NXDOMAIN`, `REFUSED`, ...
    pub rcode: String,
    pub records: Vec<ZoneRecord>,
}

impl Dns {
    pub fn new(place: Place, server: IpAddr, port: u16) -> Self {
        Self {
            place,
            server,
            port,
        }
    }

    pub fn place(&self) -> &Place {
        &self.place
    }

    pub fn server(&self) -> IpAddr {
        self.server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn kdig(&self, args: &[&str]) -> Result<String> {
        let mut cmd = self.place.command("kdig")?;
        cmd.arg(format!("@{}", self.server))
            .arg("-p")
            .arg(self.port.to_string());
        // One quick try: callers poll with wait_until instead of relying on
        // kdig's retries.
        cmd.args(["+retry=0", "+timeout=2"]).args(args);
        let out = run(cmd, None, KDIG_TIMEOUT)?;
        if !out.success() {
            return Err(HarnessError::CommandFailed {
                command: format!("kdig @{} -p {} {}", self.server, self.port, args.join(" ")),
                status: out.status.to_string(),
                output: out.combined(),
            });
        }
        Ok(out.stdout)
    }

    /// The rdata of the answers to `name`/`rtype` (`kdig +short`); empty
    /// for NXDOMAIN or no data.
    pub fn query(&self, name: &str, rtype: &str) -> Result<Vec<String>> {
        let out = self.kdig(&[name, rtype, "+short"])?;
        Ok(out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect())
    }

    /// The rcode and the answer section of a query.
    pub fn lookup(&self, name: &str, rtype: &str) -> Result<Answer> {
        let out = self.kdig(&[name, rtype])?;
        let rcode = out
            .lines()
            .find_map(|line| line.split("status: ").nth(1))
            .and_then(|rest| rest.split(';').next())
            .map(|s| s.trim().to_owned())
            .ok_or_else(|| HarnessError::parse("kdig", format!("no status line in:\n{out}")))?;
        let answer_section = out
            .split(";; ANSWER SECTION:")
            .nth(1)
            .map(|rest| rest.split("\n\n").next().unwrap_or(rest))
            .unwrap_or("");
        Ok(Answer {
            rcode,
            records: parse_records(answer_section)?,
        })
    }

    /// Every record of `zone` via AXFR (Knot allows transfers from the
    /// addresses it listens on), SOA included once.
    pub fn axfr(&self, zone: &str) -> Result<Vec<ZoneRecord>> {
        let out = self.kdig(&[zone, "AXFR", "+noall", "+answer"])?;
        let mut records = parse_records(&out)?;
        if records.is_empty() {
            return Err(HarnessError::parse(
                format!("kdig AXFR {zone}"),
                format!("no records:\n{out}"),
            ));
        }
        // AXFR repeats the SOA at the end.
        if records.len() > 1 && records.first() == records.last() {
            records.pop();
        }
        Ok(records)
    }

    /// How many records of type `rtype` the zone holds.
    pub fn count(&self, zone: &str, rtype: &str) -> Result<usize> {
        Ok(self
            .axfr(zone)?
            .iter()
            .filter(|r| r.rtype.eq_ignore_ascii_case(rtype))
            .count())
    }

    /// The zone's SOA serial.
    pub fn soa_serial(&self, zone: &str) -> Result<u32> {
        let soa = self.query(zone, "SOA")?;
        soa.first()
            .and_then(|line| line.split_whitespace().nth(2))
            .and_then(|serial| serial.parse().ok())
            .ok_or_else(|| HarnessError::parse("kdig SOA", format!("{soa:?}")))
    }
}

/// Parses kdig's presentation lines `name ttl class type rdata...`,
/// skipping comments and blank lines.
pub(crate) fn parse_records(text: &str) -> Result<Vec<ZoneRecord>> {
    let mut records = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
    {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, ttl, _class, rtype, rdata @ ..] = fields.as_slice() else {
            return Err(HarnessError::parse("kdig", format!("not a record: {line}")));
        };
        let ttl = ttl
            .parse()
            .map_err(|_| HarnessError::parse("kdig", format!("bad TTL in: {line}")))?;
        records.push(ZoneRecord {
            name: name.to_ascii_lowercase(),
            ttl,
            rtype: (*rtype).to_owned(),
            rdata: rdata.join(" "),
        });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kdig_answer_lines() {
        let text = "lan.example.        \t300\tIN\tSOA\tns.lan.example. hostmaster.lan.example. 1 3600 600 86400 300\n\
                    ;; comment\n\
                    Printer.lan.example.\t300\tIN\tA\t10.77.0.250\n";
        let records = parse_records(text).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].name, "printer.lan.example.");
        assert_eq!(records[1].rtype, "A");
        assert_eq!(records[1].rdata, "10.77.0.250");
        assert_eq!(
            records[0].rdata,
            "ns.lan.example. hostmaster.lan.example. 1 3600 600 86400 300"
        );
    }

    #[test]
    fn rejects_truncated_lines() {
        assert!(parse_records("lan.example. 300 IN").is_err());
    }
}
