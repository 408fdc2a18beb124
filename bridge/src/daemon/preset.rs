//! Presets: what the daemon does with an incoming call, as TOML data files
//! (`pipelines/presets/*.toml`, built into the binary). A preset is a
//! partial daemon configuration: an `action` and its settings table, plus
//! a one-line `description`. A user's own copy is loaded by path.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// The built-in presets, in the order `sipbridge presets` lists them.
pub const BUILTIN: &[(&str, &str)] = &[
    ("echo", include_str!("../../../pipelines/presets/echo.toml")),
    ("play", include_str!("../../../pipelines/presets/play.toml")),
    ("record", include_str!("../../../pipelines/presets/record.toml")),
    ("conference", include_str!("../../../pipelines/presets/conference.toml")),
    ("gateway", include_str!("../../../pipelines/presets/gateway.toml")),
];

/// A loaded preset: its name and its TOML table.
#[derive(Debug, Clone)]
pub struct Preset {
    pub name: String,
    pub table: toml::Table,
}

impl Preset {
    /// Loads a built-in preset by name, or a preset file when `name` looks
    /// like a path (contains `/` or ends in `.toml`).
    pub fn load(name: &str) -> Result<Preset> {
        if name.contains('/') || name.ends_with(".toml") {
            let path = Path::new(name);
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading preset file {}", path.display()))?;
            let table = parse(&text).with_context(|| format!("preset file {}", path.display()))?;
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| name.to_string());
            return Ok(Preset { name: stem, table });
        }
        match BUILTIN.iter().find(|(n, _)| *n == name) {
            Some((n, text)) => Ok(Preset { name: n.to_string(), table: parse(text).expect("built-in presets parse") }),
            None => bail!(
                "no preset named {name:?}; built-in presets: {} (or give the path of a preset file)",
                BUILTIN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// The preset's one-line description.
    pub fn description(&self) -> &str {
        self.table.get("description").and_then(|d| d.as_str()).unwrap_or("")
    }
}

fn parse(text: &str) -> Result<toml::Table> {
    let table: toml::Table = text.parse()?;
    match table.get("action").and_then(|a| a.as_str()) {
        Some(_) => Ok(table),
        None => bail!("a preset needs `action = \"echo\" | \"play\" | \"record\" | \"conference\" | \"gateway\"`"),
    }
}

/// `name  description` lines for `sipbridge presets`.
pub fn listing() -> String {
    let width = BUILTIN.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    BUILTIN
        .iter()
        .map(|(n, _)| {
            let p = Preset::load(n).expect("built-in preset");
            format!("{n:width$}  {}\n", p.description())
        })
        .collect()
}

/// The gateway preset's name: `sipbridge gateway` is `run --preset gateway`
/// with the gateway's command-line flags.
pub const GATEWAY: &str = "gateway";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_preset_has_a_one_line_description() {
        for (name, _) in BUILTIN {
            let p = Preset::load(name).unwrap();
            assert!(!p.description().is_empty(), "{name} has no description");
            assert!(!p.description().contains('\n'));
        }
        let listing = listing();
        assert_eq!(listing.lines().count(), BUILTIN.len());
        assert!(listing.lines().last().is_some_and(|l| l.starts_with(GATEWAY)), "{listing}");
    }

    #[test]
    fn unknown_preset_names_the_known_ones() {
        let err = Preset::load("karaoke").unwrap_err().to_string();
        assert!(err.contains("echo, play, record, conference, gateway"), "{err}");
    }

    #[test]
    fn a_preset_file_by_path() {
        let dir = std::env::temp_dir().join(format!("sipbridge-preset-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mine.toml");
        std::fs::write(&path, "description = \"mine\"\naction = \"echo\"\n").unwrap();
        let p = Preset::load(path.to_str().unwrap()).unwrap();
        assert_eq!((p.name.as_str(), p.description()), ("mine", "mine"));
        std::fs::write(&path, "description = \"no action\"\n").unwrap();
        assert!(Preset::load(path.to_str().unwrap()).is_err());
    }
}
