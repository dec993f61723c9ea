//! `serve --tls-cert --tls-key`: HTTPS on the one listener, the console's session cookie
//! `Secure`, and a certificate that cannot be used stopping the start with its name.

use std::process::Stdio;

use super::{paths, rapport, Server};

/// A self-signed certificate for 127.0.0.1 and localhost: (certificate PEM, key PEM).
fn self_signed() -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("a self-signed certificate");
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

#[test]
fn served_over_tls_the_api_and_the_console_answer_and_the_session_cookie_is_secure() {
    let (tmp, data, master) = paths();
    let (cert_pem, key_pem) = self_signed();
    let (cert, key) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, &key_pem).unwrap();
    let mut command = rapport();
    command
        .env("RAPPORT_TLS_CERT", &cert)
        .env("RAPPORT_TLS_KEY", &key);
    let server = Server::start_with(&data, &master, command, Stdio::inherit());
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "the listening line names https: {}",
        server.base
    );
    let trusting = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let health = trusting
        .get(format!("{}/healthz", server.base))
        .send()
        .unwrap();
    assert_eq!(health.status(), 200);
    let customers = trusting
        .get(format!("{}/v1/customers?limit=1", server.base))
        .bearer_auth(&server.admin)
        .send()
        .unwrap();
    assert_eq!(customers.status(), 200);
    let signed_in = trusting
        .post(format!("{}/sign-in", server.base))
        .form(&[("key", server.admin.as_str())])
        .send()
        .unwrap();
    let cookie = signed_in
        .headers()
        .get("set-cookie")
        .expect("signing in sets the session cookie")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // A client that does not trust the certificate is refused at the handshake, and plain
    // HTTP on the TLS port gets no answer.
    assert!(reqwest::blocking::Client::new()
        .get(format!("{}/healthz", server.base))
        .send()
        .is_err());
    let plain = server.base.replacen("https://", "http://", 1);
    let answered = reqwest::blocking::Client::new()
        .get(format!("{plain}/healthz"))
        .send()
        .is_ok_and(|r| r.status().is_success());
    assert!(
        !answered,
        "plain HTTP must not be served on the TLS listener"
    );
}

#[test]
fn a_certificate_that_cannot_be_used_stops_the_start_naming_the_file() {
    let (tmp, data, master) = paths();
    let cert = tmp.path().join("not-a-cert.pem");
    std::fs::write(&cert, "this is not PEM").unwrap();
    let (_, key_pem) = self_signed();
    let key = tmp.path().join("key.pem");
    std::fs::write(&key, key_pem).unwrap();
    let out = rapport()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--master-key-file")
        .arg(&master)
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TLS certificate") && stderr.contains("not-a-cert.pem"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing was served");
    // One of the pair alone is refused before anything starts.
    let out = rapport()
        .args(["serve", "--data-dir"])
        .arg(&data)
        .arg("--tls-cert")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
}
