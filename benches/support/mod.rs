//! What the benchmarks share: a server config with the principals they act as.
#![allow(dead_code)]

use marr::config::Config;
use marr::domain::{Actor, Role};
use sha2::Digest;

pub const ADMIN_TOKEN: &str = "bench-admin";
pub const AGENCY_TOKEN: &str = "bench-agency";
pub const INSPECTOR_TOKEN: &str = "bench-inspector";

/// A config with an administrator, an inspector for England and one agency's system, and
/// limits no benchmark reaches.
pub fn config(agency: &str) -> Config {
    let hash = |token: &str| hex::encode(sha2::Sha256::digest(token.as_bytes()));
    let text = format!(
        "[[principal]]\nname = \"admin\"\nrole = \"admin\"\ntoken_sha256 = \"{}\"\n\
         [[principal]]\nname = \"inspector\"\nrole = \"inspector\"\nplaces = [\"E92000001\"]\ntoken_sha256 = \"{}\"\n\
         [[principal]]\nname = \"agency\"\nrole = \"agency\"\nagency = \"{agency}\"\ntoken_sha256 = \"{}\"\n\
         [limits]\ncalls_per_second = 1000000\nburst = 1000000\nmax_concurrent_calls = 100000\n",
        hash(ADMIN_TOKEN),
        hash(INSPECTOR_TOKEN),
        hash(AGENCY_TOKEN),
    );
    let config: Config = toml::from_str(&text).expect("bench config parses");
    config.check().expect("bench config is valid");
    config
}

/// Who acts when a benchmark drives the store directly.
pub fn operator() -> Actor {
    Actor::new("benchmark loader", Role::Admin, "benchmark")
}
