//! The committed schema.graphql is what the code generates, and it carries the whole public
//! contract (tests/contract.graphql, a copy of the shared one). The README documents every
//! configuration key.

use std::collections::HashMap;

use async_graphql::parser::parse_schema;
use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};

const SCHEMA_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");

#[test]
fn schema_graphql_is_generated_from_the_code() {
    let generated = shop::resolvers::sdl();
    if std::env::var("UPDATE_SCHEMA").is_ok() {
        std::fs::write(SCHEMA_PATH, &generated).expect("write schema.graphql");
    }
    let committed = std::fs::read_to_string(SCHEMA_PATH).unwrap_or_default();
    assert!(
        committed == generated,
        "schema.graphql is out of date: run `UPDATE_SCHEMA=1 cargo test schema_graphql` and commit it"
    );
}

/// Everything a type declares, as comparable strings: `field(arg: T = default): Type`, enum
/// values, input fields.
fn members(sdl: &str) -> HashMap<String, (String, Vec<String>)> {
    let document = parse_schema(sdl).expect("valid SDL");
    let mut types = HashMap::new();
    for definition in document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else { continue };
        let ty = ty.node;
        let (kind, members) = match ty.kind {
            TypeKind::Scalar => ("scalar", vec![]),
            TypeKind::Object(object) => (
                "object",
                object
                    .fields
                    .iter()
                    .flat_map(|f| {
                        let field = &f.node;
                        let mut items = vec![format!("{}: {}", field.name.node, field.ty.node)];
                        items.extend(field.arguments.iter().map(|a| {
                            let default =
                                a.node.default_value.as_ref().map(|d| format!(" = {}", d.node)).unwrap_or_default();
                            format!("{}({}: {}{})", field.name.node, a.node.name.node, a.node.ty.node, default)
                        }));
                        items
                    })
                    .collect(),
            ),
            TypeKind::InputObject(input) => {
                ("input", input.fields.iter().map(|f| format!("{}: {}", f.node.name.node, f.node.ty.node)).collect())
            }
            TypeKind::Enum(enumeration) => {
                ("enum", enumeration.values.iter().map(|v| v.node.value.node.to_string()).collect())
            }
            TypeKind::Interface(_) => ("interface", vec![]),
            TypeKind::Union(_) => ("union", vec![]),
        };
        types.insert(ty.name.node.to_string(), (kind.to_owned(), members));
    }
    types
}

#[test]
fn the_schema_carries_the_whole_contract() {
    let contract = members(include_str!("../contract.graphql"));
    let ours = members(&shop::resolvers::sdl());
    let mut missing = Vec::new();
    for (name, (kind, contract_members)) in &contract {
        let Some((our_kind, our_members)) = ours.get(name) else {
            missing.push(format!("{kind} {name}"));
            continue;
        };
        if our_kind != kind {
            missing.push(format!("{name} is a {our_kind}, the contract says {kind}"));
        }
        missing.extend(contract_members.iter().filter(|m| !our_members.contains(m)).map(|m| format!("{name}.{m}")));
    }
    missing.sort();
    assert!(missing.is_empty(), "schema lacks contract items:\n{}", missing.join("\n"));
    assert!(contract.len() >= 35, "the contract copy parsed: {} types", contract.len());
}

#[test]
fn readme_documents_every_configuration_key() {
    let readme = include_str!("../../README.md");
    let undocumented: Vec<String> = shop::config::KEYS
        .iter()
        .map(|k| shop::config::env_name(k.name))
        .filter(|name| !readme.contains(&format!("`{name}`")))
        .collect();
    assert!(undocumented.is_empty(), "README lacks {undocumented:?}");
}
