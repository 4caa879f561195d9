//! Every variable `.env.example` lists is read by code that acts on it, so an operator never
//! sets a variable that does nothing.
//!
//! Checked against the workspace's source, not at run time: a variable counts as read when
//! - service code outside this crate names it (`std::env::var("X")`, clap's `env = "X"`), or
//! - this crate parses it into a field (`field: src.number("X", …)` or `let field = …("X")`)
//!   and service code outside this crate reads that field (`.field`, not a method call).
//!
//! Tests, examples, benchmarks and the testkit do not count: a variable only a test reads
//! does nothing for an operator. The check is by name, so it cannot tell a use from a use that
//! does what the variable's description says; it catches the variable parsed and then dropped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Variables no Rust code reads because a deploy file does, each with that file (the test
/// checks the file still names it). Empty today: `.env.example` lists only the binary's
/// variables; compose's own (`POSTGRES_PASSWORD`, `REDIS_PASSWORD`, …) are documented in the
/// README's compose section and are not in `.env.example`.
const READ_BY_DEPLOY_FILES: &[(&str, &str)] = &[];

/// TEMPORARY: variables parsed into the configuration while the code that acts on them is
/// being written, each with the issue that wires it up. Empty today. The test fails once a
/// listed variable is read, so that its entry is removed and the list cannot go stale.
const NOT_YET_READ: &[&str] = &[];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// The variables `.env.example` lists, set or commented out (`# NAME=`).
fn listed_variables() -> Vec<String> {
    let text = std::fs::read_to_string(root().join(".env.example")).unwrap();
    text.lines()
        .filter_map(|line| {
            let (name, _) = line.trim_start_matches('#').trim().split_once('=')?;
            (!name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
                .then(|| name.to_owned())
        })
        .collect()
}

fn rust_files(dir: &Path, skip_dir: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if !skip_dir(&path) {
                rust_files(&path, skip_dir, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source a service runs: a file's text up to its inline test module, if any.
fn without_tests(text: &str) -> &str {
    let mut offset = 0;
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            return &text[..offset];
        }
        offset += line.len();
    }
    text
}

/// Every service source file outside this crate, by path, without tests. `doctor` is left
/// out too: it checks variables, it does not act on them.
fn service_sources() -> BTreeMap<PathBuf, String> {
    let config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .canonicalize()
        .unwrap();
    let skip = |dir: &Path| {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        matches!(
            name,
            "tests" | "examples" | "benches" | "testkit" | "target" | "node_modules"
        ) || dir.canonicalize().is_ok_and(|d| d == config)
    };
    let mut files = Vec::new();
    rust_files(&root().join("services"), &skip, &mut files);
    files
        .into_iter()
        .filter(|f| {
            f.file_name()
                .is_none_or(|n| n != "tests.rs" && n != "doctor.rs")
        })
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            let text = without_tests(&text).to_owned();
            (f, text)
        })
        .collect()
}

/// This crate's parsing code: its sources but the registry and its tests.
fn config_sources() -> Vec<String> {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &|_| false,
        &mut files,
    );
    files
        .into_iter()
        .filter(|f| {
            f.file_name()
                .is_some_and(|n| n != "vars.rs" && n != "tests.rs")
        })
        .map(|f| without_tests(&std::fs::read_to_string(f).unwrap()).to_owned())
        .collect()
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The name a line binds: `let [mut] name =` or a struct field `name: …`.
fn binding(line: &str) -> Option<String> {
    let line = line.trim_start();
    let line = line
        .strip_prefix("let ")
        .map_or(line, |rest| rest.strip_prefix("mut ").unwrap_or(rest));
    let end = line.find(|c: char| !is_ident(c))?;
    let (name, rest) = line.split_at(end);
    let rest = rest.trim_start();
    let binds = rest.starts_with('=') && !rest.starts_with("==")
        || rest.starts_with(':') && !rest.starts_with("::");
    (binds && !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit()))
        .then(|| name.to_owned())
}

/// Whether a line looks `name` up: `…("NAME"…`, or names it in a constant (`const N: &str =
/// "NAME";`) that the function then looks up. A line that only mentions it (an error naming
/// the variable) is not a lookup.
fn looks_up(line: &str, name: &str) -> bool {
    line.contains(&format!("(\"{name}\""))
        || line.trim_start().starts_with("const ") && line.contains(&format!("= \"{name}\";"))
}

/// The function a line is in: its name and, for a method, its type (`TraceSampler`).
fn enclosing_fn(lines: &[&str], i: usize) -> Option<(Option<String>, String)> {
    let fn_name = |line: &str| {
        let mut rest = line.trim_start();
        for prefix in ["pub(crate) ", "pub ", "const ", "async "] {
            rest = rest.strip_prefix(prefix).unwrap_or(rest);
        }
        let rest = rest.strip_prefix("fn ")?;
        let end = rest.find(|c: char| !is_ident(c))?;
        Some(rest[..end].to_owned())
    };
    let (at, name) = (0..=i)
        .rev()
        .find_map(|j| fn_name(lines[j]).map(|n| (j, n)))?;
    if !lines[at].starts_with(char::is_whitespace) {
        return Some((None, name));
    }
    let owner = (0..at).rev().find_map(|j| {
        let line = lines[j].strip_prefix("impl")?;
        let head = line.split('{').next()?.trim_end();
        let start = head.rfind(|c: char| !is_ident(c)).map_or(0, |p| p + 1);
        Some(head[start..].to_owned())
    });
    Some((owner, name))
}

/// The fields (or local bindings) the value at line `i` ends up in: the nearest binding on
/// its line or the three lines above it (a call split over lines), and, through the function
/// it is in, the bindings at that function's call sites in this crate (two levels at most).
fn bindings_at(files: &[Vec<&str>], file: usize, i: usize, depth: u32, out: &mut Vec<String>) {
    let lines = &files[file];
    let found = (i.saturating_sub(3)..=i)
        .rev()
        .find_map(|j| binding(lines[j]).map(|b| (j, b)));
    // A field or a plain local (`let drain = …`, then `Self { drain, … }`) is where the value
    // ends up; only a value without a binding, or one inside a closure, is followed further,
    // so that a section's field (`agent: AgentConfig::from_source(src)?`) never stands for
    // the variables in it.
    let closure = found.as_ref().is_some_and(|(j, _)| {
        let line = lines[*j];
        line.contains("= |") || line.contains("= move |")
    });
    if let Some((_, found)) = found {
        out.push(found);
        if !closure {
            return;
        }
    }
    if depth == 0 {
        return;
    }
    let Some((owner, name)) = enclosing_fn(lines, i) else {
        return;
    };
    let call = match &owner {
        Some(owner) => format!("{owner}::{name}("),
        None => format!("{name}("),
    };
    for (f, lines) in files.iter().enumerate() {
        for (j, line) in lines.iter().enumerate() {
            let calls = line.match_indices(&call).any(|(at, _)| {
                let before = &line[..at];
                // Not the definition, nor another name ending the same way.
                !before.ends_with("fn ") && !before.ends_with(is_ident)
            });
            if calls {
                bindings_at(files, f, j, depth - 1, out);
            }
        }
    }
}

/// The fields (or local bindings) this crate parses `name` into.
fn parsed_into(config: &[String], name: &str) -> Vec<String> {
    let files: Vec<Vec<&str>> = config.iter().map(|t| t.lines().collect()).collect();
    let mut fields = Vec::new();
    for (f, lines) in files.iter().enumerate() {
        for (i, line) in lines.iter().enumerate() {
            if looks_up(line, name) {
                bindings_at(&files, f, i, 2, &mut fields);
            }
        }
    }
    fields.sort();
    fields.dedup();
    fields
}

/// Whether `text` reads the field `field`: `.field` not followed by more of an identifier or
/// by `(` (a method of the same name).
fn reads_field(text: &str, field: &str) -> bool {
    let needle = format!(".{field}");
    text.match_indices(&needle).any(|(at, _)| {
        let after = text[at + needle.len()..].trim_start();
        !after.starts_with(|c: char| is_ident(c) || c == '(')
    })
}

/// Where `name` is read, or `None`.
fn read_at(name: &str, config: &[String], sources: &BTreeMap<PathBuf, String>) -> Option<String> {
    let quoted = format!("\"{name}\"");
    if let Some((path, _)) = sources.iter().find(|(_, text)| text.contains(&quoted)) {
        return Some(format!("{} names it", path.display()));
    }
    for field in parsed_into(config, name) {
        if let Some((path, _)) = sources.iter().find(|(_, text)| reads_field(text, &field)) {
            return Some(format!(
                "parsed into `{field}`, which {} reads",
                path.display()
            ));
        }
    }
    None
}

#[test]
fn every_listed_variable_is_read_by_the_code() {
    let listed = listed_variables();
    assert!(listed.len() > 50, "read .env.example: {listed:?}");
    let config = config_sources();
    let sources = service_sources();
    assert!(sources.len() > 100, "found the services' sources");

    let mut unread = Vec::new();
    let mut now_read = Vec::new();
    for name in &listed {
        if let Some((_, file)) = READ_BY_DEPLOY_FILES.iter().find(|(n, _)| n == name) {
            let text = std::fs::read_to_string(root().join(file)).unwrap();
            assert!(text.contains(name.as_str()), "{file} no longer uses {name}");
            continue;
        }
        match (
            read_at(name, &config, &sources),
            NOT_YET_READ.contains(&name.as_str()),
        ) {
            (None, false) => unread.push(name.clone()),
            (Some(at), true) => now_read.push(format!("{name} ({at})")),
            _ => {}
        }
    }
    assert!(
        unread.is_empty(),
        ".env.example lists variables that no service code reads: {unread:?}. Read them, or \
         remove them from the registry (vars.rs), .env.example and the README"
    );
    assert!(
        now_read.is_empty(),
        "variables on NOT_YET_READ are read now; remove them from that list: {now_read:?}"
    );
    for name in NOT_YET_READ {
        assert!(
            listed.iter().any(|l| l == name),
            "NOT_YET_READ names {name}, which .env.example does not list"
        );
    }
}

/// The detector itself: the bindings it finds, and that a parsed field nothing reads fails.
#[test]
fn a_variable_parsed_and_never_read_is_found() {
    assert_eq!(
        binding("            timeout: Duration::from_secs("),
        Some("timeout".into())
    );
    assert_eq!(
        binding("        let mut drain = seconds(\"X\")?;"),
        Some("drain".into())
    );
    assert_eq!(binding("        Ok(Self {"), None);
    assert_eq!(binding("    let x == 1"), None);
    assert_eq!(binding("        sb_config::Source::env()"), None);
    let config = vec![
        "fn f(src: &Source) -> Result<Self, E> {\n    Ok(Self {\n        unused_knob: src\n            .string(\"UNUSED_KNOB\")?,\n        used_knob: src.string(\"USED_KNOB\")?,\n    })\n}\n"
            .to_owned(),
    ];
    let sources = BTreeMap::from([(
        PathBuf::from("svc.rs"),
        "fn g(c: &C) { c.used_knob; c.unused_knob_len(); c.unused_knob(); }\n#[cfg(test)]\nmod tests { fn t(c: &C) { c.unused_knob; } }\n"
            .to_owned(),
    )]);
    let sources = sources
        .into_iter()
        .map(|(p, t)| (p, without_tests(&t).to_owned()))
        .collect();
    assert!(read_at("USED_KNOB", &config, &sources).is_some());
    assert_eq!(read_at("UNUSED_KNOB", &config, &sources), None);

    // A name in a constant, read in a closure of a method whose result becomes a field.
    let config = vec![
        "impl Sampler {\n    pub fn from_source(src: &Source) -> R<Self> {\n        const NAME: &str = \"KNOB\";\n        let arg = || {\n            let Some(raw) = src.optional_string(\"KNOB_ARG\") else {\n                return 1;\n            };\n        };\n        Ok(match src.string(NAME)? { _ => Self })\n    }\n}\n".to_owned(),
        "fn f(src: &Source) -> R<Self> {\n    Ok(Self {\n        log: Log::from_source(src)?,\n        sampler: Sampler::from_source(src)?,\n    })\n}\n".to_owned(),
    ];
    let reads = |text: &str| BTreeMap::from([(PathBuf::from("svc.rs"), text.to_owned())]);
    // The section a field is in does not count for the field.
    let sectioned = vec![
        "impl Agent {\n    pub fn from_source(src: &Source) -> R<Self> {\n        Ok(Self {\n            iterations: src.number(\"ITERATIONS\")?,\n        })\n    }\n}\n".to_owned(),
        "fn f(src: &Source) -> R<Self> {\n    Ok(Self {\n        agent: Agent::from_source(src)?,\n    })\n}\n".to_owned(),
    ];
    assert_eq!(
        read_at("ITERATIONS", &sectioned, &reads("run(&config.agent)")),
        None
    );
    assert!(read_at("ITERATIONS", &sectioned, &reads("config.agent.iterations")).is_some());
    for name in ["KNOB", "KNOB_ARG"] {
        assert!(
            read_at(name, &config, &reads("x(c.sampler)")).is_some(),
            "{name}"
        );
        assert_eq!(read_at(name, &config, &reads("x(c.log)")), None, "{name}");
    }
}
