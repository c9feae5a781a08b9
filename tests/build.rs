//! Which knotd transports the end-to-end tests can expect, decided by the
//! same header fact that the module's bindings use: knot-sys reads the
//! installed `knot/module.h` and reports whether knotd gives modules DNS
//! over TLS as its own transport (ABI 600, Knot 3.4+). The DoT/DoQ test is
//! compiled only then (`cfg(knotd_tls)`), so on Knot 3.2 it is absent, not
//! passing, and on 3.4+ it runs and fails if knotd cannot serve TLS.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(knotd_tls)");
    let tls = std::env::var("DEP_KNOTD_MODULE_QUERY_PROTO_TLS")
        .expect("knot-sys sets DEP_KNOTD_MODULE_QUERY_PROTO_TLS (links = \"knotd-module\")");
    match tls.as_str() {
        "yes" => println!("cargo::rustc-cfg=knotd_tls"),
        "no" => {}
        other => panic!("DEP_KNOTD_MODULE_QUERY_PROTO_TLS is '{other}', expected yes or no"),
    }
}
