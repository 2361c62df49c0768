//! Generated and committed artifacts must match what the code generates now.

fn docs(rel: &str) -> String {
    format!("{}/../docs/{rel}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn json_schema_is_committed_and_current() {
    crate::golden::check(&docs("cell-config.schema.json"), &cell::host::config::json_schema());
}

#[test]
fn man_page_is_committed_and_current() {
    crate::golden::check(&docs("man/cell.1"), &cell::host::cli::man_page().expect("man page"));
}

#[test]
fn completions_are_committed_and_current() {
    for (file, text) in cell::host::cli::completion_files() {
        crate::golden::check(&docs(&format!("completions/{file}")), &text);
    }
}

#[test]
fn builtin_config_matches_the_schema_shape() {
    // The built-in default parses and names exactly one cell, `default`.
    let c = cell::host::config::parse(cell::host::config::BUILTIN_CONFIG, "builtin").expect("valid");
    assert_eq!(c.cells.keys().collect::<Vec<_>>(), ["default"]);
}
