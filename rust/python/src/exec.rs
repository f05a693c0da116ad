//! The one way the binding runs core work: [`core_call`].

use prefcurate_core::exec::{self, Ctx};
use pyo3::prelude::*;

use crate::errors::Error;

/// Run the core function `f` with the interpreter released, on the pool for
/// `num_threads` (the core's fork-safe choice: see `prefcurate_core::exec`).
///
/// While `f` runs, this thread re-attaches every 50 ms to call
/// `py.check_signals()` (so Ctrl-C raises `KeyboardInterrupt`, after `f` has
/// stopped at its next chunk) and, when given, `progress(done, total)` with
/// `f`'s progress (and once more at the end).  A failed check or callback
/// cancels `f` and its exception is raised; a core error becomes its Python
/// exception (see `crate::errors`); a panic in `f` becomes `PanicException`.
/// `work` (rows, texts or pairs; `usize::MAX` when unknown) sizes the call:
/// small ones run on this thread without polling (`exec::INLINE_WORK`).
pub fn core_call<T: Send>(
    py: Python<'_>,
    num_threads: Option<usize>,
    work: usize,
    progress: Option<&Py<PyAny>>,
    f: impl FnOnce(&Ctx) -> prefcurate_core::Result<T> + Send,
) -> PyResult<T> {
    let ctx = Ctx::new();
    let mut reported: Option<(u64, u64)> = None;
    let mut report = |py: Python<'_>, ctx: &Ctx| -> PyResult<()> {
        if let Some(cb) = progress {
            let now = ctx.progress();
            if reported != Some(now) {
                reported = Some(now);
                cb.call1(py, now)?;
            }
        }
        Ok(())
    };
    let out = py.detach(|| {
        exec::run(
            num_threads,
            work,
            &ctx,
            |ctx| -> Result<(), Error> {
                Python::attach(|py| {
                    py.check_signals()?;
                    report(py, ctx)
                })?;
                Ok(())
            },
            f,
        )
    })?;
    report(py, &ctx)?;
    Ok(out)
}
