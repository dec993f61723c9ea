//! How Rapport reaches a Kafka cluster: in the clear (a broker beside it), over TLS (with
//! the system's CAs or a private one, optionally a client certificate), and with SASL
//! credentials (PLAIN or SCRAM), which is what managed Kafka services ask for. Checked
//! whole when the server starts: a half-given setting is an error naming the option, not
//! a consumer that retries for ever.

use std::path::PathBuf;

use rdkafka::ClientConfig;
use zeroize::Zeroizing;

/// `security.protocol`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Protocol::Plaintext => "plaintext",
            Protocol::Ssl => "ssl",
            Protocol::SaslPlaintext => "sasl_plaintext",
            Protocol::SaslSsl => "sasl_ssl",
        }
    }

    /// As the command line spells it.
    fn option(self) -> String {
        self.as_str().replace('_', "-")
    }

    fn tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::SaslSsl)
    }

    fn sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }
}

/// `sasl.mechanism` (GSSAPI/Kerberos is not built in).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mechanism {
    Plain,
    #[value(name = "scram-sha-256")]
    ScramSha256,
    #[value(name = "scram-sha-512")]
    ScramSha512,
}

impl Mechanism {
    fn as_str(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// SASL credentials. The password is never printed.
#[derive(Clone)]
pub struct Sasl {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: Zeroizing<String>,
}

impl std::fmt::Debug for Sasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sasl")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Everything about the connection to the brokers but their addresses.
#[derive(Clone, Debug, Default)]
pub struct KafkaSecurity {
    pub protocol: Protocol,
    pub sasl: Option<Sasl>,
    /// CA certificates (PEM) that sign the brokers' certificates; the system's when absent.
    pub ca: Option<PathBuf>,
    /// A client certificate and its key (PEM), for brokers that authenticate clients by TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// The settings as given (command line or environment), before they are checked.
#[derive(Debug, Default)]
pub struct Given {
    pub protocol: Protocol,
    pub mechanism: Option<Mechanism>,
    pub username: Option<String>,
    /// From the environment or a file, never the command line.
    pub password: Option<Zeroizing<String>>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl KafkaSecurity {
    /// Checks that the settings are whole and consistent, and that the files exist.
    pub fn new(g: Given) -> Result<KafkaSecurity, String> {
        let sasl = match (g.protocol.sasl(), g.mechanism, g.username, g.password) {
            (true, Some(mechanism), Some(username), Some(password)) => Some(Sasl {
                mechanism,
                username,
                password,
            }),
            (true, None, _, _) => return Err(format!("--kafka-security-protocol {}: give --kafka-sasl-mechanism", g.protocol.option())),
            (true, _, None, _) => return Err(format!("--kafka-security-protocol {}: give --kafka-sasl-username", g.protocol.option())),
            (true, _, _, None) => return Err(format!("--kafka-security-protocol {}: give the password in RAPPORT_KAFKA_SASL_PASSWORD or --kafka-sasl-password-file", g.protocol.option())),
            (false, None, None, None) => None,
            (false, ..) => return Err(format!(
                "SASL credentials were given but --kafka-security-protocol is {}; use sasl-plaintext or sasl-ssl",
                g.protocol.option()
            )),
        };
        let client_cert = match (g.cert, g.key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err("--kafka-ssl-cert and --kafka-ssl-key go together".into()),
        };
        if !g.protocol.tls() && (g.ca.is_some() || client_cert.is_some()) {
            return Err(format!(
                "TLS files were given but --kafka-security-protocol is {}; use ssl or sasl-ssl",
                g.protocol.option()
            ));
        }
        let files =
            g.ca.iter()
                .chain(client_cert.iter().flat_map(|(c, k)| [c, k]));
        for f in files {
            std::fs::metadata(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        }
        Ok(KafkaSecurity {
            protocol: g.protocol,
            sasl,
            ca: g.ca,
            client_cert,
        })
    }

    /// Sets the client's connection options.
    pub fn apply(&self, c: &mut ClientConfig) {
        c.set("security.protocol", self.protocol.as_str());
        if let Some(s) = &self.sasl {
            c.set("sasl.mechanism", s.mechanism.as_str())
                .set("sasl.username", &s.username)
                .set("sasl.password", s.password.as_str());
        }
        if self.protocol.tls() {
            // The broker's name is checked against its certificate (librdkafka's default,
            // stated so that nobody wonders).
            c.set("ssl.endpoint.identification.algorithm", "https");
            match &self.ca {
                Some(ca) => c.set("ssl.ca.location", ca.to_string_lossy()),
                None => c.set("ssl.ca.location", "probe"),
            };
            if let Some((cert, key)) = &self.client_cert {
                c.set("ssl.certificate.location", cert.to_string_lossy())
                    .set("ssl.key.location", key.to_string_lossy());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sasl_ssl() -> Given {
        Given {
            protocol: Protocol::SaslSsl,
            mechanism: Some(Mechanism::ScramSha512),
            username: Some("rapport".into()),
            password: Some(Zeroizing::new("s3cret".into())),
            ..Given::default()
        }
    }

    #[test]
    fn sasl_over_tls_sets_what_managed_kafka_asks_for_and_never_prints_the_password() {
        let s = KafkaSecurity::new(sasl_ssl()).unwrap();
        let mut c = ClientConfig::new();
        s.apply(&mut c);
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("sasl.username"), Some("rapport"));
        assert_eq!(c.get("sasl.password"), Some("s3cret"));
        assert_eq!(c.get("ssl.ca.location"), Some("probe"));
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn half_given_settings_are_refused_naming_what_is_missing() {
        let no_password = Given {
            password: None,
            ..sasl_ssl()
        };
        assert!(KafkaSecurity::new(no_password)
            .unwrap_err()
            .contains("RAPPORT_KAFKA_SASL_PASSWORD"));
        let no_mechanism = Given {
            mechanism: None,
            ..sasl_ssl()
        };
        assert!(KafkaSecurity::new(no_mechanism)
            .unwrap_err()
            .contains("--kafka-sasl-mechanism"));
        let credentials_in_the_clear = Given {
            protocol: Protocol::Ssl,
            ..sasl_ssl()
        };
        assert!(KafkaSecurity::new(credentials_in_the_clear)
            .unwrap_err()
            .contains("sasl-ssl"));
        let ca_without_tls = Given {
            ca: Some("/etc/hostname".into()),
            ..Given::default()
        };
        assert!(KafkaSecurity::new(ca_without_tls).is_err());
        let missing_ca = Given {
            protocol: Protocol::Ssl,
            ca: Some("/nonexistent/ca.pem".into()),
            ..Given::default()
        };
        assert!(KafkaSecurity::new(missing_ca)
            .unwrap_err()
            .contains("/nonexistent/ca.pem"));
    }

    #[test]
    fn the_default_is_plaintext_with_nothing_else_set() {
        let s = KafkaSecurity::new(Given::default()).unwrap();
        let mut c = ClientConfig::new();
        s.apply(&mut c);
        assert_eq!(c.get("security.protocol"), Some("plaintext"));
        assert_eq!(c.get("ssl.ca.location"), None);
    }
}
