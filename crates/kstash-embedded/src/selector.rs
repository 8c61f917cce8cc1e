//! Label selectors: parsing kubectl's `-l` syntax and Kubernetes `LabelSelector` JSON, and matching
//! them against object labels.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde_json::Value;
use thiserror::Error;

/// A label selector could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid label selector {selector:?}: {reason}")]
pub struct SelectorError {
    /// The selector as given (kubectl syntax, or the JSON document).
    pub selector: String,
    pub reason: String,
}

/// What a requirement demands of one label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    /// `k=v` / `k==v`: the label is present with this value.
    Equals(String),
    /// `k!=v`: the label is absent or has another value.
    NotEquals(String),
    /// `k in (a,b)`: the label is present with one of the values.
    In(BTreeSet<String>),
    /// `k notin (a,b)`: the label is absent or has none of the values.
    NotIn(BTreeSet<String>),
    /// `k`: the label is present.
    Exists,
    /// `!k`: the label is absent.
    DoesNotExist,
}

/// One condition on one label key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
}

impl Requirement {
    /// Whether the label value (None = label absent) satisfies this requirement.
    pub fn matches_value(&self, value: Option<&str>) -> bool {
        match (&self.operator, value) {
            (Operator::Equals(want), Some(v)) => v == want,
            (Operator::Equals(_), None) => false,
            (Operator::NotEquals(want), v) => v != Some(want.as_str()),
            (Operator::In(set), Some(v)) => set.contains(v),
            (Operator::In(_), None) => false,
            (Operator::NotIn(set), v) => v.is_none_or(|v| !set.contains(v)),
            (Operator::Exists, v) => v.is_some(),
            (Operator::DoesNotExist, v) => v.is_none(),
        }
    }
}

/// A conjunction of requirements. The empty selector matches everything; [`LabelSelector::nothing`]
/// (what a JSON `null` selector means in Kubernetes) matches no object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// The selector that matches no object.
    pub fn nothing() -> Self {
        Self {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Build from requirements (all must hold). Keys and values are not re-validated.
    pub fn from_requirements(requirements: Vec<Requirement>) -> Self {
        Self {
            requirements,
            nothing: false,
        }
    }

    /// The requirements, in the order given.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// True when the selector matches every object.
    pub fn is_everything(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// True when the selector matches no object.
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    /// Parse kubectl's `-l` syntax: comma-separated (AND) requirements of the forms `k=v`, `k==v`,
    /// `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`. An empty string selects everything.
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        let err = |reason: String| SelectorError {
            selector: selector.to_string(),
            reason,
        };
        let tokens = lex(selector);
        let mut parser = Parser { tokens, pos: 0 };
        let mut requirements = Vec::new();
        if parser.peek().is_none() {
            return Ok(Self::everything());
        }
        loop {
            requirements.push(parser.requirement().map_err(err)?);
            match parser.next() {
                None => break,
                Some(Token::Comma) => {
                    if parser.peek().is_none() {
                        return Err(err("expected a requirement after ','".into()));
                    }
                }
                Some(t) => return Err(err(format!("expected ',' or end of selector, found {t}"))),
            }
        }
        Ok(Self::from_requirements(requirements))
    }

    /// Build from a Kubernetes `LabelSelector` document (`matchLabels` + `matchExpressions` with
    /// operators `In`, `NotIn`, `Exists`, `DoesNotExist`). `null` matches nothing and `{}` matches
    /// everything, as in Kubernetes.
    pub fn from_json(selector: &Value) -> Result<Self, SelectorError> {
        let err = |reason: String| SelectorError {
            selector: selector.to_string(),
            reason,
        };
        let obj = match selector {
            Value::Null => return Ok(Self::nothing()),
            Value::Object(o) => o,
            other => return Err(err(format!("expected an object, found {}", json_type(other)))),
        };
        let mut requirements = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (k, v) in labels {
                    let v = v
                        .as_str()
                        .ok_or_else(|| err(format!("matchLabels.{k} must be a string")))?;
                    validate_key(k).map_err(err)?;
                    validate_value(v).map_err(err)?;
                    requirements.push(Requirement {
                        key: k.clone(),
                        operator: Operator::Equals(v.to_string()),
                    });
                }
            }
            Some(other) => {
                return Err(err(format!(
                    "matchLabels must be an object, found {}",
                    json_type(other)
                )));
            }
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for (i, e) in exprs.iter().enumerate() {
                    requirements.push(expression(i, e).map_err(err)?);
                }
            }
            Some(other) => {
                return Err(err(format!(
                    "matchExpressions must be a list, found {}",
                    json_type(other)
                )));
            }
        }
        Ok(Self::from_requirements(requirements))
    }

    /// Whether labels (looked up by key) satisfy every requirement.
    pub fn matches_with<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches_value(label(&r.key)))
    }

    /// Whether a label map (`{"k": "v"}`, or `null` for no labels) satisfies the selector.
    pub fn matches_labels(&self, labels: &Value) -> bool {
        self.matches_with(|k| labels.get(k).and_then(Value::as_str))
    }

    /// Whether an object's `metadata.labels` satisfy the selector.
    pub fn matches_object(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels").unwrap_or(&Value::Null);
        self.matches_labels(labels)
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// kubectl syntax; the empty string for both everything and nothing (check
/// [`LabelSelector::is_nothing`] before sending a selector elsewhere).
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
        match &self.operator {
            Operator::Equals(v) => write!(f, "{}={v}", self.key),
            Operator::NotEquals(v) => write!(f, "{}!={v}", self.key),
            Operator::In(s) => write!(f, "{} in ({})", self.key, join(s)),
            Operator::NotIn(s) => write!(f, "{} notin ({})", self.key, join(s)),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn expression(i: usize, e: &Value) -> Result<Requirement, String> {
    let at = format!("matchExpressions[{i}]");
    let key = e
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{at}.key is required"))?;
    validate_key(key)?;
    let op = e
        .get("operator")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{at}.operator is required"))?;
    let values: Vec<&str> = match e.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(vs)) => vs
            .iter()
            .map(|v| v.as_str().ok_or_else(|| format!("{at}.values must be strings")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(format!("{at}.values must be a list of strings")),
    };
    for v in &values {
        validate_value(v)?;
    }
    let set = || values.iter().map(|v| v.to_string()).collect::<BTreeSet<_>>();
    let operator = match op {
        "In" | "NotIn" if values.is_empty() => {
            return Err(format!("{at}: operator {op} needs at least one value"));
        }
        "Exists" | "DoesNotExist" if !values.is_empty() => {
            return Err(format!("{at}: operator {op} takes no values"));
        }
        "In" => Operator::In(set()),
        "NotIn" => Operator::NotIn(set()),
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => {
            return Err(format!(
                "{at}: unknown operator {other:?}; use In, NotIn, Exists or DoesNotExist"
            ));
        }
    };
    Ok(Requirement {
        key: key.to_string(),
        operator,
    })
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63 characters.
fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A DNS-1123 subdomain (`kstash_api::names`).
fn is_dns_subdomain(s: &str) -> bool {
    kstash_api::names::dns1123_subdomain_error(s).is_none()
}

/// A label key: `[prefix/]name` with a DNS-subdomain prefix.
pub(crate) fn validate_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && !is_dns_subdomain(p)
    {
        return Err(format!(
            "label key {key:?}: the prefix must be a lower-case DNS subdomain (e.g. example.com)"
        ));
    }
    if !is_label_name(name) {
        return Err(format!(
            "label key {key:?}: the name must be 1-63 characters of alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
        ));
    }
    Ok(())
}

/// A label value: empty, or a label name.
pub(crate) fn validate_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        Err(format!(
            "label value {value:?}: must be empty or 1-63 characters of alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    In,
    NotIn,
    Eq,
    DoubleEq,
    NotEq,
    Not,
    OpenParen,
    CloseParen,
    Comma,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Ident(s) => write!(f, "{s:?}"),
            Token::In => f.write_str("'in'"),
            Token::NotIn => f.write_str("'notin'"),
            Token::Eq => f.write_str("'='"),
            Token::DoubleEq => f.write_str("'=='"),
            Token::NotEq => f.write_str("'!='"),
            Token::Not => f.write_str("'!'"),
            Token::OpenParen => f.write_str("'('"),
            Token::CloseParen => f.write_str("')'"),
            Token::Comma => f.write_str("','"),
        }
    }
}

fn lex(s: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | ',' => {
                chars.next();
                out.push(match c {
                    '(' => Token::OpenParen,
                    ')' => Token::CloseParen,
                    _ => Token::Comma,
                });
            }
            '=' | '!' => {
                chars.next();
                let double = chars.peek() == Some(&'=');
                if double {
                    chars.next();
                }
                out.push(match (c, double) {
                    ('=', true) => Token::DoubleEq,
                    ('=', false) => Token::Eq,
                    (_, true) => Token::NotEq,
                    (_, false) => Token::Not,
                });
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | ',' | '=' | '!') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                out.push(match word.as_str() {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    _ => Token::Ident(word),
                });
            }
        }
    }
    out
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn key(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Ident(k)) => {
                validate_key(&k)?;
                Ok(k)
            }
            Some(t) => Err(format!("expected a label key, found {t}")),
            None => Err("expected a label key, found end of selector".into()),
        }
    }

    /// A value after `=`/`==`/`!=` or inside a list; empty when the next token ends it.
    fn value(&mut self) -> Result<String, String> {
        let v = match self.peek() {
            Some(Token::Ident(v)) => v.clone(),
            Some(Token::In) => "in".into(),
            Some(Token::NotIn) => "notin".into(),
            None | Some(Token::Comma) | Some(Token::CloseParen) => return Ok(String::new()),
            Some(t) => return Err(format!("expected a label value, found {t}")),
        };
        self.pos += 1;
        validate_value(&v)?;
        Ok(v)
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        if self.peek() == Some(&Token::Not) {
            self.pos += 1;
            let key = self.key()?;
            return Ok(Requirement {
                key,
                operator: Operator::DoesNotExist,
            });
        }
        let key = self.key()?;
        let operator = match self.peek() {
            None | Some(Token::Comma) => Operator::Exists,
            Some(Token::Eq) | Some(Token::DoubleEq) => {
                self.pos += 1;
                Operator::Equals(self.value()?)
            }
            Some(Token::NotEq) => {
                self.pos += 1;
                Operator::NotEquals(self.value()?)
            }
            Some(Token::In) | Some(Token::NotIn) => {
                let negate = self.next() == Some(Token::NotIn);
                let set = self.value_list()?;
                if negate {
                    Operator::NotIn(set)
                } else {
                    Operator::In(set)
                }
            }
            Some(t) => {
                return Err(format!(
                    "after key {key:?} expected '=', '==', '!=', 'in', 'notin', ',' or end, found {t}"
                ));
            }
        };
        Ok(Requirement { key, operator })
    }

    fn value_list(&mut self) -> Result<BTreeSet<String>, String> {
        match self.next() {
            Some(Token::OpenParen) => {}
            Some(t) => return Err(format!("expected '(' after in/notin, found {t}")),
            None => return Err("expected '(' after in/notin, found end of selector".into()),
        }
        if self.peek() == Some(&Token::CloseParen) {
            return Err("in/notin needs at least one value between the parentheses".into());
        }
        let mut set = BTreeSet::new();
        loop {
            set.insert(self.value()?);
            match self.next() {
                Some(Token::Comma) => {}
                Some(Token::CloseParen) => return Ok(set),
                Some(t) => return Err(format!("expected ',' or ')' in value list, found {t}")),
                None => return Err("unclosed '(' in value list".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn set(vals: &[&str]) -> BTreeSet<String> {
        vals.iter().map(|s| s.to_string()).collect()
    }

    fn req(key: &str, operator: Operator) -> Requirement {
        Requirement {
            key: key.into(),
            operator,
        }
    }

    #[test]
    fn kubectl_syntax_parses_into_requirements() {
        use Operator::*;
        let cases: Vec<(&str, Vec<Requirement>)> = vec![
            ("", vec![]),
            ("   ", vec![]),
            ("app=web", vec![req("app", Equals("web".into()))]),
            ("app==web", vec![req("app", Equals("web".into()))]),
            ("app = web", vec![req("app", Equals("web".into()))]),
            ("app=", vec![req("app", Equals("".into()))]),
            ("app!=web", vec![req("app", NotEquals("web".into()))]),
            (
                "env in (prod, staging)",
                vec![req("env", In(set(&["prod", "staging"])))],
            ),
            ("env notin (dev)", vec![req("env", NotIn(set(&["dev"])))]),
            ("tier", vec![req("tier", Exists)]),
            ("!tier", vec![req("tier", DoesNotExist)]),
            ("! tier", vec![req("tier", DoesNotExist)]),
            (
                "app.kubernetes.io/name=pg,env in (prod),!canary,tier",
                vec![
                    req("app.kubernetes.io/name", Equals("pg".into())),
                    req("env", In(set(&["prod"]))),
                    req("canary", DoesNotExist),
                    req("tier", Exists),
                ],
            ),
        ];
        for (input, want) in cases {
            let got = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input:?} should parse: {e}"));
            assert_eq!(got.requirements(), want.as_slice(), "selector {input:?}");
        }
    }

    #[test]
    fn bad_kubectl_syntax_is_rejected_with_a_reason() {
        let cases = [
            "app=web,",
            ",app",
            "app=web=x",
            "env in prod",
            "env in ()",
            "env in (prod",
            "env notin (a b)",
            "!",
            "!=x",
            "app=we b",
            "-bad=x",
            "Bad_Prefix/x=y",
            "app=-bad-",
            "(app)",
            "app web",
        ];
        for input in cases {
            let err = LabelSelector::parse(input).expect_err(&format!("{input:?} should be rejected"));
            assert!(err.to_string().contains("invalid label selector"), "{err}");
            assert!(!err.reason.is_empty());
        }
    }

    #[test]
    fn matching_follows_kubernetes_rules() {
        let labels = json!({"app": "web", "env": "prod", "empty": ""});
        let cases = [
            ("", true),
            ("app=web", true),
            ("app=db", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app!=web", false),
            ("env in (prod,staging)", true),
            ("env in (dev)", false),
            ("missing in (x)", false),
            ("env notin (dev)", true),
            ("missing notin (dev)", true),
            ("env notin (prod)", false),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("empty=", true),
            ("empty", true),
            ("app=web,env=prod", true),
            ("app=web,env=dev", false),
        ];
        for (input, want) in cases {
            let sel = LabelSelector::parse(input).unwrap();
            assert_eq!(sel.matches_labels(&labels), want, "selector {input:?}");
        }
        let no_labels = json!({"metadata": {"name": "x"}});
        assert!(LabelSelector::parse("!app").unwrap().matches_object(&no_labels));
        assert!(!LabelSelector::parse("app").unwrap().matches_object(&no_labels));
    }

    #[test]
    fn json_label_selector_matches_like_the_kubectl_form() {
        let sel = LabelSelector::from_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "staging"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "tier", "operator": "Exists", "values": []},
                {"key": "zone", "operator": "NotIn", "values": ["a"]}
            ]
        }))
        .unwrap();
        assert_eq!(
            sel.to_string(),
            "app=web,env in (prod,staging),!canary,tier,zone notin (a)"
        );
        assert_eq!(LabelSelector::parse(&sel.to_string()).unwrap(), sel);
        assert!(sel.matches_labels(&json!({"app": "web", "env": "prod", "tier": "1"})));
        assert!(!sel.matches_labels(&json!({"app": "web", "env": "prod"})));
        assert!(!sel.matches_labels(&json!({"app": "web", "env": "prod", "tier": "1", "zone": "a"})));

        let everything = LabelSelector::from_json(&json!({})).unwrap();
        assert!(everything.is_everything());
        assert!(everything.matches_labels(&json!({})));
        let nothing = LabelSelector::from_json(&Value::Null).unwrap();
        assert!(nothing.is_nothing());
        assert!(!nothing.matches_labels(&json!({})));
    }

    #[test]
    fn bad_json_label_selectors_are_rejected() {
        let cases = [
            json!("app=web"),
            json!({"matchLabels": {"app": 1}}),
            json!({"matchLabels": ["app"]}),
            json!({"matchExpressions": [{"key": "env", "operator": "In", "values": []}]}),
            json!({"matchExpressions": [{"key": "env", "operator": "In"}]}),
            json!({"matchExpressions": [{"key": "env", "operator": "Exists", "values": ["x"]}]}),
            json!({"matchExpressions": [{"key": "env", "operator": "Gt", "values": ["1"]}]}),
            json!({"matchExpressions": [{"operator": "Exists"}]}),
            json!({"matchExpressions": {"key": "env"}}),
        ];
        for input in cases {
            assert!(
                LabelSelector::from_json(&input).is_err(),
                "{input} should be rejected"
            );
        }
    }
}
