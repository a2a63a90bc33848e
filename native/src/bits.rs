//! A bytearray (a bit table) as `streams.packing` writes it: plain bytes, or
//! `[size, positions (uint16 little-endian), values]` when mostly zeros.

use crate::value::Value;

/// At most this share of non-zero bytes is written sparse (packing's `_SPARSE_SHARE`).
const SPARSE_SHARE: f64 = 0.3;

/// The bytes a packed bytearray stands for (packing's `_dense`).
pub fn dense(v: &Value, what: &str) -> Result<Vec<u8>, String> {
    match v {
        Value::Bytes(b) => Ok(b.clone()),
        Value::List(items) if items.len() == 3 => {
            let size = items[0].int(what)?;
            let (Value::Bytes(pos), Value::Bytes(vals)) = (&items[1], &items[2]) else {
                return Err(format!("{what}: a sparse table without bytes"));
            };
            if size < 0 || pos.len() != 2 * vals.len() {
                return Err(format!("{what}: a malformed sparse table"));
            }
            let mut out = vec![0u8; size as usize];
            for (i, &value) in vals.iter().enumerate() {
                let p = u16::from_le_bytes([pos[2 * i], pos[2 * i + 1]]) as usize;
                if p >= out.len() {
                    return Err(format!("{what}: a position past the table"));
                }
                out[p] = value;
            }
            Ok(out)
        }
        other => Err(format!("{what}: expected a bit table, got {other:?}")),
    }
}

/// The packed form of `b` (packing's `_sparse`).
pub fn sparse(b: &[u8]) -> Value {
    let nonzero: Vec<usize> = b.iter().enumerate().filter(|(_, &x)| x != 0).map(|(i, _)| i).collect();
    if b.len() > 65535 || nonzero.len() as f64 > SPARSE_SHARE * b.len() as f64 {
        return Value::Bytes(b.to_vec());
    }
    let mut pos = Vec::with_capacity(2 * nonzero.len());
    for &i in &nonzero {
        pos.extend_from_slice(&(i as u16).to_le_bytes());
    }
    Value::List(vec![
        Value::Int(b.len() as i64),
        Value::Bytes(pos),
        Value::Bytes(nonzero.iter().map(|&i| b[i]).collect()),
    ])
}
