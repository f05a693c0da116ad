//! Reading string columns through the Arrow PyCapsule interface, without a
//! Python object per row.
//!
//! Anything with `__arrow_c_stream__` (pyarrow arrays, chunked arrays, polars
//! series, ...) or `__arrow_c_array__` is accepted.  `string`, `large_string`
//! and `string_view` columns are read in place: sliced arrays and chunks are
//! handled by the Arrow views, nulls are reported with their row, and the
//! bytes are checked to be UTF-8 once per chunk.
//!
//! [`StrCol`] and [`MsgCol`] implement the core's column traits
//! ([`StrColumn`], [`MsgColumn`]): this file is the binding's only Arrow code.

use arrow_array::ffi::{from_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::ffi_stream::{ArrayStreamReader, FFI_ArrowArrayStream};
use arrow_array::{make_array, Array, ArrayRef, BinaryViewArray, LargeStringArray, StringArray};
use arrow_schema::DataType;
use prefcurate_core::rows::{MsgColumn, StrColumn};
use prefcurate_core::RowProblem;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyCapsule, PyCapsuleMethods, PyList, PyString, PyTuple};

use crate::errors::input_error;

fn capsule_ptr<T>(capsule: &Bound<'_, PyCapsule>, name: &std::ffi::CStr) -> PyResult<*mut T> {
    Ok(capsule.pointer_checked(Some(name))?.cast::<T>().as_ptr())
}

/// Import the chunks of an Arrow-compatible Python object.
pub fn import_arrays(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<ArrayRef>> {
    if obj.hasattr("__arrow_c_stream__")? {
        let capsule = obj
            .call_method0("__arrow_c_stream__")?
            .cast_into::<PyCapsule>()?;
        let ptr = capsule_ptr::<FFI_ArrowArrayStream>(&capsule, c"arrow_array_stream")?;
        // SAFETY: the capsule holds a valid stream; from_raw moves it out and
        // leaves a released stream behind, so the capsule's destructor is a no-op.
        let reader = unsafe { ArrayStreamReader::from_raw(ptr) }
            .map_err(|e| input_error(format!("{what}: cannot read Arrow stream: {e}")))?;
        return reader
            .map(|a| a.map_err(|e| input_error(format!("{what}: cannot read Arrow stream: {e}"))))
            .collect();
    }
    if obj.hasattr("__arrow_c_array__")? {
        let pair = obj.call_method0("__arrow_c_array__")?;
        let pair = pair.cast::<PyTuple>()?;
        let schema = pair.get_item(0)?.cast_into::<PyCapsule>()?;
        let array = pair.get_item(1)?.cast_into::<PyCapsule>()?;
        let schema_ptr = capsule_ptr::<FFI_ArrowSchema>(&schema, c"arrow_schema")?;
        let array_ptr = capsule_ptr::<FFI_ArrowArray>(&array, c"arrow_array")?;
        // SAFETY: valid capsules per the PyCapsule interface; the array is moved out.
        let data = unsafe {
            let a = FFI_ArrowArray::from_raw(array_ptr);
            from_ffi(a, &*schema_ptr)
        }
        .map_err(|e| input_error(format!("{what}: cannot read Arrow array: {e}")))?;
        return Ok(vec![make_array(data)]);
    }
    Err(input_error(format!(
        "{what}: expected an Arrow array or chunked array (an object with __arrow_c_stream__ or \
         __arrow_c_array__), got {}",
        obj.get_type().name()?
    )))
}

/// String columns borrowed from imported Arrow chunks, or the strings of a
/// Python list (held by reference: no copy for ASCII text).
pub struct Texts {
    chunks: Vec<ArrayRef>,
    views: Vec<BinaryViewArray>,
    py: Vec<PyBackedStr>,
}

fn check_offsets<O: Copy + Into<i64>>(
    offsets: &[O],
    values: &[u8],
    what: &str,
    base: usize,
) -> PyResult<()> {
    let (first, last) = (
        offsets[0].into() as usize,
        offsets[offsets.len() - 1].into() as usize,
    );
    if let Err(e) = std::str::from_utf8(&values[first..last]) {
        let bad = first + e.valid_up_to();
        let row = offsets
            .partition_point(|&o| (o.into() as usize) <= bad)
            .saturating_sub(1);
        return Err(input_error(format!(
            "{what}: row {} is not valid UTF-8",
            base + row
        )));
    }
    // each value must start on a char boundary for its slice to be valid UTF-8
    for (k, &o) in offsets.iter().enumerate() {
        let o = o.into() as usize;
        if o < values.len() && o < last && (values[o] as i8) < -0x40 {
            return Err(input_error(format!(
                "{what}: row {} is not valid UTF-8",
                base + k
            )));
        }
    }
    Ok(())
}

/// The items of a Python list of `str`, read in place (UTF-8 of an ASCII
/// `str` is its own buffer); an error names the first item that is not a
/// `str` or holds a lone surrogate.
fn py_strs(list: &Bound<'_, PyList>, what: &str) -> PyResult<Vec<PyBackedStr>> {
    let mut py = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let s = item.cast_into::<PyString>().map_err(|e| {
            let t = e.into_inner();
            let kind = if t.is_none() {
                "None".to_string()
            } else {
                t.get_type().name().map_or("?".into(), |n| n.to_string())
            };
            input_error(format!("{what}: row {i} is {kind}, not a str"))
        })?;
        py.push(PyBackedStr::try_from(s).map_err(|_| {
            input_error(format!(
                "{what}: row {i} is not valid UTF-8 (a lone surrogate)"
            ))
        })?);
    }
    Ok(py)
}

impl Texts {
    pub fn import(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Self> {
        if let Ok(list) = obj.cast::<PyList>() {
            let py = py_strs(list, what)?;
            return Ok(Texts {
                chunks: Vec::new(),
                views: Vec::new(),
                py,
            });
        }
        let chunks = import_arrays(obj, what)?;
        let mut views = Vec::new();
        for c in &chunks {
            match c.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 => {}
                DataType::Utf8View => views.push(BinaryViewArray::from(c.to_data().into_builder().data_type(DataType::BinaryView).build().map_err(|e| input_error(format!("{what}: {e}")))?)),
                other => {
                    return Err(input_error(format!(
                        "{what}: expected a string column (string, large_string or string_view), got {other}"
                    )))
                }
            }
        }
        Ok(Texts {
            chunks,
            views,
            py: Vec::new(),
        })
    }

    pub fn len(&self) -> usize {
        self.chunks.iter().map(|c| c.len()).sum::<usize>() + self.py.len()
    }

    /// One `&str` per row; an error names the first null or non-UTF-8 row.
    pub fn strs(&self, what: &str) -> PyResult<Vec<&str>> {
        let mut out = Vec::with_capacity(self.len());
        out.extend(self.py.iter().map(|s| &**s));
        let mut views = self.views.iter();
        for c in &self.chunks {
            let base = out.len();
            if c.null_count() > 0 {
                let row = (0..c.len()).find(|&i| c.is_null(i)).unwrap_or(0);
                return Err(input_error(format!(
                    "{what}: row {} is null; drop or fill missing texts first",
                    base + row
                )));
            }
            match c.data_type() {
                DataType::Utf8 => {
                    let a = c.as_any().downcast_ref::<StringArray>().expect("utf8");
                    check_offsets(a.value_offsets(), a.value_data(), what, base)?;
                    out.extend((0..a.len()).map(|i| a.value(i)));
                }
                DataType::LargeUtf8 => {
                    let a = c
                        .as_any()
                        .downcast_ref::<LargeStringArray>()
                        .expect("large_utf8");
                    check_offsets(a.value_offsets(), a.value_data(), what, base)?;
                    out.extend((0..a.len()).map(|i| a.value(i)));
                }
                _ => {
                    let a = views.next().expect("one view array per string_view chunk");
                    for i in 0..a.len() {
                        let s = std::str::from_utf8(a.value(i)).map_err(|_| {
                            input_error(format!("{what}: row {} is not valid UTF-8", base + i))
                        })?;
                        out.push(s);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// A nullable string column over imported Arrow chunks, read in place.
pub struct StrCol {
    chunks: Vec<ArrayRef>,
    views: Vec<Option<BinaryViewArray>>,
    /// first row of each chunk, plus the total
    starts: Vec<usize>,
    /// the rows of a Python list of `str` (no chunks then)
    py: Vec<PyBackedStr>,
}

impl StrCol {
    /// An Arrow string column, or a Python list of `str`.
    pub fn import(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Self> {
        if let Ok(list) = obj.cast::<PyList>() {
            let py = py_strs(list, what)?;
            return Ok(StrCol {
                chunks: Vec::new(),
                views: Vec::new(),
                starts: vec![0, py.len()],
                py,
            });
        }
        Self::from_arrays(import_arrays(obj, what)?, what)
    }

    pub fn from_arrays(chunks: Vec<ArrayRef>, what: &str) -> PyResult<Self> {
        let mut views = Vec::with_capacity(chunks.len());
        let mut starts = vec![0usize];
        for c in &chunks {
            match c.data_type() {
                DataType::Utf8 => {
                    let a = c.as_any().downcast_ref::<StringArray>().expect("utf8");
                    check_offsets(a.value_offsets(), a.value_data(), what, *starts.last().expect("non-empty"))?;
                    views.push(None);
                }
                DataType::LargeUtf8 => {
                    let a = c.as_any().downcast_ref::<LargeStringArray>().expect("large_utf8");
                    check_offsets(a.value_offsets(), a.value_data(), what, *starts.last().expect("non-empty"))?;
                    views.push(None);
                }
                DataType::Utf8View => {
                    let v = BinaryViewArray::from(
                        c.to_data()
                            .into_builder()
                            .data_type(DataType::BinaryView)
                            .build()
                            .map_err(|e| input_error(format!("{what}: {e}")))?,
                    );
                    for i in 0..v.len() {
                        if v.is_valid(i) && std::str::from_utf8(v.value(i)).is_err() {
                            return Err(input_error(format!(
                                "{what}: row {} is not valid UTF-8",
                                starts.last().expect("non-empty") + i
                            )));
                        }
                    }
                    views.push(Some(v));
                }
                other => {
                    return Err(input_error(format!(
                        "{what}: expected a string column (string, large_string or string_view), got {other}"
                    )))
                }
            }
            starts.push(starts.last().expect("non-empty") + c.len());
        }
        Ok(StrCol {
            chunks,
            views,
            starts,
            py: Vec::new(),
        })
    }

    pub fn len(&self) -> usize {
        *self.starts.last().expect("non-empty")
    }

    /// Row `i`, or `None` when null.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&str> {
        if !self.py.is_empty() {
            return Some(&self.py[i]);
        }
        let c = if self.chunks.len() == 1 {
            0
        } else {
            self.starts.partition_point(|&s| s <= i) - 1
        };
        let k = i - self.starts[c];
        let a = &self.chunks[c];
        if a.is_null(k) {
            return None;
        }
        Some(match &self.views[c] {
            // SAFETY: checked to be UTF-8 at import
            Some(v) => unsafe { std::str::from_utf8_unchecked(v.value(k)) },
            None => match a.data_type() {
                DataType::Utf8 => a
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("utf8")
                    .value(k),
                _ => a
                    .as_any()
                    .downcast_ref::<LargeStringArray>()
                    .expect("large_utf8")
                    .value(k),
            },
        })
    }
}

impl StrColumn for StrCol {
    fn len(&self) -> usize {
        StrCol::len(self)
    }
    #[inline]
    fn get(&self, i: usize) -> Option<&str> {
        StrCol::get(self, i)
    }
}

/// A column of chat message lists (`list<struct<role, content>>`), read in place.
pub struct MsgCol {
    chunks: Vec<MsgChunk>,
    starts: Vec<usize>,
}

struct MsgChunk {
    list: ArrayRef,
    offsets: Vec<usize>,
    role: StrCol,
    content: StrCol,
}

impl MsgCol {
    pub fn import(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Self> {
        use arrow_array::{LargeListArray, ListArray, StructArray};
        let mut chunks = Vec::new();
        let mut starts = vec![0usize];
        for c in import_arrays(obj, what)? {
            let (offsets, values): (Vec<usize>, ArrayRef) = match c.data_type() {
                DataType::List(_) => {
                    let l = c.as_any().downcast_ref::<ListArray>().expect("list");
                    (
                        l.value_offsets().iter().map(|&o| o as usize).collect(),
                        l.values().clone(),
                    )
                }
                DataType::LargeList(_) => {
                    let l = c
                        .as_any()
                        .downcast_ref::<LargeListArray>()
                        .expect("large list");
                    (
                        l.value_offsets().iter().map(|&o| o as usize).collect(),
                        l.values().clone(),
                    )
                }
                other => {
                    return Err(input_error(format!(
                        "{what}: expected a list of messages, got {other}"
                    )))
                }
            };
            let st = values
                .as_any()
                .downcast_ref::<StructArray>()
                .ok_or_else(|| {
                    input_error(format!(
                        "{what}: messages must be structs with role and content"
                    ))
                })?;
            let field = |name: &str| {
                st.column_by_name(name)
                    .cloned()
                    .ok_or_else(|| input_error(format!("{what}: messages have no {name:?} field")))
            };
            let role = StrCol::from_arrays(vec![field("role")?], &format!("{what} role"))?;
            let content = StrCol::from_arrays(vec![field("content")?], &format!("{what} content"))?;
            starts.push(starts.last().expect("non-empty") + c.len());
            chunks.push(MsgChunk {
                list: c,
                offsets,
                role,
                content,
            });
        }
        Ok(MsgCol { chunks, starts })
    }

    pub fn len(&self) -> usize {
        *self.starts.last().expect("non-empty")
    }

    /// The chunk of row `i`, and the row's place in it.
    #[inline]
    fn locate(&self, i: usize) -> (&MsgChunk, usize) {
        let c = if self.chunks.len() == 1 {
            0
        } else {
            self.starts.partition_point(|&s| s <= i) - 1
        };
        (&self.chunks[c], i - self.starts[c])
    }
}

impl MsgColumn for MsgCol {
    fn len(&self) -> usize {
        MsgCol::len(self)
    }

    /// Messages of row `i` as (role, content); an error names a null.
    #[inline]
    fn messages<'a>(
        &'a self,
        i: usize,
        out: &mut Vec<(&'a str, &'a str)>,
    ) -> Result<(), RowProblem> {
        let (ch, k) = self.locate(i);
        if ch.list.is_null(k) {
            return Err(RowProblem::NullMessages);
        }
        for m in ch.offsets[k]..ch.offsets[k + 1] {
            let message = m - ch.offsets[k];
            let role = ch.role.get(m).ok_or(RowProblem::NullRole { message })?;
            let content = ch
                .content
                .get(m)
                .ok_or(RowProblem::NullContent { message })?;
            out.push((role, content));
        }
        Ok(())
    }

    #[inline]
    fn last_content(&self, i: usize) -> &str {
        let (ch, k) = self.locate(i);
        let (a, b) = (ch.offsets[k], ch.offsets[k + 1]);
        if ch.list.is_null(k) || a == b {
            return "";
        }
        ch.content.get(b - 1).unwrap_or("")
    }
}
