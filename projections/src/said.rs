//! Sentences of evidence as data: a message id and its arguments, so that each reader
//! gets them in its own language (the console's catalogs hold `evidence-<id>`), with the
//! English text kept beside them for the API.

use serde::{Deserialize, Serialize};

/// One sentence: what it says (`id`) about what (`args`, in order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Said {
    pub id: String,
    pub args: Vec<(String, String)>,
}

impl Said {
    pub fn new(id: &str, args: &[(&str, String)]) -> Said {
        Said {
            id: id.to_owned(),
            args: args
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        }
    }

    fn arg(&self, name: &str) -> &str {
        self.args
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The sentence in English (what the API's evidence strings say).
    pub fn english(&self) -> String {
        let a = |n| self.arg(n);
        match self.id.as_str() {
            "in-community" => format!("{} of {} in community {}", a("n"), a("of"), a("community")),
            "referred" => format!("{} referred {}", a("a"), a("b")),
            "replied" => format!("{} replied to {}", a("a"), a("b")),
            "mentioned" => format!("{} mentioned {}", a("a"), a("b")),
            "echoed" => format!("{} echoed {}", a("a"), a("b")),
            "network-size" => format!(
                "{} agents over {} levels under {}",
                a("agents"),
                a("levels"),
                a("root")
            ),
            "recruitment-share" => format!("{}% of commissions paid for recruitment", a("percent")),
            "unrelated-share" => format!(
                "{}% of commissions paid for recruitment or on agents' own purchases",
                a("percent")
            ),
            "loading" => format!(
                "agents bought {} times what they sold to end customers",
                a("times")
            ),
            "loading-no-retail" => "agents bought stock and sold nothing to end customers".into(),
            "paid-entry-stock" => format!("{} of {} agents paid to join", a("paid"), a("agents")),
            "paid-entry" => format!(
                "{} of {} agents paid to join (entry fees {})",
                a("paid"),
                a("agents"),
                a("fees")
            ),
            "stocked-left" => format!(
                "{} agents left holding stock they had not sold",
                a("agents")
            ),
            other => other.to_owned(),
        }
    }
}
