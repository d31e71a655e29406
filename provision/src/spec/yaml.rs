//! The cluster file as a located YAML tree: every value and key with its line and column, built from the
//! parser's events. Only what a cluster file needs: one document, mappings, lists and scalars; aliases,
//! tags and duplicate keys are refused here, with their position.

use std::borrow::Cow;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use super::rules::Rule;

/// 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl Pos {
    fn of(span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

/// A key of a mapping.
#[derive(Debug, Clone)]
pub struct Key {
    /// The key's text.
    pub text: String,
    /// Where the key is.
    pub pos: Pos,
}

/// What a node holds.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A scalar; `plain` when unquoted (only plain scalars can be null, true/false or numbers).
    Scalar {
        /// The text.
        text: String,
        /// Written without quotes or block markers.
        plain: bool,
    },
    /// A list.
    Seq(Vec<Node>),
    /// A mapping, in file order.
    Map(Vec<(Key, Node)>),
}

/// A value with its position.
#[derive(Debug, Clone)]
pub struct Node {
    /// Where the value starts.
    pub pos: Pos,
    /// The value.
    pub kind: Kind,
}

impl Node {
    /// YAML's null: an empty plain scalar, `~` or `null` (`key:` with nothing after it).
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { text, plain: true }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// What kind of value this is, for messages.
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            Kind::Scalar { .. } if self.is_null() => "nothing",
            Kind::Scalar { .. } => "a single value",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

/// Why the text is not a cluster file's YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// Which rule.
    pub rule: Rule,
    /// Where.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

/// Deeper than any cluster file (nodes → [i] → ssh → port is four): a guard against pathological input.
const MAX_DEPTH: usize = 16;

enum Frame {
    Seq(Pos, Vec<Node>),
    Map(Pos, Vec<(Key, Node)>, Option<Key>),
}

fn err(rule: Rule, pos: Pos, message: impl Into<String>, fix: &str) -> YamlError {
    YamlError {
        rule,
        pos,
        message: message.into(),
        fix: fix.into(),
    }
}

/// Add a finished `node` to the frame on top of `stack`, or make it the root.
fn place(stack: &mut [Frame], root: &mut Option<Node>, node: Node) -> Result<(), YamlError> {
    match stack.last_mut() {
        None => *root = Some(node),
        Some(Frame::Seq(_, items)) => items.push(node),
        Some(Frame::Map(_, entries, pending)) => match pending.take() {
            Some(key) => entries.push((key, node)),
            None => {
                let Kind::Scalar { text, .. } = node.kind else {
                    return Err(err(
                        Rule::WrongType,
                        node.pos,
                        format!("a key must be a plain name, not {}", node.describe()),
                        "write `field: value` with a name before the colon",
                    ));
                };
                if let Some((first, _)) = entries.iter().find(|(k, _)| k.text == text) {
                    return Err(err(
                        Rule::DuplicateKey,
                        node.pos,
                        format!(
                            "`{text}` is given twice in this mapping (first at line {})",
                            first.pos.line
                        ),
                        "keep one of them",
                    ));
                }
                *pending = Some(Key {
                    text,
                    pos: node.pos,
                });
            }
        },
    }
    Ok(())
}

fn refuse_tag(tag: &Option<Cow<'_, saphyr_parser::Tag>>, pos: Pos) -> Result<(), YamlError> {
    match tag {
        Some(t) => Err(err(
            Rule::YamlTag,
            pos,
            format!(
                "the YAML tag `{}` is not supported in a cluster file",
                if t.is_yaml_core_schema() {
                    format!("!!{}", t.suffix)
                } else {
                    t.to_string()
                }
            ),
            "remove the tag; write the value plainly (quote it to make it text)",
        )),
        None => Ok(()),
    }
}

/// Parse `text` into its one document's tree; `Ok(None)` when there is no document or it is empty.
pub fn parse(text: &str) -> Result<Option<Node>, YamlError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| {
            err(
                Rule::YamlSyntax,
                Pos {
                    line: e.marker().line(),
                    column: e.marker().col() + 1,
                },
                format!("not valid YAML: {}", e.info()),
                "check the indentation and the quoting on this line and the one before",
            )
        })?;
        let pos = Pos::of(&span);
        match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(err(
                        Rule::SecondDocument,
                        pos,
                        "a second YAML document starts here; a cluster file is one document",
                        "remove the `---` line and everything after it, or merge the two into one file",
                    ));
                }
            }
            Event::Alias(_) => {
                return Err(err(
                    Rule::YamlAlias,
                    pos,
                    "YAML aliases (`*name`) are not supported in a cluster file",
                    "write the value out where the alias is",
                ))
            }
            Event::Scalar(value, style, _, tag) => {
                refuse_tag(&tag, pos)?;
                let node = Node {
                    pos,
                    kind: Kind::Scalar {
                        text: value.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    },
                };
                place(&mut stack, &mut root, node)?;
            }
            Event::SequenceStart(_, ref tag) | Event::MappingStart(_, ref tag) => {
                refuse_tag(tag, pos)?;
                if stack.len() >= MAX_DEPTH {
                    return Err(err(
                        Rule::TooDeep,
                        pos,
                        format!("nested more than {MAX_DEPTH} levels deep; no field of a cluster file is"),
                        "compare with examples/static3.yaml: sections hold fields, `nodes` holds one mapping per member",
                    ));
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq(pos, Vec::new())
                } else {
                    Frame::Map(pos, Vec::new(), None)
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match stack.pop() {
                    Some(Frame::Seq(pos, items)) => Node {
                        pos,
                        kind: Kind::Seq(items),
                    },
                    Some(Frame::Map(pos, entries, _)) => Node {
                        pos,
                        kind: Kind::Map(entries),
                    },
                    None => continue,
                };
                place(&mut stack, &mut root, node)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
    }
    Ok(root.filter(|r| !r.is_null()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fails(text: &str) -> YamlError {
        parse(text).expect_err("must be refused")
    }

    #[test]
    fn values_keep_their_line_and_column() {
        let root = parse("a: 1\nb:\n  - x\n  - { c: 'y' }\n")
            .expect("valid")
            .expect("a document");
        let Kind::Map(entries) = &root.kind else {
            panic!("a mapping")
        };
        assert_eq!(entries[1].0.pos, Pos { line: 2, column: 1 });
        let Kind::Seq(items) = &entries[1].1.kind else {
            panic!("a list")
        };
        assert_eq!(items[1].pos, Pos { line: 4, column: 5 });
        let Kind::Map(inner) = &items[1].kind else {
            panic!("a mapping")
        };
        assert!(matches!(&inner[0].1.kind, Kind::Scalar { text, plain: false } if text == "y"));
    }

    #[test]
    fn empty_and_comment_only_files_have_no_document() {
        assert!(parse("").expect("ok").is_none());
        assert!(parse("# nothing\n\n").expect("ok").is_none());
        assert!(parse("---\n").expect("ok").is_none());
    }

    #[test]
    fn a_second_document_is_refused_where_it_starts() {
        let e = fails("a: 1\n---\nb: 2\n");
        assert_eq!((e.rule, e.pos.line), (Rule::SecondDocument, 2));
    }

    #[test]
    fn duplicate_keys_aliases_tags_and_depth_are_refused() {
        let e = fails("a: 1\nb: 2\na: 3\n");
        assert_eq!((e.rule, e.pos.line), (Rule::DuplicateKey, 3));
        assert!(e.message.contains("first at line 1"), "{}", e.message);
        assert_eq!(fails("a: &x 1\nb: *x\n").rule, Rule::YamlAlias);
        assert_eq!(fails("a: !!str 1\n").rule, Rule::YamlTag);
        assert_eq!(
            fails(&format!("a: {}1{}\n", "[".repeat(40), "]".repeat(40))).rule,
            Rule::TooDeep
        );
        assert_eq!(fails("? [a]\n: 1\n").rule, Rule::WrongType);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = fails("a: [1, 2\nb: 3\n");
        assert_eq!(e.rule, Rule::YamlSyntax);
        assert!(
            e.pos.line >= 1 && e.message.starts_with("not valid YAML"),
            "{e:?}"
        );
    }
}
