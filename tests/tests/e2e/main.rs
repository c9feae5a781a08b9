//! The end-to-end tests: real kea-dhcp4, kea-dhcp6, kea-dhcp-ddns and
//! knotd with the plugins, real DHCP clients in network namespaces. One
//! test binary (one link instead of one per file): run one area with a
//! filter, e.g. `cargo test --release -p tests --test e2e -- --include-ignored faults::`.
//! Each module's own documentation says what it proves.

mod common;

mod dhcp6;
mod dhcp6_faults;
mod dhcp6_stock;
mod differential;
mod differential6;
mod dual_stack;
mod faults;
mod ha;
mod harness_self;
mod kea_hook;
mod knot_module;
mod recovery;
mod secondaries;
mod updates;
