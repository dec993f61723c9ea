//! Kafka over TLS with a private CA, as a managed cluster is reached: the ingest consumes
//! and dead-letters through a TLS endpoint whose certificate only the given CA trusts.
//!
//! Tansu speaks plain Kafka, so a TLS-terminating proxy sits in front of it and Tansu
//! advertises the proxy's address: every connection a client makes (bootstrap, then the
//! partition leader) goes through TLS. SASL cannot be tested this way (Tansu does not
//! authenticate); `src/kafka/security.rs` tests the options it sets.

use std::{sync::Arc, time::Duration};

use rapport::{
    crypto::{Keyring, MasterKey},
    kafka::{self, KafkaOptions, KafkaSecurity, Protocol, SecurityGiven},
    log::Log,
    store::{
        sqlite::{SqliteOptions, SqliteStore},
        EventStore,
    },
};
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    producer::{FutureProducer, FutureRecord},
    ClientConfig,
};
use serde_json::json;

use crate::kafka::broker_advertising;

/// Accepts TLS on `listener` and relays each connection, decrypted, to `upstream`.
fn tls_proxy(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    upstream: String,
) {
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(client).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
}

/// A client of the TLS endpoint trusting only `ca`.
fn tls_client(endpoint: &str, ca: &std::path::Path) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", endpoint)
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", ca.to_string_lossy());
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ingest_reaches_a_broker_over_tls_trusting_a_private_ca() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // The name the certificate is for, and the one clients connect to.
    let endpoint = format!("localhost:{}", listener.local_addr().unwrap().port());
    let Some(b) = broker_advertising(Some(&endpoint)).await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (tmp.path().join("broker.pem"), tmp.path().join("broker.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    tls_proxy(
        listener,
        rapport::http::tls::acceptor(&cert, &key).unwrap(),
        b.addr.clone(),
    );

    let admin: AdminClient<DefaultClientContext> = tls_client(&endpoint, &cert).create().unwrap();
    let topics: Vec<NewTopic> = ["rapport.events.in", "rapport.events.dlq"]
        .iter()
        .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)))
        .collect();
    admin
        .create_topics(&topics, &AdminOptions::new())
        .await
        .unwrap();
    let producer: FutureProducer = tls_client(&endpoint, &cert)
        .set("message.timeout.ms", "30000")
        .create()
        .unwrap();
    let good = json!({"type": "purchase", "customer": "c-1", "occurred_at": "2026-03-01T10:00:00Z",
        "data": {"order_id": "o-1", "amount": "9.90", "currency": "CNY"}});
    for body in [good.to_string(), "not an event".to_owned()] {
        producer
            .send(
                FutureRecord::<(), String>::to("rapport.events.in").payload(&body),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path(), SqliteOptions::default()).unwrap());
    let log = Log::new(
        store.clone() as Arc<dyn EventStore>,
        Arc::new(Keyring::load(MasterKey::generate(), vec![]).unwrap()),
    );
    let opts = KafkaOptions {
        security: KafkaSecurity::new(SecurityGiven {
            protocol: Protocol::Ssl,
            ca: Some(cert.clone()),
            ..SecurityGiven::default()
        })
        .unwrap(),
        ..KafkaOptions::defaults(&endpoint, dir.path())
    };
    let dead_letters = prometheus_client::metrics::counter::Counter::<u64>::default();
    let ingest = kafka::spawn_ingest(opts, log, dead_letters.clone()).unwrap();
    // The valid event is appended; the other went to the dead-letter topic, through TLS
    // too (the ingest's producer).
    let mut lag = ingest.lag();
    tokio::time::timeout(Duration::from_secs(60), lag.wait_for(|l| *l == Some(0)))
        .await
        .expect("the ingest consumed everything over TLS")
        .unwrap();
    assert_eq!(store.last_position(), 1);
    assert_eq!(dead_letters.get(), 1);
    ingest.stop().await.unwrap();
}
