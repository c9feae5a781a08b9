//! Generates the bindings of the Knot DNS query-module API from the
//! installed header, and refuses to build against an ABI this workspace does
//! not support: knotd loads a module only when its embedded version equals
//! its own `KNOTD_MOD_ABI_VERSION` exactly, so a build loads only into the
//! Knot release line whose header it read.

use std::env;
use std::path::PathBuf;
use std::process::exit;

/// Module ABI versions and the Knot DNS releases (and Debian releases) that
/// have them. 3.3 (ABI 500) shipped in no Debian release and is not tested.
const SUPPORTED: [(u32, &str); 2] = [
    (400, "Knot DNS 3.2, Debian 12 bookworm"),
    (
        600,
        "Knot DNS 3.4 and 3.5, Debian 13 trixie and testing forky",
    ),
];
const DEFAULT_HEADER: &str = "/usr/include/knot/module.h";

fn fail(message: &str) -> ! {
    // A panic would bury the message under a backtrace; cargo shows stderr.
    eprintln!("\nerror: knot-sys: {message}\n");
    exit(1);
}

fn main() {
    println!("cargo:rerun-if-env-changed=KNOT_MODULE_HEADER");
    let header = env::var_os("KNOT_MODULE_HEADER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_HEADER));
    println!("cargo:rerun-if-changed={}", header.display());

    let text = match std::fs::read_to_string(&header) {
        Ok(text) => text,
        Err(e) => fail(&format!(
            "cannot read {} ({e}). Install the Knot DNS development headers \
             (Debian: `apt-get install libknot-dev`) or set KNOT_MODULE_HEADER.",
            header.display()
        )),
    };
    let abi = text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("#define")?.trim_start();
        let value = rest.strip_prefix("KNOTD_MOD_ABI_VERSION")?;
        value.split_whitespace().next()?.parse::<u32>().ok()
    });
    let abi = match abi {
        Some(abi) if SUPPORTED.iter().any(|(known, _)| *known == abi) => abi,
        Some(other) => fail(&format!(
            "{} declares KNOTD_MOD_ABI_VERSION {other}, which mod-querystats does not support; \
             it builds against {}. Install the libknot-dev of one of these (the same version as \
             knotd).",
            header.display(),
            SUPPORTED
                .iter()
                .map(|(abi, what)| format!("{abi} ({what})"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        None => fail(&format!(
            "{} has no KNOTD_MOD_ABI_VERSION: not a Knot DNS module header?",
            header.display()
        )),
    };
    let include_dir = header
        .parent()
        .and_then(|knot| knot.parent())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/include"));

    let bindings = bindgen::Builder::default()
        .header(header.display().to_string())
        .clang_arg(format!("-I{}", include_dir.display()))
        .allowlist_function("knotd_.*")
        .allowlist_type("knotd_.*")
        .allowlist_type("yp_.*")
        .allowlist_type("knot_pkt_t")
        .allowlist_var("KNOTD_.*")
        .allowlist_var("YP_.*")
        .allowlist_type("knot_error")
        // Integers, not Rust enums: knotd passes values outside these enums
        // (state 2, "produce", reaches hooks), which would be UB as an enum.
        .default_enum_style(bindgen::EnumVariation::Consts)
        .derive_default(false)
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .unwrap_or_else(|e| {
            fail(&format!(
                "bindgen failed on {} ({e}); libclang-dev and the libknot-dev headers are needed",
                header.display()
            ))
        });
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let out = out_dir.join("bindings.rs");
    if let Err(e) = bindings.write_to_file(&out) {
        fail(&format!("writing {}: {e}", out.display()));
    }

    // DNS over TLS reaches modules as its own knotd_query_proto_t value from
    // Knot 3.4 (ABI 600). Dependents see one Option constant instead of
    // checking the ABI themselves; their build scripts (the end-to-end tests)
    // get the same answer as DEP_KNOTD_MODULE_QUERY_PROTO_TLS.
    let has_tls = text.lines().any(|line| {
        line.trim_start()
            .strip_prefix("KNOTD_QUERY_PROTO_TLS")
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    });
    let tls_value = if has_tls {
        "Some(knotd_query_proto_t_KNOTD_QUERY_PROTO_TLS)"
    } else {
        "None"
    };
    let transports = out_dir.join("transports.rs");
    let constants = format!(
        "/// `KNOTD_QUERY_PROTO_TLS` (DNS over TLS) where the header has it (ABI 600), None before.\n\
         pub const QUERY_PROTO_TLS: Option<knotd_query_proto_t> = {tls_value};\n"
    );
    if let Err(e) = std::fs::write(&transports, constants) {
        fail(&format!("writing {}: {e}", transports.display()));
    }
    println!("cargo:abi={abi}");
    println!(
        "cargo:query-proto-tls={}",
        if has_tls { "yes" } else { "no" }
    );
}
