//! Templates of field values (`{{ first_name }} {{ last_name }}`, `{{ plan | upper }}`,
//! `{% if vip %}gold{% else %}standard{% endif %}`), written in MiniJinja's Jinja2 syntax.
//!
//! Each template is parsed once per run (when the mapping is compiled); rendering a row only
//! looks up the columns the template reads. The names a template reads are checked against the
//! model's columns when the mapping is saved, so a typo is refused then. A NULL column is
//! undefined while rendering: it renders as nothing, filters pass it through
//! (`{{ plan | upper }}` is empty), and `{{ plan | default('free') }}` gives a fallback.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

/// Most bytes a template's source may have.
const MAX_TEMPLATE_BYTES: usize = 16 * 1024;

/// The templates of one mapping.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    count: usize,
}

impl Default for Templates {
    fn default() -> Self {
        let mut env = Environment::new();
        // NULLs are left out of the context (see the module docs); unknown names never get
        // this far (checked against the columns when the mapping is saved).
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        // Values are sent as data, not embedded in HTML.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        // Bounds the work a template can do per row (a loop over a huge range, deep recursion).
        env.set_recursion_limit(64);
        // A NULL column renders as nothing, not as the word "none".
        env.set_formatter(|out, state, value| {
            if value.is_none() {
                Ok(())
            } else {
                minijinja::escape_formatter(out, state, value)
            }
        });
        Templates { env, count: 0 }
    }
}

impl Templates {
    /// Parses `source` and returns its handle and the names it reads from the row.
    ///
    /// # Errors
    /// The parser's message (with line) when it does not parse.
    pub fn add(&mut self, source: &str) -> Result<(usize, Vec<String>), String> {
        if source.len() > MAX_TEMPLATE_BYTES {
            return Err(format!(
                "the template is {} bytes; templates may have at most {MAX_TEMPLATE_BYTES}",
                source.len()
            ));
        }
        let handle = self.count;
        let name = handle.to_string();
        self.env
            .add_template_owned(name.clone(), source.to_string())
            .map_err(|e| describe(&e))?;
        let template = self.env.get_template(&name).map_err(|e| describe(&e))?;
        let mut names: Vec<String> = template.undeclared_variables(false).into_iter().collect();
        names.sort();
        self.count += 1;
        Ok((handle, names))
    }

    /// Renders template `handle` with the row's `values` (the names it reads); NULLs are left
    /// out of the context.
    ///
    /// # Errors
    /// The renderer's message (e.g. a filter applied to the wrong type).
    pub fn render(&self, handle: usize, values: &[(&str, Value)]) -> Result<String, String> {
        let template = self
            .env
            .get_template(&handle.to_string())
            .map_err(|e| describe(&e))?;
        let defined: BTreeMap<&str, &Value> = values
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (*k, v))
            .collect();
        template.render(defined).map_err(|e| describe(&e))
    }
}

/// A MiniJinja error in one line: its kind, detail and line.
fn describe(error: &minijinja::Error) -> String {
    let mut text = error.kind().to_string();
    if let Some(detail) = error.detail() {
        text.push_str(": ");
        text.push_str(detail);
    }
    if let Some(line) = error.line() {
        text.push_str(&format!(" (line {line})"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(source: &str, row: &[(&str, Value)]) -> Result<String, String> {
        let mut templates = Templates::default();
        let (handle, _) = templates.add(source)?;
        templates.render(handle, row)
    }

    #[test]
    fn renders_columns_filters_and_conditionals() {
        let row = [
            ("first_name", json!("Ada")),
            ("last_name", json!("Lovelace")),
            ("plan", json!("pro")),
            ("vip", json!(true)),
        ];
        assert_eq!(
            render("{{ first_name }} {{ last_name }}", &row).unwrap(),
            "Ada Lovelace"
        );
        assert_eq!(render("{{ plan | upper }}", &row).unwrap(), "PRO");
        assert_eq!(
            render("{% if vip %}gold{% else %}standard{% endif %}", &row).unwrap(),
            "gold"
        );
        assert_eq!(render("<{{ first_name }}>", &row).unwrap(), "<Ada>");
        let with_null = [("first_name", json!("Ada")), ("middle", Value::Null)];
        assert_eq!(
            render("{{ first_name }}{{ middle }}!", &with_null).unwrap(),
            "Ada!"
        );
        assert_eq!(
            render("{{ middle | default('n/a') }}", &with_null).unwrap(),
            "n/a"
        );
        assert_eq!(render("[{{ middle | upper }}]", &with_null).unwrap(), "[]");
    }

    #[test]
    fn names_read_are_listed_and_errors_are_clear() {
        let mut templates = Templates::default();
        let (_, names) = templates
            .add("{% for x in items %}{{ x }}{% endfor %}{{ a }} {{ b | lower }}")
            .unwrap();
        assert_eq!(names, ["a", "b", "items"]);
        let err = templates.add("{{ a ").unwrap_err();
        assert!(err.contains("syntax error"), "{err}");
        let err = render("{{ email | no_such_filter }}", &[("email", json!("a"))]).unwrap_err();
        assert!(err.contains("filter"), "{err}");
    }
}
