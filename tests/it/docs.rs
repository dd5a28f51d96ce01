//! The docs hold together: every relative Markdown link in README.md, SECURITY.md,
//! CONTRIBUTING.md and docs/*.md names a file that exists and, with `#anchor`, one of its headings
//! (by GitHub's slugs); the README links every docs page; every Mermaid block starts with a
//! diagram type GitHub renders. Code blocks and code spans are not looked into.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The diagram types the docs may use.
const DIAGRAM_TYPES: &[&str] = &["flowchart", "graph", "sequenceDiagram", "gantt", "timeline", "stateDiagram-v2"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The checked pages, relative to the repository root.
fn pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = ["README.md", "SECURITY.md", "CONTRIBUTING.md"]
        .iter()
        .map(PathBuf::from)
        .filter(|page| root().join(page).is_file())
        .collect();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|entry| PathBuf::from("docs").join(entry.expect("a docs/ entry").file_name()))
        .filter(|page| page.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// A fenced code block: its info string (`mermaid`, `bash`, …), its lines and where it starts.
struct Block {
    info: String,
    body: Vec<String>,
    line: usize,
}

/// A Markdown page split into its prose lines (numbered) and its fenced code blocks.
struct Page {
    prose: Vec<(usize, String)>,
    blocks: Vec<Block>,
    unclosed: Option<usize>,
}

fn parse(text: &str) -> Page {
    let mut page = Page { prose: Vec::new(), blocks: Vec::new(), unclosed: None };
    let mut open: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(block) = open.as_mut() {
            if trimmed == "```" {
                page.blocks.extend(open.take());
            } else {
                block.body.push(line.to_owned());
            }
        } else if let Some(info) = trimmed.strip_prefix("```") {
            open = Some(Block { info: info.trim().to_owned(), body: Vec::new(), line: i + 1 });
        } else {
            page.prose.push((i + 1, line.to_owned()));
        }
    }
    page.unclosed = open.map(|block| block.line);
    page
}

fn read(page: &Path) -> Page {
    let text = std::fs::read_to_string(root().join(page)).unwrap_or_else(|err| panic!("{}: {err}", page.display()));
    parse(&text)
}

/// GitHub's anchor for a heading: lowercase, spaces to `-`, every other character that is not a
/// letter, a digit, `-` or `_` dropped.
fn slug(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// The anchors of a page's headings; a repeated heading gets `-1`, `-2`, … as on GitHub.
fn anchors(page: &Page) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut anchors = BTreeSet::new();
    for (_, line) in &page.prose {
        let level = line.chars().take_while(|&c| c == '#').count();
        let Some(text) = line[level..].strip_prefix(' ') else { continue };
        if !(1..=6).contains(&level) {
            continue;
        }
        let base = slug(text.trim());
        let count = seen.entry(base.clone()).or_default();
        anchors.insert(if *count == 0 { base.clone() } else { format!("{base}-{count}") });
        *count += 1;
    }
    anchors
}

/// A prose line without its code spans.
fn without_code_spans(line: &str) -> String {
    line.split('`').step_by(2).collect::<Vec<_>>().join(" ")
}

/// The targets of the Markdown links (and images) on a prose line: what stands in `](…)`.
fn link_targets(line: &str) -> Vec<String> {
    let line = without_code_spans(line);
    line.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &line[at + 2..];
            let end = rest.find(')')?;
            // A title after the target (`[x](path "title")`) is not part of it.
            rest[..end].split_whitespace().next().map(str::to_owned)
        })
        .collect()
}

fn is_external(target: &str) -> bool {
    target.contains("://") || target.starts_with("mailto:")
}

#[test]
fn docs_slugs_follow_github() {
    assert_eq!(slug("Rate limits across replicas (Redis)"), "rate-limits-across-replicas-redis");
    assert_eq!(slug("Expiry, rotation and disabling"), "expiry-rotation-and-disabling");
    assert_eq!(slug("`AuthService`"), "authservice");
    assert_eq!(
        slug("Several replicas, and rolling updates that drop nothing"),
        "several-replicas-and-rolling-updates-that-drop-nothing"
    );
    assert_eq!(slug("TLS to the collector"), "tls-to-the-collector");
    let page = parse("# A\n\n```bash\n# not a heading\n```\n\n## A\n### B: `c_d`\n");
    assert_eq!(anchors(&page), BTreeSet::from(["a".to_owned(), "a-1".to_owned(), "b-c_d".to_owned()]));
    assert_eq!(link_targets("see [x](a.md#b) and `[y](not-a-link.md)`, ![i](img.png \"t\")"), ["a.md#b", "img.png"]);
}

#[test]
fn docs_relative_links_point_at_files_and_headings() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let parsed = read(&page);
        if let Some(line) = parsed.unclosed {
            problems.push(format!("{}:{line}: a code block that never ends", page.display()));
        }
        let dir = page.parent().unwrap_or(Path::new("")).to_owned();
        for (n, line) in &parsed.prose {
            for target in link_targets(line) {
                if is_external(&target) {
                    continue;
                }
                checked += 1;
                let at = format!("{}:{n}: {target}", page.display());
                let (path, anchor) = match target.split_once('#') {
                    Some((path, anchor)) => (path, Some(anchor)),
                    None => (target.as_str(), None),
                };
                let file = if path.is_empty() { page.clone() } else { dir.join(path) };
                if !root().join(&file).exists() {
                    problems.push(format!("{at}: no such file"));
                    continue;
                }
                let Some(anchor) = anchor else { continue };
                if file.extension().is_none_or(|ext| ext != "md") {
                    problems.push(format!("{at}: an anchor into a file that is not Markdown"));
                } else if !anchors(&read(&file)).contains(anchor) {
                    problems.push(format!("{at}: {} has no heading with this anchor", file.display()));
                }
            }
        }
    }
    assert!(checked >= 50, "only {checked} relative links found: is the link parser still right?");
    assert!(problems.is_empty(), "broken links:\n{}", problems.join("\n"));
}

#[test]
fn docs_pages_are_all_linked_from_the_readme() {
    let readme = read(Path::new("README.md"));
    let linked: BTreeSet<PathBuf> = readme
        .prose
        .iter()
        .flat_map(|(_, line)| link_targets(line))
        .filter(|target| !is_external(target))
        .map(|target| PathBuf::from(target.split('#').next().unwrap_or_default()))
        .collect();
    let unlinked: Vec<String> = pages()
        .into_iter()
        .filter(|page| page.starts_with("docs") && !linked.contains(page))
        .map(|page| page.display().to_string())
        .collect();
    assert!(unlinked.is_empty(), "README.md does not link {unlinked:?}");
}

#[test]
fn docs_mermaid_blocks_start_with_a_known_diagram_type() {
    let mut problems = Vec::new();
    let mut diagrams = BTreeMap::new();
    for page in pages() {
        for block in read(&page).blocks.iter().filter(|block| block.info == "mermaid") {
            *diagrams.entry(page.display().to_string()).or_insert(0) += 1;
            let first =
                block.body.iter().map(|line| line.trim()).find(|line| !line.is_empty() && !line.starts_with("%%"));
            let kind = first.and_then(|line| line.split_whitespace().next()).unwrap_or_default();
            if !DIAGRAM_TYPES.contains(&kind) {
                problems.push(format!("{}:{}: {kind:?} is not one of {DIAGRAM_TYPES:?}", page.display(), block.line));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(diagrams.contains_key("README.md"), "the README has the components diagram: {diagrams:?}");
}
