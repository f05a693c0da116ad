//! The rows the core reads, and the pair model.
//!
//! Input columns are read in place through two small traits over borrowed
//! `&str`: [`StrColumn`] (a nullable string per row) and [`MsgColumn`] (a
//! chat conversation per row: `(role, content)` messages).  The Python
//! binding implements them over Arrow arrays; plain slices implement them
//! here (tests, benchmarks).
//!
//! [`Rows`] is what deduplication sees: plain texts, or preference pairs
//! (the chosen and the rejected conversation of each row, which share the
//! prompt turns and end with the two answers).  A [`Level`] says which parts
//! of a pair a key covers; [`Rows::parts`] gives them as `(marker, text)`
//! parts (see [`crate::dedup`]).

use rayon::prelude::*;

use crate::error::{CoreError, Result, RowProblem};
use crate::exec::Ctx;

/// A column of nullable strings, read in place.
pub trait StrColumn: Sync {
    fn len(&self) -> usize;
    /// Row `i` (`i < len()`), or `None` when null.
    fn get(&self, i: usize) -> Option<&str>;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A column of chat conversations (lists of `(role, content)` messages),
/// read in place.
pub trait MsgColumn: Sync {
    fn len(&self) -> usize;
    /// Append row `i`'s messages to `out`; an error says what is null.
    fn messages<'a>(
        &'a self,
        i: usize,
        out: &mut Vec<(&'a str, &'a str)>,
    ) -> std::result::Result<(), RowProblem>;
    /// The content of row `i`'s last message (`""` when it has none or
    /// something is null).
    fn last_content(&self, i: usize) -> &str {
        let mut m = Vec::new();
        let _ = self.messages(i, &mut m);
        m.last().map_or("", |m| m.1)
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Messages of a row, `(role, content)`.
pub type Messages<'a> = Vec<(&'a str, &'a str)>;

/// An item of an in-memory string column (see the [`StrColumn`] impls).
pub trait StrItem: Sync {
    fn as_str_opt(&self) -> Option<&str>;
}

impl StrItem for &str {
    fn as_str_opt(&self) -> Option<&str> {
        Some(self)
    }
}

impl StrItem for String {
    fn as_str_opt(&self) -> Option<&str> {
        Some(self)
    }
}

impl<T: StrItem> StrItem for Option<T> {
    fn as_str_opt(&self) -> Option<&str> {
        self.as_ref().and_then(|s| s.as_str_opt())
    }
}

impl<T: StrItem> StrColumn for &[T] {
    fn len(&self) -> usize {
        <[T]>::len(self)
    }
    fn get(&self, i: usize) -> Option<&str> {
        self[i].as_str_opt()
    }
}

impl<T: StrItem> StrColumn for Vec<T> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn get(&self, i: usize) -> Option<&str> {
        self[i].as_str_opt()
    }
}

impl<T: StrItem, const N: usize> StrColumn for [T; N] {
    fn len(&self) -> usize {
        N
    }
    fn get(&self, i: usize) -> Option<&str> {
        self[i].as_str_opt()
    }
}

impl MsgColumn for &[Vec<(&str, &str)>] {
    fn len(&self) -> usize {
        <[Vec<(&str, &str)>]>::len(self)
    }
    fn messages<'a>(
        &'a self,
        i: usize,
        out: &mut Vec<(&'a str, &'a str)>,
    ) -> std::result::Result<(), RowProblem> {
        out.extend_from_slice(&self[i]);
        Ok(())
    }
}

impl MsgColumn for Vec<Vec<(&str, &str)>> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn messages<'a>(
        &'a self,
        i: usize,
        out: &mut Vec<(&'a str, &'a str)>,
    ) -> std::result::Result<(), RowProblem> {
        out.extend_from_slice(&self[i]);
        Ok(())
    }
}

/// What part of a pair forms a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// the prompt turns (the chosen conversation without its answer)
    Prompt,
    /// the prompt turns and the chosen answer
    PromptChosen,
    /// the prompt turns, the chosen answer and the rejected answer
    Pair,
    /// [`Level::Pair`] with the answers swapped (finds contradictory pairs)
    PairSwapped,
    /// the chosen answer alone
    ChosenAnswer,
    /// the rejected answer alone
    RejectedAnswer,
}

impl Level {
    /// The level named `name` (`"prompt"`, `"prompt_chosen"`, `"pair"`,
    /// `"pair_swapped"`, `"chosen_answer"`, `"rejected_answer"`).
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "prompt" => Level::Prompt,
            "prompt_chosen" => Level::PromptChosen,
            "pair" => Level::Pair,
            "pair_swapped" => Level::PairSwapped,
            "chosen_answer" => Level::ChosenAnswer,
            "rejected_answer" => Level::RejectedAnswer,
            other => {
                return Err(CoreError::InvalidArgument(format!(
                    "unknown level {other:?}: use 'prompt', 'prompt_chosen' or 'pair'"
                )))
            }
        })
    }
}

/// The rows to deduplicate.
#[derive(Clone, Copy)]
pub enum Rows<'a> {
    /// one text per row (one unmarked part, whatever the level)
    Texts(&'a dyn StrColumn),
    /// preference pairs: the chosen and rejected conversations of each row
    Pairs {
        chosen: &'a dyn MsgColumn,
        rejected: &'a dyn MsgColumn,
    },
}

/// Rows per work item of [`Rows::check`].
const CHECK_CHUNK: usize = 4096;

impl<'a> Rows<'a> {
    pub fn texts(texts: &'a dyn StrColumn) -> Self {
        Rows::Texts(texts)
    }

    /// Pairs; `chosen` and `rejected` must have as many rows.
    pub fn pairs(chosen: &'a dyn MsgColumn, rejected: &'a dyn MsgColumn) -> Result<Self> {
        if chosen.len() != rejected.len() {
            return Err(CoreError::InvalidArgument(
                "chosen and rejected have different lengths".into(),
            ));
        }
        Ok(Rows::Pairs { chosen, rejected })
    }

    pub fn len(&self) -> usize {
        match self {
            Rows::Texts(t) => t.len(),
            Rows::Pairs { chosen, .. } => chosen.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the rows are pairs.
    pub fn is_pairs(&self) -> bool {
        matches!(self, Rows::Pairs { .. })
    }

    /// Check every row: no null text; in a pair no null message list, role
    /// or content, and at least the prompt turns and an answer on each side.
    /// The error names the first bad row.
    pub fn check(&self, ctx: &Ctx) -> Result<()> {
        let n = self.len();
        let first = (0..n.div_ceil(CHECK_CHUNK))
            .into_par_iter()
            .find_map_first(|c| {
                if ctx.stopped() {
                    return None;
                }
                let mut buf = (Vec::new(), Vec::new());
                (c * CHECK_CHUNK..((c + 1) * CHECK_CHUNK).min(n))
                    .find_map(|i| self.check_row(i, &mut buf).err())
            });
        ctx.check()?;
        first.map_or(Ok(()), Err)
    }

    fn check_row<'b>(&'b self, i: usize, (a, b): &mut (Messages<'b>, Messages<'b>)) -> Result<()> {
        match self {
            Rows::Texts(t) => match t.get(i) {
                Some(_) => Ok(()),
                None => Err(CoreError::row("text", i, RowProblem::Null)),
            },
            Rows::Pairs { chosen, rejected } => {
                a.clear();
                b.clear();
                chosen
                    .messages(i, a)
                    .map_err(|p| CoreError::row("chosen", i, p))?;
                rejected
                    .messages(i, b)
                    .map_err(|p| CoreError::row("rejected", i, p))?;
                if a.len() < 2 || b.len() < 2 {
                    return Err(CoreError::row(
                        "",
                        i,
                        RowProblem::TooFewMessages {
                            chosen: a.len(),
                            rejected: b.len(),
                        },
                    ));
                }
                Ok(())
            }
        }
    }

    /// Append the parts of row `i` at `level` to `out`, as `(marker, text)`:
    /// a text is one unmarked part; a pair's prompt turns are marked by
    /// their roles, the chosen answer by `"assistant"` and the rejected one
    /// by `"rejected"` (swapped at [`Level::PairSwapped`]); a lone answer is
    /// unmarked.  The rows must have passed [`Rows::check`].
    pub fn parts(&self, i: usize, level: Level, out: &mut Vec<(&'a str, &'a str)>) {
        match *self {
            Rows::Texts(t) => out.push(("", t.get(i).unwrap_or(""))),
            Rows::Pairs { chosen, rejected } => {
                let start = out.len();
                let _ = chosen.messages(i, out);
                let answer = if out.len() > start {
                    out.pop().map_or("", |m| m.1)
                } else {
                    ""
                };
                let rej = || rejected.last_content(i);
                match level {
                    Level::Prompt => {}
                    Level::PromptChosen => out.push(("assistant", answer)),
                    Level::Pair => {
                        out.push(("assistant", answer));
                        out.push(("rejected", rej()));
                    }
                    Level::PairSwapped => {
                        out.push(("assistant", rej()));
                        out.push(("rejected", answer));
                    }
                    Level::ChosenAnswer => {
                        out.truncate(start);
                        out.push(("", answer));
                    }
                    Level::RejectedAnswer => {
                        out.truncate(start);
                        out.push(("", rej()));
                    }
                }
            }
        }
    }

    /// [`Rows::parts`] at `level` from row `skip` on, renumbered from 0.
    pub fn reader(
        self,
        level: Level,
        skip: usize,
    ) -> impl Fn(usize, &mut Vec<(&'a str, &'a str)>) + Sync + 'a {
        move |i, out| self.parts(i + skip, level, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_at_each_level() {
        let chosen = vec![vec![("user", "q"), ("assistant", "good")]];
        let rejected = vec![vec![("user", "q"), ("assistant", "bad")]];
        let rows = Rows::pairs(&chosen, &rejected).unwrap();
        rows.check(&Ctx::new()).unwrap();
        let at = |level| {
            let mut p = Vec::new();
            rows.parts(0, level, &mut p);
            p
        };
        assert_eq!(at(Level::Prompt), vec![("user", "q")]);
        assert_eq!(
            at(Level::PromptChosen),
            vec![("user", "q"), ("assistant", "good")]
        );
        assert_eq!(
            at(Level::Pair),
            vec![("user", "q"), ("assistant", "good"), ("rejected", "bad")]
        );
        assert_eq!(
            at(Level::PairSwapped),
            vec![("user", "q"), ("assistant", "bad"), ("rejected", "good")]
        );
        assert_eq!(at(Level::ChosenAnswer), vec![("", "good")]);
        assert_eq!(at(Level::RejectedAnswer), vec![("", "bad")]);
        let texts = ["a", "b"];
        let t = Rows::texts(&texts);
        let mut p = Vec::new();
        t.parts(1, Level::Pair, &mut p);
        assert_eq!(p, vec![("", "b")]);
        assert!(Level::parse("nope").is_err());
        assert_eq!(Level::parse("pair_swapped").unwrap(), Level::PairSwapped);
    }

    #[test]
    fn check_names_the_first_bad_row() {
        let mut chosen = vec![vec![("user", "q"), ("assistant", "a")]; 10_000];
        let rejected = chosen.clone();
        chosen[9000] = vec![("user", "q")];
        chosen[7000] = vec![("assistant", "a")];
        let rows = Rows::pairs(&chosen, &rejected).unwrap();
        let e = rows.check(&Ctx::new()).unwrap_err().to_string();
        assert_eq!(
            e,
            "row 7000: chosen and rejected need the prompt turns and an answer (got 1 and 2 messages)"
        );
        let texts = [Some("a"), None, None];
        let e = Rows::texts(&texts).check(&Ctx::new()).unwrap_err();
        assert_eq!(e.to_string(), "text: row 1 is null");
        let first = &chosen[..1];
        assert!(Rows::pairs(&first, &rejected).is_err());
        let ctx = Ctx::new();
        ctx.cancel();
        assert!(matches!(
            Rows::pairs(&chosen, &rejected).unwrap().check(&ctx),
            Err(CoreError::Cancelled)
        ));
    }
}
