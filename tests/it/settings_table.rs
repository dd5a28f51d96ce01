//! The settings table in the docs and the config loader name the same settings: every setting the
//! loader accepts has a row, and every row names settings the loader accepts. A setting added
//! without its row, or a row left behind by a removed one, fails here.

use std::collections::BTreeSet;
use std::path::Path;

/// The page that holds the table, and the table's header row.
const PAGE: &str = "docs/configuration.md";
const HEADER: &str = "| setting | default | meaning |";

/// The setting names in the first column of each row, with `.field` shorthands expanded against
/// the cell's first name (`limits.ceiling.rate_per_minute`, `.rate_burst` names both).
fn documented() -> Vec<String> {
    let page = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(PAGE)).expect("the page");
    let table = page.split_once(HEADER).expect("the settings table's header").1;
    let mut names = Vec::new();
    for row in table.lines().skip(2).take_while(|line| line.starts_with('|')) {
        let first = row.split('|').nth(1).unwrap_or_default();
        let mut parent = String::new();
        for name in first.split('`').skip(1).step_by(2) {
            let name = if let Some(field) = name.strip_prefix('.') {
                format!("{parent}.{field}")
            } else {
                parent = name.rsplit_once('.').map(|(p, _)| p.to_owned()).unwrap_or_default();
                name.to_owned()
            };
            names.push(name);
        }
    }
    names
}

#[test]
fn the_settings_table_names_every_setting_and_only_settings() {
    let documented = documented();
    assert!(documented.len() > 50, "the table was found: {documented:?}");
    let settings: BTreeSet<&str> = keygate::config::setting_paths().collect();
    let covers = |name: &str, path: &str| match name.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => name == path,
    };

    let missing: Vec<&&str> =
        settings.iter().filter(|path| !documented.iter().any(|name| covers(name, path))).collect();
    assert!(missing.is_empty(), "settings with no row in {PAGE}: {missing:?}");

    let mut unknown = Vec::new();
    for name in &documented {
        let known = if let Some(field) = name.strip_prefix("organizations.plans.NAME.") {
            keygate::config::plan_fields().contains(&field)
        } else if let Some(field) = name.strip_prefix("oauth.issuers.NAME.") {
            field == "*" || keygate::config::issuer_fields().contains(&field)
        } else {
            settings.iter().any(|path| covers(name, path))
        };
        if !known {
            unknown.push(name.as_str());
        }
    }
    assert!(unknown.is_empty(), "rows in {PAGE} that name no setting: {unknown:?}");
}
