//! An alert's graph, drawn on the server as SVG: its customers on a circle in the order
//! they joined the cascade, the ties among them coloured by kind, and a replay control
//! that shows the cascade as it grew, one timeline entry at a time (`?step=k`; links, no
//! script needed).

use serde_json::Value;

use super::text;

/// The drawing's size, in SVG units.
const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 400.0;
const RADIUS: f64 = 150.0;

pub(crate) struct Node {
    pub(crate) x: String,
    pub(crate) y: String,
    pub(crate) label_y: String,
    pub(crate) customer: String,
    /// The node that joined at the step shown.
    pub(crate) newest: bool,
}

pub(crate) struct Edge {
    pub(crate) x1: String,
    pub(crate) y1: String,
    pub(crate) x2: String,
    pub(crate) y2: String,
    pub(crate) colour: &'static str,
    pub(crate) dashed: bool,
    pub(crate) title: String,
}

/// The graph as the page draws it at one step.
pub(crate) struct Graph {
    pub(crate) nodes: Vec<Node>,
    pub(crate) edges: Vec<Edge>,
    /// (tie kind, colour) of the kinds drawn, for the legend.
    pub(crate) legend: Vec<(String, &'static str)>,
    pub(crate) steps: usize,
    /// The step shown (`steps` when the whole cascade is).
    pub(crate) step: usize,
}

fn colour(tie: &str) -> (&'static str, bool) {
    match tie {
        "referral" => ("#1f5fa8", false),
        "replied to" | "mentioned" => ("#2a7a2a", false),
        "echoed" => ("#b02a2a", false),
        "recruited" => ("#6b3fa0", false),
        _ => ("#6d6d6d", true),
    }
}

/// The kind of a tie, as a message id's suffix (`replied_to`, `community` …).
fn kind(tie: &str) -> String {
    if tie.starts_with("community ") {
        "community".into()
    } else {
        tie.replace(' ', "_")
    }
}

/// The graph of the API's `graph` at `step` (1 ..= steps; `None`: all of it).
pub(crate) fn layout(g: &Value, step: Option<usize>) -> Option<Graph> {
    let all = g["nodes"].as_array()?;
    if all.is_empty() {
        return None;
    }
    let steps = g["steps"].as_u64().unwrap_or(0) as usize;
    let step = step.filter(|s| (1..=steps).contains(s)).unwrap_or(steps);
    let n = all.len();
    let mut at = std::collections::HashMap::new();
    let mut nodes = vec![];
    for (i, node) in all.iter().enumerate() {
        // A node appears at its step; a network's agents have none and always show.
        let appears = node["step"].as_u64().map(|s| s as usize);
        if appears.is_some_and(|s| s > step) {
            continue;
        }
        let angle = std::f64::consts::TAU * i as f64 / n as f64 - std::f64::consts::FRAC_PI_2;
        let (x, y) = (
            WIDTH / 2.0 + RADIUS * angle.cos(),
            HEIGHT / 2.0 + RADIUS * angle.sin(),
        );
        let customer = text(&node["customer"]);
        at.insert(customer.clone(), (x, y));
        nodes.push(Node {
            x: format!("{x:.1}"),
            y: format!("{y:.1}"),
            label_y: format!("{:.1}", y + 28.0),
            customer,
            newest: appears == Some(step) && steps > 0,
        });
    }
    let mut legend: Vec<(String, &'static str)> = vec![];
    let edges = g["edges"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| {
                    let (a, b) = (text(&e["a"]), text(&e["b"]));
                    let (&(x1, y1), &(x2, y2)) = (at.get(&a)?, at.get(&b)?);
                    let tie = text(&e["tie"]);
                    let (colour, dashed) = colour(&tie);
                    if !legend.iter().any(|(k, _)| *k == kind(&tie)) {
                        legend.push((kind(&tie), colour));
                    }
                    Some(Edge {
                        x1: format!("{x1:.1}"),
                        y1: format!("{y1:.1}"),
                        x2: format!("{x2:.1}"),
                        y2: format!("{y2:.1}"),
                        colour,
                        dashed,
                        title: format!("{a} – {b}: {tie}"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    legend.sort();
    Some(Graph {
        nodes,
        edges,
        legend,
        steps,
        step,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_step_shows_the_customers_who_had_joined_by_then_and_their_ties() {
        let g = json!({"steps": 3, "nodes": [
            {"customer": "a", "step": 1}, {"customer": "b", "step": 2}, {"customer": "c", "step": 3}],
            "edges": [{"a": "a", "b": "b", "tie": "referral"}, {"a": "b", "b": "c", "tie": "community g-1"}]});
        let two = super::layout(&g, Some(2)).unwrap();
        assert_eq!(two.nodes.len(), 2);
        assert!(two.nodes[1].newest && !two.nodes[0].newest);
        assert_eq!(two.edges.len(), 1);
        assert_eq!(two.legend, [("referral".to_owned(), "#1f5fa8")]);
        let all = super::layout(&g, None).unwrap();
        assert_eq!((all.nodes.len(), all.edges.len(), all.step), (3, 2, 3));
        assert!(super::layout(&json!({"nodes": []}), None).is_none());
    }
}
