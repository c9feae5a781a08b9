//! Generates the cxx bridge and compiles the C++ shim against the installed Kea headers, after checking
//! that they are the Kea version this crate targets: a hook built for another
//! hooks version is refused by kea-dhcp4 at load time.

use std::env;
use std::fs;
use std::path::PathBuf;

/// The Kea release lines leasedns builds against, by hooks version range
/// (Kea's hooks version is its release number: 2.6.3 is 20603), with the
/// API name the shim's `#if`s and the Debian release that ships it. Kea
/// refuses a library whose `version()` differs from its own, so a build
/// loads only into the exact release whose headers it read.
const SUPPORTED: [(u32, u32, &str, &str); 3] = [
    (20200, 20299, "202", "Debian 12 bookworm: 2.2.0"),
    (20600, 20699, "206", "Debian 13 trixie: 2.6.3"),
    (
        30000,
        30099,
        "300",
        "Debian testing forky: 3.0.4; trixie-backports: 3.0.3",
    ),
];

fn main() {
    let include =
        PathBuf::from(env::var("KEA_INCLUDE_DIR").unwrap_or_else(|_| "/usr/include/kea".into()));
    println!("cargo:rerun-if-env-changed=KEA_INCLUDE_DIR");
    println!("cargo:rerun-if-changed=src/lib.rs");
    println!("cargo:rerun-if-changed=shim/shim.cc");
    println!("cargo:rerun-if-changed=shim/leasedns_shim.h");
    println!("cargo:rerun-if-changed=shim/compat/dhcpsrv/cfg_globals.h");

    let hooks_h = include.join("hooks/hooks.h");
    println!("cargo:rerun-if-changed={}", hooks_h.display());
    let text = match fs::read_to_string(&hooks_h) {
        Ok(text) => text,
        Err(err) => {
            eprintln!(
                "error: cannot read {} ({err}).\n  The Kea development headers are missing: \
                 install them with `apt-get install kea-dev libboost-dev liblog4cplus-dev` \
                 (or run ./build/install-deps).",
                hooks_h.display()
            );
            std::process::exit(1);
        }
    };
    let found = text
        .lines()
        .find_map(|line| {
            let rest = line.trim().strip_prefix("const int KEA_HOOKS_VERSION =")?;
            rest.trim().trim_end_matches(';').trim().parse::<u32>().ok()
        })
        .unwrap_or(0);
    let Some(&(_, _, api, _)) = SUPPORTED
        .iter()
        .find(|(lo, hi, _, _)| (*lo..=*hi).contains(&found))
    else {
        let lines: Vec<String> = SUPPORTED
            .iter()
            .map(|(lo, hi, _, what)| format!("    {lo}..={hi} ({what})"))
            .collect();
        eprintln!(
            "error: installed Kea headers ({}) declare KEA_HOOKS_VERSION = {found}, which leasedns \
             does not support. It builds against Kea 2.2, 2.6 and 3.0 (hooks versions):\n{}\n  \
             Install kea-dev of one of these releases (the same version as kea-dhcp4-server).",
            hooks_h.display(),
            lines.join("\n")
        );
        std::process::exit(1);
    };
    println!("cargo:rustc-env=LEASEDNS_KEA_HOOKS_VERSION={found}");
    println!(
        "cargo:warning=building against Kea hooks version {found} from {}",
        include.display()
    );

    cxx_build::bridge("src/lib.rs")
        .file("shim/shim.cc")
        // compat/ first: it supplies dhcpsrv/cfg_globals.h, missing from
        // bookworm's kea-dev 2.2.0 (see the header's comment); later
        // releases ship it, and then compat/ is left out.
        .includes(if api == "202" {
            Some("shim/compat")
        } else {
            None
        })
        .include(&include)
        .define("LEASEDNS_KEA_API", api)
        .std(if api == "202" { "c++17" } else { "c++20" })
        .flag_if_supported("-Wno-deprecated-declarations")
        .flag_if_supported("-Wno-unused-parameter")
        .pic(true)
        .compile("leasedns_kea_shim");

    // Kea 3.0 renamed libkea-dhcp++ to libkea-dhcp.
    let dhcp_lib = if api == "300" {
        "kea-dhcp"
    } else {
        "kea-dhcp++"
    };
    for lib in [
        "kea-dhcpsrv",
        dhcp_lib,
        "kea-hooks",
        "kea-process",
        "kea-asiolink",
        "kea-cc",
        "kea-stats",
        "kea-log",
        "kea-util",
        "kea-exceptions",
    ] {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
    // Kea 3.0's srv_config.h instantiates boost::asio's SSL error category
    // in the shim, which calls into OpenSSL.
    if api == "300" {
        println!("cargo:rustc-link-lib=dylib=ssl");
        println!("cargo:rustc-link-lib=dylib=crypto");
    }
    println!("cargo:rustc-link-lib=dylib=stdc++");
}
