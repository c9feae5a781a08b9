//! Which DNS updates a lease asks for, and what the server answers in the
//! client's option 81, as Kea + kea-dhcp-ddns would decide them.
//!
//! Kea names the lease itself, DDNS on or off: the reserved hostname, the
//! client's option 81 or 12 qualified with `ddns-qualifying-suffix`,
//! `ddns-replace-client-name`, the generated `<ddns-generated-prefix>-a-b-c-d`,
//! `hostname-char-set`/`-replacement`, lower case. What it does not do with
//! its DDNS client off (`dhcp-ddns.enable-updates` false, as leasedns
//! requires) is choose the directions: it stores the lease with both off and
//! answers option 81 with S=0 N=1. This module makes those two decisions as
//! Kea's `D2ClientMgr::analyzeFqdn`, `adjustFqdnFlags` and
//! `getUpdateDirections` and `Dhcpv4Srv::processClientName` do with the
//! DDNS client on, from the subnet's `ddns-send-updates`,
//! `ddns-override-client-update` and `ddns-override-no-update` (Kea's own
//! settings, read per subnet by the adapter):
//!
//! - Option 81 (RFC 4702 section 2.1): client S=1 -> server S=1; client
//!   S=0 N=0 -> server S = `ddns-override-client-update`, N=0; client N=1 ->
//!   server S = `ddns-override-no-update`, N = !S. With `ddns-send-updates`
//!   false: S=0, N=1. O is set when the server's S differs from the
//!   client's, E is echoed. The forward zone is updated when S=1, the
//!   reverse zone when N=0. S=1 with N=1 is invalid (Kea's option parser
//!   refuses it): no update.
//! - Option 12, or no name option (Kea may still give a generated or
//!   reserved name): both directions when `ddns-send-updates` is on.
//! - Kea 3.0's `SKIP_DDNS` class (set by an operator's class or by the
//!   ddns-tuning hook): no update, and the answer says so (S=0, N=1), as
//!   ddns-tuning leaves it.

/// The DHCID of a client and name (RFC 4701), and record TTLs.
pub mod dhcid;

use crate::config::DdnsScope;

/// RFC 4702 flag: the server should perform the A update.
pub const FLAG_S: u8 = 0x01;
/// RFC 4702 flag: the server overrode the client's S.
pub const FLAG_O: u8 = 0x02;
/// RFC 4702 flag: the name is in canonical wire format.
pub const FLAG_E: u8 = 0x04;
/// RFC 4702 flag: the server should perform no updates.
pub const FLAG_N: u8 = 0x08;

/// What one exchange asks of DNS, and the flags of the server's option 81.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// A + DHCID in the forward zone.
    pub forward: bool,
    /// PTR + DHCID in the reverse zone.
    pub reverse: bool,
    /// The flags field of the server's option 81, when the client sent one.
    pub reply_flags: Option<u8>,
}

/// The decision for a client that sent option 81 with `client_flags`
/// (`Some`) or no option 81 (`None`), in a subnet whose settings are
/// `scope`; `skip_ddns`: the query is in Kea 3.0's `SKIP_DDNS` class.
pub fn decide(client_flags: Option<u8>, scope: &DdnsScope, skip_ddns: bool) -> Decision {
    let Some(flags) = client_flags else {
        let on = scope.send_updates && !skip_ddns;
        return Decision {
            forward: on,
            reverse: on,
            reply_flags: None,
        };
    };
    let client_s = flags & FLAG_S != 0;
    let client_n = flags & FLAG_N != 0;
    let (server_s, server_n) = if !scope.send_updates {
        (false, true)
    } else {
        match (client_s, client_n) {
            (false, false) => (scope.override_client_update, false),
            (true, false) => (true, false),
            (false, true) => {
                let s = scope.override_no_update;
                (s, !s)
            }
            (true, true) => {
                return Decision {
                    forward: false,
                    reverse: false,
                    reply_flags: None,
                };
            }
        }
    };
    let mut forward = server_s;
    let mut reverse = !server_n;
    let mut reply = flags & FLAG_E;
    if server_s {
        reply |= FLAG_S;
    }
    if client_s != server_s {
        reply |= FLAG_O;
    }
    if server_n {
        reply |= FLAG_N;
    }
    if skip_ddns && (forward || reverse) {
        // ddns-tuning turns the directions off, and Kea then answers
        // S=0 N=1 (keeping O as computed above).
        forward = false;
        reverse = false;
        reply = (reply & !FLAG_S) | FLAG_N;
    }
    Decision {
        forward,
        reverse,
        reply_flags: Some(reply),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(send: bool, override_client: bool, override_no: bool) -> DdnsScope {
        DdnsScope {
            send_updates: send,
            override_client_update: override_client,
            override_no_update: override_no,
            ..DdnsScope::default()
        }
    }

    fn d(flags: Option<u8>, s: &DdnsScope) -> (bool, bool, Option<u8>) {
        let d = decide(flags, s, false);
        (d.forward, d.reverse, d.reply_flags)
    }

    #[test]
    fn client_flags_as_kea_with_its_ddns_client_on() {
        let plain = scope(true, false, false);
        // S=1: the server does both.
        assert_eq!(d(Some(FLAG_S), &plain), (true, true, Some(FLAG_S)));
        // S=0 N=0: the client does A, the server PTR.
        assert_eq!(d(Some(0), &plain), (false, true, Some(0)));
        // N=1: nobody updates.
        assert_eq!(d(Some(FLAG_N), &plain), (false, false, Some(FLAG_N)));
        // E is echoed.
        assert_eq!(
            d(Some(FLAG_S | FLAG_E), &plain),
            (true, true, Some(FLAG_S | FLAG_E))
        );
        // S=1 N=1 is invalid.
        assert_eq!(d(Some(FLAG_S | FLAG_N), &plain), (false, false, None));
    }

    #[test]
    fn overrides_set_o() {
        let over_client = scope(true, true, false);
        assert_eq!(
            d(Some(0), &over_client),
            (true, true, Some(FLAG_S | FLAG_O))
        );
        let over_no = scope(true, false, true);
        assert_eq!(
            d(Some(FLAG_N), &over_no),
            (true, true, Some(FLAG_S | FLAG_O))
        );
        // Without the override N=1 stays.
        assert_eq!(d(Some(FLAG_N), &over_client), (false, false, Some(FLAG_N)));
    }

    #[test]
    fn send_updates_off_answers_no_update() {
        let off = scope(false, true, true);
        assert_eq!(d(Some(FLAG_S), &off), (false, false, Some(FLAG_N | FLAG_O)));
        assert_eq!(d(Some(0), &off), (false, false, Some(FLAG_N)));
        assert_eq!(d(None, &off), (false, false, None));
    }

    #[test]
    fn hostname_option_or_none_updates_both_directions() {
        assert_eq!(d(None, &scope(true, false, false)), (true, true, None));
    }

    #[test]
    fn skip_ddns_turns_updates_off_and_says_so() {
        let plain = scope(true, false, false);
        let got = decide(Some(FLAG_S), &plain, true);
        assert_eq!((got.forward, got.reverse), (false, false));
        assert_eq!(got.reply_flags, Some(FLAG_N));
        let got = decide(None, &plain, true);
        assert_eq!((got.forward, got.reverse), (false, false));
    }
}
