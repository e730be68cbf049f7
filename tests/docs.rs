//! The README stays what a newcomer needs: under 250 lines, the two
//! commands, links that resolve; the documentation holds no session history
//! (that is CHANGELOG.md's and git's).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files
}

#[test]
fn the_readme_is_short_and_names_the_two_commands() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(lines < 250, "README.md has {lines} lines");
    assert!(readme.contains("make demo") && readme.contains("make test"));
}

#[test]
fn every_relative_link_resolves() {
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let dir = file.parent().unwrap();
        for (i, _) in text.match_indices("](") {
            let rest = &text[i + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = rest[..end].split('#').next().unwrap();
            if target.is_empty() || target.contains("://") || target.contains(' ') {
                continue;
            }
            assert!(
                Path::new(dir).join(target).exists(),
                "{} links to {target}, which does not exist",
                file.display()
            );
        }
    }
}

#[test]
fn the_documentation_tells_no_session_history() {
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap().to_lowercase();
        for phrase in ["this session", "last session", "the session before", "before the issue"] {
            assert!(!text.contains(phrase), "{} says \"{phrase}\"", file.display());
        }
    }
}
