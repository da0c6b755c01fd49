//! Configuration problems as a person reads them: all of them at once, each naming
//! the key and where it was written (file and line, or the environment variable),
//! and for a key that does not exist the nearest one that does.
//!
//! The known keys are those of [`super::Config::default`] serialized: one source of
//! truth, so a new setting needs nothing here. The raw librdkafka maps
//! (`[kafka.client]` …) are free-form; librdkafka judges them
//! ([`crate::kafka::properties`]).

use std::fmt;

use toml::de::{DeTable, DeValue};

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key (`ingest.input_topic`); empty when the problem is the whole input.
    pub key: String,
    pub message: String,
    /// `FILE line N`, or `environment variable CWMP__…`.
    pub place: Option<String>,
}

impl Problem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            key: key.into(),
            message: message.into(),
            place: None,
        }
    }

    fn at(mut self, place: Option<String>) -> Problem {
        self.place = place;
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(place) = &self.place {
            write!(f, " (in {place})")?;
        }
        Ok(())
    }
}

/// Tables whose keys are not ours to know.
const FREE_FORM: &[&str] = &["kafka.client", "kafka.consumer", "kafka.producer"];

/// What a known key holds, as far as TOML can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Integer,
    Float,
    Boolean,
    Array,
    Table,
    Other,
}

impl Kind {
    fn of_known(value: &toml::Value) -> Kind {
        match value {
            toml::Value::String(_) => Kind::String,
            toml::Value::Integer(_) => Kind::Integer,
            toml::Value::Float(_) => Kind::Float,
            toml::Value::Boolean(_) => Kind::Boolean,
            toml::Value::Array(_) => Kind::Array,
            toml::Value::Table(_) => Kind::Table,
            toml::Value::Datetime(_) => Kind::Other,
        }
    }

    fn of_written(value: &DeValue<'_>) -> Kind {
        match value {
            DeValue::String(_) => Kind::String,
            DeValue::Integer(_) => Kind::Integer,
            DeValue::Float(_) => Kind::Float,
            DeValue::Boolean(_) => Kind::Boolean,
            DeValue::Array(_) => Kind::Array,
            DeValue::Table(_) => Kind::Table,
            DeValue::Datetime(_) => Kind::Other,
        }
    }

    /// Whether a written value of kind `self` fits a key of kind `known`.
    fn fits(self, known: Kind) -> bool {
        self == known || (self == Kind::Integer && known == Kind::Float)
    }

    fn name(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Integer => "an integer",
            Kind::Float => "a number",
            Kind::Boolean => "a boolean",
            Kind::Array => "a list",
            Kind::Table => "a table",
            Kind::Other => "a date",
        }
    }
}

/// The tree of known keys.
pub(crate) struct Known(toml::Table);

impl Known {
    pub(crate) fn new(defaults: toml::Table) -> Known {
        Known(defaults)
    }

    /// Every problem with the keys and value kinds of a TOML file, each with its line.
    pub(crate) fn check_file(&self, file: &str, text: &str) -> Vec<Problem> {
        let (doc, errors) = DeTable::parse_recoverable(text);
        let mut out: Vec<Problem> = errors
            .iter()
            .map(|e| {
                let line = e.span().map(|s| line_of(text, s.start));
                Problem::new("", format!("not valid TOML: {}", e.message()))
                    .at(Some(place(file, line)))
            })
            .collect();
        if !out.is_empty() {
            return out;
        }
        let mut at = Vec::new();
        self.walk(doc.get_ref(), &self.0, "", &mut |key, message, offset| {
            at.push((offset, Problem::new(key, message)))
        });
        // In the order a person reads the file.
        at.sort_by_key(|(offset, _)| *offset);
        out.extend(
            at.into_iter()
                .map(|(offset, p)| p.at(Some(place(file, Some(line_of(text, offset)))))),
        );
        out
    }

    fn walk(
        &self,
        written: &DeTable<'_>,
        known: &toml::Table,
        path: &str,
        report: &mut dyn FnMut(String, String, usize),
    ) {
        for (key, value) in written {
            let name: &str = key.get_ref();
            let here = format!("{path}{name}");
            let offset = key.span().start;
            match known.get(name) {
                None => report(here.clone(), self.unknown(&here, name, known), offset),
                Some(default) => {
                    let want = Kind::of_known(default);
                    let got = Kind::of_written(value.get_ref());
                    if FREE_FORM.contains(&here.as_str()) {
                        if got != Kind::Table {
                            report(here, format!("{path}{name} must be a table"), offset);
                        }
                    } else if !got.fits(want) {
                        report(
                            here.clone(),
                            format!("{here} must be {}, not {}", want.name(), got.name()),
                            value.span().start,
                        );
                    } else if let (DeValue::Table(inner), toml::Value::Table(known_inner)) =
                        (value.get_ref(), default)
                    {
                        self.walk(inner, known_inner, &format!("{here}."), report);
                    }
                }
            }
        }
    }

    /// Problems with `CWMP__…` variables naming a key that does not exist.
    pub(crate) fn check_env<'a>(
        &self,
        prefix: &str,
        vars: impl Iterator<Item = (String, String)> + 'a,
    ) -> Vec<Problem> {
        let mut out = Vec::new();
        for (name, _) in vars {
            let Some(rest) = name.strip_prefix(prefix) else {
                continue;
            };
            let parts: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            let mut table = &self.0;
            let mut path = String::new();
            for part in &parts {
                if FREE_FORM.contains(&path.trim_end_matches('.')) {
                    break;
                }
                match table.get(part) {
                    Some(toml::Value::Table(inner)) => {
                        table = inner;
                        path = format!("{path}{part}.");
                    }
                    Some(_) => break,
                    None => {
                        let here = format!("{path}{part}");
                        out.push(
                            Problem::new(here.clone(), self.unknown(&here, part, table))
                                .at(Some(format!("environment variable {name}"))),
                        );
                        break;
                    }
                }
            }
        }
        out
    }

    /// "`x` is unknown", with the nearest sibling, or the same key in another table.
    fn unknown(&self, here: &str, name: &str, siblings: &toml::Table) -> String {
        let near = siblings
            .keys()
            .map(|k| (strsim::damerau_levenshtein(name, k), k))
            .filter(|(d, k)| *d <= 2.max(k.len() / 4))
            .min();
        if let Some((_, k)) = near {
            return format!("{here} is unknown; did you mean {k}?");
        }
        let mut elsewhere = Vec::new();
        find(&self.0, name, "", &mut elsewhere);
        match elsewhere.first() {
            Some(path) => format!("{here} is unknown; {name} belongs in {path}"),
            None => {
                let mut keys: Vec<&str> = siblings.keys().map(String::as_str).collect();
                keys.sort_unstable();
                format!("{here} is unknown (known here: {})", keys.join(", "))
            }
        }
    }
}

/// Paths of the tables that hold a key called `name`.
fn find(table: &toml::Table, name: &str, path: &str, out: &mut Vec<String>) {
    if table.contains_key(name) && !path.is_empty() {
        out.push(format!("[{}]", path.trim_end_matches('.')));
    }
    for (k, v) in table {
        if let toml::Value::Table(inner) = v {
            find(inner, name, &format!("{path}{k}."), out);
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn place(file: &str, line: Option<usize>) -> String {
    match line {
        Some(n) => format!("{file} line {n}"),
        None => file.to_owned(),
    }
}

/// Where a key was written in a TOML text: the line of its first mention, if any.
pub(crate) fn line_of_key(text: &str, key: &[String]) -> Option<usize> {
    let Ok(doc) = DeTable::parse(text) else {
        return None;
    };
    let mut table = doc.get_ref();
    let mut offset = None;
    for (i, part) in key.iter().enumerate() {
        let (k, v) = table.iter().find(|(k, _)| {
            let name: &str = k.get_ref();
            name == part
        })?;
        offset = Some(k.span().start);
        match v.get_ref() {
            DeValue::Table(inner) if i + 1 < key.len() => table = inner,
            _ => break,
        }
    }
    offset.map(|o| line_of(text, o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Known {
        Known::new(toml::Table::try_from(super::super::Config::default()).expect("defaults"))
    }

    #[test]
    fn unknown_keys_get_the_nearest_known_one_and_their_line() {
        let text = "[ingest]\ninput_topic = \"a\"\ninput_topc = \"b\"\n\n[detect.rules.boot_storm]\nmin_device = 3\n";
        let problems = known().check_file("c.toml", text);
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            vec![
                "ingest.input_topc is unknown; did you mean input_topic? (in c.toml line 3)",
                "detect.rules.boot_storm.min_device is unknown; did you mean min_devices? (in c.toml line 6)",
            ]
        );
    }

    #[test]
    fn a_key_in_the_wrong_table_is_pointed_to_its_table() {
        let text = "[ingest]\npartition_idle_ms = 5\n";
        let p = known().check_file("c.toml", text);
        assert_eq!(
            p[0].message,
            "ingest.partition_idle_ms is unknown; partition_idle_ms belongs in [detect]"
        );
    }

    #[test]
    fn wrong_kinds_are_named_and_integers_fit_floats() {
        let text = "[ingest]\nmax_in_flight = \"many\"\n[detect.rules.boot_storm]\nbaseline_factor = 8\n[kafka]\nclient = 3\n";
        let shown: Vec<String> = known()
            .check_file("c.toml", text)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            vec![
                "ingest.max_in_flight must be an integer, not a string (in c.toml line 2)",
                "kafka.client must be a table (in c.toml line 6)",
            ]
        );
    }

    #[test]
    fn passthrough_tables_are_free_form_and_syntax_errors_have_a_line() {
        let text = "[kafka.client]\n\"any.thing\" = \"x\"\n";
        assert!(known().check_file("c.toml", text).is_empty());
        let p = known().check_file("c.toml", "[ingest]\ndelivery = \n");
        assert_eq!(p.len(), 1);
        assert!(p[0].to_string().contains("c.toml line 2"), "{}", p[0]);
    }

    #[test]
    fn environment_variables_naming_no_key_are_reported() {
        let vars = [
            ("CWMP__INGEST__INPUT_TOPC", "x"),
            ("CWMP__INGEST__INPUT_TOPIC", "x"),
            ("CWMP__KAFKA__CLIENT__SSL_CA_LOCATION", "/ca.pem"),
            ("HOME", "/root"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let p = known().check_env("CWMP__", vars);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(
            p[0].to_string(),
            "ingest.input_topc is unknown; did you mean input_topic? (in environment variable CWMP__INGEST__INPUT_TOPC)"
        );
    }

    #[test]
    fn key_lines() {
        let text = "[ingest]\n\ndelivery = \"x\"\n";
        assert_eq!(
            line_of_key(text, &["ingest".into(), "delivery".into()]),
            Some(3)
        );
        assert_eq!(line_of_key(text, &["detect".into()]), None);
    }
}
