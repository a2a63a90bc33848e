//! The plain data of a packed series (what `streams.packing` writes), in Rust.
//!
//! Packed learned values are numbers, None, strings, bytes and lists of them
//! (tuples arrive as lists). The kind of a number is kept (an `int` stays an `int`):
//! the Python detectors report some counts in alerts, where `2` and `2.0` differ.

use std::collections::HashMap;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
}

impl Value {
    /// A float field (a Python `float`); an `int` is refused, as the layout says float.
    pub fn float(&self, what: &str) -> Result<f64, String> {
        match self {
            Value::Float(x) => Ok(*x),
            other => Err(format!("{what}: expected a float, got {other:?}")),
        }
    }

    /// An int field.
    pub fn int(&self, what: &str) -> Result<i64, String> {
        match self {
            Value::Int(x) => Ok(*x),
            other => Err(format!("{what}: expected an int, got {other:?}")),
        }
    }

    /// A number that may be either (kept as it is: see [`Num`]).
    pub fn num(&self, what: &str) -> Result<Num, String> {
        match self {
            Value::Int(x) => Ok(Num::I(*x)),
            Value::Float(x) => Ok(Num::F(*x)),
            other => Err(format!("{what}: expected a number, got {other:?}")),
        }
    }

    /// A float or None (a timestamp not seen yet).
    pub fn opt_float(&self, what: &str) -> Result<Option<f64>, String> {
        match self {
            Value::None => Ok(None),
            Value::Float(x) => Ok(Some(*x)),
            other => Err(format!("{what}: expected a float or None, got {other:?}")),
        }
    }

    pub fn list(&self, what: &str) -> Result<&[Value], String> {
        match self {
            Value::List(items) => Ok(items),
            other => Err(format!("{what}: expected a list, got {other:?}")),
        }
    }

    /// A list of floats.
    pub fn floats(&self, what: &str) -> Result<Vec<f64>, String> {
        self.list(what)?.iter().map(|v| v.float(what)).collect()
    }
}

/// A Python number that is an `int` or a `float` (the change-point detector's count is
/// an int until a float is added to it, as in Python).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Num {
    I(i64),
    F(f64),
}

impl Num {
    pub fn f(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(x) => x,
        }
    }

    pub fn value(self) -> Value {
        match self {
            Num::I(i) => Value::Int(i),
            Num::F(x) => Value::Float(x),
        }
    }
}

impl<'py> FromPyObject<'py> for Value {
    fn extract_bound(ob: &Bound<'py, PyAny>) -> PyResult<Self> {
        if ob.is_none() {
            return Ok(Value::None);
        }
        if let Ok(b) = ob.downcast::<PyBool>() {
            return Ok(Value::Bool(b.is_true()));
        }
        if ob.is_exact_instance_of::<PyFloat>() {
            return Ok(Value::Float(ob.extract::<f64>()?));
        }
        if ob.is_exact_instance_of::<PyInt>() {
            return Ok(Value::Int(ob.extract::<i64>()?));
        }
        if let Ok(s) = ob.downcast::<PyString>() {
            return Ok(Value::Str(s.to_str()?.to_owned()));
        }
        if let Ok(b) = ob.downcast::<PyBytes>() {
            return Ok(Value::Bytes(b.as_bytes().to_vec()));
        }
        if let Ok(b) = ob.downcast::<PyByteArray>() {
            return Ok(Value::Bytes(b.to_vec()));
        }
        if let Ok(items) = ob.downcast::<PyList>() {
            return items.iter().map(|x| x.extract()).collect::<PyResult<Vec<_>>>().map(Value::List);
        }
        if let Ok(items) = ob.downcast::<PyTuple>() {
            return items.iter().map(|x| x.extract()).collect::<PyResult<Vec<_>>>().map(Value::List);
        }
        Err(PyTypeError::new_err(format!("not plain packed data: {}", ob.get_type().name()?)))
    }
}

impl ToPyObject for Value {
    fn to_object(&self, py: Python<'_>) -> PyObject {
        match self {
            Value::None => py.None(),
            Value::Bool(b) => b.to_object(py),
            Value::Int(i) => i.to_object(py),
            Value::Float(x) => x.to_object(py),
            Value::Str(s) => s.to_object(py),
            Value::Bytes(b) => PyBytes::new_bound(py, b).into_any().unbind(),
            Value::List(items) => PyList::new_bound(py, items.iter().map(|v| v.to_object(py))).into_any().unbind(),
        }
    }
}

/// How one detector (or part) is laid out and parametrised: `streams.packing`'s
/// `_Layout.spec()`: its class name, its learned attribute names in packed order, its
/// parameters, and the specs of its parts.
#[derive(Clone, Debug)]
pub struct Spec {
    pub class: String,
    pub names: Vec<String>,
    pub params: HashMap<String, Value>,
    pub parts: HashMap<String, Spec>,
}

impl<'py> FromPyObject<'py> for Spec {
    fn extract_bound(ob: &Bound<'py, PyAny>) -> PyResult<Self> {
        let d = ob.downcast::<PyDict>()?;
        let get = |k: &str| -> PyResult<Bound<'py, PyAny>> {
            d.get_item(k)?.ok_or_else(|| PyTypeError::new_err(format!("spec without {k}")))
        };
        Ok(Spec {
            class: get("class")?.extract()?,
            names: get("names")?.extract()?,
            params: get("params")?.extract()?,
            parts: get("parts")?.extract()?,
        })
    }
}

impl Spec {
    /// Refuses a layout whose learned attributes are not exactly `names`, in order
    /// (a detector changed in Python and not here: the series stays on the Python path).
    pub fn expect_names(&self, names: &[&str]) -> Result<(), String> {
        if self.names.len() != names.len() || self.names.iter().zip(names).any(|(a, b)| a != b) {
            return Err(format!("{}: learned attributes {:?}, native knows {:?}", self.class, self.names, names));
        }
        Ok(())
    }

    fn param(&self, name: &str) -> Result<&Value, String> {
        self.params.get(name).ok_or_else(|| format!("{}: no parameter {name}", self.class))
    }

    /// A numeric parameter as a float (an `int` parameter is converted, as Python's
    /// arithmetic with a float converts it).
    pub fn f64(&self, name: &str) -> Result<f64, String> {
        match self.param(name)? {
            Value::Int(i) => Ok(*i as f64),
            Value::Float(x) => Ok(*x),
            other => Err(format!("{}.{name}: expected a number, got {other:?}", self.class)),
        }
    }

    /// An integer parameter (an int, or a float with an integral value is refused: say which).
    pub fn i64(&self, name: &str) -> Result<i64, String> {
        match self.param(name)? {
            Value::Int(i) => Ok(*i),
            other => Err(format!("{}.{name}: expected an int, got {other:?}", self.class)),
        }
    }

    pub fn bool(&self, name: &str) -> Result<bool, String> {
        match self.param(name)? {
            Value::Bool(b) => Ok(*b),
            other => Err(format!("{}.{name}: expected a bool, got {other:?}", self.class)),
        }
    }

    pub fn str(&self, name: &str) -> Result<&str, String> {
        match self.param(name)? {
            Value::Str(s) => Ok(s),
            other => Err(format!("{}.{name}: expected a string, got {other:?}", self.class)),
        }
    }

    pub fn part(&self, name: &str) -> Result<&Spec, String> {
        self.parts.get(name).ok_or_else(|| format!("{}: no part {name}", self.class))
    }
}

/// The learned values of `spec`'s layout, checked for their count.
pub fn fields<'a>(spec: &Spec, values: &'a [Value]) -> Result<&'a [Value], String> {
    if values.len() != spec.names.len() {
        return Err(format!("packed {}: {} values, expected {}", spec.class, values.len(), spec.names.len()));
    }
    Ok(values)
}
