//! The settings table in the docs is the one the declarations render (`src/config/settings.rs`):
//! every setting with its type, bounds, default and meaning, written once. A setting added,
//! changed or removed without the table following fails here; `KEYGATE_BLESS=1 cargo test --test
//! it settings_table` rewrites the table.

use std::path::Path;

/// The page that holds the table, between these markers.
const PAGE: &str = "docs/configuration.md";
const BEGIN: &str = "<!-- settings:begin -->\n";
const END: &str = "<!-- settings:end -->";

/// The lines only in `old` (`-`) and only in `new` (`+`), in order: enough to see what moved.
fn diff(old: &str, new: &str) -> String {
    let (old, new): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let gone = old.iter().filter(|line| !new.contains(line)).map(|line| format!("- {line}"));
    let came = new.iter().filter(|line| !old.contains(line)).map(|line| format!("+ {line}"));
    gone.chain(came).collect::<Vec<_>>().join("\n")
}

#[test]
fn the_settings_table_is_rendered_from_the_declarations() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(PAGE);
    let page = std::fs::read_to_string(&path).expect("the page");
    let (before, rest) = page.split_once(BEGIN).expect("the table's begin marker");
    let (written, after) = rest.split_once(END).expect("the table's end marker");
    let rendered = keygate::config::settings_table();
    assert!(rendered.lines().count() > 100, "every setting has a row:\n{rendered}");
    if written == rendered {
        return;
    }
    if std::env::var_os("KEYGATE_BLESS").is_some() {
        std::fs::write(&path, format!("{before}{BEGIN}{rendered}{END}{after}")).expect("rewrite the page");
        return;
    }
    panic!(
        "{PAGE}'s settings table is not the one src/config/settings.rs declares; rewrite it with \
         `KEYGATE_BLESS=1 cargo test --test it settings_table`:\n{}",
        diff(written, &rendered)
    );
}

#[test]
fn every_setting_the_loader_takes_has_a_row() {
    let table = keygate::config::settings_table();
    let row = |path: String| format!("| `{path}` |");
    let paths = keygate::config::setting_paths()
        .map(str::to_owned)
        .chain(keygate::config::plan_fields().map(|field| format!("organizations.plans.NAME.{field}")))
        .chain(keygate::config::issuer_fields().map(|field| format!("oauth.issuers.NAME.{field}")));
    let missing: Vec<String> = paths.filter(|path| !table.contains(&row(path.clone()))).collect();
    assert!(missing.is_empty(), "settings with no row: {missing:?}");
}
