//! The DHCPv6 harness proven on the stock path: kea-dhcp6 with its own DDNS
//! (NCRs to kea-dhcp-ddns, which updates Knot). These are the oracle the
//! hook's DHCPv6 tests (dhcp6.rs) are held to: the same scenarios
//! with the leasedns hook instead of D2.

use crate::common;

use common::lab6::{
    Updater, named_client_is_published_and_released, perfdhcp_clients_are_published,
};
use harness::require_root;

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn stock_named_client_is_published_and_released() {
    require_root();
    named_client_is_published_and_released(Updater::Stock);
}

#[test]
#[ignore = "end to end: needs root and the real daemons; build/test runs it"]
fn stock_two_hundred_perfdhcp_clients_get_aaaa_and_ptr() {
    require_root();
    perfdhcp_clients_are_published(Updater::Stock, 200, 100);
}
