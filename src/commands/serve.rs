//! `rapport serve`: the service until Ctrl-C or SIGTERM.

use anyhow::Context as _;

use crate::{
    app::{self, AppOptions},
    cli::ServeArgs,
};

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let ServeArgs {
        data,
        store,
        config,
        master,
        listen,
        kafka_brokers,
        kafka_in_topic,
        kafka_group,
        kafka_security_protocol,
        kafka_sasl_mechanism,
        kafka_sasl_username,
        kafka_sasl_password_file,
        kafka_ssl_ca,
        kafka_ssl_cert,
        kafka_ssl_key,
        tls_cert,
        tls_key,
    } = args;
    let config = config.load()?;
    let master = master.resolve(true)?;
    let password = match kafka_sasl_password_file {
        Some(f) => Some(zeroize::Zeroizing::new(
            std::fs::read_to_string(&f)
                .with_context(|| format!("cannot read {}", f.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        )),
        None => std::env::var("RAPPORT_KAFKA_SASL_PASSWORD")
            .ok()
            .map(zeroize::Zeroizing::new),
    };
    let security = crate::kafka::KafkaSecurity::new(crate::kafka::SecurityGiven {
        protocol: kafka_security_protocol,
        mechanism: kafka_sasl_mechanism,
        username: kafka_sasl_username,
        password,
        ca: kafka_ssl_ca,
        cert: kafka_ssl_cert,
        key: kafka_ssl_key,
    })
    .map_err(anyhow::Error::msg)?;
    let kafka = kafka_brokers.map(|b| crate::kafka::KafkaOptions {
        in_topic: kafka_in_topic,
        group: kafka_group,
        security,
        ..crate::kafka::KafkaOptions::defaults(&b, &data.data_dir)
    });
    let store = app::StoreChoice::parse(&store)?;
    app::run(
        AppOptions {
            store,
            kafka,
            config,
            tls: tls_cert
                .zip(tls_key)
                .map(|(cert, key)| app::TlsFiles { cert, key }),
            ..AppOptions::embedded(data.data_dir, master)
        },
        listen,
        shutdown_signal(),
    )
    .await
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
