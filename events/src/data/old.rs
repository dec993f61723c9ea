//! Payloads of older versions, kept for their JSON Schemas (`events/schema/*.v1.json`):
//! their data is read through the upcasters of `upcast.rs`, never through these.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::money::{Currency, Money};

// `purchase` version 1: no `store`, no `items[].batch` (a plain comment: the schema of
// version 1 stays as it was published).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Purchase")]
pub struct PurchaseV1 {
    pub order_id: String,
    pub amount: Money,
    pub currency: Currency,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ItemV1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Item")]
pub struct ItemV1 {
    pub sku: String,
    /// A positive count.
    pub quantity: u32,
    pub unit_price: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

// `purchase` version 2: no `sold_by`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Purchase")]
pub struct PurchaseV2 {
    pub order_id: String,
    pub amount: Money,
    pub currency: Currency,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<super::Item>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The store (shop, branch, online store) that sold it (version 2), so that an alert
    /// about a store finds who bought there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
}
