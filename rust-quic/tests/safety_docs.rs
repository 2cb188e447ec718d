//! Every `unsafe fn` in the engine states its contract in a `# Safety` section
//! of its doc comment (lib.rs, "Safety", defines the words they use). Clippy's
//! `missing_safety_doc` sees only public functions; this sees all of them.

use std::fs;
use std::path::{Path, PathBuf};

/// `file:line name` of every `unsafe fn` in `text` whose doc comment (the
/// `///` and `#[...]` lines right above it) has no `# Safety` heading.
fn undocumented(file: &str, text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut missing = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let Some(at) = code.find("unsafe fn ").or_else(|| code.find("unsafe extern \"C\" fn ")) else {
            continue;
        };
        let documented = lines[..i]
            .iter()
            .rev()
            .map(|l| l.trim())
            .take_while(|l| l.starts_with("///") || l.starts_with("#["))
            .any(|l| l.trim_start_matches('/').trim() == "# Safety");
        if !documented {
            let name = code[at..].split("fn ").nth(1).unwrap_or("").split(['(', '<']).next().unwrap_or("");
            missing.push(format!("{file}:{} {name}", i + 1));
        }
    }
    missing
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("src readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_unsafe_fn_has_a_safety_section() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    let mut missing = Vec::new();
    let mut seen = 0;
    for path in &files {
        let text = fs::read_to_string(path).expect("source readable");
        seen += text.matches("unsafe fn ").count() + text.matches("unsafe extern \"C\" fn ").count();
        missing.extend(undocumented(&path.strip_prefix(&src).unwrap().display().to_string(), &text));
    }
    assert!(seen > 100, "the scan found only {seen} unsafe fns: is it reading src?");
    assert!(missing.is_empty(), "unsafe fns without a `# Safety` section:\n{}", missing.join("\n"));
}

#[test]
fn the_check_sees_a_missing_section() {
    let text = "/// Frees it.\n#[no_mangle]\npub unsafe extern \"C\" fn gone(p: *mut u8) {}\n\
                /// Reads it.\n///\n/// # Safety\n/// `p` is live.\nunsafe fn kept(p: *mut u8) {}\n\
                // # Safety in a plain comment does not count\npub(crate) unsafe fn bare<T>(p: *mut T) {}\n";
    assert_eq!(undocumented("x.rs", text), vec!["x.rs:3 gone".to_string(), "x.rs:10 bare".to_string()]);
}
