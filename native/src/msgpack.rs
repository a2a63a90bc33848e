//! A packed series' bytes, read and written as msgspec reads and writes them.
//!
//! The subset `streams.packing` produces: nil, booleans, integers, float64, strings,
//! binary and arrays (no maps, no extension types). Written back as msgspec writes:
//! the smallest integer encoding of the value's sign (positive fixint, uint8..64;
//! negative fixint, int8..64), every float as float64, the smallest string, binary and
//! array headers. So a blob read and written unchanged comes back byte for byte
//! (`tests/unit/native/test_msgpack.py`), and Python reads what this writes as its own.

use crate::value::Value;

pub fn decode(buf: &[u8]) -> Result<Value, String> {
    let mut pos = 0usize;
    let v = read(buf, &mut pos)?;
    if pos != buf.len() {
        return Err(format!("msgpack: {} trailing bytes", buf.len() - pos));
    }
    Ok(v)
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], String> {
    let end = pos.checked_add(n).filter(|&e| e <= buf.len()).ok_or("msgpack: truncated")?;
    let out = &buf[*pos..end];
    *pos = end;
    Ok(out)
}

fn be(buf: &[u8], pos: &mut usize, n: usize) -> Result<u64, String> {
    Ok(take(buf, pos, n)?.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64))
}

fn array(buf: &[u8], pos: &mut usize, n: usize) -> Result<Value, String> {
    let mut items = Vec::with_capacity(n.min(buf.len()));
    for _ in 0..n {
        items.push(read(buf, pos)?);
    }
    Ok(Value::List(items))
}

fn string(buf: &[u8], pos: &mut usize, n: usize) -> Result<Value, String> {
    let raw = take(buf, pos, n)?;
    Ok(Value::Str(std::str::from_utf8(raw).map_err(|_| "msgpack: invalid utf-8")?.to_owned()))
}

fn read(buf: &[u8], pos: &mut usize) -> Result<Value, String> {
    let b = take(buf, pos, 1)?[0];
    match b {
        0x00..=0x7f => Ok(Value::Int(b as i64)),
        0x90..=0x9f => array(buf, pos, (b & 0x0f) as usize),
        0xa0..=0xbf => string(buf, pos, (b & 0x1f) as usize),
        0xc0 => Ok(Value::None),
        0xc2 => Ok(Value::Bool(false)),
        0xc3 => Ok(Value::Bool(true)),
        0xc4 | 0xc5 | 0xc6 => {
            let n = be(buf, pos, 1 << (b - 0xc4))? as usize;
            Ok(Value::Bytes(take(buf, pos, n)?.to_vec()))
        }
        0xca => Ok(Value::Float(f32::from_bits(be(buf, pos, 4)? as u32) as f64)),
        0xcb => Ok(Value::Float(f64::from_bits(be(buf, pos, 8)?))),
        0xcc..=0xcf => {
            let x = be(buf, pos, 1 << (b - 0xcc))?;
            i64::try_from(x).map(Value::Int).map_err(|_| "msgpack: an integer past int64".to_owned())
        }
        0xd0..=0xd3 => {
            let n = 1usize << (b - 0xd0);
            let x = be(buf, pos, n)?;
            let shift = 64 - 8 * n as u32;
            Ok(Value::Int(((x << shift) as i64) >> shift))
        }
        0xd9..=0xdb => {
            let n = be(buf, pos, 1 << (b - 0xd9))? as usize;
            string(buf, pos, n)
        }
        0xdc | 0xdd => {
            let n = be(buf, pos, if b == 0xdc { 2 } else { 4 })? as usize;
            array(buf, pos, n)
        }
        0xe0..=0xff => Ok(Value::Int((b as i8) as i64)),
        other => Err(format!("msgpack: type byte {other:#04x} is not one packing writes")),
    }
}

pub fn encode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::None => out.push(0xc0),
        Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Int(x) => int(*x, out),
        Value::Float(x) => {
            out.push(0xcb);
            out.extend_from_slice(&x.to_bits().to_be_bytes());
        }
        Value::Str(s) => {
            let n = s.len();
            if n < 32 {
                out.push(0xa0 | n as u8);
            } else if n < 256 {
                out.extend_from_slice(&[0xd9, n as u8]);
            } else if n < 65536 {
                out.push(0xda);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            } else {
                out.push(0xdb);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            let n = b.len();
            if n < 256 {
                out.extend_from_slice(&[0xc4, n as u8]);
            } else if n < 65536 {
                out.push(0xc5);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            } else {
                out.push(0xc6);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            out.extend_from_slice(b);
        }
        Value::List(items) => {
            let n = items.len();
            if n < 16 {
                out.push(0x90 | n as u8);
            } else if n < 65536 {
                out.push(0xdc);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            } else {
                out.push(0xdd);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            for item in items {
                encode(item, out);
            }
        }
    }
}

fn int(x: i64, out: &mut Vec<u8>) {
    if x >= 0 {
        if x < 128 {
            out.push(x as u8);
        } else if x < 256 {
            out.extend_from_slice(&[0xcc, x as u8]);
        } else if x < 65536 {
            out.push(0xcd);
            out.extend_from_slice(&(x as u16).to_be_bytes());
        } else if x < (1 << 32) {
            out.push(0xce);
            out.extend_from_slice(&(x as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(x as u64).to_be_bytes());
        }
    } else if x >= -32 {
        out.push(x as i8 as u8);
    } else if x >= -128 {
        out.extend_from_slice(&[0xd0, x as i8 as u8]);
    } else if x >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(x as i16).to_be_bytes());
    } else if x >= -(1 << 31) {
        out.push(0xd2);
        out.extend_from_slice(&(x as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&x.to_be_bytes());
    }
}
