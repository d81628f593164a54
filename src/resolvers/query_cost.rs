//! Query cost (contract note 18): a document is refused whole, before anything runs, with
//! QUERY_TOO_COMPLEX when one of its operations costs more than the limit, when a mutation
//! holds more than ten root fields, or when a search filter's lists pass their caps.
//!
//! A field costs 1 plus, for an object, its selection; a list field multiplies its selection by
//! its size: `first` where the client gives it, else the largest the list may be (for lists
//! whose length the data decides, such as a category's children, a generous bound). Only the
//! field name decides, as every list field of the schema is named after what it holds.
//! Introspection fields cost one each, so GraphiQL's schema query always passes.

use std::collections::HashMap;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, FragmentDefinition, OperationDefinition, OperationType, Selection,
    SelectionSet,
};
use async_graphql::{Name, Positioned, ServerError, Variables};
use async_graphql_value::{ConstValue, Value};

use crate::domain::search::model::MAX_PAGE;
use crate::error::ErrorCode;

/// Root fields one mutation document may hold.
pub const MAX_MUTATION_FIELDS: usize = 10;
/// Caps on the lists of a search filter.
const MAX_FILTER_BRANDS: usize = 50;
const MAX_FILTER_ATTRIBUTES: usize = 20;
const MAX_FILTER_ATTRIBUTE_VALUES: usize = 50;
/// A connection's page when the client names none (the schema's default of `first`).
const DEFAULT_PAGE: u64 = 20;

/// How many elements a field stands for.
enum Size {
    One,
    /// The field's own `first`, or this default.
    First(u64),
    /// The enclosing connection's `first` (`nodes`, `edges`).
    Page,
    /// The most the list may hold.
    AtMost(u64),
}

fn size_of(field: &str) -> Size {
    match field {
        "flashSales" => Size::First(20),
        "productRecommendations" | "recommendedProducts" => Size::First(10),
        "nodes" | "edges" => Size::Page,
        // A cart holds at most 100 lines by default; checkouts and orders are made from carts.
        "items" | "cappedCartLines" => Size::AtMost(100),
        "attributes" => Size::AtMost(50),
        // Lists whose length the data decides.
        "categories" | "children" | "facets" | "values" | "events" => Size::AtMost(20),
        _ => Size::One,
    }
}

pub(super) fn too_complex(message: String) -> ServerError {
    let mut error = ServerError::new(message, None);
    error.extensions.get_or_insert_with(Default::default).set("code", ErrorCode::QueryTooComplex.as_str());
    error
}

/// Every operation of the document within the limits, or what is wrong.
pub fn check(document: &ExecutableDocument, variables: &Variables, limit: u64) -> Result<(), String> {
    let operations: Vec<&Positioned<OperationDefinition>> = match &document.operations {
        DocumentOperations::Single(operation) => vec![operation],
        DocumentOperations::Multiple(operations) => operations.values().collect(),
    };
    for operation in operations {
        let mut walk = Walk { document, operation: &operation.node, variables, fragments: HashMap::new() };
        if operation.node.ty == OperationType::Mutation {
            let roots = walk.root_fields(&operation.node.selection_set.node, 0);
            if roots > MAX_MUTATION_FIELDS {
                return Err(format!(
                    "a mutation may hold at most {MAX_MUTATION_FIELDS} root fields; this one holds {roots}"
                ));
            }
        }
        let cost = walk.cost(&operation.node.selection_set.node, DEFAULT_PAGE, false, 0)?;
        if cost > limit {
            return Err(format!("query cost {cost} exceeds the limit of {limit}"));
        }
    }
    Ok(())
}

/// Fragments nest at most this deep (a deeper or cyclic spread is refused; validation would
/// refuse a cycle anyway, but this runs before it).
const MAX_FRAGMENT_NESTING: usize = 32;

struct Walk<'a> {
    document: &'a ExecutableDocument,
    operation: &'a OperationDefinition,
    variables: &'a Variables,
    /// Cost of each fragment at a page size, so that fragments spread many times are walked once.
    fragments: HashMap<(&'a str, u64, bool), u64>,
}

impl<'a> Walk<'a> {
    fn fragment(&self, name: &Name) -> Option<&'a FragmentDefinition> {
        self.document.fragments.get(name).map(|fragment| &fragment.node)
    }

    fn root_fields(&self, set: &'a SelectionSet, nesting: usize) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(_) => 1,
                _ if nesting >= MAX_FRAGMENT_NESTING => 0,
                Selection::FragmentSpread(spread) => self
                    .fragment(&spread.node.fragment_name.node)
                    .map_or(0, |fragment| self.root_fields(&fragment.selection_set.node, nesting + 1)),
                Selection::InlineFragment(inline) => self.root_fields(&inline.node.selection_set.node, nesting + 1),
            })
            .sum()
    }

    fn cost(&mut self, set: &'a SelectionSet, page: u64, introspection: bool, nesting: usize) -> Result<u64, String> {
        if nesting > MAX_FRAGMENT_NESTING {
            return Err(format!("fragments nest more than {MAX_FRAGMENT_NESTING} deep"));
        }
        let mut total: u64 = 0;
        for item in &set.items {
            let cost = match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let name = field.name.node.as_str();
                    let introspection = introspection || name.starts_with("__");
                    if name == "searchProducts" {
                        self.check_filter(field.get_argument("filter"))?;
                    }
                    let first = field.get_argument("first").and_then(|value| self.number(&value.node));
                    let size = match size_of(name) {
                        _ if introspection => 1,
                        Size::One => 1,
                        Size::First(default) => first.unwrap_or(default),
                        Size::Page => page,
                        Size::AtMost(most) => most,
                    };
                    let inner_page = first.unwrap_or(DEFAULT_PAGE);
                    let selection = self.cost(&field.selection_set.node, inner_page, introspection, nesting)?;
                    size.saturating_mul(selection).saturating_add(1)
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    let Some(fragment) = self.fragment(name) else { continue };
                    let key = (name.as_str(), page, introspection);
                    match self.fragments.get(&key) {
                        Some(cost) => *cost,
                        None => {
                            let cost = self.cost(&fragment.selection_set.node, page, introspection, nesting + 1)?;
                            self.fragments.insert(key, cost);
                            cost
                        }
                    }
                }
                Selection::InlineFragment(inline) => {
                    self.cost(&inline.node.selection_set.node, page, introspection, nesting + 1)?
                }
            };
            total = total.saturating_add(cost);
        }
        Ok(total)
    }

    /// An argument's value with variables (or their defaults) filled in.
    fn resolve(&self, value: &Value) -> ConstValue {
        value
            .clone()
            .into_const_with(|name| {
                let given = self.variables.get(&name).cloned();
                let default = || {
                    self.operation
                        .variable_definitions
                        .iter()
                        .find(|definition| definition.node.name.node == name)
                        .and_then(|definition| definition.node.default_value.as_ref().map(|v| v.node.clone()))
                };
                Ok::<_, std::convert::Infallible>(given.or_else(default).unwrap_or(ConstValue::Null))
            })
            .unwrap_or(ConstValue::Null)
    }

    /// A `first`, counted at most as a page may hold (a larger one is the resolver's to refuse).
    fn number(&self, value: &Value) -> Option<u64> {
        match self.resolve(value) {
            ConstValue::Number(n) => n.as_u64().map(|n| n.clamp(1, MAX_PAGE as u64)),
            _ => None,
        }
    }

    fn check_filter(&self, filter: Option<&Positioned<Value>>) -> Result<(), String> {
        let Some(ConstValue::Object(filter)) = filter.map(|value| self.resolve(&value.node)) else { return Ok(()) };
        let length = |value: Option<&ConstValue>| match value {
            Some(ConstValue::List(items)) => items.len(),
            _ => 0,
        };
        let over = |what: &str, cap: usize, length: usize| {
            (length > cap).then(|| format!("filter.{what} may hold at most {cap} entries; it holds {length}"))
        };
        if let Some(error) = over("brands", MAX_FILTER_BRANDS, length(filter.get("brands"))) {
            return Err(error);
        }
        if let Some(error) = over("attributes", MAX_FILTER_ATTRIBUTES, length(filter.get("attributes"))) {
            return Err(error);
        }
        if let Some(ConstValue::List(attributes)) = filter.get("attributes") {
            for attribute in attributes {
                let values = match attribute {
                    ConstValue::Object(attribute) => length(attribute.get("values")),
                    _ => 0,
                };
                if let Some(error) = over("attributes.values", MAX_FILTER_ATTRIBUTE_VALUES, values) {
                    return Err(error);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost_of(query: &str) -> Result<(), String> {
        let document = async_graphql::parser::parse_query(query).expect("parses");
        check(&document, &Variables::default(), 25_000)
    }

    #[test]
    fn a_search_page_is_well_within_the_limit() {
        let page = "{ searchProducts(query: \"tv\", first: 100) { totalCount nodes { id title price { centAmount } \
                    category { path } } facets { name values { value count } } } }";
        assert_eq!(cost_of(page), Ok(()));
    }

    #[test]
    fn nested_lists_multiply() {
        let nested = "{ categories { children { parent { children { parent { children { name } } } } } } }";
        let error = cost_of(nested).expect_err("refused");
        assert!(error.contains("exceeds the limit of 25000"), "{error}");
    }

    #[test]
    fn first_sets_the_size_of_a_connection_page() {
        let document = async_graphql::parser::parse_query(
            "query($n: Int) { orders(first: $n) { edges { node { id items { quantity } } } } }",
        )
        .expect("parses");
        let within = Variables::from_json(serde_json::json!({ "n": 2 }));
        // 1 + 2 × (1 + 1 + 1 + 100 × 1) + … : a page of 2 orders with their lines.
        assert_eq!(check(&document, &within, 300), Ok(()));
        let larger = Variables::from_json(serde_json::json!({ "n": 50 }));
        assert!(check(&document, &larger, 300).is_err());
    }

    #[test]
    fn fragments_count_where_they_are_spread() {
        let spread =
            "{ categories { ...Tree } } fragment Tree on Category { children { children { children { id } } } }";
        assert!(cost_of(spread).is_err());
    }

    #[test]
    fn a_mutation_holds_at_most_ten_root_fields() {
        let fields = |n: usize| (0..n).map(|i| format!("a{i}: startGuestSession {{ token }}")).collect::<String>();
        assert_eq!(cost_of(&format!("mutation {{ {} }}", fields(10))), Ok(()));
        let error = cost_of(&format!("mutation {{ {} }}", fields(11))).expect_err("refused");
        assert!(error.contains("at most 10 root fields"), "{error}");
    }

    #[test]
    fn filter_lists_are_capped() {
        let brands = (0..51).map(|i| format!("\"b{i}\"")).collect::<Vec<_>>().join(",");
        let error = cost_of(&format!("{{ searchProducts(filter: {{ brands: [{brands}] }}) {{ totalCount }} }}"))
            .expect_err("refused");
        assert!(error.contains("filter.brands"), "{error}");
        let values = (0..51).map(|i| format!("\"v{i}\"")).collect::<Vec<_>>().join(",");
        let query = format!(
            "{{ searchProducts(filter: {{ attributes: [{{ name: \"color\", values: [{values}] }}] }}) {{ totalCount }} }}"
        );
        assert!(cost_of(&query).expect_err("refused").contains("attributes.values"));
    }

    #[test]
    fn introspection_is_not_multiplied() {
        let introspection = "{ __schema { types { name fields { name args { name type { name ofType { name } } } \
                             type { name kind ofType { name kind ofType { name } } } } } } }";
        assert_eq!(cost_of(introspection), Ok(()));
    }
}
