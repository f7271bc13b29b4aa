//! Parser for federation field sets (`@key(fields:)`, `@requires`, `@provides`).

/// One selection in a field set: a field (with optional sub-selection) or an inline fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// `name` or `name { ... }`; `has_args`/`directives` record forbidden syntax for validation.
    Field {
        /// Field name.
        name: String,
        /// Sub-selection, empty for leaves.
        selections: Vec<Selection>,
        /// Whether arguments were written (`f(x: 1)`).
        has_args: bool,
        /// Names of directives written on the field (`f @skip(...)`).
        directives: Vec<String>,
    },
    /// `... on Type { ... }`.
    InlineFragment {
        /// Type condition, if any.
        type_condition: Option<String>,
        /// Selections inside the fragment.
        selections: Vec<Selection>,
    },
}

/// Parses the content of a field set string (without the outer braces).
pub fn parse(input: &str) -> Result<Vec<Selection>, String> {
    let tokens = tokenize(input)?;
    let mut p = Parser { tokens, pos: 0 };
    let sels = p.selections(false)?;
    if p.pos != p.tokens.len() {
        return Err(format!("unexpected token `{}`", p.tokens[p.pos]));
    }
    if sels.is_empty() {
        return Err("empty selection".into());
    }
    Ok(sels)
}

fn tokenize(input: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() || c == ',' {
            i += 1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '.' {
            if chars.get(i + 1) == Some(&'.') && chars.get(i + 2) == Some(&'.') {
                out.push("...".into());
                i += 3;
            } else {
                return Err("unexpected `.`".into());
            }
        } else if "{}()@:$!=[]".contains(c) {
            out.push(c.to_string());
            i += 1;
        } else if c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push(chars[start..i.min(chars.len())].iter().collect());
        } else if c.is_alphanumeric() || c == '_' || c == '-' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric()
                    || chars[i] == '_'
                    || chars[i] == '.'
                    || chars[i] == '-')
            {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else {
            return Err(format!("unexpected character `{c}`"));
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<String>,
    pos: usize,
}

fn is_name(t: &str) -> bool {
    let mut cs = t.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.pos).map(|s| s.as_str())
    }

    fn expect(&mut self, t: &str) -> Result<(), String> {
        if self.peek() == Some(t) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected `{t}`"))
        }
    }

    fn selections(&mut self, nested: bool) -> Result<Vec<Selection>, String> {
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => {
                    if nested {
                        return Err("unclosed `{`".into());
                    }
                    return Ok(out);
                }
                Some("}") => {
                    if nested {
                        return Ok(out);
                    }
                    return Err("unexpected `}`".into());
                }
                Some("...") => {
                    self.pos += 1;
                    let mut type_condition = None;
                    if self.peek() == Some("on") {
                        self.pos += 1;
                        let n = self.peek().ok_or("expected type name")?.to_string();
                        if !is_name(&n) {
                            return Err(format!("invalid type name `{n}`"));
                        }
                        self.pos += 1;
                        type_condition = Some(n);
                    }
                    self.expect("{")?;
                    let selections = self.selections(true)?;
                    self.expect("}")?;
                    out.push(Selection::InlineFragment {
                        type_condition,
                        selections,
                    });
                }
                Some(t) if is_name(t) => {
                    let mut name = t.to_string();
                    self.pos += 1;
                    if self.peek() == Some(":") {
                        // An alias: the real field name follows.
                        self.pos += 1;
                        name = self.peek().ok_or("expected field name")?.to_string();
                        self.pos += 1;
                    }
                    let mut has_args = false;
                    if self.peek() == Some("(") {
                        has_args = true;
                        let mut depth = 0;
                        while let Some(t) = self.peek().map(str::to_string) {
                            self.pos += 1;
                            if t == "(" {
                                depth += 1;
                            } else if t == ")" {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                        }
                    }
                    let mut directives = Vec::new();
                    while self.peek() == Some("@") {
                        self.pos += 1;
                        directives.push(self.peek().unwrap_or_default().to_string());
                        self.pos += 1;
                        if self.peek() == Some("(") {
                            while let Some(t) = self.peek().map(str::to_string) {
                                self.pos += 1;
                                if t == ")" {
                                    break;
                                }
                            }
                        }
                    }
                    let mut selections = Vec::new();
                    if self.peek() == Some("{") {
                        self.pos += 1;
                        selections = self.selections(true)?;
                        self.expect("}")?;
                        if selections.is_empty() {
                            return Err("empty selection".into());
                        }
                    }
                    out.push(Selection::Field {
                        name,
                        selections,
                        has_args,
                        directives,
                    });
                }
                Some(t) => return Err(format!("unexpected token `{t}`")),
            }
        }
    }
}

/// Prints a selection list back in normalized form (single spaces), for messages and output.
pub fn print(sels: &[Selection]) -> String {
    let mut out = String::new();
    for (i, s) in sels.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match s {
            Selection::Field {
                name, selections, ..
            } => {
                out.push_str(name);
                if !selections.is_empty() {
                    out.push_str(" { ");
                    out.push_str(&print(selections));
                    out.push_str(" }");
                }
            }
            Selection::InlineFragment {
                type_condition,
                selections,
            } => {
                out.push_str("...");
                if let Some(t) = type_condition {
                    out.push_str(" on ");
                    out.push_str(t);
                }
                out.push_str(" { ");
                out.push_str(&print(selections));
                out.push_str(" }");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_and_fragments() {
        let s = parse("id org { id name } ... on Book { isbn }").unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(print(&s), "id org { id name } ... on Book { isbn }");
    }

    #[test]
    fn flags_args_and_rejects_garbage() {
        let s = parse("f(x: 1)").unwrap();
        assert!(matches!(&s[0], Selection::Field { has_args: true, .. }));
        assert!(parse("a {").is_err());
        assert!(parse("").is_err());
        assert!(parse("a }").is_err());
    }
}
