//! Generates the cxx bridge and compiles the C++ shim against the installed Kea headers, after checking
//! that they are the Kea version this crate targets: a hook built for another
//! hooks version is refused by kea-dhcp4 at load time.

use std::env;
use std::fs;
use std::path::PathBuf;

/// Kea 2.2.x. Kea refuses a library whose `version()` differs from its own.
const EXPECTED_HOOKS_VERSION: u32 = 20200;

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
    if found != EXPECTED_HOOKS_VERSION {
        eprintln!(
            "error: installed Kea headers ({}) declare KEA_HOOKS_VERSION = {found}, but leasedns \
             targets Kea 2.2 (hooks version {EXPECTED_HOOKS_VERSION}). kea-dhcp4 refuses a hook \
             built for another version; build against Debian bookworm's kea-dev 2.2.0.",
            hooks_h.display()
        );
        std::process::exit(1);
    }
    println!("cargo:rustc-env=LEASEDNS_KEA_HOOKS_VERSION={found}");
    println!(
        "cargo:warning=building against Kea hooks version {found} from {}",
        include.display()
    );

    cxx_build::bridge("src/lib.rs")
        .file("shim/shim.cc")
        // compat/ first: it supplies dhcpsrv/cfg_globals.h, missing from
        // bookworm's kea-dev 2.2.0 (see the header's comment).
        .include("shim/compat")
        .include(&include)
        .std("c++17")
        .flag_if_supported("-Wno-deprecated-declarations")
        .flag_if_supported("-Wno-unused-parameter")
        .pic(true)
        .compile("leasedns_kea_shim");

    for lib in [
        "kea-dhcpsrv",
        "kea-dhcp++",
        "kea-hooks",
        "kea-asiolink",
        "kea-cc",
        "kea-stats",
        "kea-log",
        "kea-util",
        "kea-exceptions",
    ] {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
    println!("cargo:rustc-link-lib=dylib=stdc++");
}
