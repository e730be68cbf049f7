//! The changed rows of a delta checkpoint, packed: what an update of 50
//! articles changes in the hashed classifier is about 36,000 rows of ten
//! 32-bit floats, 1.6 MB as plain tensors, most of whose bits did not
//! change.
//!
//! Row numbers are stored as the gaps between them (ascending, so small
//! numbers); values as the exclusive or of their bits with what the row held
//! in the version before, when the update recorded that (an adaptive step
//! leaves the sign, the exponent and the leading mantissa bits of most
//! weights as they were, so those bits are zero). Either way the 32-bit
//! words are split into byte planes (all first bytes, then all second
//! bytes, …), which puts the zero bytes together, and the planes are
//! compressed with zstd. Decoding is exact: the loader has the version
//! before, applies the same exclusive or and gets the very bits written.
//!
//! Bytes are in the machine's order: checkpoints move between the
//! little-endian machines this library builds for (x86-64, aarch64).

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// zstd's fastest level that still finds the zero planes: level 1 packs a
/// news update to within a few percent of level 3, in less time, on the
/// update thread.
const LEVEL: i32 = 1;

/// How one variable's changed rows were packed (kept in the checkpoint's
/// metadata, beside the packed bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackedPart {
    /// The shape of the rows' values (rows first).
    pub shape: Vec<i64>,
    /// Whether the values are the exclusive or with the version before.
    pub xor: bool,
}

impl PackedPart {
    fn elements(&self) -> Result<usize, String> {
        self.shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
            .ok_or_else(|| format!("invalid packed shape {:?}", self.shape))
    }
}

/// Whether a variable of this kind can be packed (32-bit floats; anything
/// else is stored as a plain tensor).
pub fn packable(values: &Tensor) -> bool {
    values.kind() == Kind::Float
}

/// Packs ascending row numbers (int64, all below 2³²).
pub fn pack_rows(rows: &Tensor) -> Result<Vec<u8>, String> {
    let rows = Vec::<i64>::try_from(rows.contiguous()).map_err(|e| e.to_string())?;
    let mut previous = 0i64;
    let mut gaps = Vec::with_capacity(rows.len());
    for row in rows {
        let gap = u32::try_from(row - previous).map_err(|_| format!("row {row} after {previous}"))?;
        gaps.push(gap);
        previous = row;
    }
    compress_words(&gaps)
}

/// The row numbers packed by [`pack_rows`], `count` of them.
pub fn unpack_rows(bytes: &[u8], count: usize) -> Result<Vec<i64>, String> {
    let gaps = decompress_words(bytes, count)?;
    let mut row = 0i64;
    Ok(gaps
        .into_iter()
        .map(|gap| {
            row += i64::from(gap);
            row
        })
        .collect())
}

/// Packs `values` (32-bit floats, rows first), against `before` (the same
/// rows in the version before, same shape) when given.
pub fn pack_values(values: &Tensor, before: Option<&Tensor>) -> Result<(Vec<u8>, PackedPart), String> {
    let shape = values.size();
    let before = before.filter(|b| b.size() == shape && b.kind() == values.kind());
    let mut words = bits(values)?;
    if let Some(before) = before {
        for (word, old) in words.iter_mut().zip(bits(before)?) {
            *word ^= old;
        }
    }
    let part = PackedPart {
        shape,
        xor: before.is_some(),
    };
    Ok((compress_words(&words)?, part))
}

/// Writes the values packed by [`pack_values`] into `table` (the bits of
/// a variable of shape `table_shape` in the version before, as [`bits`]
/// gives them) at `rows`: exactly what [`pack_values`] was given.
pub fn apply_values(
    table: &mut [u32],
    table_shape: &[i64],
    rows: &[i64],
    bytes: &[u8],
    part: &PackedPart,
) -> Result<(), String> {
    if part.shape.first().copied() != i64::try_from(rows.len()).ok() || part.shape.get(1..) != table_shape.get(1..) {
        return Err(format!(
            "{} rows of shape {:?} packed for a variable of shape {table_shape:?}",
            rows.len(),
            part.shape
        ));
    }
    let words = decompress_words(bytes, part.elements()?)?;
    let width = words.len().checked_div(rows.len()).unwrap_or(0);
    let height = table.len().checked_div(width).unwrap_or(0);
    for (&row, new) in rows.iter().zip(words.chunks_exact(width.max(1))) {
        let at = usize::try_from(row)
            .ok()
            .filter(|&r| r < height)
            .ok_or_else(|| format!("row {row} of a variable of {height}"))?;
        let old = &mut table[at * width..(at + 1) * width];
        match part.xor {
            true => old.iter_mut().zip(new).for_each(|(o, n)| *o ^= n),
            false => old.copy_from_slice(new),
        }
    }
    Ok(())
}

/// A float tensor of `shape` from the bits [`bits`] gave.
pub fn from_bits(words: Vec<u32>, shape: &[i64]) -> Result<Tensor, String> {
    let values: Vec<f32> = words.into_iter().map(f32::from_bits).collect();
    Tensor::f_from_slice(&values)
        .and_then(|t| t.f_reshape(shape))
        .map_err(|e| e.to_string())
}

/// The bits of a float tensor's elements, in order.
pub fn bits(values: &Tensor) -> Result<Vec<u32>, String> {
    let values = values
        .f_to_device(tch::Device::Cpu)
        .and_then(|v| v.f_contiguous())
        .and_then(|v| v.f_flatten(0, -1))
        .map_err(|e| e.to_string())?;
    let floats = Vec::<f32>::try_from(&values).map_err(|e| e.to_string())?;
    Ok(floats.into_iter().map(f32::to_bits).collect())
}

/// Byte planes of the words, compressed.
fn compress_words(words: &[u32]) -> Result<Vec<u8>, String> {
    let n = words.len();
    let mut planes = vec![0u8; n * 4];
    let (first, rest) = planes.split_at_mut(n);
    let (second, rest) = rest.split_at_mut(n);
    let (third, fourth) = rest.split_at_mut(n);
    for ((((word, a), b), c), d) in words.iter().zip(first).zip(second).zip(third).zip(fourth) {
        [*a, *b, *c, *d] = word.to_ne_bytes();
    }
    zstd::bulk::compress(&planes, LEVEL).map_err(|e| e.to_string())
}

/// `count` words from [`compress_words`]'s bytes.
fn decompress_words(bytes: &[u8], count: usize) -> Result<Vec<u32>, String> {
    let planes = zstd::bulk::decompress(bytes, count * 4).map_err(|e| e.to_string())?;
    if planes.len() != count * 4 {
        return Err(format!("{} packed bytes, {} expected", planes.len(), count * 4));
    }
    let (first, rest) = planes.split_at(count);
    let (second, rest) = rest.split_at(count);
    let (third, fourth) = rest.split_at(count);
    Ok(first
        .iter()
        .zip(second)
        .zip(third)
        .zip(fourth)
        .map(|(((&a, &b), &c), &d)| u32::from_ne_bytes([a, b, c, d]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_values_round_trip_bit_exactly() {
        let rows = [3i64, 4, 90, 70_000, 4_000_000_000];
        let back = unpack_rows(&pack_rows(&Tensor::from_slice(&rows)).unwrap(), 5).unwrap();
        assert_eq!(back, rows);

        let cpu = (Kind::Float, tch::Device::Cpu);
        let table = Tensor::randn([6, 9], cpu);
        let rows = [1i64, 4, 5];
        let index = Tensor::from_slice(&rows);
        let before = table.index_select(0, &index);
        let after = &before - 0.01 * Tensor::randn([3, 9], cpu);
        let expected = table.index_copy(0, &index, &after);
        for against in [None, Some(&before)] {
            let (bytes, part) = pack_values(&after, against).unwrap();
            assert_eq!(part.xor, against.is_some());
            let mut words = bits(&table).unwrap();
            apply_values(&mut words, &table.size(), &rows, &bytes, &part).unwrap();
            assert_eq!(words, bits(&expected).unwrap());
            assert!(from_bits(words, &table.size()).unwrap().equal(&expected));
        }
    }

    #[test]
    fn rows_out_of_order_and_wrong_counts_are_errors() {
        assert!(pack_rows(&Tensor::from_slice(&[5i64, 2])).is_err());
        let bytes = pack_rows(&Tensor::from_slice(&[1i64, 2])).unwrap();
        assert!(unpack_rows(&bytes, 3).is_err());
        let values = Tensor::ones([2, 2], (Kind::Float, tch::Device::Cpu));
        let (bytes, part) = pack_values(&values, Some(&values)).unwrap();
        let mut table = vec![0u32; 6];
        // Too few rows, a wider variable, a row past its end.
        assert!(apply_values(&mut table, &[3, 2], &[0], &bytes, &part).is_err());
        assert!(apply_values(&mut table[..], &[2, 3], &[0, 1], &bytes, &part).is_err());
        assert!(apply_values(&mut table, &[3, 2], &[0, 3], &bytes, &part).is_err());
        assert!(apply_values(&mut table, &[3, 2], &[0, 2], &bytes, &part).is_ok());
    }
}
