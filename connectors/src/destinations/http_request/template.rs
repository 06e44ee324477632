//! The templates of an HTTP Request destination (URL and body): MiniJinja with the
//! behaviour of the engine's mapping templates (`retl_engine::mapping::template`: lenient
//! undefined names, no HTML escaping, a NULL renders as nothing, bounded recursion) plus two
//! filters a request needs, `tojson` and `urlencode`, which MiniJinja ships only behind
//! features the workspace does not enable.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

/// Most bytes a template's source may have (the engine's bound for mapping templates).
const MAX_TEMPLATE_BYTES: usize = 16 * 1024;

/// The parsed templates of one destination.
#[derive(Debug)]
pub(crate) struct RequestTemplates {
    env: Environment<'static>,
    count: usize,
}

impl Default for RequestTemplates {
    fn default() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_recursion_limit(64);
        env.set_formatter(|out, state, value| {
            if value.is_none() {
                Ok(())
            } else {
                minijinja::escape_formatter(out, state, value)
            }
        });
        env.add_filter("tojson", tojson);
        env.add_filter("urlencode", urlencode);
        RequestTemplates { env, count: 0 }
    }
}

impl RequestTemplates {
    /// Parses `source`; returns its handle and the names it reads.
    ///
    /// # Errors
    /// The parser's message (with line) when it does not parse.
    pub(crate) fn add(&mut self, source: &str) -> Result<(usize, Vec<String>), String> {
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

    /// Renders template `handle` with `values`; NULLs are left out (undefined).
    ///
    /// # Errors
    /// The renderer's message (e.g. a filter applied to the wrong type).
    pub(crate) fn render(&self, handle: usize, values: &[(&str, Value)]) -> Result<String, String> {
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

/// `tojson`: the value as compact JSON text (undefined and none are `null`).
fn tojson(value: minijinja::Value) -> Result<String, minijinja::Error> {
    serde_json::to_string(&value).map_err(|e| {
        minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("the value cannot be written as JSON: {e}"),
        )
    })
}

/// `urlencode`: the value's text with every byte outside RFC 3986's unreserved set
/// (`A-Z a-z 0-9 - . _ ~`) percent-encoded; undefined and none give the empty string.
fn urlencode(value: minijinja::Value) -> String {
    if value.is_undefined() || value.is_none() {
        return String::new();
    }
    let text = value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string);
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
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

    #[test]
    fn request_templates_write_json_and_encode_urls() {
        let mut templates = RequestTemplates::default();
        let (body, names) = templates
            .add(r#"{"email": {{ email | tojson }}, "tags": {{ tags | tojson }}, "plan": {{ plan | tojson }}}"#)
            .unwrap();
        assert_eq!(names, ["email", "plan", "tags"]);
        let row = [
            ("email", json!("a\"b@example.com")),
            ("tags", json!(["x", 1])),
            ("plan", Value::Null),
        ];
        let rendered = templates.render(body, &row).unwrap();
        let parsed: Value = serde_json::from_str(&rendered).unwrap();
        assert_eq!(
            parsed,
            json!({"email": "a\"b@example.com", "tags": ["x", 1], "plan": null})
        );
        let (url, _) = templates
            .add("/users/{{ id | urlencode }}{{ missing }}")
            .unwrap();
        assert_eq!(
            templates.render(url, &[("id", json!("a b/ü"))]).unwrap(),
            "/users/a%20b%2F%C3%BC"
        );
        assert_eq!(
            templates.render(url, &[("id", json!(42))]).unwrap(),
            "/users/42"
        );
        let error = templates.add("{{ a ").unwrap_err();
        assert!(error.contains("syntax error"), "{error}");
    }
}
