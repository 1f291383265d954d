//! The Azure Key Vault test server of the integration tests, standalone, for
//! benchmarks and manual tries (never for production):
//!
//! ```text
//! cargo run --example azure_kv_server -- 100
//! ```
//!
//! creates N secrets `bench-0001`… with random values, prints one JSON line
//! (`url`, `ca_cert`, `tenant_id`, `client_id`, `client_secret`, `secrets`
//! name -> value) and serves until its stdin is closed. Point a source at it:
//! `vault_url = url`, `ca_cert = ca_cert`, and `AZURE_AUTHORITY_HOST = url`
//! with the client-secret variables.

#[allow(dead_code)]
#[path = "../tests/it/support/azure_kv.rs"]
mod azure_kv;

use std::io::Read;

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let server = azure_kv::KeyVaultServer::start();
    let client_secret = azure_kv::random_hex(32);
    server.add_client(azure_kv::CLIENT_ID, &client_secret);
    let mut secrets = serde_json::Map::new();
    for i in 1..=n {
        let (name, value) = (format!("bench-{i:04}"), azure_kv::random_hex(32));
        server.put(&name, &value);
        secrets.insert(name, value.into());
    }
    let info = serde_json::json!({
        "url": server.url(),
        "ca_cert": azure_kv::pki().ca,
        "tenant_id": azure_kv::TENANT,
        "client_id": azure_kv::CLIENT_ID,
        "client_secret": client_secret,
        "secrets": secrets,
    });
    println!("{info}");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
