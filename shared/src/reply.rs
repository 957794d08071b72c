//! Lua replies read front to back: one cursor over a script's answer (an array of numbers,
//! strings and nested arrays), as mini-redis `src/parse.rs` reads every frame, and one error
//! that says which item did not fit and shows the answer around it.
//!
//! Used by every script's caller (`inventory.lua`, the waiting room's `queue.lua`). A reader
//! never panics on an answer it did not expect: it returns a [`ReplyError`].

use std::fmt::Write as _;

use redis::Value;

/// The longest rendering of an answer an error carries (a tick's answer holds bitmaps).
const SHOWN: usize = 240;

/// An answer that is not what its reader expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reply}: {problem} at item {at}")]
pub struct ReplyError {
    /// What did not fit, e.g. "not a number".
    pub problem: String,
    /// The item's index in its list.
    pub at: usize,
    /// The list, rendered (cut at a few hundred characters).
    pub reply: String,
}

/// A cursor over one list of a script's answer.
#[derive(Debug, Clone)]
pub struct Reply<'a> {
    items: &'a [Value],
    /// The next item to read.
    at: usize,
}

impl<'a> Reply<'a> {
    /// The answer as a list; anything else is an error.
    pub fn new(value: &'a Value) -> Result<Self, ReplyError> {
        match value {
            Value::Array(items) => Ok(Self { items, at: 0 }),
            other => Err(ReplyError {
                problem: "not a list".into(),
                at: 0,
                reply: render(std::slice::from_ref(other)),
            }),
        }
    }

    /// Nothing left to read?
    pub fn is_empty(&self) -> bool {
        self.at >= self.items.len()
    }

    /// An error about the item read last (or the first, before any read).
    pub fn error(&self, problem: impl Into<String>) -> ReplyError {
        ReplyError {
            problem: problem.into(),
            at: self.at.saturating_sub(1),
            reply: render(self.items),
        }
    }

    fn next(&mut self) -> Result<&'a Value, ReplyError> {
        let item = self.items.get(self.at).ok_or_else(|| ReplyError {
            problem: "the answer ended early".into(),
            at: self.at,
            reply: render(self.items),
        })?;
        self.at += 1;
        Ok(item)
    }

    /// A string's bytes, as they are.
    pub fn bytes(&mut self) -> Result<&'a [u8], ReplyError> {
        match self.next()? {
            Value::BulkString(b) => Ok(b),
            Value::SimpleString(s) => Ok(s.as_bytes()),
            _ => Err(self.error("not text")),
        }
    }

    /// A string (invalid UTF-8 replaced) or a number, as text.
    pub fn text(&mut self) -> Result<String, ReplyError> {
        match self.next()? {
            Value::Int(n) => Ok(n.to_string()),
            Value::BulkString(b) => Ok(String::from_utf8_lossy(b).into_owned()),
            Value::SimpleString(s) => Ok(s.clone()),
            _ => Err(self.error("not text")),
        }
    }

    /// A number, or a string that spells one.
    pub fn int(&mut self) -> Result<i64, ReplyError> {
        match self.next()? {
            Value::Int(n) => Ok(*n),
            Value::BulkString(b) => std::str::from_utf8(b)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| self.error("not a number")),
            _ => Err(self.error("not a number")),
        }
    }

    /// A number, a negative one read as 0.
    pub fn uint(&mut self) -> Result<u64, ReplyError> {
        Ok(self.int()?.max(0).unsigned_abs())
    }

    /// A number that must fit `T` (a seat index, a count).
    pub fn number<T: TryFrom<i64>>(&mut self) -> Result<T, ReplyError> {
        let n = self.int()?;
        T::try_from(n).map_err(|_| self.error(format!("{n} is out of range")))
    }

    /// Every item left, each a number that must fit `T`.
    pub fn numbers<T: TryFrom<i64>>(&mut self) -> Result<Vec<T>, ReplyError> {
        let mut numbers = Vec::with_capacity(self.items.len().saturating_sub(self.at));
        while !self.is_empty() {
            numbers.push(self.number()?);
        }
        Ok(numbers)
    }

    /// A nested list.
    pub fn list(&mut self) -> Result<Reply<'a>, ReplyError> {
        match self.next()? {
            Value::Array(items) => Ok(Reply { items, at: 0 }),
            _ => Err(self.error("not a list")),
        }
    }
}

/// `[ok, 12, "a b", [..3 items], nil]`, cut at [`SHOWN`] characters.
fn render(items: &[Value]) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if out.len() > SHOWN {
            let _ = write!(out, "… {} more", items.len() - i);
            break;
        }
        if i > 0 {
            out.push_str(", ");
        }
        match item {
            Value::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Value::BulkString(b) => match std::str::from_utf8(b) {
                Ok(text) if text.len() <= 64 => {
                    let _ = write!(out, "{text:?}");
                }
                _ => {
                    let _ = write!(out, "<{} bytes>", b.len());
                }
            },
            Value::SimpleString(s) => {
                let _ = write!(out, "{s:?}");
            }
            Value::Array(inner) => {
                let _ = write!(out, "[..{} items]", inner.len());
            }
            Value::Nil => out.push_str("nil"),
            other => {
                let _ = write!(out, "{other:?}");
            }
        }
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn a_reply_reads_front_to_back_through_nested_lists() {
        let value = Value::Array(vec![
            text("ok"),
            Value::Int(-3),
            text("42"),
            Value::Array(vec![Value::Int(7), text("8")]),
            Value::Int(1),
            Value::Int(2),
        ]);
        let mut reply = Reply::new(&value).expect("a list");
        assert_eq!(reply.text().expect("tag"), "ok");
        assert_eq!(reply.uint().expect("clamped"), 0);
        assert_eq!(reply.int().expect("spelled"), 42);
        let mut inner = reply.list().expect("nested");
        assert_eq!(inner.numbers::<u32>().expect("numbers"), [7, 8]);
        assert!(inner.is_empty());
        assert_eq!(reply.numbers::<u8>().expect("the rest"), [1, 2]);
        assert!(reply.is_empty());
    }

    #[test]
    fn errors_name_the_item_and_show_the_answer() {
        let value = Value::Array(vec![text("ok"), text("soon"), Value::Int(-1)]);
        let mut reply = Reply::new(&value).expect("a list");
        reply.text().expect("tag");
        let err = reply.int().expect_err("not a number");
        assert_eq!(
            err.to_string(),
            r#"["ok", "soon", -1]: not a number at item 1"#
        );
        let err = reply.number::<u32>().expect_err("negative");
        assert_eq!(err.problem, "-1 is out of range");
        assert_eq!(err.at, 2);
        let err = reply.text().expect_err("no more items");
        assert_eq!(err.problem, "the answer ended early");
        assert_eq!(err.at, 3);
        assert_eq!(reply.error("state ok").at, 2, "about the item read last");
    }

    #[test]
    fn not_a_list_and_huge_answers_are_errors_of_bounded_size() {
        let err = Reply::new(&Value::Int(1)).expect_err("not a list");
        assert_eq!(err.to_string(), "[1]: not a list at item 0");
        let value = Value::Array(
            std::iter::once(Value::BulkString(vec![0xff; 10_000]))
                .chain((0..1_000).map(Value::Int))
                .collect(),
        );
        let mut reply = Reply::new(&value).expect("a list");
        let err = reply.int().expect_err("bytes");
        assert!(
            err.reply.starts_with("[<10000 bytes>, 0, 1"),
            "{}",
            err.reply
        );
        assert!(err.reply.len() < SHOWN + 64, "{}", err.reply.len());
        assert!(err.reply.ends_with("more]"), "{}", err.reply);
    }
}
