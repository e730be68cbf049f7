//! The configuration table of docs/configuration.md is `Config`: the same fields in the same
//! order, the same defaults, and the environment variables `from_env` reads
//! (each numeric one shown to set its field).

use std::collections::BTreeSet;

use onthefly::Config;
use serde_json::Value;

/// One row of the table: field, default (as JSON), environment variables.
struct Row {
    field: String,
    default: String,
    env: Vec<String>,
}

fn readme_rows() -> Vec<Row> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md")).unwrap();
    let start = readme.find("<!-- config-table -->").expect("the table's start marker");
    let end = readme.find("<!-- /config-table -->").expect("the table's end marker");
    readme[start..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split(" | ").collect();
            let code = |cell: &str| -> Vec<String> { cell.split('`').skip(1).step_by(2).map(str::to_string).collect() };
            Row {
                field: code(cells[0])[0].clone(),
                default: code(cells[1])[0].clone(),
                env: code(cells[2])
                    .into_iter()
                    .filter(|w| {
                        w.chars()
                            .all(|c| c.is_ascii_uppercase() || c == '_' || c == '<' || c == '>')
                    })
                    .collect(),
            }
        })
        .collect()
}

/// The leaves of a JSON value, nested fields dotted; an empty object or a
/// null is a leaf.
fn leaves(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, v) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaves(&path, v, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

fn config_leaves(config: &Config) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    leaves("", &serde_json::to_value(config).unwrap(), &mut out);
    out
}

#[test]
fn the_readme_table_lists_every_field_with_its_default() {
    let rows = readme_rows();
    let fields = config_leaves(&Config::default());
    let listed: Vec<&str> = rows.iter().map(|r| r.field.as_str()).collect();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "a field listed twice: {listed:?}");
    assert_eq!(
        unique,
        fields.iter().map(|(f, _)| f.as_str()).collect::<BTreeSet<_>>(),
        "docs/configuration.md's fields against Config's"
    );
    for (field, value) in &fields {
        let row = rows.iter().find(|r| r.field == *field).unwrap();
        assert_eq!(row.default, value.to_string(), "the default of {field}");
    }
}

#[test]
fn the_readme_table_names_the_environment_variables_from_env_reads() {
    let rows = readme_rows();
    let named: BTreeSet<String> = rows.iter().flat_map(|r| r.env.clone()).collect();
    // The variables the code reads: every `get("…")` of `Config::from_vars`.
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/config/env.rs")).unwrap();
    let mut read: BTreeSet<String> = source
        .split("get(\"")
        .skip(1)
        .filter_map(|rest| rest.split_once('"').map(|(name, _)| name.to_string()))
        .collect();
    read.insert("<AGENT>_MODEL_PATH".to_string());
    assert_eq!(named, read);

    // Each numeric field with its own variable: the variable sets it.
    let defaults = config_leaves(&Config::default());
    for row in rows
        .iter()
        .filter(|r| r.env.len() == 1 && r.env[0].starts_with("TRAINING_"))
    {
        let Some((_, Value::Number(n))) = defaults.iter().find(|(f, _)| *f == row.field) else {
            continue;
        };
        let (text, expected): (String, Value) = match n.as_u64() {
            _ if row.env[0].ends_with("_SECS") => ("7".into(), Value::from(7_000u64)),
            Some(i) => ((i + 1).to_string(), Value::from(i + 1)),
            None => {
                let x = n.as_f64().unwrap() / 2.0;
                (x.to_string(), Value::from(x))
            }
        };
        let config = Config::from_vars([(row.env[0].clone(), text.clone())])
            .unwrap_or_else(|e| panic!("{}={text}: {e}", row.env[0]));
        let set = config_leaves(&config)
            .into_iter()
            .find(|(f, _)| *f == row.field)
            .unwrap()
            .1;
        assert_eq!(set, expected, "{}={text} sets {}", row.env[0], row.field);
    }
    let config = Config::from_vars([("SCOUT_MODEL_PATH", "/models/scout")]).unwrap();
    assert_eq!(config.model_dir("scout"), std::path::Path::new("/models/scout"));
}
